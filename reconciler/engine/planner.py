"""The planner: (desired, state, observed) → :class:`~reconciler.engine.plan.Plan`. Pure.

Rules (PRODUCT.md §3):

* Files are content-addressed: an unchanged file is a no-op; changed content is a new upload
  (the old file is kept unless pruned); a file deleted remotely is drift and is uploaded again;
  identical content already on the remote under the same name is reused, not re-sent.
* Jobs are immutable: any change of the create request plans a replacement naming the fields
  that force it; the old job is cancelled if still active (unless ``on_replace.active_job:
  keep``) and kept as history when finished.
* A validated job that the spec wants started is planned as ``start`` (the budget gate runs
  at apply). A job that failed or was cancelled outside the tool is drift; it is not retried
  until ``--replace``.
* The fine-tuned model's name, description and archived flag update in place.
* A remote job matching a spec that is not in the state is a possible duplicate: its create
  is blocked with an ``import`` hint, never silently adopted or duplicated.
* Addresses in the state that the specs no longer name are listed; only ``prune`` acts on
  them (files deleted remotely, jobs cancelled if active, then forgotten).
"""

from __future__ import annotations

import fnmatch
import functools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reconciler import __version__
from reconciler.address import JOB_PREFIX, Address, ResourceType
from reconciler.client.types import JobStatus
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
from reconciler.engine.state_model import Intent, ResourceState, State

C = TypeVar("C", FileChange, JobChange)

MODEL_STORAGE_COST_PER_MONTH = 2.0
"""USD per fine-tuned model per month (Mistral's published storage price)."""


@dataclass(frozen=True)
class PlanOptions:
    """How to plan.

    Attributes:
        targets: address patterns to restrict the plan to (plus their dependencies); empty
            means everything. ``job.x`` also matches ``job.x-*`` matrix cells, ``dataset.d``
            matches every part ``dataset.d[...]``; shell wildcards work.
        replace: addresses to replace even though unchanged.
        prune: act on addresses the specs no longer name.
        target_description: where it applies (for the plan header).
        spec_paths: the spec paths, as given.
        spec_digest: digest of specs and prepared data.
        estimates: cost estimates by job address, for the jobs :func:`jobs_to_create` names.
        notes: warnings from outside the planner (cost estimation, datasets), listed after
            the planner's own.
        auto_start: the provider creates jobs unstarted and the tool starts them (Mistral).
            Without it (Ray) a job runs as soon as it is created: one still queued is left
            to the remote, never planned as ``start``.
        storage_cost_per_model: monthly storage price of a fine-tuned model kept (USD; 0
            where the models are the user's own files, as a Ray job's adapters are).
    """

    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    prune: bool = False
    target_description: str = ""
    spec_paths: tuple[str, ...] = ()
    spec_digest: str = ""
    estimates: Mapping[str, CostEstimate] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    auto_start: bool = True
    storage_cost_per_model: float = MODEL_STORAGE_COST_PER_MONTH


def matches(address: str, patterns: Iterable[str]) -> bool:
    """Whether an address is selected by any ``--target``/``--replace`` pattern."""
    addr: Address | None = None
    for pattern in patterns:
        if address == pattern or fnmatch.fnmatchcase(address, pattern):
            return True
        addr = addr or Address(address)
        if addr.base == pattern:
            return True
        # job.x selects its matrix cells job.x-...
        if addr.kind is ResourceType.JOB and pattern.startswith(JOB_PREFIX):
            if address.startswith(pattern + "-"):
                return True
    return False


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


def remote_job_matches(
    identity: Mapping[str, Any], remote: Mapping[str, Any], file_ids: Mapping[str, str]
) -> bool:
    """Whether a remote job was created from exactly this request (as far as it is readable)."""
    try:
        training = [file_ids[f["file"]] for f in identity["training_files"]]
        validation = [file_ids[f["file"]] for f in identity["validation_files"]]
    except KeyError:
        return False  # some file is not uploaded yet: no remote job can use it
    if remote.get("model") != identity["model"]:
        return False
    if (remote.get("job_type") or "completion") != identity["job_type"]:
        return False
    if remote.get("suffix") != identity.get("suffix"):
        return False
    if sorted(remote.get("training_files") or []) != sorted(training):
        return False
    if sorted(remote.get("validation_files") or []) != sorted(validation):
        return False
    hyper = remote.get("hyperparameters") or {}
    for key, value in identity["hyperparameters"].items():
        if key not in hyper or not _same_number(hyper[key], value):
            return False
    wanted = [(i["project"], i.get("name"), i.get("run_name")) for i in identity["integrations"]]
    got = [
        (i.get("project"), i.get("name"), i.get("run_name"))
        for i in (remote.get("integrations") or [])
    ]
    return sorted(map(repr, wanted)) == sorted(map(repr, got))


def _same_number(a: Any, b: Any) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)), abs(float(b)))
    return bool(a == b)


