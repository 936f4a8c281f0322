"""YAML loading with source positions.

PyYAML's SafeLoader composes each document into a node tree that knows where every node starts;
this module turns that tree into plain Python data *and* a map from field paths to 1-based
:class:`~reconciler.errors.Location` values, so every later problem can name file:line:column.

Differences from ``yaml.safe_load_all`` (all deliberate):

* duplicate mapping keys are errors (PyYAML silently keeps the last one);
* ``1e-4``, ``1E-5``, ``-2e+3`` are floats (YAML 1.1 wants a dot; users do not write one);
* unreadable input (NUL bytes, invalid UTF-8, non-printable characters, syntax errors) becomes a
  :class:`~reconciler.errors.Problem` instead of an exception;
* empty documents are skipped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Location, Problem

FieldPath = tuple[str | int, ...]
"""Path of a value inside a document: mapping keys and sequence indexes."""

# Guards against alias bombs ("billion laughs"): a spec never legitimately needs this many values.
_MAX_VALUES = 200_000


# libyaml's parser is an order of magnitude faster than the pure-Python one (1,000s of
# documents in a plan-sized spec tree); both give the same nodes and marks.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class PositionLoader(_SafeLoader):  # type: ignore[valid-type,misc]
    """SafeLoader that also reads exponent-only floats such as ``1e-4``."""


# YAML 1.1 (and thus PyYAML) requires a dot in floats, so ``1e-4`` would be the *string* "1e-4";
# every user writing a learning rate expects a number.
PositionLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


@dataclass
class YamlDocument:
    """One non-empty YAML document of a file.

    Attributes:
        data: the document as plain Python data (dict/list/str/int/float/bool/None).
        location: position of the document's first node.
        index: 0-based position of the document in its file (empty documents count).
        key_locations: position of each mapping *key* by the path of its value (and of each
            sequence item by its path); the place to point at for "unknown field".
        value_locations: position of each value by its path; the place to point at for
            "wrong type" or "out of range".
    """

    data: Any
    location: Location
    index: int
    key_locations: dict[FieldPath, Location] = field(default_factory=dict)
    value_locations: dict[FieldPath, Location] = field(default_factory=dict)


@dataclass
class _Builder:
    """Turns one composed node tree into data plus location maps, collecting problems."""

    loader: PositionLoader
    file: str
    problems: list[Problem]
    key_locations: dict[FieldPath, Location] = field(default_factory=dict)
    value_locations: dict[FieldPath, Location] = field(default_factory=dict)
    count: int = 0

    def loc(self, node: Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

    def build(self, node: Node, path: FieldPath, active: frozenset[int]) -> Any:
        self.count += 1
        if self.count > _MAX_VALUES:
            raise _TooLarge(self.loc(node))
        self.value_locations.setdefault(path, self.loc(node))
        if id(node) in active:
            # An alias that points into itself (``&a [*a]``): plain data cannot hold it.
            self.problems.append(
                Problem(
                    "yaml-syntax",
                    "recursive YAML alias: a value contains itself",
                    self.loc(node),
                    hint="remove the alias that refers to its own anchor",
                )
            )
            return None
        if isinstance(node, ScalarNode):
            return self.loader.construct_object(node, deep=True)
        inner = active | {id(node)}
        if isinstance(node, SequenceNode):
            items = []
            for i, child in enumerate(node.value):
                self.key_locations.setdefault((*path, i), self.loc(child))
                items.append(self.build(child, (*path, i), inner))
            return items
        if isinstance(node, MappingNode):
            # Expands ``<<: *anchor`` merge keys the way SafeLoader does.
            self.loader.flatten_mapping(node)
            result: dict[Any, Any] = {}
            seen: dict[Any, Location] = {}
            for key_node, value_node in node.value:
                key = self._key(key_node)
                if key is _BAD_KEY:
                    continue
                where = self.loc(key_node)
                if key in seen:
                    self.problems.append(
                        Problem(
                            "duplicate-key",
                            f"duplicate key '{key}' (first at line {seen[key].line}, "
                            f"column {seen[key].column})",
                            where,
                            hint="keys must be unique within a mapping; remove or rename one of them",
                            extra={"first": str(seen[key])},
                        )
                    )
                    continue
                seen[key] = where
                child_path = (*path, key) if isinstance(key, str | int) else (*path, str(key))
                self.key_locations.setdefault(child_path, where)
                result[key] = self.build(value_node, child_path, inner)
            return result
        raise AssertionError(f"unexpected YAML node {type(node).__name__}")  # pragma: no cover

    def _key(self, node: Node) -> Any:
        if not isinstance(node, ScalarNode):
            self.problems.append(
                Problem(
                    "yaml-syntax",
                    "a mapping key must be a plain value, not a list or mapping",
                    self.loc(node),
                )
            )
            return _BAD_KEY
        return self.loader.construct_object(node, deep=True)


class _TooLarge(Exception):
    def __init__(self, location: Location) -> None:
        self.location = location


_BAD_KEY = object()


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based (line, column) of character ``index`` in ``text``."""
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def decode_text(raw: bytes, file: str) -> tuple[str | None, Problem | None]:
    """Bytes of a YAML file as text, or a problem when it is not UTF-8 text."""
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        column = nul - (raw.rfind(b"\n", 0, nul) + 1) + 1
        return None, Problem(
            "binary-file",
            "file contains NUL bytes: it is binary, not YAML text",
            Location(file, line, column),
            hint="remove it from the spec directory or rename it to an extension other than "
            ".yaml/.yml",
        )
    try:
        return raw.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if raw.startswith(b"\xef\xbb\xbf") else 0)
        line = raw.count(b"\n", 0, start) + 1
        column = start - (raw.rfind(b"\n", 0, start) + 1) + 1
        return None, Problem(
            "invalid-encoding",
            f"file is not valid UTF-8 (byte 0x{raw[start]:02x})",
            Location(file, line, column),
            hint="save the file as UTF-8",
        )


