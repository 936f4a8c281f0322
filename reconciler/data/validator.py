"""Streaming validator of fine-tuning JSONL files: every rule, line numbers, never a crash.

A file is read by :class:`~reconciler.data.lines.LineReader`, which also feeds the sha256 of
the whole file (so hashing and validation are one pass). Each line is parsed with orjson and
checked by :mod:`reconciler.data.rules`. Memory stays flat whatever the file size: only the
current line (plus at most :data:`MAX_STORED_PROBLEMS` problems) is held.

Line-level codes (ours; mistral-finetune reports or crashes on these inconsistently):

=============  ==========================================================================
``JSON``       the line is not valid JSON (message and column from the parser)
``TRUNCATED``  the last line has no newline and does not parse (an interrupted write)
``UTF8``       the line is not valid UTF-8
``BOM``        a line (usually the first) starts with a UTF-8 byte order mark
``BLANK``      an empty or whitespace-only line
``NAN``        ``NaN`` / ``Infinity`` literals, or a number out of the double range
``DEPTH``      JSON nested deeper than :data:`MAX_DEPTH` levels
``DUP_KEY``    an object has the same key twice (parsers silently keep the last one)
``LONG_LINE``  a line over ``lines.MAX_LINE_BYTES`` (not buffered, skipped)
``MIXED``      chat and pretrain samples in one file
``EMPTY``      the file holds no sample at all
=============  ==========================================================================

The sample index in problems is 0-based and counts non-blank lines (the N-th sample the
remote would see); the line is 1-based and counts every ``\\n``-terminated line.

This module depends only on the standard library, orjson and :mod:`reconciler.errors`: the
sandbox server imports it to validate uploads with the same rules.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from reconciler.data import lines as line_splitter
from reconciler.data import rules
from reconciler.data.lines import Line, LineReader
from reconciler.data.report import MAX_STORED_PROBLEMS, FileReport, human_bytes
from reconciler.errors import DataError, Location, Problem, Severity

MAX_DEPTH = 128
"""Deepest JSON nesting we walk; deeper samples are reported as ``DEPTH``."""
VALIDATION_LIMIT_BYTES = 1_000_000
"""The API accepts at most 1 MB of validation data."""
FILE_LIMIT_BYTES = 512 * 1024 * 1024
"""The API rejects files over 512 MB."""
MIN_SAMPLES = 10
"""mistral-finetune's (disabled) minimum; fewer training samples gets a warning."""

_BOM = b"\xef\xbb\xbf"

RULE_TITLES: dict[str, str] = {
    "F1": "no 'messages' (or 'interactions') key",
    "F2": "both 'messages' and 'interactions'",
    "F3": "both 'tools' and 'available_tools'",
    "F4": "tool without 'function'",
    "F5": "tool function without name/description/parameters",
    "F6": "tool parameters not an object",
    "F7": "message without 'role'",
    "F8": "message with both 'text' and 'content'",
    "F9": "message without content (and no tool_calls)",
    "F10": "unknown role (mistral-finetune crashes)",
    "F11": "more than one system message",
    "F12": "tool call without 'id' or 'function'",
    "F13": "tool call function without 'name' or 'arguments'",
    "F14": "tool call arguments not a string",
    "F15": "tool message without 'tool_call_id'",
    "F16": "wrong JSON type (mistral-finetune crashes)",
    "F17": "line or message not a JSON object (mistral-finetune crashes)",
    "M1": "no (non-system) message",
    "M2": "single message that is not a user message",
    "M3": "last message not from the assistant",
    "M4": "unexpected role order",
    "M5": "tool calls and tool responses do not match",
    "M6": "assistant message needs content xor tool_calls",
    "M7": "assistant weight not 0 or 1",
    "M8": "bad tool call id in an assistant message",
    "M9": "bad function name in a tool call",
    "M10": "bad tool_call_id in a tool message (mistral-finetune crashes)",
    "M11": "bad name in a tool message (mistral-finetune crashes)",
    "M12": "tool parameters not a valid JSON Schema",
    "M13": "bad function name in tools (mistral-finetune crashes)",
    "M14": "prefix on the last message / unexpected content chunk type",
    "P1": "pretrain sample with both 'text' and 'content'",
    "P2": "pretrain sample without 'text'",
    "P3": "pretrain text not a string",
    "JSON": "not valid JSON",
    "TRUNCATED": "last line cut off (no newline, not valid JSON)",
    "UTF8": "not valid UTF-8",
    "BOM": "UTF-8 byte order mark",
    "BLANK": "blank line",
    "NAN": "NaN/Infinity or out-of-range number",
    "DEPTH": "nesting too deep",
    "DUP_KEY": "duplicate JSON key",
    "LONG_LINE": "line too long",
    "MIXED": "chat and pretrain samples mixed",
    "EMPTY": "no samples",
    "CHECK": "sample could not be checked",
    "VALIDATION_SIZE": "validation data over the API's 1 MB limit (warning)",
    "FILE_SIZE": "file over the API's 512 MB limit (warning)",
    "FEW_SAMPLES": "fewer than 10 training samples (warning)",
}
"""Every code the validator emits, with a short title (docs, summaries)."""


