"""Continuous reconcile: one round of plan and apply for the changes that need no review.

``reconciler reconcile`` runs :func:`run_round` again and again (the command line only loops,
renders and handles signals). A round:

1. opens the workspace afresh (the specs are read again, so a long-lived service follows the
   specs it is pointed at) and plans against the remote **without** the state lock;
2. when the plan holds something the round may do — start a job the remote has validated,
   update a fine-tuned model's name, description or archived flag
   (:func:`~reconciler.engine.rounds.needs_no_review`),
   or, with ``auto_approve``, any change (the plan then priced and refused over a budget, as
   ``apply`` refuses it) — takes the lock, plans again under it (another apply may have run
   meanwhile), and applies only those changes; the lock is released as soon as the executor
   is done;
3. reports what it applied, what awaits review (creates, replacements, deletes and forgets
   without ``auto_approve``), what drifted and what the specs no longer declare.

The result, a :class:`~reconciler.engine.rounds.RoundResult`, is an inert value; its
``exit_code`` is what ``reconcile --once`` exits with. A round that fails is a result with an
``error`` (the loop backs off and tries again,
:func:`~reconciler.engine.rounds.retry_delay`), except for the configuration errors of
:data:`STARTUP_ERRORS` in the first round, which are raised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from reconciler.engine.executor import ApplyOptions, Executor
from reconciler.engine.outcome import ApplyHooks, ApplyResult
from reconciler.engine.plan import Plan
from reconciler.engine.rounds import (
    Pending,
    RoundResult,
    awaits_validation,
    left_for_review,
    work_of,
)
from reconciler.errors import (
    AuthError,
    DataError,
    InvalidValueError,
    ReconcilerError,
    SecretError,
    SpecError,
)
from reconciler.operations import Planned, PlanRequest, plan_workspace, refuse_errors
from reconciler.workspace import Workspace, open_workspace

LOCK_OPERATION = "reconcile"
"""The operation a round's state lock names (shown to whoever finds it held)."""

STARTUP_ERRORS: tuple[type[ReconcilerError], ...] = (
    SpecError,
    DataError,
    SecretError,
    AuthError,
    InvalidValueError,
)
"""Errors that end ``reconcile`` when the first round meets them: bad specs, data, secrets or
keys will not mend by waiting. Met in a later round (someone pushed a broken spec), they are
reported like any other error and the loop goes on."""


@dataclass(frozen=True)
class ReconcileRequest:
    """What the user asked ``reconcile`` to do each round.

    Attributes:
        spec_paths: the spec files or directories.
        auto_approve: apply the whole plan (creates, replacements, deletes, forgets too),
            as ``apply --yes`` would.
        prune: plan objects the specs no longer declare for removal (applied only with
            ``auto_approve``; otherwise they await review).
        lock_timeout: seconds to wait for the state lock when a round has something to do.
        start_timeout: seconds to wait for new jobs to be validated before starting them
            (only jobs created with ``auto_approve`` wait; validated jobs start at once).
        parallelism: concurrent remote operations (None: the Provider's setting).
    """

    spec_paths: tuple[str, ...] = ()
    auto_approve: bool = False
    prune: bool = False
    lock_timeout: float = 0.0
    start_timeout: float = 600.0
    parallelism: int | None = None

    @property
    def plan_request(self) -> PlanRequest:
        """How each round plans. Without ``auto_approve``, no cost estimates: nothing new is
        created without review, and the start gate checks budgets against the remote's own
        estimate. With it, the whole plan is applied as ``apply --yes`` would, so it is priced
        (locally) and its budgets are checked the same way."""
        return PlanRequest(spec_paths=self.spec_paths, prune=self.prune, estimate=self.auto_approve)


def _check_budgets(planned: Planned, request: ReconcileRequest) -> None:
    """With ``auto_approve``, refuse a plan over a budget as ``apply`` does (PlanError)."""
    if request.auto_approve:
        refuse_errors(planned.plan, "reconcile --auto-approve")


