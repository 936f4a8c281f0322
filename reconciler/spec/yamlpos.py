"""YAML loading with source positions.

PyYAML's SafeLoader composes each document into a node tree that knows where every node starts
(with libyaml's C parser when PyYAML has it, else in pure Python: the same nodes and marks);
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
from typing import Any, TypeAlias

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.errors import Location, Problem

FieldPath = tuple[str | int, ...]
"""Path of a value inside a document: mapping keys and sequence indexes."""

# Guards against alias bombs ("billion laughs"): a spec never legitimately needs this many values.
_MAX_VALUES = 200_000

LIBYAML: bool = hasattr(yaml, "CSafeLoader")
"""Whether PyYAML was built with libyaml: its C parser composes the node tree (with the same
nodes and marks) several times faster than the pure-Python one, which is the fallback."""

# YAML 1.1 (and thus PyYAML) requires a dot in floats, so ``1e-4`` would be the *string* "1e-4";
# every user writing a learning rate expects a number.
_EXPONENT_FLOAT = re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$")

# The reader's own definition of the characters YAML allows. Checked before parsing so that both
# parsers report the same position: libyaml counts it in UTF-8 bytes, PyYAML in characters.
_NON_PRINTABLE = yaml.reader.Reader.NON_PRINTABLE


class _PositionLoading:
    """What both position loaders add to PyYAML's SafeLoader: memoised plain-scalar tags.

    The composer resolves every scalar, keys included, by trying the implicit resolvers'
    regular expressions in turn; a spec tree repeats the same keys and values thousands of
    times. Without path resolvers (none are registered) a plain scalar's tag depends only on
    its text, so the first answer holds for the whole stream.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)  # type: ignore[call-arg]
        self._plain_tags: dict[str, str] = {}

    def resolve(self, kind: type[Node], value: Any, implicit: tuple[bool, bool]) -> Any:
        if kind is ScalarNode and implicit[0]:
            try:
                return self._plain_tags[value]
            except KeyError:
                tag = super().resolve(kind, value, implicit)  # type: ignore[misc]
                self._plain_tags[value] = tag
                return tag
        return super().resolve(kind, value, implicit)  # type: ignore[misc]


class PurePositionLoader(_PositionLoading, yaml.SafeLoader):
    """The pure-Python SafeLoader that also reads exponent-only floats such as ``1e-4``."""


# A string: yaml.CSafeLoader only exists where PyYAML was built with libyaml.
_Loader: TypeAlias = "yaml.SafeLoader | yaml.CSafeLoader"

PositionLoader: type[_Loader] = PurePositionLoader
"""The loader :func:`load_yaml_text` uses: libyaml's when available, else the pure-Python one."""

if LIBYAML:

    class CPositionLoader(_PositionLoading, yaml.CSafeLoader):
        """libyaml's SafeLoader with the same exponent-float rule as :class:`PurePositionLoader`."""

    PositionLoader = CPositionLoader

for _loader in {PurePositionLoader, PositionLoader}:
    _loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXPONENT_FLOAT, list("-+0123456789"))

