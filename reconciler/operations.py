"""The use cases behind ``plan`` and ``apply``: prepare, refresh, plan, check staleness, apply.

Everything here works on a :class:`~reconciler.workspace.Workspace`; the CLI adds option
parsing, rendering, the confirmation prompt and exit codes on top:

* :func:`plan_workspace`: prepare the data while the remote is read, read the state, plan;
* :func:`apply_workspace`: under the state lock, plan (or check a saved plan), let the caller
  show and confirm it, and execute it;
* :func:`sync_models`: after ``apply --wait``, apply the model metadata of jobs that have
  succeeded meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from reconciler.data.api import check_datasets
from reconciler.engine import fingerprint
from reconciler.engine.desired import DesiredJob, DesiredState, build_desired
from reconciler.engine.executor import ApplyOptions, Executor, resolve_integration_key
from reconciler.engine.observed import Observed, refresh
from reconciler.engine.outcome import ApplyHooks, ApplyResult
from reconciler.engine.plan import Action, CostEstimate, CostSource, Plan
from reconciler.engine.planner import (
    MODEL_STORAGE_COST_PER_MONTH,
    PlanOptions,
    build_plan,
    jobs_to_create,
    known_file_ids,
)
from reconciler.engine.state_model import State
from reconciler.errors import (
    ApiError,
    DataError,
    PlanError,
    ReconcilerError,
    Severity,
    StalePlanError,
)
from reconciler.workspace import Workspace

MAX_ESTIMATES = 50
"""Cost estimates (``dry_run`` requests) a plan asks for at most."""


@dataclass(frozen=True)
class Prepared:
    """Prepared datasets and the desired state.

    Attributes:
        desired: the desired state.
        digest: digest of the specs and the prepared data contents (saved-plan freshness).
        warnings: dataset warnings (rendered, one line each).
    """

    desired: DesiredState
    digest: str
    warnings: tuple[str, ...]


def prepare(ws: Workspace) -> Prepared:
    """Validate and prepare every dataset; build the desired state. Raises DataError."""
    check = check_datasets(ws.specs, cache_dir=ws.cache_dir)
    errors = [p for p in check.problems if p.severity is Severity.ERROR]
    if errors:
        raise DataError(check.problems, summary=f"{len(errors)} problem(s) in the training data")
    desired = build_desired(ws.specs, check.prepared)
    digest = fingerprint.digest(
        {"specs": ws.specs.digest, "files": {a: f.sha256 for a, f in desired.files.items()}}
    )
    warnings = tuple(
        ": ".join(str(x) for x in (p.location, p.subject, p.message) if x)
        for p in check.problems
        if p.severity is not Severity.ERROR
    )
    return Prepared(desired=desired, digest=digest, warnings=warnings)


def estimate_costs(
    ws: Workspace,
    desired: DesiredState,
    state: State | None,
    observed: Observed,
    addresses: Sequence[str],
) -> tuple[dict[str, CostEstimate], list[str]]:
    """Cost estimates of new jobs, and notes on what could not be estimated.

    Today they come from the remote's ``dry_run``, for jobs whose files are already there.
    """
    file_ids = known_file_ids(desired, state or State(lineage="", serial=0), observed)
    candidates: list[DesiredJob] = [
        desired.jobs[a] for a in addresses if all(d in file_ids for d in desired.jobs[a].depends_on)
    ]
    notes: list[str] = []
    if len(candidates) > MAX_ESTIMATES:
        notes.append(f"cost estimated for {MAX_ESTIMATES} of {len(candidates)} new jobs")
        candidates = candidates[:MAX_ESTIMATES]
    client = ws.client()

    def one(job: DesiredJob) -> tuple[str, CostEstimate | None]:
        try:
            request = job.build_request(file_ids, resolve_integration_key)
            est = client.estimate_job(request)
        except ReconcilerError:
            return job.address, None  # no key yet, or the remote gives no estimate
        if est.cost is None:
            return job.address, None
        return job.address, CostEstimate(
            amount=est.cost,
            currency=est.cost_currency,
            source=CostSource.DRY_RUN,
            train_tokens=est.train_tokens,
            expected_duration_seconds=est.expected_duration_seconds,
        )

    estimates: dict[str, CostEstimate] = {}
    with ThreadPoolExecutor(max_workers=max(1, min(ws.parallelism, 8))) as pool:
        for address, estimate in pool.map(one, candidates):
            if estimate is not None:
                estimates[address] = estimate
    return estimates, notes


def prepare_and_refresh(ws: Workspace) -> tuple[Prepared, Observed]:
    """:func:`prepare` the local data while the remote is read, at the same time.

    Hashing and validating files is local work and the refresh is waiting on the network, so
    overlapping them makes a plan cost about the longer of the two, not their sum.
    """
    client = ws.client()  # started here: the embedded sandbox must not start in a thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        remote = pool.submit(refresh, client)
        try:
            prepared = prepare(ws)
        except BaseException:
            remote.cancel()
            raise
        observed = remote.result()
    return prepared, observed


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked for on the command line."""

    spec_paths: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    prune: bool = False
    estimate: bool = True