def _has_work(planned: Planned, auto_approve: bool) -> bool:
    # Intents left by a run that died are resolved by looking the objects up: no review needed.
    intents = planned.state is not None and bool(planned.state.intents)
    return work_of(planned.plan, auto_approve).has_changes or intents


def _stopping(stop: threading.Event | None) -> bool:
    return stop is not None and stop.is_set()


def reconcile_round(
    ws: Workspace,
    request: ReconcileRequest,
    *,
    number: int = 1,
    stop: threading.Event | None = None,
    hooks: ApplyHooks | None = None,
) -> RoundResult:
    """One round in an open workspace (see the module docstring).

    Args:
        ws: the workspace.
        request: what to do.
        number: the round's number (for the result).
        stop: once set, the round does not take the lock, or, while applying, finishes what
            is in flight and skips the rest.
        hooks: apply's progress callbacks.

    Raises:
        ReconcilerError: the round failed (specs, data, remote, state lock...).
    """
    started_at = time.time()
    planned = plan_workspace(ws, request.plan_request)
    _check_budgets(planned, request)
    applied: ApplyResult | None = None
    if _has_work(planned, request.auto_approve) and not _stopping(stop):
        with ws.backend.lock(LOCK_OPERATION, request.lock_timeout):
            # Planned again under the lock: an apply may have changed the state meanwhile.
            planned = plan_workspace(ws, request.plan_request)
            _check_budgets(planned, request)
            if _has_work(planned, request.auto_approve) and not _stopping(stop):
                executor = Executor(
                    ws.client(),
                    ws.backend,
                    planned.state,
                    planned.prepared.desired,
                    options=ApplyOptions(
                        parallelism=ws.parallelism,
                        start_timeout=request.start_timeout,
                        stop=stop,
                    ),
                    hooks=hooks,
                )
                applied = executor.apply(work_of(planned.plan, request.auto_approve))
    return _result(number, started_at, ws.target, planned.plan, request, applied, stop)


def _result(
    number: int,
    started_at: float,
    target: str,
    plan: Plan,
    request: ReconcileRequest,
    applied: ApplyResult | None,
    stop: threading.Event | None,
) -> RoundResult:
    """What the round reports, from the last plan it made and what it applied."""
    left = left_for_review(plan, request.auto_approve)
    waiting = [] if request.auto_approve else [c for c in plan.actionable if awaits_validation(c)]
    return RoundResult(
        number=number,
        started_at=started_at,
        target=target,
        acted=applied is not None,
        applied=applied,
        awaiting_review=tuple(Pending(c.address, c.action, c.reason) for c in left.actionable),
        awaiting_validation=tuple(c.address for c in waiting),
        drift=left.drift,
        not_in_spec=left.unmanaged_leftovers,
        stopped=_stopping(stop),
    )


def run_round(
    number: int,
    request: ReconcileRequest,
    *,
    stop: threading.Event | None = None,
    hooks: ApplyHooks | None = None,
    opened: Callable[[Workspace], None] | None = None,
) -> RoundResult:
    """Open the workspace, run one round, close it; a failed round is a result with an error.

    ``opened`` is called with the workspace once it is open (the command line names the
    target before the round's progress lines).

    Raises:
        ReconcilerError: one of :data:`STARTUP_ERRORS` in round 1.
    """
    started_at = time.time()
    try:
        with open_workspace(request.spec_paths, parallelism=request.parallelism) as ws:
            if opened is not None:
                opened(ws)
            return reconcile_round(ws, request, number=number, stop=stop, hooks=hooks)
    except ReconcilerError as exc:
        if number == 1 and isinstance(exc, STARTUP_ERRORS):
            raise
        return RoundResult(
            number=number, started_at=started_at, error=str(exc), stopped=_stopping(stop)
        )
