"""Streaming validator of fine-tuning JSONL files: every rule, line numbers, never a crash.

A file is read by :class:`~reconciler.data.lines.LineReader`, which also feeds the sha256 of
the whole file (so hashing and validation are one pass). Each line is parsed with orjson. A
plain chat sample is accepted by :mod:`~reconciler.data.fastpath`; any other line is checked
by every rule: the line-level ones of :mod:`~reconciler.data.syntax`, the per-sample ones of
:mod:`~reconciler.data.rules` (chat and pretrain samples) or :mod:`~reconciler.data.preference`
(a file validated as ``preference``), and the ones declared here (byte order marks, blank and
overlong lines, mixed sample types, file-level limits). What is found accumulates in a
:class:`~reconciler.data.report.FileReport`. Memory stays flat whatever the file size: only
the current chunk (plus at most ``MAX_STORED_PROBLEMS`` problems) is held.

Every code the validator emits, with its title and severity, is in :data:`RULES` (complete
once this module is imported: it imports every module that declares rules).

The sample index in problems is 0-based and counts non-blank lines (the N-th sample the
remote would see); the line is 1-based and counts every ``\\n``-terminated line.

This module depends only on the standard library, orjson and :mod:`reconciler.errors`: the
sandbox server imports it to validate uploads with the same rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Protocol

import orjson

from reconciler.data import lines as line_splitter
from reconciler.data import preference, rules, syntax
from reconciler.data.dialect import ChatRules
from reconciler.data.fastpath import FastPath, tools_info
from reconciler.data.lines import Line, LineReader
from reconciler.data.registry import RULES, Issue, rule, type_name
from reconciler.data.report import MAX_STORED_PROBLEMS, FileReport, human_bytes
from reconciler.errors import DataError, Location, Problem, Severity
from reconciler.files import DIRECTORY, NotRegularFile, not_a_file, open_regular

__all__ = [
    "FILE_LIMIT_BYTES",
    "MIN_SAMPLES",
    "RULES",
    "VALIDATION_LIMIT_BYTES",
    "FileReport",
    "LineValidator",
    "TokenCounter",
    "sample_fingerprint",
    "validate_lines",
    "validate_path",
    "validate_stream",
]

VALIDATION_LIMIT_BYTES = 1_000_000
"""The API accepts at most 1 MB of validation data."""
FILE_LIMIT_BYTES = 512 * 1024 * 1024
"""The API rejects files over 512 MB."""
MIN_SAMPLES = 10
"""mistral-finetune's (disabled) minimum; fewer training samples gets a warning."""

_BOM_BYTES = b"\xef\xbb\xbf"

# Checked line by line in LineValidator.
BOM = rule("BOM", "UTF-8 byte order mark")
BLANK = rule("BLANK", "blank line")
LONG_LINE = rule("LONG_LINE", "line too long")
MIXED = rule("MIXED", "chat and pretrain samples mixed")
CHECK = rule("CHECK", "sample could not be checked")


class TokenCounter(Protocol):
    """Counts the tokens of one valid sample (see :mod:`reconciler.data.tokens`)."""

    def count(self, obj: dict[str, Any], kind: str) -> int: ...


FORMATS = ("chat", "preference")
"""The data formats a file can be validated as (a Dataset's ``format``)."""

_NO_ISSUES: list[Issue] = []
"""Shared empty issue list of valid samples (never mutated)."""
_UNPARSED: Any = object()
"""Marks a line that still has to be parsed (``null`` is a valid parse result)."""
_loads = orjson.loads


