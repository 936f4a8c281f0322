"""The operations behind ``plan`` and ``apply``: prepare, refresh, plan, check staleness.

Everything here works on a :class:`~reconciler.workspace.Workspace`; the CLI adds rendering,
confirmation and exit codes on top.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from reconciler.data.api import check_datasets
from reconciler.engine import fingerprint
from reconciler.engine.desired import DesiredJob, DesiredState, build_desired
from reconciler.engine.executor import resolve_integration_key
from reconciler.engine.observed import Observed, refresh
from reconciler.engine.plan import Action, Plan
from reconciler.engine.planner import PlanOptions, build_plan, known_file_ids
from reconciler.engine.state_model import State
from reconciler.errors import ApiError, DataError, ReconcilerError, Severity, StalePlanError
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
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Cost estimates from the remote's ``dry_run`` for jobs whose files are already there."""
    file_ids = known_file_ids(desired, state or State(lineage="", serial=0), observed)
    candidates: list[DesiredJob] = [
        desired.jobs[a] for a in addresses if all(d in file_ids for d in desired.jobs[a].depends_on)
    ]
    notes: list[str] = []
    if len(candidates) > MAX_ESTIMATES:
        notes.append(f"cost estimated for {MAX_ESTIMATES} of {len(candidates)} new jobs")
        candidates = candidates[:MAX_ESTIMATES]
    client = ws.client()

    def one(job: DesiredJob) -> tuple[str, dict[str, Any] | None]:
        try:
            request = job.build_request(file_ids, resolve_integration_key)
            est = client.estimate_job(request)
        except ReconcilerError:
            return job.address, None  # no key yet, or the remote gives no estimate
        data = est.model_dump()
        if data.get("cost") is None:
            return job.address, None
        return job.address, {
            "amount": data["cost"],
            "currency": data.get("cost_currency"),
            "source": "dry_run",
            "train_tokens": data.get("train_tokens"),
            "expected_duration_seconds": data.get("expected_duration_seconds"),
        }

    estimates: dict[str, dict[str, Any]] = {}
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
    """Build the plan (with cost estimates for new jobs), refreshing unless ``observed``."""
    if observed is None:
        observed = refresh(ws.client())
    options = PlanOptions(
        targets=request.targets,
        replace=request.replace,
        prune=request.prune,
        target_description=ws.target,
        spec_paths=request.spec_paths,
        spec_digest=prepared.digest,
    )
    plan = build_plan(prepared.desired, state, observed, options)
    if request.estimate:
        creates = [
            c.address
            for c in plan.changes
            if c.type == "job" and c.action in (Action.CREATE, Action.REPLACE)
        ]
        if creates:
            try:
                estimates, notes = estimate_costs(ws, prepared.desired, state, observed, creates)
            except ApiError as exc:
                estimates, notes = {}, [f"cost estimates unavailable: {exc}"]
            if estimates:
                options = PlanOptions(**{**options.__dict__, "estimates": estimates})
                plan = build_plan(prepared.desired, state, observed, options)
            plan.warnings.extend(notes)
    plan.warnings.extend(prepared.warnings)
    return plan, observed


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


def job_fetcher(ws: Workspace, addresses: Mapping[str, str]) -> Any:
    """A ``fetch()`` for the watcher: address → detailed job dict (GET per job)."""
    client = ws.client()

    def fetch() -> dict[str, dict[str, Any]]:
        return {a: client.get_job(jid).model_dump(mode="json") for a, jid in addresses.items()}

    return fetch
