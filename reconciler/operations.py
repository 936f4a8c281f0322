"""The use cases behind ``plan`` and ``apply``: prepare, refresh, plan, check staleness, apply.

Everything here works on a :class:`~reconciler.workspace.Workspace`; the CLI adds option
parsing, rendering, the confirmation prompt and exit codes on top:

* :func:`plan_workspace`: prepare the data while the remote is read, read the state, plan
  (with local cost estimates and budget checks, :mod:`~reconciler.engine.costs`; a plan
  sends nothing that writes);
* :func:`apply_workspace`: under the state lock, plan (for a saved plan: plan again and check
  that it does what the saved one says), let the caller show and confirm it, and execute it;
* :func:`sync_models`: after ``apply --wait``, apply the model metadata of jobs that have
  succeeded meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from reconciler.data.api import check_datasets
from reconciler.engine import costs, fingerprint
from reconciler.engine.adopt import ContentHasher
from reconciler.engine.adoption import adopt_declared, remote_files_to_hash
from reconciler.engine.desired import DesiredJob, DesiredState, build_desired
from reconciler.engine.executor import ApplyOptions, Executor, resolve_integration_key
from reconciler.engine.observed import Observed, refresh
from reconciler.engine.outcome import ApplyHooks, ApplyResult
from reconciler.engine.plan import Action, CostEstimate, CostSource, Plan, approval_differences
from reconciler.engine.planner import PlanOptions, build_plan, known_file_ids
from reconciler.engine.selection import Selector, parse_selectors
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


@dataclass(frozen=True)
class Prepared:
    """Prepared datasets and the desired state.

    Attributes:
        desired: the desired state.
        digest: digest of the specs and the prepared data contents (saved-plan freshness).
        warnings: warnings of the spec loader and the datasets (rendered, one line each).
    """

    desired: DesiredState
    digest: str
    warnings: tuple[str, ...]


def prepare(ws: Workspace, *, exact_tokens: bool = False) -> Prepared:
    """Validate and prepare every dataset; build the desired state. Raises DataError.

    ``exact_tokens`` counts tokens with Mistral's tokenizer (the ``tokens`` extra) for the
    cost estimates, instead of the validator's approximation.
    """
    check = check_datasets(ws.specs, cache_dir=ws.cache_dir, exact_tokens=exact_tokens)
    if check.errors:
        raise DataError(
            check.problems, summary=f"{len(check.errors)} problem(s) in the training data"
        )
    desired = build_desired(ws.specs, check.prepared)
    digest = fingerprint.digest(
        {"specs": ws.specs.digest, "files": {a: f.sha256 for a, f in desired.files.items()}}
    )
    warnings = tuple(
        ": ".join(str(x) for x in (p.location, p.subject, p.message) if x)
        for p in (*ws.specs.warnings, *check.problems)  # the loader's: entries it skipped
        if p.severity is not Severity.ERROR
    )
    return Prepared(desired=desired, digest=digest, warnings=warnings)


def remote_estimates(
    ws: Workspace,
    desired: DesiredState,
    state: State | None,
    observed: Observed,
    addresses: Sequence[str],
) -> tuple[dict[str, CostEstimate], list[str]]:
    """The remote's own estimates (``dry_run``) of the jobs at ``addresses`` whose files it
    already has, and notes on those it gave none for. Only for ``plan --remote-estimate``.

    ``dry_run`` asks the remote to answer with an estimate and create nothing. Should it
    answer with a job (a proxy that drops the query parameter, a remote that no longer knows
    it), that job is cancelled at once and the plan fails (:class:`PlanError`). The first
    request goes alone, so at most one job is made before that is noticed; the others then go
    in parallel, and every job among their answers is cancelled too.
    """
    caps = ws.client().capabilities
    if not caps.remote_estimate:
        return {}, [
            f"--remote-estimate: {caps.name} gives no cost estimate before a job runs; the "
            "local estimates are shown"
        ]
    # The files as apply will find them: those Import and Moved documents record count too.
    adopted = adopt_declared(desired, state or State(lineage="", serial=0), observed).state
    file_ids = known_file_ids(desired, adopted, observed)
    candidates: list[DesiredJob] = [
        desired.jobs[a] for a in addresses if all(d in file_ids for d in desired.jobs[a].depends_on)
    ]
    client = ws.client()

    def one(job: DesiredJob) -> tuple[str, CostEstimate | str | None]:
        """(address, estimate | id of a job the remote made | None: no estimate)."""
        try:
            request = job.build_request(file_ids, resolve_integration_key)
            est = client.estimate_job(request)
        except ReconcilerError:
            return job.address, None  # no key yet, or the remote gives no estimate
        made = (est.model_extra or {}).get("id")
        if made is not None or est.object == "job":
            return job.address, str(made)
        if est.cost is None:
            return job.address, None
        return job.address, CostEstimate(
            amount=est.cost,
            currency=est.cost_currency,
            source=CostSource.DRY_RUN,
            train_tokens=est.train_tokens,
            expected_duration_seconds=est.expected_duration_seconds,
        )

    answers = [one(candidates[0])] if candidates else []
    if answers and not isinstance(answers[0][1], str):
        with ThreadPoolExecutor(max_workers=max(1, min(ws.parallelism, 8))) as pool:
            answers.extend(pool.map(one, candidates[1:]))
    made = {address: answer for address, answer in answers if isinstance(answer, str)}
    if made:
        raise PlanError(_cancel_unwanted_jobs(ws, made))
    estimates = {a: e for a, e in answers if isinstance(e, CostEstimate)}
    notes = [
        f"{a}: the remote gave no estimate (its files are not uploaded yet, or it refused); "
        "the local estimate is shown"
        for a in addresses
        if a not in estimates
    ]
    return estimates, notes


def _cancel_unwanted_jobs(ws: Workspace, made: Mapping[str, str]) -> str:
    """Cancel the jobs a dry run made; the message that says what happened."""
    lines = []
    for address, job_id in sorted(made.items()):
        try:
            status = ws.client().cancel_job(job_id).status
            lines.append(f"  {address}: job {job_id} cancelled ({status})")
        except ReconcilerError as exc:
            lines.append(f"  {address}: job {job_id} could NOT be cancelled ({exc}); cancel it")
    return (
        "plan --remote-estimate: the remote answered POST /v1/fine_tuning/jobs?dry_run=true "
        "with a job instead of an estimate — something between here and the remote dropped "
        "'dry_run' (a proxy?), or the remote no longer supports it. The plan was stopped and "
        "the job(s) cancelled at once:\n"
        + "\n".join(lines)
        + "\nPlan without --remote-estimate: the local estimate sends nothing."
    )


def prepare_and_refresh(ws: Workspace, *, exact_tokens: bool = False) -> tuple[Prepared, Observed]:
    """:func:`prepare` the local data while the remote is read, at the same time.

    Hashing and validating files is local work and the refresh is waiting on the network, so
    overlapping them makes a plan cost about the longer of the two, not their sum.
    """
    client = ws.client()  # started here: the embedded sandbox must not start in a thread
    with ThreadPoolExecutor(max_workers=1) as pool:
        remote = pool.submit(refresh, client)
        try:
            prepared = prepare(ws, exact_tokens=exact_tokens)
        except BaseException:
            remote.cancel()
            raise
        observed = remote.result()
    return prepared, observed


def verify_imports(
    ws: Workspace, desired: DesiredState, state: State | None, observed: Observed
) -> None:
    """Hash the content of the remote files that ``Import`` documents not applied yet need
    compared by content (into ``observed.content``), for the planner to decide on."""
    wanted = remote_files_to_hash(desired, state, observed) - observed.content.keys()
    if not wanted:
        return
    hasher = ContentHasher(ws.client(), ws.cache_dir / "remote-content")
    if hasher.available:  # else the plan says which Import cannot be compared, and why
        observed.content.update(hasher.hashes(sorted(wanted)))


@dataclass(frozen=True)
class PlanRequest:
    """What the user asked for on the command line (see :class:`PlanOptions`).

    Attributes:
        spec_paths, targets, selectors, replace, prune: what to plan.
        estimate: estimate the cost of the jobs the plan creates, replaces or starts, and
            check the budgets (locally: nothing is sent).
        remote_estimate: also ask the remote for its own estimate (``dry_run``) of the new
            jobs whose files it already has (``plan --remote-estimate``).
        max_cost: cap on the plan's total estimated cost (``--max-cost``, USD).
        exact_tokens: count tokens with Mistral's tokenizer for the estimates.
        approved_costs: estimates already reviewed, by job address (a saved plan's): each
            stands in for the local one of a job the plan creates where it is higher, or where
            there is none (:func:`~reconciler.engine.costs.with_approved`).
        rebind: the workspace moved to another target on purpose; a state bound to the old
            one is accepted and apply records the new target (:meth:`Workspace.read_state`).
    """

    spec_paths: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    selectors: tuple[Selector, ...] = ()
    replace: tuple[str, ...] = ()
    prune: bool = False
    estimate: bool = True
    remote_estimate: bool = False
    max_cost: float | None = None
    exact_tokens: bool = False
    approved_costs: Mapping[str, CostEstimate] = field(default_factory=dict)
    rebind: bool = False

    @classmethod
    def of_saved(cls, plan: Plan, given: PlanRequest | None = None) -> PlanRequest:
        """The request to make a saved plan again: its paths and options, its cost
        estimates, the lower of its ``max_cost`` and the one ``given`` now (if any), and the
        token counting and ``rebind`` given now."""
        now = given.max_cost if given is not None else None
        caps = [c for c in (plan.options.max_cost, now) if c is not None]
        return cls(
            spec_paths=plan.spec_paths,
            targets=plan.options.targets,
            selectors=parse_selectors(plan.options.selectors),
            replace=plan.options.replace,
            prune=plan.options.prune,
            max_cost=min(caps) if caps else None,
            exact_tokens=given.exact_tokens if given is not None else False,
            approved_costs={c.address: c.cost for c in plan.changes if c.cost is not None},
            rebind=given.rebind if given is not None else False,
        )


def make_plan(
    ws: Workspace,
    prepared: Prepared,
    state: State | None,
    request: PlanRequest,
    observed: Observed | None = None,
) -> tuple[Plan, Observed]:
    """Build the plan (with cost estimates and budget checks), refreshing unless ``observed``.

    Every job it creates, replaces or starts is priced as the plan is made (locally:
    :func:`~reconciler.engine.costs.pricer`; the request's higher ``approved_costs``, then
    with ``remote_estimate`` the remote's dry runs, replace the local figures of new jobs),
    and its costs are reviewed against the budgets
    (:func:`~reconciler.engine.costs.review_costs`). On a provider that starts jobs as it
    creates them (no ``auto_start``) the plan's estimate is the only budget check there is.
    """
    if observed is None:
        observed = refresh(ws.client())
    verify_imports(ws, prepared.desired, state, observed)
    provider = ws.specs.provider.doc if ws.specs.provider else None
    estimator = costs.estimator_for(provider)
    gated = ws.client().capabilities.auto_start
    rebound = (
        [
            f"--rebind: the state belongs to {state.target.describe()}; apply binds it to "
            f"{ws.binding.describe()}"
        ]
        if ws.rebinding and state is not None and state.target is not None
        else []
    )
    options = PlanOptions(
        targets=request.targets,
        selectors=request.selectors,
        replace=request.replace,
        prune=request.prune,
        target_description=ws.target,
        spec_paths=request.spec_paths,
        spec_digest=prepared.digest,
        notes=(*rebound, *prepared.warnings),
        storage_cost_per_model=estimator.storage_per_month,
        price=costs.pricer(estimator, prepared.desired) if request.estimate else None,
        starts_at_create=not gated,
    )
    plan = build_plan(prepared.desired, state, observed, options)
    if not request.estimate:
        return plan, observed
    plan = costs.with_approved(plan, request.approved_costs)
    if request.remote_estimate:
        creates = [c.address for c in plan.costly if c.action.makes_new]
        try:
            remote, notes = remote_estimates(ws, prepared.desired, state, observed, creates)
        except ApiError as exc:
            remote, notes = {}, [f"remote cost estimates unavailable: {exc}"]
        plan = costs.with_estimates(plan, remote)
        plan = plan.model_copy(update={"warnings": (*notes, *plan.warnings)})
    plan = plan.model_copy(
        update={"options": plan.options.model_copy(update={"max_cost": request.max_cost})}
    )
    budget = costs.run_budget(request.max_cost, provider)
    reviewed = costs.review_costs(plan, estimator, prepared.desired, budget, start_gate=gated)
    return reviewed, observed


@dataclass(frozen=True)
class Planned:
    """A plan with what it was made from (apply needs the prepared data and the state)."""

    prepared: Prepared
    state: State | None
    plan: Plan
    observed: Observed


def plan_workspace(ws: Workspace, request: PlanRequest) -> Planned:
    """Prepare and refresh at once, read the state, and build the plan."""
    state = ws.read_state(rebind=request.rebind)  # before anything is sent to the target
    prepared, observed = prepare_and_refresh(ws, exact_tokens=request.exact_tokens)
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


def refuse_errors(plan: Plan, command: str) -> None:
    """Refuse a plan with errors (a budget exceeded: :attr:`Plan.errors`) before anything is
    written.

    Raises:
        PlanError: naming ``command`` and every error.
    """
    if plan.errors:
        raise PlanError(
            f"{command} refuses this plan; nothing was done:\n"
            + "\n".join(f"  {e}" for e in plan.errors)
        )


def check_approved(saved: Plan, fresh: Plan) -> None:
    """Refuse a plan made now for a saved plan unless it does what ``saved`` approved.

    Compared per address and field, costs aside (:func:`approval_differences`; the plan made
    now is priced again, keeping a saved estimate where it is higher,
    :meth:`PlanRequest.of_saved`): a remote that
    changed since (a job finished, an identical job appeared, the state was lost) or a saved
    plan edited by hand is refused, naming what differs.

    Raises:
        StalePlanError: with every difference, one line each.
    """
    differences = approval_differences(saved, fresh)
    if differences:
        shown = differences[:40]
        more = f"\n  ... and {len(differences) - len(shown)} more" if shown != differences else ""
        raise StalePlanError(
            "Saved plan does not match what apply would do now (saved → now):\n  "
            + "\n  ".join(shown)
            + more
            + "\nThe remote, the state or the plan file changed since it was reviewed. Run "
            "'reconciler plan' again."
        )


@dataclass(frozen=True)
class ApplyRequest:
    """What the user asked apply to do.

    Attributes:
        plan: how to plan (a saved plan's options are fixed: giving targets, selectors,
            replacements or prune with one is a :class:`~reconciler.errors.PlanError`; a
            ``max_cost`` given with one caps it too).
        saved: a saved plan (``plan --out``): an approval. Apply makes the plan again from
            the specs, the state and the remote, and applies it only if it does what the
            saved one says (see :func:`check_approved`).
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
        plan = self.plan
        if self.saved is not None and (
            plan.targets or plan.selectors or plan.replace or plan.prune
        ):
            raise PlanError(
                "--target, --selector, --replace and --prune cannot change a saved plan; "
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

    1. the plan, made now (:func:`plan_workspace`). A saved plan is an approval, not a
       script: it must target this workspace and be fresh (:func:`check_fresh`), and the plan
       made now with its options must do what it says (:func:`check_approved`); then the
       plan made now is applied, priced again (a saved estimate counts where it is higher)
       and its budgets checked again (a ``max_cost`` given now caps it too);
    2. ``show(plan)``, for the caller to display it; a plan with errors (a budget
       exceeded, :attr:`~reconciler.engine.plan.Plan.errors`) is refused here, before
       anything is written;
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
        PlanError: the saved plan targets another remote, or the plan has errors.
        StalePlanError: the saved plan's state or specs moved on, or the plan made now
            differs from it.
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
            again = PlanRequest.of_saved(saved, request.plan)
            state = ws.read_state(rebind=again.rebind)  # before anything is sent to the target
            prepared, observed = prepare_and_refresh(ws, exact_tokens=again.exact_tokens)
            check_fresh(saved, state, prepared.digest)
            plan, _ = make_plan(ws, prepared, state, again, observed)
            check_approved(saved, plan)
        else:
            planned = plan_workspace(ws, request.plan)
            prepared, state, plan = planned.prepared, planned.state, planned.plan
        if show is not None:
            show(plan)
        refuse_errors(plan, "apply")
        if not plan.has_changes and not (state is not None and state.intents):
            if ws.rebinding and state is not None:
                ws.backend.write(state, state.serial)  # nothing else to write: the new target
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