_STR_TAG = "tag:yaml.org,2002:str"
# Scalar tags built by calling their SafeConstructor function directly: construct_object's
# bookkeeping (recursion guard, per-node cache) is for collections and doubles the cost of a
# spec's scalars. Every other tag, unknown ones included, goes through construct_object.
_SCALAR_CONSTRUCTORS = {
    tag: yaml.SafeLoader.yaml_constructors[tag]
    for tag in (
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:timestamp",
    )
}


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

    loader: _Loader
    file: str
    problems: list[Problem]
    key_locations: dict[FieldPath, Location] = field(default_factory=dict)
    value_locations: dict[FieldPath, Location] = field(default_factory=dict)
    count: int = 0
    # Collections being built (by node id), to refuse an alias that points into itself.
    active: set[int] = field(default_factory=set)

    def loc(self, node: Node) -> Location:
        mark = node.start_mark
        return Location(self.file, mark.line + 1, mark.column + 1)

    def scalar(self, node: ScalarNode) -> Any:
        tag = node.tag
        if tag == _STR_TAG:
            return node.value
        construct = _SCALAR_CONSTRUCTORS.get(tag)
        if construct is not None:
            return construct(self.loader, node)
        return self.loader.construct_object(node, deep=True)

    def build(self, node: Node, path: FieldPath, where: Location) -> Any:
        """The data of ``node`` (at ``where``), recording the locations below ``path``."""
        self.count += 1
        if self.count > _MAX_VALUES:
            raise _TooLarge(where)
        if path not in self.value_locations:
            self.value_locations[path] = where
        if isinstance(node, ScalarNode):
            return self.scalar(node)
        if id(node) in self.active:
            # An alias that points into itself (``&a [*a]``): plain data cannot hold it.
            self.problems.append(
                Problem(
                    "yaml-syntax",
                    "recursive YAML alias: a value contains itself",
                    where,
                    hint="remove the alias that refers to its own anchor",
                )
            )
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, SequenceNode):
                return self._sequence(node, path)
            if isinstance(node, MappingNode):
                return self._mapping(node, path)
        finally:
            self.active.discard(id(node))
        raise AssertionError(f"unexpected YAML node {type(node).__name__}")  # pragma: no cover

    def _sequence(self, node: SequenceNode, path: FieldPath) -> list[Any]:
        items = []
        for i, child in enumerate(node.value):
            child_path = (*path, i)
            where = self.loc(child)
            self.key_locations.setdefault(child_path, where)
            items.append(self.build(child, child_path, where))
        return items

    def _mapping(self, node: MappingNode, path: FieldPath) -> dict[Any, Any]:
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
                first = seen[key]
                self.problems.append(
                    Problem(
                        "duplicate-key",
                        f"duplicate key '{key}' (first at line {first.line}, "
                        f"column {first.column})",
                        where,
                        hint="keys must be unique within a mapping; remove or rename one of them",
                        extra={"first": str(first)},
                    )
                )
                continue
            seen[key] = where
            child_path = (*path, key) if isinstance(key, str | int) else (*path, str(key))
            self.key_locations.setdefault(child_path, where)
            result[key] = self.build(value_node, child_path, self.loc(value_node))
        return result

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
        return self.scalar(node)


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
    bad = _NON_PRINTABLE.search(text)
    if bad is not None:
        # Like PyYAML's reader, refuse the whole file: nothing in it is read.
        return docs, [_non_printable(text, bad.start(), ord(bad.group()), file)]
    loader: _Loader | None = None
    index = 0
    try:
        loader = PositionLoader(text)
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            builder = _Builder(loader, file, problems)
            location = builder.loc(node)
            try:
                data = builder.build(node, (), location)
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
                        location=location,
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
    except yaml.reader.ReaderError as exc:  # pragma: no cover - _NON_PRINTABLE finds it first
        index = exc.position
        if not isinstance(loader, PurePositionLoader):  # libyaml counts UTF-8 bytes
            index = len(text.encode("utf-8")[:index].decode("utf-8", "ignore"))
        problems.append(_non_printable(text, index, exc.character, file))
    except yaml.YAMLError as exc:  # pragma: no cover - every PyYAML error above is marked
        problems.append(Problem("yaml-syntax", f"YAML error: {exc}", Location(file)))
    finally:
        if loader is not None:
            loader.dispose()
    return docs, problems


def _non_printable(text: str, index: int, character: int, file: str) -> Problem:
    line, column = _position(text, index)
    return Problem(
        "binary-file",
        f"file contains a non-printable character (#x{character:04x}); it is not YAML text",
        Location(file, line, column),
        hint="remove the character, or the file if it is not a spec",
    )


def _syntax_hint(what: str) -> str | None:
    if "tab" in what:
        return "indent with spaces; YAML does not allow tabs for indentation"
    if "mapping values are not allowed" in what:
        return "quote values that contain ': ' or fix the indentation of this line"
    if "could not find expected ':'" in what:
        return "every line of a mapping needs 'key: value'; check indentation and quotes"
    return "check indentation, quotes and brackets around this position"
