"""The planner: (desired, state, observed) → :class:`~reconciler.engine.plan.Plan`. Pure.

Rules (PRODUCT.md §3):

* Files are content-addressed: an unchanged file is a no-op; changed content is a new upload
  (the old file is kept unless pruned); a file deleted remotely is drift and is uploaded again;
  identical content already on the remote under the same name is reused, not re-sent.
* Jobs are immutable: any change of the create request plans a replacement naming the fields
  that force it; the old job is cancelled if still active (unless ``on_replace.active_job:
  keep``) and kept as history when finished. When the remote would refuse the new job while
  the old one is active (a *similar* request: :func:`reconciler.identity.similar`), the
  replacement is ``cancel_first``.
* A validated job that the spec wants started is planned as ``start`` (the budget gate runs
  at apply). A job that failed or was cancelled outside the tool is drift; it is not retried
  until ``--replace``.
* The fine-tuned model's name, description and archived flag update in place, and so does
  ``paused`` (a running job is paused, a paused one resumed). A job that starts by itself
  (``auto_start``, as every OpenAI job) is never planned as ``start``.
* A remote job that is what a spec not in the state asks for (:mod:`reconciler.identity`)
  is a possible duplicate: its create is blocked with an ``import`` hint (or, when another
  address holds it, the ``state rm`` + ``import`` that moves it), never silently adopted or
  duplicated. Jobs an address held before a replacement are not duplicates, nor are
  cancelled jobs (they train nothing). A job that carries an identity tag (providers with
  job metadata) is decided by its tag alone.
* Every job the plan creates, replaces or starts carries its cost estimate
  (``options.price``, called for those jobs only; a validated job keeps the remote's figure).
* Addresses in the state that the specs no longer name are listed; only ``prune`` acts on
  them (jobs cancelled if active — unless a spec asks for that very job — then forgotten;
  files deleted remotely unless another address or a job still uses them).
* ``--target`` and ``--selector`` restrict the plan (:mod:`~reconciler.engine.selection`);
  one that matches nothing is an error, as is a state binding one job to two addresses.
* ``Import`` and ``Moved`` documents are planned against the state they make
  (:mod:`~reconciler.engine.adoption`): a change of such an address carries ``import_id`` or
  ``moved_from``, and is the action ``import`` or ``move`` (no cost) when nothing else
  changes.
* A job whose request is that of an earlier job of its address that SUCCEEDED (and whose
  model still exists) is re-pointed to it (``restore``, no cost) instead of trained again,
  unless ``--replace`` asks for a new run.
* Once an address's job has SUCCEEDED, the models of the jobs it replaced under
  ``on_replace.previous_model: delete`` are deleted (``delete_models``).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from reconciler import __version__
from reconciler.address import Address, ResourceType
from reconciler.client.types import JobStatus
from reconciler.engine.adoption import Adoption, adopt_declared
from reconciler.engine.costs import MISTRAL_STORAGE_PER_MONTH
from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState
from reconciler.engine.fingerprint import changed_paths
from reconciler.engine.observed import Observed
from reconciler.engine.plan import (
    Action,
    BudgetLimit,
    Change,
    CostEstimate,
    CostSource,
    Disposition,
    Drift,
    DriftKind,
    FieldUpdate,
    FileAfter,
    FileBefore,
    FileChange,
    FilePrevious,
    JobAfter,
    JobBefore,
    JobChange,
    JobPrevious,
    JobRequest,
    ModelDisposition,
    ModelField,
    ModelMetadata,
    Plan,
    PlanSettings,
    Reason,
    ReplacePolicy,
)
from reconciler.engine.selection import (
    Selector,
    check_selectors,
    check_targets,
    labels_match,
    matches,
)
from reconciler.engine.state_model import Intent, ResourceState, State
from reconciler.identity import RequestIdentity, exact_tag, similar
from reconciler.identity import matches as remote_is

C = TypeVar("C", FileChange, JobChange)


@dataclass(frozen=True)
class PlanOptions:
    """How to plan.

    Attributes:
        targets: address patterns to restrict the plan to (plus their dependencies); empty
            means everything (see :mod:`~reconciler.engine.selection`). A pattern that
            matches nothing is a :class:`~reconciler.errors.PlanError`.
        selectors: ``(key, value)`` labels an object's document must all carry to be
            planned (plus the files of selected jobs); empty means everything.
        replace: addresses to replace even though unchanged.
        prune: act on addresses the specs no longer name.
        target_description: where it applies (for the plan header).
        spec_paths: the spec paths, as given.
        spec_digest: digest of specs and prepared data.
        price: prices a job the plan creates, replaces or starts (one to start only without
            the remote's figure); called for those jobs only, as the plan is made (None: no
            price).
        notes: warnings from outside the planner (cost estimation, datasets), listed after
            the planner's own.
        starts_at_create: the provider starts jobs as soon as they are created (no
            ``auto_start``): jobs say so in the plan.
        storage_cost_per_model: monthly storage price of one fine-tuned model (USD), for the
            plan's storage line.
    """

    targets: tuple[str, ...] = ()
    selectors: tuple[Selector, ...] = ()
    replace: tuple[str, ...] = ()
    prune: bool = False
    target_description: str = ""
    spec_paths: tuple[str, ...] = ()
    spec_digest: str = ""
    price: Callable[[DesiredJob], CostEstimate | None] | None = None
    notes: tuple[str, ...] = ()
    starts_at_create: bool = False
    storage_cost_per_model: float = MISTRAL_STORAGE_PER_MONTH


def known_file_ids(desired: DesiredState, state: State, observed: Observed) -> dict[str, str]:
    """Remote ids of desired files that already exist with the desired content."""
    ids: dict[str, str] = {}
    for address, f in desired.files.items():
        res = state.resources.get(address)
        if res is not None and res.fingerprint == f.fingerprint and res.remote_id in observed.files:
            ids[address] = res.remote_id
            continue
        remote = observed.identical_file(f.filename, f.sha256, f.bytes)
        if remote is not None:
            ids[address] = str(remote["id"])
    return ids


@dataclass(frozen=True)
class _World:
    """What every address is planned against (derived once from the planner's inputs).

    Attributes:
        current: the state as apply will find it once Import and Moved documents are
            applied (``adoption.state``).
        adoption: what those documents do.
        bound: remote job id → the address that holds it now.
        held: every job id an address holds or held (history).
        selected: the addresses the plan covers (targets, selectors, dependencies).
    """

    desired: DesiredState
    current: State
    adoption: Adoption
    observed: Observed
    options: PlanOptions
    intents: Mapping[str, Intent]
    file_ids: Mapping[str, str]
    bound: Mapping[str, str]
    held: frozenset[str]
    selected: frozenset[str]


def _world(
    desired: DesiredState, state: State | None, observed: Observed, options: PlanOptions
) -> _World:
    stored = state or State(lineage="", serial=0)
    stored.check_bindings()
    adoption = adopt_declared(desired, stored, observed)
    current = adoption.state
    if options.targets:
        check_targets(options.targets, [*desired.files, *desired.jobs, *current.resources])
    if options.selectors:
        check_selectors(
            options.selectors,
            [
                *(f.labels for f in desired.files.values()),
                *(j.labels for j in desired.jobs.values()),
                *(_recorded_labels(r) for r in current.resources.values()),
            ],
        )
    bound, held = current.job_bindings()
    return _World(
        desired=desired,
        current=current,
        adoption=adoption,
        observed=observed,
        options=options,
        intents={i.address: i for i in current.intents.values()},
        file_ids=known_file_ids(desired, current, observed),
        bound=bound,
        held=held,
        selected=frozenset(_selection(desired, options)),
    )


def _recorded_labels(res: ResourceState) -> Mapping[str, str]:
    labels = res.attributes.get("labels")
    return labels if isinstance(labels, Mapping) else {}


def _job_changes(world: _World, drift: list[Drift]) -> Iterator[JobChange]:
    """The change of every selected job (drift found on the way is added to ``drift``)."""
    for address, job in world.desired.jobs.items():
        if address in world.selected:
            yield _plan_job(job, world, drift)


def build_plan(
    desired: DesiredState, state: State | None, observed: Observed, options: PlanOptions
) -> Plan:
    """Compute the plan. Pure: reads only its arguments.

    Raises:
        PlanError: a ``--target`` or ``--selector`` matches nothing.
        StateError: the state binds one remote job to several addresses.
    """
    world = _world(desired, state, observed, options)
    current = world.current
    drift: list[Drift] = []
    warnings: list[str] = []
    changes: list[FileChange | JobChange] = [
        _plan_file(f, current.resources.get(address), observed, drift, world.intents)
        for address, f in desired.files.items()
        if address in world.selected
    ]
    job_changes = list(_job_changes(world, drift))
    changes.extend(job_changes)
    changes = [_adopted(c, world.adoption) for c in changes]

    not_in_spec = sorted(
        a for a in current.resources if a not in desired.files and a not in desired.jobs
    )
    pruned = [
        current.resources[a] for a in not_in_spec if options.prune and _prune_selected(a, world)
    ]
    # A job some address of the specs asks for (its create is blocked as a twin of it) is
    # not cancelled by the prune of the address that held it: forgetting it is enough.
    wanted = {
        str(twin["id"])
        for c in job_changes
        if c.blocked and c.before is None
        if (twin := _twin(desired.jobs[c.address], world)) is not None
    }
    for res in pruned:
        if res.type is ResourceType.JOB:
            changes.append(_plan_job_prune(res, observed, keep=res.remote_id in wanted))
    users = _file_users(world, {r.address for r in pruned})
    for res in pruned:
        if res.type is ResourceType.FILE:
            changes.append(_plan_file_prune(res, observed, users.get(res.remote_id, [])))
    for address in sorted(set(world.intents) - set(desired.files) - set(desired.jobs)):
        warnings.append(
            f"{address}: an interrupted create is recorded but the specs no longer name it; "
            "apply will look it up and forget the intent"
        )
    unknown = [p for p in options.replace if not any(matches(a, [p]) for a in desired.jobs)]
    for pattern in unknown:
        warnings.append(f"--replace {pattern}: no job in the specs matches")
    if options.targets:
        warnings.append(
            "the plan is restricted by --target: other changes may be pending; "
            "use it for exceptional cases, not routinely"
        )
    if options.selectors:
        shown = ", ".join(f"{k}={v}" for k, v in options.selectors)
        warnings.append(
            f"the plan is restricted by --selector {shown}: other changes may be pending"
        )

    return Plan(
        tool_version=__version__,
        created_at=time.time(),
        target=options.target_description,
        spec_paths=options.spec_paths,
        lineage=state.lineage if state is not None else None,
        serial=state.serial if state is not None else None,
        spec_digest=options.spec_digest,
        changes=tuple(_ordered(changes)),
        drift=tuple(drift),
        not_in_spec=tuple(Address(a) for a in not_in_spec),
        warnings=(*warnings, *options.notes),
        options=PlanSettings(
            targets=options.targets,
            selectors=tuple(f"{k}={v}" for k, v in options.selectors),
            replace=options.replace,
            prune=options.prune,
        ),
        models_kept=_models_kept(world, changes),
        storage_cost_per_model=options.storage_cost_per_model,
    )


def _adopted(change: FileChange | JobChange, adoption: Adoption) -> FileChange | JobChange:
    """A change with what the Import and Moved documents do to its address.

    Apply records the import or the move first, then does the rest of the change; a change
    that does nothing else is the ``import`` or ``move`` itself.
    """
    update: dict[str, Any] = {}
    source = adoption.moved.get(change.address)
    if source is not None:
        update["moved_from"] = source
        if change.action is Action.NOOP:
            update.update(action=Action.MOVE, reason=Reason.MOVED)
    remote_id = adoption.imported.get(change.address)
    if remote_id is not None:
        update["import_id"] = remote_id
        if change.action is Action.NOOP:
            update.update(action=Action.IMPORT, reason=Reason.IMPORT_DECLARED)
    return change.model_copy(update=update) if update else change


def _selection(desired: DesiredState, options: PlanOptions) -> set[str]:
    """The desired addresses the plan covers: those the targets and selectors name, and the
    files of the jobs among them."""
    targets, selectors = options.targets, options.selectors
    chosen: set[str] = {
        f.address
        for f in desired.files.values()
        if (not targets or matches(f.address, targets)) and labels_match(f.labels, selectors)
    }
    chosen |= {
        j.address
        for j in desired.jobs.values()
        if (not targets or matches(j.address, targets)) and labels_match(j.labels, selectors)
    }
    for address in list(chosen):
        job = desired.jobs.get(address)
        if job is not None:
            chosen.update(job.depends_on)
    return chosen


def _prune_selected(address: str, world: _World) -> bool:
    """Whether ``--prune`` acts on an address the specs no longer name."""
    options = world.options
    if options.targets and not matches(address, options.targets):
        return False
    labels = _recorded_labels(world.current.resources[address])
    return labels_match(labels, options.selectors)


def _ordered(changes: list[FileChange | JobChange]) -> list[FileChange | JobChange]:
    """Execution order: file uploads, jobs, then prunes (jobs before files)."""

    def key(c: Change) -> tuple[int, str]:
        if c.action.prunes:
            return (2 if c.type is ResourceType.JOB else 3, c.address)
        return (0 if c.type is ResourceType.FILE else 1, c.address)

    return sorted(changes, key=key)


def _file_after(f: DesiredFile, reuse: str | None = None) -> FileAfter:
    if reuse is None:
        return FileAfter(**f.summary())
    return FileAfter(**f.summary(), reuse=reuse)


def _plan_file(
    f: DesiredFile,
    res: ResourceState | None,
    observed: Observed,
    drift: list[Drift],
    intents: Mapping[str, Intent],
) -> FileChange:
    after = _file_after(f)
    change = functools.partial(
        FileChange, address=f.address, labels=dict(f.labels), location=f.location
    )
    if res is None:
        if f.address in intents:
            return change(action=Action.CREATE, reason=Reason.RECOVER_INTENT, after=after)
        existing = observed.identical_file(f.filename, f.sha256, f.bytes)
        if existing is not None:
            return change(
                action=Action.CREATE,
                reason=Reason.EXISTS_REMOTELY_IDENTICAL,
                after=_file_after(f, reuse=str(existing["id"])),
            )
        return change(action=Action.CREATE, reason=Reason.NOT_IN_STATE, after=after)
    before = FileBefore(
        id=res.remote_id,
        filename=res.attributes.get("filename"),
        sha256=res.attributes.get("sha256"),
        bytes=res.attributes.get("bytes"),
    )
    if res.fingerprint != f.fingerprint:
        return change(
            action=Action.REPLACE,
            reason=Reason.CONTENT_CHANGED,
            before=before,
            after=after,
            replace_paths=tuple(
                p
                for p in ("filename", "sha256", "bytes")
                if getattr(before, p) != getattr(after, p)
            ),
            previous=FilePrevious(id=res.remote_id, disposition=Disposition.KEEP),
        )
    if res.remote_id not in observed.files:
        return _recreate_deleted(
            change,
            res,
            "file was deleted outside reconciler; it will be uploaded again",
            drift,
            before=before,
            after=after,
        )
    return change(action=Action.NOOP, reason=Reason.IN_SYNC, before=before, after=after)


def _recreate_deleted(
    change: Callable[..., C], res: ResourceState, message: str, drift: list[Drift], **fields: Any
) -> C:
    """A recorded object that is gone remotely: drift, and a create that makes it anew."""
    drift.append(
        Drift(
            address=Address(res.address),
            remote_id=res.remote_id,
            kind=DriftKind.DELETED,
            message=message,
        )
    )
    return change(action=Action.CREATE, reason=Reason.DELETED_REMOTELY, force_new=True, **fields)


def _job_after(job: DesiredJob, starts_at_create: bool = False) -> JobAfter:
    spec = job.job
    model = spec.fine_tuned_model
    started = {"starts_at_create": True} if starts_at_create else {}
    return JobAfter(
        **started,
        request=JobRequest.model_validate(_masked_identity(job)),
        start=spec.start,
        budget=BudgetLimit(max_cost=spec.budget.max_cost) if spec.budget else None,
        fine_tuned_model=ModelMetadata(
            name=model.name, description=model.description, archived=model.archived
        )
        if model
        else None,
        on_replace=ReplacePolicy(
            active_job=Disposition(spec.on_replace.active_job),
            previous_model=ModelDisposition(spec.on_replace.previous_model),
        ),
        matrix=dict(spec.matrix_values),
        source=spec.source,
    )


def _masked_identity(job: DesiredJob) -> dict[str, Any]:
    """The identity with each integration's key shown as its reference, never a value."""
    identity = dict(job.identity)
    identity["integrations"] = [
        {**i, "api_key": spec.api_key.model_dump(exclude_none=True)} if spec.api_key else i
        for i, spec in zip(job.identity["integrations"], job.integrations, strict=True)
    ]
    return identity


def _plan_job(job: DesiredJob, world: _World, drift: list[Drift]) -> JobChange:
    address = job.address
    res = world.current.resources.get(address)
    # Every change of this address shares these; each branch adds what is its own.
    change = functools.partial(
        JobChange,
        address=address,
        after=_job_after(job, world.options.starts_at_create),
        labels=dict(job.labels),
        location=job.location,
    )
    price = world.options.price

    def estimate() -> CostEstimate | None:
        """The job's cost estimate, priced only for the changes that cost money."""
        return price(job) if price is not None else None

    def new_job(**fields: Any) -> JobChange:
        """A change that makes a new job: it waits for its files and carries its cost."""
        return change(depends_on=job.depends_on, cost=estimate(), **fields)

    if res is None:
        if address in world.intents:
            return new_job(action=Action.CREATE, reason=Reason.RECOVER_INTENT)
        twin = _twin(job, world)
        return new_job(
            action=Action.CREATE,
            reason=Reason.NOT_IN_STATE,
            blocked=_duplicate_message(job, twin, world) if twin is not None else None,
        )

    remote = world.observed.jobs.get(res.remote_id)
    raw_status = remote.get("status") if remote else None
    status = JobStatus.of(raw_status)
    model = remote.get("fine_tuned_model") if remote else None
    recorded = res.attributes.get("identity")
    before = JobBefore(
        id=res.remote_id, status=raw_status, fine_tuned_model=model, request=recorded
    )
    on_replace = job.job.on_replace
    active = status is not None and status.is_active
    previous = JobPrevious(
        id=res.remote_id,
        status=raw_status,
        disposition=Disposition.CANCEL
        if active and on_replace.active_job == "cancel"
        else Disposition.KEEP,
        fine_tuned_model=model,
        model_disposition=ModelDisposition(on_replace.previous_model) if model else None,
    )
    # The remote refuses a second similar job while the previous one is active (409).
    conflicts = active and _similar_to_record(job, recorded)
    replace = functools.partial(
        new_job,
        action=Action.REPLACE,
        before=before,
        previous=previous,
        cancel_first=conflicts and previous.disposition is Disposition.CANCEL,
        blocked=_kept_conflict(res.remote_id, raw_status)
        if conflicts and previous.disposition is Disposition.KEEP
        else None,
    )
    rerun = matches(address, world.options.replace)
    if res.fingerprint != job.fingerprint:
        earlier = None if rerun else _restorable(job, res, world)
        if earlier is not None:
            # A revert: an earlier job of this address made exactly this request and
            # succeeded. Point the address back at it instead of training again.
            return change(
                action=Action.RESTORE,
                reason=Reason.PREVIOUS_JOB_SAME_REQUEST,
                before=before,
                previous=previous,
                restores=earlier,
            )
        paths = changed_paths(recorded or {}, dict(job.identity))
        return replace(reason=Reason.SPEC_CHANGED, replace_paths=tuple(paths or ["(request)"]))
    if rerun:
        return replace(reason=Reason.REPLACE_BY_REQUEST, force_new=True)
    if remote is None:
        return _recreate_deleted(
            new_job,
            res,
            "job no longer exists remotely; a new one will be created",
            drift,
            before=before,
        )
    if status is JobStatus.CANCELLED and not res.attributes.get("cancelled_by_reconciler"):
        drift.append(
            Drift(
                address=address,
                remote_id=res.remote_id,
                kind=DriftKind.CANCELLED,
                message="job was cancelled outside reconciler; run it again with "
                f"--replace {address}",
            )
        )
    elif status is not None and status.is_failed:
        drift.append(
            Drift(
                address=address,
                remote_id=res.remote_id,
                kind=DriftKind.FAILED
                if status is JobStatus.FAILED
                else DriftKind.FAILED_VALIDATION,
                message=f"job {status}; it is not retried automatically (one attempt per "
                f"spec revision): fix the cause, then --replace {address}",
            )
        )
    pause = _pause_update(job, status)
    if pause is not None:
        return change(
            action=Action.UPDATE,
            reason=Reason.PAUSED_CHANGED,
            before=before,
            update_fields={"paused": pause},
        )
    if (
        status is not None
        and status.awaits_start
        and job.job.start
        and not remote.get("auto_start")
    ):
        # Created with auto_start=false and not started yet (an earlier apply stopped at
        # the budget gate or was interrupted): start it once the remote has validated it.
        # A job that starts by itself (auto_start: every OpenAI job, or one made outside and
        # imported) is left to do so.
        return change(
            action=Action.START,
            reason=Reason.VALIDATED_NOT_STARTED
            if status is JobStatus.VALIDATED
            else Reason.AWAITING_VALIDATION,
            before=before,
            cost=_remote_cost(remote) or estimate(),
        )
    if status is JobStatus.SUCCESS:
        fields = _model_updates(job, remote, world.observed)
        retired = _models_to_delete(res, world.observed, model)
        if fields or retired:
            extra: dict[str, Any] = {"delete_models": retired} if retired else {}
            return change(
                action=Action.UPDATE,
                reason=Reason.MODEL_METADATA_CHANGED if fields else Reason.REPLACEMENT_SUCCEEDED,
                before=before,
                update_fields=fields,
                **extra,
            )
    return change(action=Action.NOOP, reason=Reason.IN_SYNC, before=before)


def _restorable(job: DesiredJob, res: ResourceState, world: _World) -> str | None:
    """An earlier job of this address that made exactly this job's request and SUCCEEDED,
    whose model still exists (the newest such), if any."""
    for entry in reversed(res.history):
        job_id = str(entry.get("remote_id"))
        if entry.get("fingerprint") != job.fingerprint or job_id in world.bound:
            continue
        remote = world.observed.jobs.get(job_id)
        if remote is None or JobStatus.of(remote.get("status")) is not JobStatus.SUCCESS:
            continue
        model = remote.get("fine_tuned_model")
        if model and str(model) in world.observed.models:
            return job_id
    return None


def _models_to_delete(
    res: ResourceState, observed: Observed, current_model: str | None
) -> tuple[str, ...]:
    """Models of the jobs this address replaced under ``previous_model: delete`` that still
    exist: deleted now that the address's job has SUCCEEDED (never before)."""
    found: list[str] = []
    for entry in res.history:
        if entry.get("model_disposition") != ModelDisposition.DELETE:
            continue
        earlier = observed.jobs.get(str(entry.get("remote_id"))) or {}
        model = entry.get("fine_tuned_model") or earlier.get("fine_tuned_model")
        if model and str(model) in observed.models and model != current_model:
            found.append(str(model))
    return tuple(dict.fromkeys(found))


def _similar_to_record(job: DesiredJob, recorded: Mapping[str, Any] | None) -> bool:
    """Whether the remote would take this job's request as similar to the recorded one."""
    if not isinstance(recorded, Mapping):
        return False  # made before requests were recorded: a 409 at apply says so
    old = RequestIdentity.of_content(recorded)
    new = RequestIdentity.of_content(job.identity)
    return old is not None and new is not None and similar(old, new)


def _kept_conflict(job_id: str, status: str | None) -> str:
    return (
        f"the remote refuses a second similar job while job {job_id} is {status}, and "
        "on_replace.active_job is 'keep': wait until it has finished, or set "
        "on_replace.active_job: cancel to cancel it before the replacement is created"
    )


def _pause_update(job: DesiredJob, status: JobStatus | None) -> FieldUpdate | None:
    """Pause a job the spec holds paused, resume one it no longer does (None: nothing)."""
    if status is None:
        return None
    if job.job.paused and status.can_pause:
        return FieldUpdate(before=False, after=True)
    if not job.job.paused and status.is_paused:
        return FieldUpdate(before=True, after=False)
    return None


def _twin(job: DesiredJob, world: _World) -> dict[str, Any] | None:
    """A remote job this job's request would make, that no record says was made otherwise.

    Jobs an address held before a replacement (history) are not twins: their record says
    which request made them. Nor are cancelled jobs: they train nothing and make no model,
    so a new job duplicates nothing (e.g. the job a proxy made of a ``dry_run`` request,
    cancelled at once by ``plan --remote-estimate``). A job carrying an identity tag is a
    twin when the tag names this spec (address and fingerprint). The newest twin is returned.
    """
    identity = RequestIdentity.of_content(job.identity, world.file_ids)
    if identity is None:
        return None  # some file is not uploaded yet: no remote job can use it
    tag = exact_tag(job.address, job.fingerprint)
    twins = [
        j
        for jid, j in world.observed.jobs.items()
        if (jid in world.bound or jid not in world.held)
        and not _cancelled(j)
        and remote_is(identity, j, exact_tag=tag)
    ]
    return max(twins, key=lambda j: j.get("created_at") or 0) if twins else None


def _cancelled(remote: Mapping[str, Any]) -> bool:
    status = JobStatus.of(remote.get("status"))
    return status is not None and status.is_cancelled


def _duplicate_message(job: DesiredJob, twin: Mapping[str, Any], world: _World) -> str:
    """Why creating this job is blocked: a remote job made from the same request."""
    twin_id = str(twin["id"])
    adopt = f"'reconciler import {job.address} {twin_id}'"
    owner = world.bound.get(twin_id)
    if owner is not None:
        status = twin.get("status")
        if owner in world.desired.jobs and _unchanged(owner, world):
            return (
                f"remote job {twin_id} ({status}) of {owner} is what this job asks for as "
                "far as the remote can tell: the remote cannot tell the two apart; give one "
                "of them a distinct suffix"
            )
        where = (
            "whose spec now asks for another request"
            if owner in world.desired.jobs
            else "which the specs no longer name"
        )
        return (
            f"possible duplicate: remote job {twin_id} ({status}) was created from the same "
            f"request and is managed as {owner}, {where}; to keep it under this address, run "
            f"'reconciler state rm {owner}' then {adopt}, or apply with --allow-duplicates "
            "to train another"
        )
    return (
        f"possible duplicate: remote job {twin_id} ({twin.get('status')}) was created "
        f"from the same request but is not in the state; adopt it with {adopt}, or apply "
        "with --allow-duplicates to create another"
    )


def _unchanged(address: str, world: _World) -> bool:
    res = world.current.resources.get(address)
    return res is not None and res.fingerprint == world.desired.jobs[address].fingerprint


def _remote_cost(remote: Mapping[str, Any]) -> CostEstimate | None:
    meta = remote.get("metadata") or {}
    if meta.get("cost") is None:
        return None
    return CostEstimate(
        amount=meta["cost"],
        currency=meta.get("cost_currency"),
        source=CostSource.REMOTE_VALIDATION,
    )


def _model_updates(
    job: DesiredJob, remote: Mapping[str, Any], observed: Observed
) -> dict[ModelField, FieldUpdate]:
    spec = job.model_spec
    model_id = remote.get("fine_tuned_model")
    if spec is None or not model_id:
        return {}
    card = observed.models.get(str(model_id))
    if card is None:
        return {}
    fields: dict[ModelField, FieldUpdate] = {}
    keys: tuple[ModelField, ...] = ("name", "description")
    for key in keys:
        wanted = getattr(spec, key)
        if wanted is not None and card.get(key) != wanted:
            fields[key] = FieldUpdate(before=card.get(key), after=wanted)
    if bool(card.get("archived")) != spec.archived:
        fields["archived"] = FieldUpdate(before=bool(card.get("archived")), after=spec.archived)
    return fields


def _file_users(world: _World, pruned: set[str]) -> dict[str, list[str]]:
    """Remote file id → the addresses that still use it after the prunes.

    A file is used by an address that records it (or whose spec resolves to it), and by a
    job — current or in history — trained or validated on it, unless pruned now.
    """
    users: dict[str, set[str]] = {}
    for address, file_id in world.file_ids.items():
        users.setdefault(file_id, set()).add(address)
    for res in world.current.resources.values():
        if res.address in pruned:
            continue
        if res.type is ResourceType.FILE:
            users.setdefault(res.remote_id, set()).add(res.address)
            continue
        for job_id in [res.remote_id, *(str(h.get("remote_id")) for h in res.history)]:
            remote = world.observed.jobs.get(job_id) or {}
            for key in ("training_files", "validation_files"):
                for file_id in remote.get(key) or []:
                    users.setdefault(str(file_id), set()).add(res.address)
    return {file_id: sorted(a) for file_id, a in users.items()}


def _plan_file_prune(res: ResourceState, observed: Observed, users: list[str]) -> FileChange:
    exists = res.remote_id in observed.files
    return FileChange(
        address=Address(res.address),
        action=Action.DELETE if exists and not users else Action.FORGET,
        reason=Reason.NOT_IN_SPEC,
        before=FileBefore(id=res.remote_id, filename=res.attributes.get("filename")),
        used_by=tuple(Address(a) for a in users) if exists else (),
        labels=dict(_recorded_labels(res)),
    )


def _plan_job_prune(res: ResourceState, observed: Observed, *, keep: bool) -> JobChange:
    remote = observed.jobs.get(res.remote_id) or {}
    raw_status = remote.get("status")
    status = JobStatus.of(raw_status)
    return JobChange(
        address=Address(res.address),
        action=Action.FORGET,
        reason=Reason.NOT_IN_SPEC,
        before=JobBefore(
            id=res.remote_id, status=raw_status, fine_tuned_model=remote.get("fine_tuned_model")
        ),
        previous=JobPrevious(
            id=res.remote_id,
            status=raw_status,
            disposition=Disposition.CANCEL
            if status is not None and status.is_active and not keep
            else Disposition.KEEP,
            model_disposition=ModelDisposition.KEEP,
        ),
        labels=dict(_recorded_labels(res)),
    )


def _models_kept(world: _World, changes: Sequence[Change]) -> int:
    existing = {
        str(j["fine_tuned_model"])
        for jid, j in world.observed.jobs.items()
        if jid in world.held and j.get("fine_tuned_model")
    }
    deleted = {m for c in changes if isinstance(c, JobChange) for m in c.delete_models}
    planned = sum(1 for c in changes if c.type is ResourceType.JOB and c.action.makes_new)
    return len(existing - deleted) + planned