class LineValidator:
    """Validates samples line by line and accumulates a :class:`FileReport`.

    Use :meth:`feed` for every line (without its ``\\n``) or :meth:`feed_lines` for all of
    them, then :meth:`finish`. ``feed`` returns True when the line is a valid sample (what
    ``on_invalid: skip`` keeps).

    Args:
        name: file name used in problem locations.
        role: 'training' or 'validation'.
        token_counter: counts exact tokens of valid samples, or None.
        data_format: what the file holds (see :data:`FORMATS`): ``chat`` samples (or
            pretrain text), or ``preference`` samples (OpenAI's DPO format, checked by
            :mod:`~reconciler.data.preference`).
        chat_rules: the dialect of chat samples (:attr:`ChatRules.mistral
            <reconciler.data.dialect.ChatRules.mistral>` by default).
    """

    def __init__(
        self,
        name: str,
        *,
        role: str = "training",
        token_counter: TokenCounter | None = None,
        data_format: str = "chat",
        chat_rules: ChatRules = ChatRules.mistral,
    ) -> None:
        if data_format not in FORMATS:
            raise ValueError(f"unknown data format {data_format!r}")
        self.report = FileReport(path=name, role=role)
        self._name = name
        self._tokens = token_counter
        self._exact = 0
        self._lineno = 0
        self._fast = FastPath()
        self._preference = data_format == "preference"
        self._chat_rules = ChatRules.openai if self._preference else chat_rules
        self._untyped = not self._preference
        if self._preference:
            self.report.sample_type = "preference"
        # The fast path only knows Mistral chat samples; a pretrain file, a preference file
        # and another dialect take the full check.
        self._fast_on = not self._preference and chat_rules is ChatRules.mistral
        self.last_issues: list[Issue] = []
        """Issues of the last fed line (for cleaned-file reports)."""

    def _problem(
        self, issue: Issue, line: int, sample: int | None, column: int = 0, *, count: bool = True
    ) -> None:
        """Record ``issue``; ``count``: add it to ``invalid_by_rule`` (when an error)."""
        code, message, hint = issue
        severity = RULES[code].severity
        report = self.report
        if count and severity is Severity.ERROR:
            report.invalid_by_rule[code] = report.invalid_by_rule.get(code, 0) + 1
        # FileReport.add, without building a Problem that would not be stored.
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

        Plain chat samples (see :class:`~reconciler.data.fastpath.FastPath`) are accepted
        with a handful of operations per message; anything else takes the full rule check.
        ``terminated`` is False for a last line without ``\\n``.
        """
        self._lineno = lineno
        try:
            obj = _loads(line)
        except orjson.JSONDecodeError:
            return self._feed_full(line, lineno, terminated, _UNPARSED)
        if self._fast_on and type(obj) is dict and self._fast.take(obj, line):
            if self._untyped:
                self.report.sample_type = "instruct"
                self._untyped = False
            if self._tokens is not None:
                self._exact += self._tokens.count(obj, "instruct")
            self.last_issues = _NO_ISSUES
            return True
        return self._feed_full(line, lineno, terminated, obj)

    def _feed_full(self, line: bytes, lineno: int, terminated: bool, obj: Any) -> bool:
        """Every rule, for any line: blank lines, BOM, parse errors and non-plain samples."""
        report = self.report
        if line.startswith(_BOM_BYTES):
            # Usually line 1; later lines get one when BOM files were concatenated.
            self._problem(
                BOM.issue(
                    "the line starts with a UTF-8 byte order mark",
                    "save the file as UTF-8 without BOM (Python: encoding='utf-8', not "
                    "'utf-8-sig')",
                ),
                lineno,
                report.samples + self._fast.samples,
            )
            line = line[3:]
            obj = _UNPARSED
        if not line or line.isspace():
            self.last_issues = [BLANK.issue("blank line")]
            self._problem(
                BLANK.issue(
                    "blank line (every line must hold one JSON sample)", "remove empty lines"
                ),
                lineno,
                None,
            )
            return False
        index = report.samples + self._fast.samples
        report.samples += 1
        issues: list[Issue] = []
        self.last_issues = issues
        column = 0
        if obj is _UNPARSED:
            try:
                obj = _loads(line)
            except orjson.JSONDecodeError as exc:
                issue, column = syntax.diagnose(line, str(exc), terminated)
                issues.append(issue)
        if not issues:
            self._check(obj, line, issues)
        if not issues:
            report.valid += 1
            return True
        report.invalid += 1
        seen: set[str] = set()
        for issue in issues:
            # Count a sample once per rule, but still show every occurrence.
            self._problem(issue, lineno, index, column, count=issue[0] not in seen)
            seen.add(issue[0])
        return False

    def _check(self, obj: Any, line: bytes, issues: list[Issue]) -> None:
        report = self.report
        if type(obj) is not dict:
            issues.append(
                rules.F17.issue(
                    f"the line is a JSON {type_name(obj)}, not an object",
                    'each line must be one sample object: {"messages": [...]}',
                )
            )
            return
        # Keys and colons inside strings, for the duplicate-key pre-check (as in
        # FastPath.take); a tools list is usually the same in every sample: cached.
        tools_field = (
            "tools" if "tools" in obj else "available_tools" if "available_tools" in obj else ""
        )
        if self._preference:
            tools_field = ""  # they are inside 'input', walked with the rest
        tool_issues: list[Issue] | None = None
        try:
            nkeys = len(obj)
            in_strings = 0
            for k, v in obj.items():
                in_strings += k.count(":")
                t = type(v)
                if k == tools_field and t is list:
                    tkeys, tcolons, tool_issues = tools_info(v, self._chat_rules)
                    nkeys += tkeys
                    in_strings += tcolons
                elif t is dict or t is list:
                    vkeys, vcolons = syntax.walk(v, 1)
                    nkeys += vkeys
                    in_strings += vcolons
                elif t is str:
                    in_strings += v.count(":")
        except syntax.TooDeep:
            issues.append(syntax.TOO_DEEP_TO_WALK)
            return
        if line.count(b":") - in_strings > nkeys:
            duplicate = syntax.duplicate_key(line)
            if duplicate is not None:
                issues.append(duplicate)
        if self._preference:
            self._check_sample(obj, line, issues, "preference", None)
            return
        kind = rules.sample_kind(obj)
        if kind is None:
            kind = report.sample_type or "instruct"
        if report.sample_type is None:
            report.sample_type = kind
            self._untyped = False
            self._fast_on = kind == "instruct"
        elif kind != report.sample_type:
            issues.append(
                MIXED.issue(
                    f"a {kind} sample in a file of {report.sample_type} samples",
                    "keep chat samples ('messages') and pretrain samples ('text') in "
                    "separate files",
                )
            )
            return
        self._check_sample(obj, line, issues, kind, tool_issues)

    def _check_sample(
        self,
        obj: dict[str, Any],
        line: bytes,
        issues: list[Issue],
        kind: str,
        tool_issues: list[Issue] | None,
    ) -> None:
        """The per-sample rules of ``kind``; a valid sample counts towards the tokens."""
        report = self.report
        before = len(issues)
        try:
            if kind == "instruct":
                rules.check_instruct(obj, report.roles, issues, tool_issues, self._chat_rules)
            elif kind == "preference":
                preference.check_preference(obj, report.roles, issues)
            else:
                rules.check_pretrain(obj, issues)
        except RecursionError:
            issues.append(
                syntax.DEPTH.issue("JSON nesting too deep to check", "flatten the structure")
            )
        except Exception as exc:  # noqa: BLE001 - a checker bug must not abort a file
            issues.append(CHECK.issue(f"sample could not be checked: {exc!r}"))
        if len(issues) == before:
            # Estimate: a quarter of the sample's bytes. Besides the text this counts the
            # JSON around it, which roughly stands for the control tokens of each message.
            # A preference sample's line holds its input and both outputs: all are counted.
            report.approx_tokens += (len(line) + 3) // 4
            if self._tokens is not None:
                self._exact += self._tokens.count(obj, kind)

    def long_line(self, lineno: int, size: int) -> None:
        """Record a line that was too long to buffer (counted as an invalid sample)."""
        report = self.report
        self._lineno = lineno
        index = report.samples + self._fast.samples
        report.samples += 1
        report.invalid += 1
        self.last_issues = [LONG_LINE.issue("line too long")]
        self._problem(
            LONG_LINE.issue(
                f"line of {size:,} bytes is over the {line_splitter.MAX_LINE_BYTES:,}-byte "
                "limit; not checked",
                "split the sample; no training sample needs this much text",
            ),
            lineno,
            index,
        )

    def finish(self, *, size: int | None = None, sha256: str = "") -> FileReport:
        """Add file-level problems (empty file, size warnings) and return the report."""
        report = self.report
        report.num_lines = self._lineno
        self._fast.fold_into(report)
        if size is not None:
            report.bytes = size
        report.sha256 = sha256
        if self._tokens is not None:
            report.exact_tokens = self._exact
        for issue, line in _file_issues(report):
            self._problem(issue, line, None)
        return report


EMPTY = rule("EMPTY", "no samples")
VALIDATION_SIZE = rule(
    "VALIDATION_SIZE", "validation data over the API's 1 MB limit (warning)", Severity.WARNING
)
FILE_SIZE = rule("FILE_SIZE", "file over the API's 512 MB limit (warning)", Severity.WARNING)
FEW_SAMPLES = rule("FEW_SAMPLES", "fewer than 10 training samples (warning)", Severity.WARNING)


def _file_issues(report: FileReport) -> Iterator[tuple[Issue, int]]:
    """The whole-file rules on a report whose lines are all counted: (issue, line or 0)."""
    if report.samples == 0:
        yield (
            EMPTY.issue(
                "the file holds no samples"
                + (" (only whitespace)" if report.bytes else " (it is empty)"),
                "add one JSON sample per line",
            ),
            1 if report.bytes else 0,
        )
    if report.role == "validation" and report.bytes > VALIDATION_LIMIT_BYTES:
        yield (
            VALIDATION_SIZE.issue(
                f"validation data is {human_bytes(report.bytes)}; the API accepts at most 1 MB",
                "use a smaller validation split (split.max_validation_bytes: 1000000)",
            ),
            0,
        )
    if report.bytes > FILE_LIMIT_BYTES:
        yield (
            FILE_SIZE.issue(
                f"file is {human_bytes(report.bytes)}; the API rejects files over 512 MB",
                "split the data into several datasets (paths of at most 512 MB each)",
            ),
            0,
        )
    if report.role == "training" and 0 < report.samples < MIN_SAMPLES:
        yield FEW_SAMPLES.issue(f"only {report.samples} sample(s); fine-tuning needs many more"), 0


def validate_stream(
    stream: IO[bytes],
    name: str,
    *,
    role: str = "training",
    exact_tokens: bool = False,
    hash: bool = True,
    data_format: str = "chat",
    chat_rules: ChatRules = ChatRules.mistral,
) -> FileReport:
    """Validate (and hash) a binary stream of JSONL; see :func:`validate_path`."""
    validator = _validator(name, role, exact_tokens, data_format, chat_rules)
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
    data_format: str = "chat",
    chat_rules: ChatRules = ChatRules.mistral,
) -> FileReport:
    """Validate one JSONL file in one streaming pass (rules, statistics and sha256).

    Args:
        path: the file.
        role: 'training' or 'validation' (validation files get the 1 MB warning).
        exact_tokens: also count tokens with Mistral's v3 tokenizer (needs mistral-common).
        hash: compute the sha256 of the file's bytes in the same pass.
        display_name: how the file is named in problems (default: ``str(path)``).
        data_format: ``chat`` (default) or ``preference`` (see :class:`LineValidator`).
        chat_rules: the dialect of chat samples (default: Mistral's).

    Raises:
        DataError: the file cannot be read at all (missing, no permission), or is not a
            regular file (a directory, device, FIFO or socket: never opened, so never a hang).
    """
    name = display_name or str(path)
    try:
        stream = open_regular(path)
    except NotRegularFile as exc:
        hint = (
            "name the .jsonl files inside it (e.g. DIR/*.jsonl)" if exc.kind == DIRECTORY else None
        )
        raise DataError([not_a_file(name, exc.kind, hint)]) from exc
    except OSError as exc:
        raise DataError([_read_problem(name, exc)]) from exc
    try:
        with stream:
            return validate_stream(
                stream,
                name,
                role=role,
                exact_tokens=exact_tokens,
                hash=hash,
                data_format=data_format,
                chat_rules=chat_rules,
            )
    except OSError as exc:
        raise DataError([_read_problem(name, exc)]) from exc


def _read_problem(name: str, exc: OSError) -> Problem:
    return Problem(
        "READ",
        f"cannot read the file: {exc.strerror or exc}",
        Location(name),
        hint="check the path (relative to the spec file) and its permissions",
    )


def validate_lines(
    lines: Iterable[bytes],
    name: str,
    *,
    role: str = "training",
    exact_tokens: bool = False,
    data_format: str = "chat",
    chat_rules: ChatRules = ChatRules.mistral,
) -> FileReport:
    """Validate lines already split (without ``\\n``), e.g. a small upload held in memory.

    No sha256 is computed (the caller has the bytes); ``bytes`` counts each line plus one.
    """
    validator = _validator(name, role, exact_tokens, data_format, chat_rules)
    size = 0
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


def _validator(
    name: str, role: str, exact_tokens: bool, data_format: str, chat_rules: ChatRules
) -> LineValidator:
    # Exact counts use Mistral's tokenizer: they mean nothing for OpenAI's preference data,
    # whose reports keep the estimate only.
    counter = _token_counter() if exact_tokens and data_format == "chat" else None
    return LineValidator(
        name, role=role, token_counter=counter, data_format=data_format, chat_rules=chat_rules
    )


def _token_counter() -> TokenCounter:
    # Imported lazily: mistral-common is an optional extra and slow to import.
    from reconciler.data.tokens import MistralTokenCounter

    return MistralTokenCounter()