class TokenCounter(Protocol):
    """Counts the tokens of one valid sample (see :mod:`reconciler.data.tokens`)."""

    def count(self, obj: dict[str, Any], kind: str) -> int: ...


_NO_ISSUES: list[rules.Issue] = []
"""Shared empty issue list of valid samples (never mutated)."""
_UNPARSED: Any = object()
"""Marks a line that still has to be parsed (``null`` is a valid parse result)."""
_loads = orjson.loads


class _TooDeep(Exception):
    pass


class _Dup(Exception):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


class _NonFinite(Exception):
    def __init__(self, literal: str) -> None:
        super().__init__(literal)
        self.literal = literal


def _walk(obj: Any, depth: int) -> tuple[int, int]:
    """(keys of every object, colons inside every string) of a parsed value."""
    if depth > MAX_DEPTH:
        raise _TooDeep
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
            k2, c2 = _walk(v, depth + 1)
            keys += k2
            colons += c2
    return keys, colons


_TOOLS_CACHE: dict[bytes, tuple[int, int, list[rules.Issue]]] = {}
_TOOLS_CACHE_MAX = 1024


def _tools_info(tools: list[Any]) -> tuple[int, int, list[rules.Issue]]:
    """(keys, colons in strings, rule issues) of a tools list, cached by its content."""
    try:
        key = orjson.dumps(tools)
    except orjson.JSONEncodeError:  # deeper than orjson serializes: no caching
        key = b""
    cached = _TOOLS_CACHE.get(key) if key else None
    if cached is not None:
        return cached
    keys, colons = _walk(tools, 1)
    issues: list[rules.Issue] = []
    rules.check_tools(tools, issues)
    result = (keys, colons, issues)
    if key:
        if len(_TOOLS_CACHE) >= _TOOLS_CACHE_MAX:
            _TOOLS_CACHE.clear()
        _TOOLS_CACHE[key] = result
    return result


def _content_colons(msgs: list[dict[str, Any]]) -> int:
    """Colons inside the message contents of a sample that passed :func:`_fast_sample`."""
    n = 0
    for m in msgs:
        content = m.get("content")
        if content:
            n += content.count(":")
    return n


_ID_MATCH = re.compile(r"[a-zA-Z0-9]{9}").fullmatch
_NAME_MATCH = re.compile(r"[a-zA-Z0-9_-]{1,64}").fullmatch

FastStats = tuple[int, int, int, int, int, int, int]
"""(keys, users, assistants, systems, tool messages, colons in the tools list and call
arguments, colons in tool results)."""