def _managed_job_ids(state: State) -> set[str]:
    ids: set[str] = set()
    for res in state.resources.values():
        if res.type is ResourceType.JOB:
            ids.add(res.remote_id)
            ids.update(str(h.get("remote_id")) for h in res.history)
    return ids


@dataclass(frozen=True)
class _World:
    """What every address is planned against (derived once from the planner's inputs)."""

    desired: DesiredState
    current: State
    observed: Observed
    options: PlanOptions
    intents: Mapping[str, Intent]
    file_ids: Mapping[str, str]
    managed: frozenset[str]
    selected: frozenset[str]


def _world(
    desired: DesiredState, state: State | None, observed: Observed, options: PlanOptions
) -> _World:
    current = state or State(lineage="", serial=0)
    return _World(
        desired=desired,
        current=current,
        observed=observed,
        options=options,
        intents={i.address: i for i in current.intents.values()},
        file_ids=known_file_ids(desired, current, observed),
        managed=frozenset(_managed_job_ids(current)),
        selected=frozenset(_selection(desired, options.targets)),
    )


def _job_changes(world: _World, drift: list[Drift]) -> Iterator[JobChange]:
    """The change of every selected job (drift found on the way is added to ``drift``)."""
    for address, job in world.desired.jobs.items():
        if address in world.selected:
            yield _plan_job(
                job,
                world.current.resources.get(address),
                world.observed,
                drift,
                world.file_ids,
                world.managed,
                force_replace=matches(address, world.options.replace),
                recovering=address in world.intents,
                estimate=world.options.estimates.get(address),
                auto_start=world.options.auto_start,
            )


def jobs_to_create(
    desired: DesiredState, state: State | None, observed: Observed, options: PlanOptions
) -> list[Address]:
    """Addresses of the jobs the plan will create or replace (those worth a cost estimate).

    Pure, like :func:`build_plan`, and decided by the same rules: ask for estimates of these,
    then build the plan once with them (``options.estimates``).
    """
    world = _world(desired, state, observed, options)
    return [c.address for c in _job_changes(world, []) if c.action.makes_new]


def build_plan(
    desired: DesiredState, state: State | None, observed: Observed, options: PlanOptions
) -> Plan:
    """Compute the plan. Pure: reads only its arguments."""
    world = _world(desired, state, observed, options)
    current = world.current
    drift: list[Drift] = []
    warnings: list[str] = []
    changes: list[FileChange | JobChange] = [
        _plan_file(f, current.resources.get(address), observed, drift, world.intents)
        for address, f in desired.files.items()
        if address in world.selected
    ]
    changes.extend(_job_changes(world, drift))

    not_in_spec = sorted(
        a for a in current.resources if a not in desired.files and a not in desired.jobs
    )
    for address in not_in_spec:
        res = current.resources[address]
        if options.prune and (not options.targets or matches(address, options.targets)):
            changes.append(_plan_prune(res, observed))
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
        options=PlanSettings(targets=options.targets, replace=options.replace, prune=options.prune),
        models_kept=_models_kept(current, observed, changes),
        storage_cost_per_model=options.storage_cost_per_model,
    )


def _selection(desired: DesiredState, targets: tuple[str, ...]) -> set[str]:
    if not targets:
        return set(desired.files) | set(desired.jobs)
    chosen = {a for a in list(desired.files) + list(desired.jobs) if matches(a, targets)}
    for address in list(chosen):
        job = desired.jobs.get(address)
        if job is not None:
            chosen.update(job.depends_on)
    return chosen


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
    change = functools.partial(FileChange, address=f.address)
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


def _job_after(job: DesiredJob, auto_start: bool = True) -> JobAfter:
    spec = job.job
    model = spec.fine_tuned_model
    at_once = {} if auto_start else {"runs_at_once": True}
    return JobAfter(
        **at_once,
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
        {**i, "api_key": spec.api_key.model_dump(exclude_none=True)}
        for i, spec in zip(job.identity["integrations"], job.integrations, strict=True)
    ]
    return identity