def make_plan(
    ws: Workspace,
    prepared: Prepared,
    state: State | None,
    request: PlanRequest,
    observed: Observed | None = None,
) -> tuple[Plan, Observed]:
    """Build the plan (with cost estimates for new jobs), refreshing unless ``observed``.

    The plan is built once: the planner first names the jobs it will create, their costs
    are estimated, then the plan is made with the estimates and every warning in it.
    """
    if observed is None:
        observed = refresh(ws.client())
    options = PlanOptions(
        targets=request.targets,
        replace=request.replace,
        prune=request.prune,
        target_description=ws.target,
        spec_paths=request.spec_paths,
        spec_digest=prepared.digest,
        auto_start=ws.client().capabilities.auto_start,
        # A Ray job's adapters live in the user's own storage: no provider storage fee.
        storage_cost_per_model=0.0
        if ws.client().capabilities.name == "ray"
        else MODEL_STORAGE_COST_PER_MONTH,
    )
    estimates: dict[str, CostEstimate] = {}
    notes: list[str] = []
    if request.estimate:
        creates = jobs_to_create(prepared.desired, state, observed, options)
        if creates:
            try:
                estimates, notes = estimate_costs(ws, prepared.desired, state, observed, creates)
            except ApiError as exc:
                notes = [f"cost estimates unavailable: {exc}"]
    options = replace(options, estimates=estimates, notes=(*notes, *prepared.warnings))
    return build_plan(prepared.desired, state, observed, options), observed


@dataclass(frozen=True)
class Planned:
    """A plan with what it was made from (apply needs the prepared data and the state)."""

    prepared: Prepared
    state: State | None
    plan: Plan
    observed: Observed


def plan_workspace(ws: Workspace, request: PlanRequest) -> Planned:
    """Prepare and refresh at once, read the state, and build the plan."""
    prepared, observed = prepare_and_refresh(ws)
    state = ws.backend.read()
    plan, observed = make_plan(ws, prepared, state, request, observed)
    return Planned(prepared=prepared, state=state, plan=plan, observed=observed)


def check_fresh(plan: Plan, state: State | None, digest: str) -> None:
    """Refuse a saved plan whose state or specs moved on (including the no-state case)."""
    if state is None:
        if plan.lineage is not None:
            raise StalePlanError(
                "Saved plan does not match the state: it was made against state lineage "
                f"{plan.lineage}, but there is no state now. Run 'reconciler plan' again."
            )
    else:
        if plan.lineage is None:
            raise StalePlanError(
                "Saved plan is stale: it was made before any state existed, and an apply has "
                f"created one since (serial {state.serial}). Run 'reconciler plan' again."
            )
        if plan.lineage != state.lineage:
            raise StalePlanError(
                f"Saved plan was made against state lineage {plan.lineage}, but the state's "
                f"lineage is {state.lineage}: it belongs to another state. Run 'reconciler plan' "
                "again."
            )
        if plan.serial != state.serial:
            raise StalePlanError(
                f"Saved plan is stale: the state changed since the plan was made (serial "
                f"{plan.serial} then, {state.serial} now — another apply ran). Run "
                "'reconciler plan' again."
            )
    if plan.spec_digest != digest:
        raise StalePlanError(
            "Saved plan is stale: the specs or their datasets changed since the plan was made. "
            "Run 'reconciler plan' again."
        )