def _fast_sample(obj: dict[str, Any]) -> FastStats | None:
    """Statistics of a plain, valid chat sample; None means "check it fully".

    Plain: top-level keys ``messages`` (and a ``tools`` list whose cached check found
    nothing); user/system/assistant messages exactly {role, content} with string content
    (non-empty for the assistant); assistant tool calls exactly {role, tool_calls} with
    {id, function[, type: function]} calls, 9-character ids, valid names and string
    arguments; tool messages exactly {role, tool_call_id, content}; at most one system
    message; a valid role order and call/response count; the last non-system message from
    the assistant. Such a sample satisfies every rule (F1-F17, M1-M14), so None never
    means "invalid". It runs once per sample: one loop of cheap operations.
    """
    try:
        return _fast_sample_unchecked(obj)
    except (KeyError, TypeError, AttributeError):
        # A missing key or a non-dict where a dict belongs: not plain.
        return None


def _fast_sample_unchecked(obj: dict[str, Any]) -> FastStats | None:
    # Subscripts instead of .get and no isinstance checks where a subscript fails anyway
    # (measurably faster); the caller maps KeyError/TypeError to None.
    nobj = len(obj)
    keys = nobj
    tool_colons = 0
    # Colons inside strings that are cheap to count here: call arguments and tool results
    # (usually JSON); those in other message texts are counted only when needed.
    arg_colons = result_colons = 0
    msgs = obj["messages"]
    if type(msgs) is not list:
        return None
    if nobj == 2:
        tools = obj["tools"]
        if type(tools) is not list:
            return None
        tkeys, tool_colons, tissues = _tools_info(tools)
        if tissues:
            return None
        keys += tkeys
    elif nobj != 1:
        return None
    nuser = nassistant = nsystem = ntool = 0
    pending = 0
    prev = ""
    for m in msgs:
        role = m["role"]
        if len(m) == 2:
            content = m.get("content")
            if type(content) is str:
                if role == "user":
                    nuser += 1
                elif role == "assistant":
                    if not content or pending:
                        return None
                    nassistant += 1
                elif role == "system":
                    nsystem += 1
                    continue
                else:
                    return None
            elif content is None and role == "assistant" and not pending:
                calls = m["tool_calls"]
                if type(calls) is not list or not calls:
                    return None
                for call in calls:
                    nc = len(call)
                    if nc == 3:
                        if call["type"] != "function":
                            return None
                    elif nc != 2:
                        return None
                    fn = call["function"]
                    cid = call["id"]
                    if len(fn) != 2 or type(cid) is not str:
                        return None
                    name = fn["name"]
                    args = fn["arguments"]
                    if (
                        type(name) is not str
                        or type(args) is not str
                        or not _ID_MATCH(cid)
                        or not _NAME_MATCH(name)
                    ):
                        return None
                    keys += nc + 2
                    arg_colons += args.count(":")
                pending = len(calls)
                nassistant += 1
            else:
                return None
        elif role == "tool" and len(m) == 3:
            tid = m["tool_call_id"]
            content = m["content"]
            if (
                type(content) is not str
                or type(tid) is not str
                or prev == "user"
                or not _ID_MATCH(tid)
            ):
                return None
            pending -= 1
            if pending < 0:
                return None
            ntool += 1
            result_colons += content.count(":")
        else:
            return None
        prev = role
    if prev != "assistant" or nsystem > 1 or nuser + nassistant + ntool < 2:
        return None
    # Every message has 2 keys, tool messages 3; tool calls were added above.
    keys += 2 * len(msgs) + ntool
    return keys, nuser, nassistant, nsystem, ntool, tool_colons + arg_colons, result_colons