def load_yaml_text(text: str, file: str) -> tuple[list[YamlDocument], list[Problem]]:
    """Every non-empty document of ``text`` with positions, plus the problems found.

    ``file`` is only used in locations. A syntax error stops reading the rest of the file
    (the parser cannot resynchronise), but documents before it are returned.
    """
    problems: list[Problem] = []
    docs: list[YamlDocument] = []
    loader: PositionLoader | None = None
    index = 0
    try:
        # The reader checks for non-printable characters in its constructor.
        loader = PositionLoader(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            builder = _Builder(loader, file, problems)
            try:
                data = builder.build(node, (), frozenset())
            except _TooLarge as big:
                problems.append(
                    Problem(
                        "yaml-syntax",
                        f"document expands to more than {_MAX_VALUES} values (alias bomb?)",
                        big.location,
                        hint="write the values out instead of multiplying them with aliases",
                    )
                )
                index += 1
                continue
            if data is not None:
                docs.append(
                    YamlDocument(
                        data=data,
                        location=builder.loc(node),
                        index=index,
                        key_locations=builder.key_locations,
                        value_locations=builder.value_locations,
                    )
                )
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        what = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        problems.append(
            Problem("yaml-syntax", f"YAML syntax error: {what}", where, hint=_syntax_hint(what))
        )
    except yaml.reader.ReaderError as exc:
        line, column = _position(text, exc.position)
        problems.append(
            Problem(
                "binary-file",
                f"file contains a non-printable character (#x{exc.character:04x}); "
                "it is not YAML text",
                Location(file, line, column),
                hint="remove the character, or the file if it is not a spec",
            )
        )
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error above is marked
        problems.append(Problem("yaml-syntax", f"YAML error: {exc}", Location(file)))
    finally:
        if loader is not None:
            loader.dispose()
    return docs, problems


def _syntax_hint(what: str) -> str | None:
    if "tab" in what:
        return "indent with spaces; YAML does not allow tabs for indentation"
    if "mapping values are not allowed" in what:
        return "quote values that contain ': ' or fix the indentation of this line"
    if "could not find expected ':'" in what:
        return "every line of a mapping needs 'key: value'; check indentation and quotes"
    return "check indentation, quotes and brackets around this position"
