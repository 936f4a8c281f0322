"""What apply reports: one :class:`Outcome` per change, the :class:`ApplyResult`, and the
progress hooks (:class:`ApplyHooks`) the command line renders while apply runs.

Outcomes and results are inert values (frozen, JSON-ready with ``to_dict``); the executor
collects them and hands back one result at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from reconciler.engine.plan import Action, Change


class OutcomeStatus(StrEnum):
    """How one change ended."""

    APPLIED = "applied"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Nothing to do any more (e.g. recovered, already created)."""
    NOT_ATTEMPTED = "not-attempted"
    """A file it depends on failed."""

    @property
    def is_failure(self) -> bool:
        """The change did not reach its goal (failed, or could not be attempted)."""
        return self in (OutcomeStatus.FAILED, OutcomeStatus.NOT_ATTEMPTED)


@dataclass(frozen=True)
class Outcome:
    """What happened to one change.

    Attributes:
        address: the change's address.
        action: the change's action (``start`` for the start gate's own outcomes).
        status: how it ended.
        message: one line for humans.
        remote_id: the remote object it ended with, if any.
    """

    address: str
    action: Action
    status: OutcomeStatus
    message: str = ""
    remote_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``apply --format json``)."""
        return {
            "address": str(self.address),
            "action": self.action.value,
            "status": self.status.value,
            "message": self.message,
            "remote_id": self.remote_id,
        }


@dataclass(frozen=True)
class ApplyResult:
    """The result of an apply.

    Attributes:
        outcomes: one per change (and per start-gate refusal), in the order they ended.
        recovered: addresses whose interrupted create was found remotely and recorded.
        serial: serial of the state after the last write (None: no state written).
        started_jobs: addresses of the jobs the start gate started.
    """

    outcomes: tuple[Outcome, ...] = ()
    recovered: tuple[str, ...] = ()
    serial: int | None = None
    started_jobs: tuple[str, ...] = ()

    @property
    def failures(self) -> list[Outcome]:
        """Outcomes that failed or could not be attempted."""
        return [o for o in self.outcomes if o.status.is_failure]

    @property
    def applied(self) -> int:
        """How many changes were applied."""
        return sum(1 for o in self.outcomes if o.status is OutcomeStatus.APPLIED)

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``apply --format json``."""
        return {
            "outcomes": [o.to_dict() for o in self.outcomes],
            "recovered": list(self.recovered),
            "serial": self.serial,
            "started_jobs": list(self.started_jobs),
            "ok": not self.failures,
        }


class ApplyHooks(Protocol):
    """Progress callbacks; the CLI renders them. All may be called from worker threads."""

    def begin(self, change: Change) -> None:
        """Work on a change starts."""

    def upload_progress(self, address: str, sent: int, total: int) -> None:
        """Bytes of an upload sent so far."""

    def note(self, address: str, message: str) -> None:
        """A step within a change (created, validating, started, ...)."""

    def done(self, outcome: Outcome) -> None:
        """A change finished (applied, failed or skipped)."""


class SilentHooks:
    """Hooks that show nothing (``--format json``, tests)."""

    def begin(self, change: Change) -> None:
        """Ignore."""

    def upload_progress(self, address: str, sent: int, total: int) -> None:
        """Ignore."""

    def note(self, address: str, message: str) -> None:
        """Ignore."""

    def done(self, outcome: Outcome) -> None:
        """Ignore."""