@dataclass(frozen=True)
class ApplyRequest:
    """What the user asked apply to do.

    Attributes:
        plan: how to plan (a saved plan's options are fixed: giving targets, replacements or
            prune with one is a :class:`~reconciler.errors.PlanError`).
        saved: a saved plan (``plan --out``) to apply exactly as saved, once checked fresh.
        lock_timeout: seconds to wait for the state lock.
        allow_duplicates: create jobs the plan flags as possible duplicates anyway.
        start_timeout: seconds to wait for new jobs to be validated before starting them.
    """

    plan: PlanRequest = PlanRequest()
    saved: Plan | None = None
    lock_timeout: float = 0.0
    allow_duplicates: bool = False
    start_timeout: float = 600.0

    def __post_init__(self) -> None:
        if self.saved is not None and (self.plan.targets or self.plan.replace or self.plan.prune):
            raise PlanError(
                "--target, --replace and --prune cannot change a saved plan; "
                "make a new plan with them instead"
            )


@dataclass(frozen=True)
class Applied:
    """What :func:`apply_workspace` did.

    Attributes:
        plan: the plan it applied (or found nothing to do in).
        result: the executor's result; None when there was nothing to do.
    """

    plan: Plan
    result: ApplyResult | None


def apply_workspace(
    ws: Workspace,
    request: ApplyRequest,
    *,
    show: Callable[[Plan], None] | None = None,
    confirm: Callable[[Plan], bool] | None = None,
    hooks: ApplyHooks | None = None,
) -> Applied:
    """The apply use case: everything between the command line and the executor.

    Under the state lock, held from the refresh to the last state write:

    1. the plan: made now (:func:`plan_workspace`), or the saved one, checked to target this
       workspace and to be fresh (:func:`check_fresh`);
    2. ``show(plan)``, for the caller to display it;
    3. when there is nothing to do (no change, no interrupted create to resolve), returns
       without a result;
    4. ``confirm(plan)`` — only for a plan made now (a saved plan was reviewed when it was
       saved); False cancels before anything is written;
    5. the executor applies the plan exactly once.

    Args:
        ws: the workspace.
        request: what to apply and how.
        show: displays the plan (called before confirmation).
        confirm: asks whether to go on; None applies without asking.
        hooks: apply's progress callbacks.

    Raises:
        PlanError: the saved plan targets another remote.
        StalePlanError: the saved plan's state or specs moved on.
        StateLockedError: another process holds the lock.
        ReconcilerError: confirmation refused ("Apply cancelled.").
    """
    saved = request.saved
    if saved is not None and saved.target != ws.target:
        raise PlanError(
            f"the saved plan targets {saved.target}, but the specs now target "
            f"{ws.target}; make a new plan"
        )
    with ws.backend.lock("apply", request.lock_timeout):
        if saved is not None:
            prepared = prepare(ws)
            state = ws.backend.read()
            check_fresh(saved, state, prepared.digest)
            plan = saved
        else:
            planned = plan_workspace(ws, request.plan)
            prepared, state, plan = planned.prepared, planned.state, planned.plan
        if show is not None:
            show(plan)
        if not plan.has_changes and not (state is not None and state.intents):
            return Applied(plan=plan, result=None)
        if saved is None and confirm is not None and not confirm(plan):
            raise ReconcilerError("Apply cancelled.")
        executor = Executor(
            ws.client(),
            ws.backend,
            state,
            prepared.desired,
            options=ApplyOptions(
                parallelism=ws.parallelism,
                allow_duplicates=request.allow_duplicates,
                start_timeout=request.start_timeout,
            ),
            hooks=hooks,
        )
        return Applied(plan=plan, result=executor.apply(plan))


def sync_models(ws: Workspace, *, hooks: ApplyHooks | None = None) -> ApplyResult | None:
    """Apply fine-tuned model name/description/archived of jobs that succeeded since apply.

    Used after ``apply --wait``: a fresh plan (no cost estimates) under the state lock, of
    which only the model updates are applied. None when there are none.
    """
    with ws.backend.lock("apply", 0.0):
        planned = plan_workspace(ws, PlanRequest(estimate=False))
        updates = planned.plan.only({Action.UPDATE})
        if not updates.changes:
            return None
        executor = Executor(
            ws.client(), ws.backend, planned.state, planned.prepared.desired, hooks=hooks
        )
        return executor.apply(updates)


def job_fetcher(ws: Workspace, addresses: Mapping[str, str]) -> Any:
    """A ``fetch()`` for the watcher: address → detailed job dict (GET per job)."""
    client = ws.client()

    def fetch() -> dict[str, dict[str, Any]]:
        return {a: client.get_job(jid).model_dump(mode="json") for a, jid in addresses.items()}

    return fetch
