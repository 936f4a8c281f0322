"""The one exception tree of reconciler.

Everything the command line prints as a clean error (exit 1, no traceback) derives from
:class:`ReconcilerError`. Foreign errors (PyYAML, pydantic, httpx, sqlite, psycopg, OS errors)
are translated into this tree at the module boundary where they occur and chained with
``raise ... from exc``; they never escape to the CLI.

::

    ReconcilerError
    ├── SpecError                 specs: .problems (all of them, each with file:line:column)
    ├── DataError                 training data: .problems (file, line, rule code)
    ├── SecretError               a secret reference cannot be resolved (missing env var / file)
    ├── StateError                state file / backend problems
    │   ├── StateLockedError      .holder: who holds the lock
    │   └── StalePlanError        saved plan no longer matches state or specs
    ├── PlanError                 a plan cannot be built or read
    ├── ApiError                  the remote API: .method .path .status .reason
    │   ├── AuthError             401 / 403
    │   ├── NotFoundError         404
    │   ├── ConflictError         409
    │   │   └── DuplicateSubmissionError  a Ray job with this submission_id already exists
    │   ├── PayloadTooLargeError  413
    │   ├── ValidationError       400 / 422, .detail is the server's detail
    │   ├── RateLimitedError      429, .retry_after seconds
    │   ├── ServerError           5xx
    │   └── TransportError        connection refused/reset, timeouts; no HTTP status
    ├── ApplyError                partial failure of an apply: .failures
    ├── BudgetExceededError       a job's cost estimate is over its budget
    ├── StorageError              a storage URI (local path, s3://, ...) cannot be read or written
    ├── TrainingError             the trainer cannot run the job it was given (bad job, model, data)
    └── InvalidValueError         a malformed command-line value (also a ValueError)

Each error's ``str()`` is a complete user-facing message: what is wrong, where, and how to
fix it. Messages never contain secret values: they are built without them, and ``str()`` also
replaces every secret the run resolved by ``***`` (:mod:`reconciler.redact`), in case one
arrived inside a foreign message (a server echoing a request, a driver quoting a DSN).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from reconciler.redact import scrub


@dataclass(frozen=True, order=True)
class Location:
    """A position in a source file, 1-based.

    Attributes:
        file: path as the user named it (relative paths stay relative).
        line: 1-based line, or 0 when unknown.
        column: 1-based column, or 0 when unknown.
    """

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line and self.column:
            return f"{self.file}:{self.line}:{self.column}"
        if self.line:
            return f"{self.file}:{self.line}"
        return self.file


class Severity(StrEnum):
    """How bad a :class:`Problem` is.

    A ``StrEnum``: members compare equal to their values and print as them, so JSON output
    and comparisons with ``"error"`` / ``"warning"`` read the same as plain strings.

    Attributes:
        ERROR: the input is wrong; commands exit 1.
        WARNING: worth a look, but not a reason to fail.
    """

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem found while loading or checking input.

    Attributes:
        code: stable machine-readable code (e.g. ``yaml-syntax``, ``unknown-field``, ``F9``).
        message: what is wrong, one line.
        location: where (file:line:column), if known.
        subject: the document or object it concerns, e.g. ``FineTuningJob/dumbledore-v1``.
        hint: how to fix it, if we know.
        severity: :attr:`Severity.ERROR` or :attr:`Severity.WARNING` (a plain string value
            is converted; an unknown one raises ``ValueError``).
        extra: further JSON fields of :meth:`to_dict` (e.g. ``sample_index``); not compared.
    """

    code: str
    message: str
    location: Location | None = None
    subject: str | None = None
    hint: str | None = None
    severity: Severity = Severity.ERROR
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if type(self.severity) is not Severity:
            # Callers and caches may still hand over the plain value ("warning").
            object.__setattr__(self, "severity", Severity(self.severity))

    def render(self) -> str:
        """One human line (plus a hint line when there is one)."""
        where = f"{self.location}: " if self.location else ""
        subject = f"{self.subject}: " if self.subject else ""
        text = f"{where}{self.severity}: {subject}{self.message} [{self.code}]"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by ``--format json``."""
        loc = self.location
        return {
            "code": self.code,
            "severity": self.severity.value,
            "message": self.message,
            "file": loc.file if loc else None,
            "line": loc.line if loc and loc.line else None,
            "column": loc.column if loc and loc.column else None,
            "subject": self.subject,
            "hint": self.hint,
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Problem:
        """Inverse of :meth:`to_dict` (caches store problems as JSON)."""
        extra = {k: v for k, v in data.items() if k not in _PROBLEM_KEYS}
        loc = (
            Location(data["file"], data.get("line") or 0, data.get("column") or 0)
            if data.get("file")
            else None
        )
        return cls(
            code=data["code"],
            message=data["message"],
            location=loc,
            subject=data.get("subject"),
            hint=data.get("hint"),
            severity=Severity(data.get("severity", Severity.ERROR)),
            extra=extra,
        )


_PROBLEM_KEYS = frozenset(
    ("code", "severity", "message", "file", "line", "column", "subject", "hint")
)


class HasProblems:
    """A result that carries ``problems`` (a check, a report): its errors and warnings."""

    problems: list[Problem]

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity error."""
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Problem]:
        """The problems of severity warning."""
        return [p for p in self.problems if p.severity is Severity.WARNING]


