"""Conversion templates: ``{column}`` placeholders and ``{{`` / ``}}`` escapes, nothing else.

A ``template`` of a Dataset's ``convert.messages`` comes from a spec, and specs may come from
an untrusted pull request, so a template is never handed to ``str.format``: that language
reaches Python attributes and items (``{row.__class__}``, ``{col[0]}``), applies format
specs and conversions (``{x:>999999}``, ``{x!r}``) and takes positional fields. Instead
:func:`parse_template` parses a template once into literal text and column parts, and
rejects anything else with a :class:`TemplateError` that says what and where (the spec
model reports it as a ``validate`` error at the template's spec line);
:func:`render_template` joins the parts with a row's cells, which only ever looks up a
column by its name.

For every template this module accepts, the result is exactly what ``str.format_map``
gives over the row's cells, so converted samples do not change.

Only the standard library is used.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass

_BRACE = re.compile(r"[{}]")
_NOT_IN_NAMES = {
    ".": "attribute access",
    "[": "item access",
    "]": "item access",
    "!": "a conversion",
    ":": "a format spec",
}
"""Characters ``str.format`` gives a meaning inside a placeholder, and what they would do."""


@dataclass(frozen=True, slots=True)
class Column:
    """A ``{name}`` placeholder: the text of column ``name`` of the row.

    Attributes:
        name: the column name exactly as written between the braces.
    """

    name: str


TemplatePart = str | Column
"""Literal text (escapes already resolved) or a column placeholder."""


class TemplateError(ValueError):
    """A template uses something other than ``{column}`` placeholders and brace escapes.

    Attributes:
        offset: 0-based index in the template of the brace that starts the problem.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def _where(text: str, offset: int) -> str:
    """``line L, column C`` (1-based) of ``offset`` inside a template."""
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"template line {line}, column {column}"


def _column(text: str, start: int, end: int) -> Column:
    """The placeholder ``text[start:end+1]`` (braces included) as a column, or an error."""
    name = text[start + 1 : end]
    shown = text[start : end + 1]
    where = _where(text, start)
    if not name.strip():
        raise TemplateError(
            f"empty placeholder {shown!r} at {where}: positional fields are not supported; "
            "name a column, e.g. {question}, or write {{ and }} for literal braces",
            start,
        )
    if name.isdigit():
        raise TemplateError(
            f"positional placeholder {shown!r} at {where}: templates name columns, e.g. "
            "{question}; to take a column whose name is a number use 'column:' instead",
            start,
        )
    for i, char in enumerate(name):
        if char in _NOT_IN_NAMES:
            raise TemplateError(
                f"placeholder {shown!r} at {where} uses {_NOT_IN_NAMES[char]} "
                f"({name[i:]!r}); templates take plain {{column}} placeholders only "
                "(a column whose name contains . [ ] ! or : can be taken with 'column:')",
                start,
            )
    return Column(name)


@functools.lru_cache(maxsize=256)
def parse_template(text: str) -> tuple[TemplatePart, ...]:
    """The parts of a template, in order; adjacent literal text is one part.

    Cached: a conversion applies the same few templates to every row.

    Raises:
        TemplateError: an empty, positional or non-plain placeholder (attribute or item
            access, conversion, format spec), a ``{`` never closed or nested, a lone ``}``.
    """
    parts: list[TemplatePart] = []
    literal: list[str] = []
    pos = 0
    size = len(text)
    while pos < size:
        # Text up to the next brace is literal.
        found = _BRACE.search(text, pos)
        if found is None:
            literal.append(text[pos:])
            break
        nxt = found.start()
        literal.append(text[pos:nxt])
        brace = text[nxt]
        if text.startswith(brace * 2, nxt):
            literal.append(brace)
            pos = nxt + 2
            continue
        if brace == "}":
            raise TemplateError(
                f"single '}}' at {_where(text, nxt)}: write '}}}}' for a literal brace",
                nxt,
            )
        close = text.find("}", nxt + 1)
        opened = text.find("{", nxt + 1, close if close >= 0 else size)
        if close < 0:
            raise TemplateError(
                f"'{{' at {_where(text, nxt)} is never closed: write '{{{{' for a literal "
                "brace, or close the placeholder, e.g. {question}",
                nxt,
            )
        if opened >= 0:
            raise TemplateError(
                f"'{{' inside the placeholder {text[nxt : close + 1]!r} at "
                f"{_where(text, nxt)}: placeholders cannot nest; write '{{{{' for a "
                "literal brace",
                nxt,
            )
        if any(literal):
            parts.append("".join(literal))
        literal = []
        parts.append(_column(text, nxt, close))
        pos = close + 1
    tail = "".join(literal)
    if tail:
        parts.append(tail)
    return tuple(parts)


def template_columns(parts: tuple[TemplatePart, ...]) -> list[str]:
    """The column names a parsed template takes, in order of first use."""
    return list(dict.fromkeys(p.name for p in parts if isinstance(p, Column)))


def render_template(parts: tuple[TemplatePart, ...], cell: Callable[[str], str]) -> str:
    """A parsed template with every placeholder replaced by ``cell(name)``.

    ``cell`` is only ever called with the name of a placeholder; whatever it raises (e.g.
    ``KeyError`` for a column the row does not have) propagates.
    """
    return "".join(p if isinstance(p, str) else cell(p.name) for p in parts)
