"""What a ``reconcile`` round may do without review, and what it reports.

A round (:mod:`reconciler.reconcile`) applies only the changes of :func:`needs_no_review`
unless told to approve everything; :class:`RoundResult` is its inert, JSON-ready report, and
:func:`retry_delay` how long the loop waits after failed rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.client.types import JobStatus
from reconciler.engine.outcome import ApplyResult, Outcome
from reconciler.engine.plan import Action, Drift, FileChange, JobChange, Plan, Reason

MAX_RETRY_DELAY = 3600.0
"""Longest wait, in seconds, after failed rounds (unless the interval itself is longer)."""


@dataclass(frozen=True)
class Pending:
    """A planned change a round did not apply.

    Attributes:
        address: the change's address.
        action: what applying it would do.
        reason: why it is planned.
    """

    address: str
    action: Action
    reason: Reason

    def to_dict(self) -> dict[str, str]:
        """JSON form."""
        return {"address": self.address, "action": self.action.value, "reason": self.reason.value}


@dataclass(frozen=True)
class RoundResult:
    """What one round found and did.

    Attributes:
        number: the round's number, from 1.
        started_at: when it began, unix seconds.
        target: where it acted (None when the workspace could not be opened).
        acted: whether it took the state lock and applied something.
        applied: the executor's result when it acted.
        awaiting_review: changes left for a reviewed ``apply`` (none with ``auto_approve``).
        awaiting_validation: jobs to start once the remote has validated them (a later round
            starts them).
        drift: objects changed outside reconciler.
        not_in_spec: managed addresses the specs no longer declare (without ``prune``).
        error: why the round failed, when it did; the rest is then empty.
        stopped: a stop was requested during the round; what was in flight finished and was
            recorded, the rest is left for the next run.
    """

    number: int
    started_at: float
    target: str | None = None
    acted: bool = False
    applied: ApplyResult | None = None
    awaiting_review: tuple[Pending, ...] = ()
    awaiting_validation: tuple[str, ...] = ()
    drift: tuple[Drift, ...] = ()
    not_in_spec: tuple[str, ...] = ()
    error: str | None = None
    stopped: bool = False

    @property
    def failures(self) -> list[Outcome]:
        """Changes that failed while applying."""
        return self.applied.failures if self.applied is not None else []

    @property
    def needs_attention(self) -> bool:
        """Something awaits review, drifted, or is no longer in the specs.

        ``awaiting_review``, ``drift`` and ``not_in_spec`` are the parts of the plan the round
        left (:func:`left_for_review`), so this is that plan's
        :attr:`~reconciler.engine.plan.Plan.differs`: the rule of ``plan --detailed-exitcode``.
        """
        return bool(self.awaiting_review or self.drift or self.not_in_spec)

    @property
    def exit_code(self) -> int:
        """``reconcile --once``'s exit code: 1 the round failed or a change failed, 2 something
        awaits review, drifted or is no longer in the specs (:attr:`needs_attention`, as
        ``plan --detailed-exitcode`` after the round), else 0 (also when a stop cut the round
        short)."""
        if self.error is not None or self.failures:
            return 1
        if self.needs_attention and not self.stopped:
            return 2
        return 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form: one line of ``reconcile --format json``."""
        return {
            "round": self.number,
            "started_at": self.started_at,
            "target": self.target,
            "acted": self.acted,
            "result": self.applied.to_dict() if self.applied is not None else None,
            "awaiting_review": [p.to_dict() for p in self.awaiting_review],
            "awaiting_validation": list(self.awaiting_validation),
            "drift": [d.model_dump(mode="json") for d in self.drift],
            "not_in_spec": list(self.not_in_spec),
            "error": self.error,
            "stopped": self.stopped,
            "exit_code": self.exit_code,
        }


def needs_no_review(change: FileChange | JobChange) -> bool:
    """Whether a round applies this change without ``auto_approve``.

    Only changes the reviewed specs already decided: starting a job the remote has validated
    (a reviewed plan created it to be started, and the start gate still checks its budget),
    and the updates in place: a fine-tuned model's name, description or archived flag, and
    pausing or resuming a job (``paused``). A job
    still being validated is left for a later round (:func:`awaits_validation`), so a round
    never holds the lock while waiting for the remote. A change that also adopts or moves a
    record (``import_id``, ``moved_from``) or deletes previous models (``delete_models``, which
    cannot be undone) is left for review.
    """
    if not isinstance(change, JobChange):
        return False
    if change.import_id or change.moved_from or change.delete_models:
        return False
    if change.action is Action.UPDATE:
        return True
    return (
        change.action is Action.START
        and change.before is not None
        and change.before.job_status is JobStatus.VALIDATED
    )


def work_of(plan: Plan, auto_approve: bool) -> Plan:
    """The part of ``plan`` a round applies: all of it with ``auto_approve``, else only the
    changes of :func:`needs_no_review`."""
    if auto_approve:
        return plan
    return plan.model_copy(update={"changes": tuple(c for c in plan.changes if needs_no_review(c))})


def awaits_validation(change: FileChange | JobChange) -> bool:
    """A start of a job the remote is still validating: a later round starts it, no review."""
    return (
        isinstance(change, JobChange)
        and change.action is Action.START
        and not needs_no_review(change)
    )


def left_for_review(plan: Plan, auto_approve: bool) -> Plan:
    """What a round leaves to a reviewed ``apply``, as a plan.

    Its changes are those the round neither applies (:func:`work_of`) nor leaves to a later
    round (:func:`awaits_validation`); none with ``auto_approve``. Drift stays (a round never
    repairs it), and of the objects the specs no longer declare, those no change acts on
    (:attr:`~reconciler.engine.plan.Plan.unmanaged_leftovers`; with ``--prune`` their removal
    is a change). Its :attr:`~reconciler.engine.plan.Plan.differs` is the round's exit code 2,
    by the rule of ``plan --detailed-exitcode``.
    """
    kept = (
        ()
        if auto_approve
        else tuple(
            c for c in plan.actionable if not needs_no_review(c) and not awaits_validation(c)
        )
    )
    return plan.model_copy(update={"changes": kept, "not_in_spec": plan.unmanaged_leftovers})


def retry_delay(interval: float, failed_rounds: int) -> float:
    """Seconds to wait before the next round after ``failed_rounds`` failures in a row.

    The interval after a good round; after failures it doubles each time (the remote may be
    down, another apply may hold the lock), up to :data:`MAX_RETRY_DELAY` — or the interval,
    when that is longer.
    """
    if failed_rounds <= 0:
        return interval
    cap = max(interval, MAX_RETRY_DELAY)
    return float(min(cap, interval * 2 ** (failed_rounds - 1)))


def count_failed(previous: int, result: RoundResult) -> int:
    """Failed rounds in a row after ``result``.

    Only a round that could not run counts (the remote unreachable, the lock held): a change
    the remote refused (a start over budget) fails again every round until the specs change,
    and waiting longer would only delay the other jobs' starts and model updates.
    """
    return previous + 1 if result.error is not None else 0