class ReconcilerError(Exception):
    """Base of every error the CLI reports cleanly (exit code 1).

    ``str()`` is scrubbed of every registered secret, so every way an error is rendered (the
    CLI's handler, ``--format json`` outputs, messages recorded in results) is.
    """

    exit_code: int = 1

    def __str__(self) -> str:
        return scrub(super().__str__())


class _ProblemsError(ReconcilerError):
    """An error that carries a list of :class:`Problem` (all of them, not only the first)."""

    def __init__(self, problems: Sequence[Problem], summary: str | None = None) -> None:
        self.problems = list(problems)
        errors = [p for p in self.problems if p.severity is Severity.ERROR]
        head = summary or f"{len(errors)} problem(s) found"
        super().__init__(head + "\n" + "\n".join(p.render() for p in self.problems))


class SpecError(_ProblemsError):
    """The specs are invalid: YAML syntax, schema, references, secrets."""


class DataError(_ProblemsError):
    """Training data is invalid (rule violations in JSONL, conversion failures)."""


class SecretError(ReconcilerError):
    """A secret reference (``{env: NAME}`` / ``{file: PATH}``) cannot be resolved."""


class StateError(ReconcilerError):
    """The state cannot be read, written or is inconsistent."""


class StateLockedError(StateError):
    """Another process holds the state lock.

    Attributes:
        holder: the lock record of the holder (id, host, pid, user, operation, created).
    """

    def __init__(self, message: str, holder: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.holder = holder or {}


class StalePlanError(StateError):
    """A saved plan no longer matches the state (lineage/serial) or the specs (digest)."""


class PlanError(ReconcilerError):
    """A plan cannot be built, read or applied as given."""


class ApiError(ReconcilerError):
    """The remote API answered with an error or could not be reached.

    Attributes:
        method: HTTP method, e.g. ``POST``.
        path: request path without query string or host, e.g. ``/v1/fine_tuning/jobs``.
        status: HTTP status, or ``None`` for transport errors.
        reason: the server's reason (its ``detail``/``message``), shortened.
        detail: the server's parsed ``detail`` (validation errors), if any.
    """

    retryable: bool = False

    def __init__(
        self,
        reason: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        detail: Any = None,
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.reason = reason
        self.detail = detail
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status_text = f" -> HTTP {self.status}" if self.status is not None else ""
        return f"{where}{status_text}: {self.reason}" if where else self.reason

    def restated(self, reason: str) -> Self:
        """The same error with another reason: its type, method, path, status, detail and a
        subclass's own attributes (``retry_after``, ``submission_id``) are kept."""
        new = copy.copy(self)
        new.reason = reason
        new.args = (new._message(),)
        return new


class AuthError(ApiError):
    """401/403: the API key is missing, wrong or lacks permission."""


class NotFoundError(ApiError):
    """404: the object does not exist (or was deleted)."""


class ConflictError(ApiError):
    """409: e.g. a similar job is already queued, validated or running."""


class DuplicateSubmissionError(ConflictError):
    """A Ray job with the requested ``submission_id`` already exists; nothing was started.

    Ray refuses the second submission of an id (HTTP 500 or 400 whose body says "Job with
    submission_id ... already exists"), which is what makes a retried submission safe.

    Attributes:
        submission_id: the id that is taken.
    """

    def __init__(self, reason: str, *, submission_id: str = "", **kw: Any) -> None:
        super().__init__(reason, **kw)
        self.submission_id = submission_id


class PayloadTooLargeError(ApiError):
    """413: the upload is over the server's size limit."""


class ValidationError(ApiError):
    """400/422: the server rejected the request body or parameters."""


class RateLimitedError(ApiError):
    """429: too many requests. ``retry_after`` is the server's hint in seconds, if any."""

    retryable = True

    def __init__(self, reason: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(reason, **kw)
        self.retry_after = retry_after


class ServerError(ApiError):
    """5xx: the server failed; retried with backoff."""

    retryable = True


class TransportError(ApiError):
    """No HTTP response: connection refused/reset, DNS, timeouts."""

    retryable = True


class ApplyError(ReconcilerError):
    """Some changes of an apply failed; the rest were applied and recorded.

    Attributes:
        failures: (address, message) for every change that failed.
    """

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        self.failures = list(failures)
        lines = [f"  {addr}: {msg}" for addr, msg in self.failures]
        super().__init__(
            f"{len(self.failures)} change(s) failed; everything else was applied and recorded. "
            "Fix the cause and run apply again: it resumes where it stopped.\n" + "\n".join(lines)
        )


class BudgetExceededError(ReconcilerError):
    """A job's cost estimate (from the remote, after validation) is over its ``budget``."""


class StorageError(ReconcilerError):
    """A storage location (a local path or a URI such as ``s3://bucket/prefix``) cannot be
    read or written: missing, no permission, no filesystem library for its scheme."""


class TrainingError(ReconcilerError):
    """The trainer cannot run the job it was given: an invalid job description, a model or
    tokenizer that does not load, training data with no usable sample."""


class InvalidValueError(ReconcilerError, ValueError):
    """A malformed value given on the command line, e.g. a duration such as ``5 min``.

    Also a :class:`ValueError`, so parsers raising it work as pydantic validators and
    command-line type converters as well as in plain code (where the CLI reports it cleanly).
    """
