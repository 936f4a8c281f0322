"""Line-level rules: why a line is not a parsable JSON sample, nesting depth, duplicate keys.

The validator parses each line with orjson; only when that fails does :func:`diagnose` look
closer (with the standard library's parser, which says where and what) to tell invalid
UTF-8, ``NaN`` literals, out-of-range numbers, too deep nesting and a cut-off last line from
plain syntax errors. orjson silently keeps the last of two equal keys, so
:func:`duplicate_key` re-parses a line that may have one; :func:`walk` counts the keys and
the colons inside strings that tell the validator whether it may (and enforces
:data:`MAX_DEPTH`).

Only the standard library and :mod:`reconciler.errors` are used: the sandbox server imports
the validator.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from reconciler.data.registry import Issue, rule, short

MAX_DEPTH = 128
"""Deepest JSON nesting we walk; deeper samples are reported as ``DEPTH``."""

DEPTH = rule("DEPTH", "nesting too deep")
TOO_DEEP_TO_PARSE = DEPTH.issue("JSON nesting too deep to parse", "flatten the structure")
TOO_DEEP_TO_WALK = DEPTH.issue(
    f"JSON nested deeper than {MAX_DEPTH} levels", "flatten the structure"
)


class TooDeep(Exception):
    """A parsed value is nested deeper than :data:`MAX_DEPTH`."""


def walk(obj: Any, depth: int) -> tuple[int, int]:
    """(keys of every object, colons inside every string) of a parsed object or array.

    ``depth`` is the nesting level of ``obj`` itself (1 for a top-level value's members).

    Raises:
        TooDeep: the value nests deeper than :data:`MAX_DEPTH`.
    """
    if depth > MAX_DEPTH:
        raise TooDeep
    keys = colons = 0
    if type(obj) is dict:
        keys = len(obj)
        for k in obj:
            colons += k.count(":")
        values: Iterable[Any] = obj.values()
    else:
        values = obj
    for v in values:
        t = type(v)
        if t is str:
            colons += v.count(":")
        elif t is dict or t is list:
            k2, c2 = walk(v, depth + 1)
            keys += k2
            colons += c2
    return keys, colons


DUP_KEY = rule("DUP_KEY", "duplicate JSON key")


class _Dup(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise _Dup(k)
        seen[k] = v
    return seen


def duplicate_key(line: bytes) -> Issue | None:
    """``DUP_KEY`` when an object of the (valid JSON) line has the same key twice."""
    try:
        json.loads(line, object_pairs_hook=_no_dups)
    except _Dup as dup:
        return DUP_KEY.issue(
            f"duplicate key {short(dup.key)} in an object (parsers keep only the last one)",
            "remove the duplicated key",
        )
    except Exception:  # noqa: BLE001 - orjson accepted it; only duplicates matter
        pass
    return None


JSON = rule("JSON", "not valid JSON")
TRUNCATED = rule("TRUNCATED", "last line cut off (no newline, not valid JSON)")
UTF8 = rule("UTF8", "not valid UTF-8")
NAN = rule("NAN", "NaN/Infinity or out-of-range number")


class _NonFinite(Exception):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _reject_constant(literal: str) -> Any:
    raise _NonFinite(literal)


def diagnose(line: bytes, orjson_msg: str, terminated: bool) -> tuple[Issue, int]:
    """Why orjson rejected a line: the issue and its 1-based column (0 when unknown).

    Only on the error path. ``terminated`` is False for a last line without ``\\n``: a
    syntax error there is reported as ``TRUNCATED`` (an interrupted write).
    """
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return UTF8.issue(
            f"invalid UTF-8 at byte {exc.start + 1} of the line "
            f"({line[exc.start : exc.start + 4]!r})",
            "save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 in.jsonl > out.jsonl",
        ), 0
    try:
        json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return NAN.issue(
            f"{exc.literal} is not valid JSON (mistral's parsers differ on it)",
            "write null or a finite number (NaN/Infinity often come from pandas: use "
            "df.fillna or to_json)",
        ), 0
    except RecursionError:
        return TOO_DEEP_TO_PARSE, 0
    except json.JSONDecodeError as exc:
        return _syntax_error(f"invalid JSON: {exc.msg}", _json_hint(exc.msg), terminated), exc.colno
    except ValueError as exc:  # e.g. an integer with more than 4300 digits
        return _syntax_error(f"invalid JSON: {exc}", None, terminated), 0
    if "depth" in orjson_msg or "recursion" in orjson_msg:
        return TOO_DEEP_TO_PARSE, 0
    if "infinity" in orjson_msg or "number" in orjson_msg:
        return NAN.issue(
            f"a number is out of range ({orjson_msg.split(':')[0]})",
            "write the number as a string or a finite double",
        ), 0
    return _syntax_error(f"invalid JSON: {orjson_msg}", None, terminated), 0


def _syntax_error(message: str, hint: str | None, terminated: bool) -> Issue:
    """``JSON``, or ``TRUNCATED`` when the broken line is a last line without ``\\n``."""
    if terminated:
        return JSON.issue(message, hint)
    return TRUNCATED.issue(
        "the last line has no newline and is not valid JSON (cut off?)",
        "the file looks truncated: regenerate it or drop the last line",
    )


def _json_hint(msg: str) -> str | None:
    if "Extra data" in msg:
        return "one JSON object per line: put each sample on its own line"
    if "Expecting property name" in msg:
        return "JSON needs double-quoted keys and no trailing commas"
    if "Unterminated string" in msg or "Invalid control character" in msg:
        return "a string contains a raw newline or is cut off; escape newlines as \\n"
    return None