def _plan_job(
    job: DesiredJob,
    res: ResourceState | None,
    observed: Observed,
    drift: list[Drift],
    file_ids: Mapping[str, str],
    managed: frozenset[str],
    *,
    force_replace: bool,
    recovering: bool,
    estimate: CostEstimate | None,
    auto_start: bool = True,
) -> JobChange:
    # Every change of this address shares these; each branch adds what is its own.
    change = functools.partial(JobChange, address=job.address, after=_job_after(job, auto_start))
    # A change that makes a new job waits for its files and carries its cost estimate.
    new_job = functools.partial(change, depends_on=job.depends_on, cost=estimate)
    if res is None:
        if recovering:
            return new_job(action=Action.CREATE, reason=Reason.RECOVER_INTENT)
        return new_job(
            action=Action.CREATE,
            reason=Reason.NOT_IN_STATE,
            blocked=_possible_duplicate(job, observed, file_ids, managed),
        )

    remote = observed.jobs.get(res.remote_id)
    raw_status = remote.get("status") if remote else None
    status = JobStatus.of(raw_status)
    model = remote.get("fine_tuned_model") if remote else None
    before = JobBefore(
        id=res.remote_id,
        status=raw_status,
        fine_tuned_model=model,
        request=res.attributes.get("identity"),
    )
    on_replace = job.job.on_replace
    previous = JobPrevious(
        id=res.remote_id,
        status=raw_status,
        disposition=Disposition.CANCEL
        if status is not None and status.is_active and on_replace.active_job == "cancel"
        else Disposition.KEEP,
        fine_tuned_model=model,
        model_disposition=ModelDisposition(on_replace.previous_model) if model else None,
    )
    if res.fingerprint != job.fingerprint:
        paths = changed_paths(res.attributes.get("identity") or {}, dict(job.identity))
        return new_job(
            action=Action.REPLACE,
            reason=Reason.SPEC_CHANGED,
            before=before,
            replace_paths=tuple(paths or ["(request)"]),
            previous=previous,
        )
    if force_replace:
        return new_job(
            action=Action.REPLACE,
            reason=Reason.REPLACE_BY_REQUEST,
            before=before,
            previous=previous,
            force_new=True,
        )
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
                address=job.address,
                remote_id=res.remote_id,
                kind=DriftKind.CANCELLED,
                message="job was cancelled outside reconciler; run it again with "
                f"--replace {job.address}",
            )
        )
    elif status is not None and status.is_failed:
        drift.append(
            Drift(
                address=job.address,
                remote_id=res.remote_id,
                kind=DriftKind.FAILED
                if status is JobStatus.FAILED
                else DriftKind.FAILED_VALIDATION,
                message=f"job {status}; it is not retried automatically (one attempt per "
                f"spec revision): fix the cause, then --replace {job.address}",
            )
        )
    if status is not None and status.awaits_start and job.job.start and auto_start:
        # Created with auto_start=false and not started yet (an earlier apply stopped at
        # the budget gate or was interrupted): start it once the remote has validated it.
        return change(
            action=Action.START,
            reason=Reason.VALIDATED_NOT_STARTED
            if status is JobStatus.VALIDATED
            else Reason.AWAITING_VALIDATION,
            before=before,
            cost=_remote_cost(remote),
        )
    if status is JobStatus.SUCCESS:
        fields = _model_updates(job, remote, observed)
        if fields:
            return change(
                action=Action.UPDATE,
                reason=Reason.MODEL_METADATA_CHANGED,
                before=before,
                update_fields=fields,
            )
    return change(action=Action.NOOP, reason=Reason.IN_SYNC, before=before)


def _possible_duplicate(
    job: DesiredJob, observed: Observed, file_ids: Mapping[str, str], managed: frozenset[str]
) -> str | None:
    """Why creating this job is blocked: an unmanaged remote job made from the same request."""
    twins = [
        j
        for jid, j in observed.jobs.items()
        if jid not in managed and remote_job_matches(job.identity, j, file_ids)
    ]
    if not twins:
        return None
    twin = max(twins, key=lambda j: j.get("created_at") or 0)
    return (
        f"possible duplicate: remote job {twin['id']} ({twin.get('status')}) was created "
        f"from the same request but is not in the state; adopt it with "
        f"'reconciler import {job.address} {twin['id']}', or apply with "
        "--allow-duplicates to create another"
    )


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


def _plan_prune(res: ResourceState, observed: Observed) -> FileChange | JobChange:
    address = Address(res.address)
    if res.type is ResourceType.FILE:
        exists = res.remote_id in observed.files
        return FileChange(
            address=address,
            action=Action.DELETE if exists else Action.FORGET,
            reason=Reason.NOT_IN_SPEC,
            before=FileBefore(id=res.remote_id, filename=res.attributes.get("filename")),
        )
    remote = observed.jobs.get(res.remote_id) or {}
    raw_status = remote.get("status")
    status = JobStatus.of(raw_status)
    return JobChange(
        address=address,
        action=Action.FORGET,
        reason=Reason.NOT_IN_SPEC,
        before=JobBefore(
            id=res.remote_id, status=raw_status, fine_tuned_model=remote.get("fine_tuned_model")
        ),
        previous=JobPrevious(
            id=res.remote_id,
            status=raw_status,
            disposition=Disposition.CANCEL
            if status is not None and status.is_active
            else Disposition.KEEP,
            model_disposition=ModelDisposition.KEEP,
        ),
    )


def _models_kept(state: State, observed: Observed, changes: Sequence[Change]) -> int:
    managed = _managed_job_ids(state)
    existing = {
        str(j["fine_tuned_model"])
        for jid, j in observed.jobs.items()
        if jid in managed and j.get("fine_tuned_model")
    }
    planned = sum(1 for c in changes if c.type is ResourceType.JOB and c.action.makes_new)
    return len(existing) + planned