def _no_dups(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for k, v in pairs:
        if k in seen:
            raise _Dup(k)
        seen[k] = v
    return seen


def _reject_constant(literal: str) -> Any:
    raise _NonFinite(literal)


def _diagnose(line: bytes, orjson_msg: str) -> tuple[str, str, str | None, int]:
    """Why orjson rejected a line: (code, message, hint, column). Only on the error path."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return (
            "UTF8",
            f"invalid UTF-8 at byte {exc.start + 1} of the line "
            f"({line[exc.start : exc.start + 4]!r})",
            "save the file as UTF-8, e.g. iconv -f latin1 -t utf-8 in.jsonl > out.jsonl",
            0,
        )
    try:
        json.loads(text, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return (
            "NAN",
            f"{exc.literal} is not valid JSON (mistral's parsers differ on it)",
            "write null or a finite number (NaN/Infinity often come from pandas: use "
            "df.fillna or to_json)",
            0,
        )
    except RecursionError:
        return ("DEPTH", "JSON nesting too deep to parse", "flatten the structure", 0)
    except json.JSONDecodeError as exc:
        return ("JSON", f"invalid JSON: {exc.msg}", _json_hint(exc.msg), exc.colno)
    except ValueError as exc:  # e.g. an integer with more than 4300 digits
        return ("JSON", f"invalid JSON: {exc}", None, 0)
    if "depth" in orjson_msg or "recursion" in orjson_msg:
        return ("DEPTH", "JSON nesting too deep to parse", "flatten the structure", 0)
    if "infinity" in orjson_msg or "number" in orjson_msg:
        return (
            "NAN",
            f"a number is out of range ({orjson_msg.split(':')[0]})",
            "write the number as a string or a finite double",
            0,
        )
    return ("JSON", f"invalid JSON: {orjson_msg}", None, 0)


def _json_hint(msg: str) -> str | None:
    if "Extra data" in msg:
        return "one JSON object per line: put each sample on its own line"
    if "Expecting property name" in msg:
        return "JSON needs double-quoted keys and no trailing commas"
    if "Unterminated string" in msg or "Invalid control character" in msg:
        return "a string contains a raw newline or is cut off; escape newlines as \\n"
    return None


class LineValidator:
    """Validates samples line by line and accumulates a :class:`FileReport`.

    Use :meth:`feed` for every line (without its ``\\n``), then :meth:`finish`.
    ``feed`` returns True when the line is a valid sample (what ``on_invalid: skip`` keeps).

    Args:
        name: file name used in problem locations.
        role: 'training' or 'validation'.
        token_counter: counts exact tokens of valid samples, or None.
    """

    def __init__(
        self,
        name: str,
        *,
        role: str = "training",
        token_counter: TokenCounter | None = None,
    ) -> None:
        self.report = FileReport(path=name, role=role)
        self._name = name
        self._tokens = token_counter
        self._exact = 0
        self._lineno = 0
        self._fast_samples = 0
        self._untyped = True
        self._fast_bytes = 0
        self._nuser = self._nassistant = self._nsystem = self._ntool = 0
        # The fast path only knows chat samples; a pretrain file takes the full check.
        self._fast = True
        self.last_issues: list[rules.Issue] = []
        """Issues of the last fed line (for cleaned-file reports)."""

    def _problem(
        self,
        code: str,
        message: str,
        hint: str | None,
        line: int,
        sample: int | None,
        column: int = 0,
        severity: Severity = Severity.ERROR,
    ) -> None:
        report = self.report
        if severity is Severity.ERROR:
            report.invalid_by_rule[code] = report.invalid_by_rule.get(code, 0) + 1
        report.problem_count += 1
        if len(report.problems) < MAX_STORED_PROBLEMS:
            report.problems.append(
                Problem(
                    code=code,
                    message=message,
                    location=Location(self._name, line, column),
                    hint=hint,
                    severity=severity,
                    extra={"sample_index": sample} if sample is not None else {},
                )
            )

    def feed_lines(self, lines: Iterable[Line]) -> None:
        """Check every line of a :class:`~reconciler.data.lines.LineReader`."""
        feed = self.feed
        for lineno, (line, size, terminated) in enumerate(lines, 1):
            if line is None:
                self.long_line(lineno, size)
            else:
                feed(line, lineno, terminated)

    def feed(self, line: bytes, lineno: int, terminated: bool = True) -> bool:
        """Check one line (without ``\\n``); True when it is a valid sample.

        Plain chat samples (see :func:`_fast_sample`) are checked here with a handful of
        operations per message; anything else takes the full rule check. ``terminated`` is
        False for a last line without ``\\n``.
        """
        self._lineno = lineno
        try:
            obj = _loads(line)
        except orjson.JSONDecodeError:
            return self._feed_full(line, lineno, terminated, _UNPARSED)
        if self._fast and type(obj) is dict:
            stats = _fast_sample(obj)
            if stats is not None:
                # Duplicate keys: every key is followed by a ':'; colons inside strings are
                # the only other source. More colons than keys + colons in strings means a
                # key occurs twice (orjson silently keeps the last): take the full check.
                nkeys = stats[0]
                colons = line.count(b":")
                colons -= stats[5]
                if colons - stats[6] <= nkeys or (
                    colons - _content_colons(obj["messages"]) <= nkeys
                ):
                    # Counters live on self (not in report dicts) on this path: cheaper;
                    # finish() folds them into the report.
                    if self._untyped:
                        self.report.sample_type = "instruct"
                        self._untyped = False
                    self._fast_samples += 1
                    self._fast_bytes += len(line)
                    self._nuser += stats[1]
                    self._nassistant += stats[2]
                    self._nsystem += stats[3]
                    self._ntool += stats[4]
                    if self._tokens is not None:
                        self._exact += self._tokens.count(obj, "instruct")
                    self.last_issues = _NO_ISSUES
                    return True
        return self._feed_full(line, lineno, terminated, obj)

    def _feed_full(self, line: bytes, lineno: int, terminated: bool, obj: Any) -> bool:
        """Every rule, for any line: blank lines, BOM, parse errors and non-plain samples."""
        report = self.report
        self._lineno = lineno
        if line.startswith(_BOM):
            # Usually line 1; later lines get one when BOM files were concatenated.
            self._problem(
                "BOM",
                "the line starts with a UTF-8 byte order mark",
                "save the file as UTF-8 without BOM (Python: encoding='utf-8', not 'utf-8-sig')",
                lineno,
                report.samples + self._fast_samples,
            )
            line = line[3:]
            obj = _UNPARSED
        if not line or line.isspace():
            self.last_issues = [("BLANK", "blank line", None)]
            self._problem(
                "BLANK",
                "blank line (every line must hold one JSON sample)",
                "remove empty lines",
                lineno,
                None,
            )
            return False
        index = report.samples + self._fast_samples
        report.samples += 1
        issues: list[rules.Issue] = []
        self.last_issues = issues
        column = 0
        if obj is _UNPARSED:
            try:
                obj = _loads(line)
            except orjson.JSONDecodeError as exc:
                code, message, hint, column = _diagnose(line, str(exc))
                if code == "JSON" and not terminated:
                    code = "TRUNCATED"
                    message = "the last line has no newline and is not valid JSON (cut off?)"
                    hint = "the file looks truncated: regenerate it or drop the last line"
                issues.append((code, message, hint))
        if not issues:
            self._check(obj, line, issues)
        if not issues:
            report.valid += 1
            return True
        report.invalid += 1
        seen: set[str] = set()
        for code, message, hint in issues:
            if code in seen:
                # Count a sample once per rule, but still show every occurrence.
                report.problem_count += 1
                if len(report.problems) < MAX_STORED_PROBLEMS:
                    report.problems.append(
                        Problem(
                            code,
                            message,
                            Location(self._name, lineno, column),
                            None,
                            hint,
                            Severity.ERROR,
                            {"sample_index": index},
                        )
                    )
                continue
            seen.add(code)
            self._problem(code, message, hint, lineno, index, column)
        return False

    def _check(self, obj: Any, line: bytes, issues: list[rules.Issue]) -> None:
        report = self.report
        if type(obj) is not dict:
            issues.append(
                (
                    "F17",
                    f"the line is a JSON {rules._type_name(obj)}, not an object",
                    'each line must be one sample object: {"messages": [...]}',
                )
            )
            return
        # Keys and colons inside strings, for the duplicate-key pre-check (see feed);
        # a tools list is usually the same in every sample, so its walk is cached.
        tools_field = (
            "tools" if "tools" in obj else "available_tools" if "available_tools" in obj else ""
        )
        tool_issues: list[rules.Issue] | None = None
        try:
            nkeys = len(obj)
            in_strings = 0
            for k, v in obj.items():
                in_strings += k.count(":")
                t = type(v)
                if k == tools_field and t is list:
                    tkeys, tcolons, tool_issues = _tools_info(v)
                    nkeys += tkeys
                    in_strings += tcolons
                elif t is dict or t is list:
                    vkeys, vcolons = _walk(v, 1)
                    nkeys += vkeys
                    in_strings += vcolons
                elif t is str:
                    in_strings += v.count(":")
        except _TooDeep:
            issues.append(
                ("DEPTH", f"JSON nested deeper than {MAX_DEPTH} levels", "flatten the structure")
            )
            return
        colons = line.count(b":")
        if colons - in_strings > nkeys:
            try:
                json.loads(line, object_pairs_hook=_no_dups)
            except _Dup as dup:
                issues.append(
                    (
                        "DUP_KEY",
                        f"duplicate key {rules._short(dup.key)} in an object (parsers keep "
                        "only the last one)",
                        "remove the duplicated key",
                    )
                )
            except Exception:  # noqa: BLE001 - orjson accepted it; only duplicates matter
                pass
        kind = rules.sample_kind(obj)
        if kind is None:
            kind = report.sample_type or "instruct"
        if report.sample_type is None:
            report.sample_type = kind
            self._untyped = False
            self._fast = kind == "instruct"
        elif kind != report.sample_type:
            issues.append(
                (
                    "MIXED",
                    f"a {kind} sample in a file of {report.sample_type} samples",
                    "keep chat samples ('messages') and pretrain samples ('text') in "
                    "separate files",
                )
            )
            return
        before = len(issues)
        try:
            if kind == "instruct":
                rules.check_instruct(obj, report.roles, issues, tool_issues)
            else:
                rules.check_pretrain(obj, issues)
        except RecursionError:
            issues.append(("DEPTH", "JSON nesting too deep to check", "flatten the structure"))
        except Exception as exc:  # noqa: BLE001 - a checker bug must not abort a file
            issues.append(("CHECK", f"sample could not be checked: {exc!r}", None))
        if len(issues) == before:
            # Estimate: a quarter of the sample's bytes. Besides the text this counts the
            # JSON around it, which roughly stands for the control tokens of each message.
            report.approx_tokens += (len(line) + 3) // 4
            if self._tokens is not None:
                self._exact += self._tokens.count(obj, kind)

    def long_line(self, lineno: int, size: int) -> None:
        """Record a line that was too long to buffer (counted as an invalid sample)."""
        report = self.report
        self._lineno = lineno
        index = report.samples + self._fast_samples
        report.samples += 1
        report.invalid += 1
        self.last_issues = [("LONG_LINE", "line too long", None)]
        self._problem(
            "LONG_LINE",
            f"line of {size:,} bytes is over the {line_splitter.MAX_LINE_BYTES:,}-byte limit; not checked",
            "split the sample; no training sample needs this much text",
            lineno,
            index,
        )

    def finish(self, *, size: int | None = None, sha256: str = "") -> FileReport:
        """Add file-level problems (empty file, size warnings) and return the report."""
        report = self.report
        report.num_lines = self._lineno
        if self._fast_samples:
            report.samples += self._fast_samples
            report.valid += self._fast_samples
            report.approx_tokens += (self._fast_bytes + 3) // 4
            for role, count in (
                ("user", self._nuser),
                ("assistant", self._nassistant),
                ("system", self._nsystem),
                ("tool", self._ntool),
            ):
                if count:
                    report.roles[role] = report.roles.get(role, 0) + count
            self._fast_samples = self._fast_bytes = 0
            self._nuser = self._nassistant = self._nsystem = self._ntool = 0
        if size is not None:
            report.bytes = size
        report.sha256 = sha256
        if self._tokens is not None:
            report.exact_tokens = self._exact
        if report.samples == 0:
            self._problem(
                "EMPTY",
                "the file holds no samples"
                + (" (only whitespace)" if report.bytes else " (it is empty)"),
                "add one JSON sample per line",
                1 if report.bytes else 0,
                None,
            )
        if report.role == "validation" and report.bytes > VALIDATION_LIMIT_BYTES:
            self._problem(
                "VALIDATION_SIZE",
                f"validation data is {human_bytes(report.bytes)}; the API accepts at most 1 MB",
                "use a smaller validation split (split.max_validation_bytes: 1000000)",
                0,
                None,
                severity=Severity.WARNING,
            )
        if report.bytes > FILE_LIMIT_BYTES:
            self._problem(
                "FILE_SIZE",
                f"file is {human_bytes(report.bytes)}; the API rejects files over 512 MB",
                "split the data into several datasets (paths of at most 512 MB each)",
                0,
                None,
                severity=Severity.WARNING,
            )
        if report.role == "training" and 0 < report.samples < MIN_SAMPLES:
            self._problem(
                "FEW_SAMPLES",
                f"only {report.samples} sample(s); fine-tuning needs many more",
                None,
                0,
                None,
                severity=Severity.WARNING,
            )
        return report


def validate_stream(
    stream: IO[bytes],
    name: str,
    *,
    role: str = "training",
    exact_tokens: bool = False,
    hash: bool = True,
) -> FileReport:
    """Validate (and hash) a binary stream of JSONL; see :func:`validate_path`."""
    counter = _token_counter() if exact_tokens else None
    validator = LineValidator(name, role=role, token_counter=counter)
    hasher = hashlib.sha256() if hash else None
    lines = LineReader(stream, hasher)
    validator.feed_lines(lines)
    return validator.finish(size=lines.size, sha256=hasher.hexdigest() if hasher else "")


def validate_path(
    path: Path,
    *,
    role: str = "training",
    exact_tokens: bool = False,
    hash: bool = True,
    display_name: str | None = None,
) -> FileReport:
    """Validate one JSONL file in one streaming pass (rules, statistics and sha256).

    Args:
        path: the file.
        role: 'training' or 'validation' (validation files get the 1 MB warning).
        exact_tokens: also count tokens with Mistral's v3 tokenizer (needs mistral-common).
        hash: compute the sha256 of the file's bytes in the same pass.
        display_name: how the file is named in problems (default: ``str(path)``).

    Raises:
        DataError: the file cannot be read at all (missing, a directory, no permission).
    """
    name = display_name or str(path)
    if path.is_dir():
        raise DataError(
            [
                Problem(
                    "NOT_A_FILE",
                    "is a directory, not a JSONL file",
                    Location(name),
                    hint="name the .jsonl files inside it (e.g. DIR/*.jsonl)",
                )
            ]
        )
    try:
        with path.open("rb") as stream:
            return validate_stream(stream, name, role=role, exact_tokens=exact_tokens, hash=hash)
    except OSError as exc:
        raise DataError(
            [
                Problem(
                    "READ",
                    f"cannot read the file: {exc.strerror or exc}",
                    Location(name),
                    hint="check the path (relative to the spec file) and its permissions",
                )
            ]
        ) from exc


def validate_lines(
    lines: Iterable[bytes],
    name: str,
    *,
    role: str = "training",
    exact_tokens: bool = False,
) -> FileReport:
    """Validate lines already split (without ``\\n``), e.g. a small upload held in memory.

    No sha256 is computed (the caller has the bytes); ``bytes`` counts each line plus one.
    """
    counter = _token_counter() if exact_tokens else None
    validator = LineValidator(name, role=role, token_counter=counter)
    size = 0
    lineno = 0
    for lineno, line in enumerate(lines, 1):
        size += len(line) + 1
        validator.feed(line, lineno)
    return validator.finish(size=size)


def sample_fingerprint(line: bytes) -> bytes:
    """A short stable fingerprint of one sample (train/validation overlap checks).

    Samples are compared by content, not formatting: the line is parsed and re-serialized
    with sorted keys, so spacing, key order and escapes do not hide a duplicate. A line that
    does not parse is fingerprinted as it is.
    """
    raw = line.strip()
    try:
        raw = orjson.dumps(orjson.loads(raw), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        pass
    return hashlib.blake2b(raw, digest_size=12).digest()


def _token_counter() -> TokenCounter:
    # Imported lazily: mistral-common is an optional extra and slow to import.
    from reconciler.data.tokens import MistralTokenCounter

    return MistralTokenCounter()
