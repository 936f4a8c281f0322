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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler import __version__
from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState
from reconciler.engine.fingerprint import changed_paths
from reconciler.engine.observed import ACTIVE_STATUSES, FAILED_STATUSES, Observed
from reconciler.engine.plan import Action, Change, Drift, Plan
from reconciler.engine.state_model import ResourceState, State

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
        estimates: cost estimates by job address (from ``dry_run``), if any.
    """

    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    prune: bool = False
    target_description: str = ""
    spec_paths: tuple[str, ...] = ()
    spec_digest: str = ""
    estimates: Mapping[str, dict[str, Any]] = field(default_factory=dict)


def matches(address: str, patterns: Iterable[str]) -> bool:
    """Whether an address is selected by any ``--target``/``--replace`` pattern."""
    for pattern in patterns:
        if address == pattern or fnmatch.fnmatchcase(address, pattern):
            return True
        base = address.split("[", 1)[0]
        if base == pattern or (pattern.startswith("job.") and base.startswith(pattern + "-")):
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
        remote = observed.file_by_name(f.filename, f.bytes)
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
        if res.type == "job":
            ids.add(res.remote_id)
            ids.update(str(h.get("remote_id")) for h in res.history)
    return ids


def build_plan(
    desired: DesiredState, state: State | None, observed: Observed, options: PlanOptions
) -> Plan:
    """Compute the plan. Pure: reads only its arguments."""
    current = state or State(lineage="", serial=0)
    intents_by_address = {i.address: i for i in current.intents.values()}
    file_ids = known_file_ids(desired, current, observed)
    managed = _managed_job_ids(current)
    changes: list[Change] = []
    drift: list[Drift] = []
    warnings: list[str] = []

    selected = _selection(desired, options.targets)

    for address, f in desired.files.items():
        if address not in selected:
            continue
        change = _plan_file(f, current.resources.get(address), observed, drift, intents_by_address)
        changes.append(change)

    for address, job in desired.jobs.items():
        if address not in selected:
            continue
        change = _plan_job(
            job,
            current.resources.get(address),
            observed,
            drift,
            file_ids,
            managed,
            force_replace=matches(address, options.replace),
            recovering=address in intents_by_address,
        )
        if change.action in (Action.CREATE, Action.REPLACE):
            estimate = options.estimates.get(address)
            if estimate is not None:
                change.cost = estimate
        changes.append(change)

    not_in_spec = sorted(
        a for a in current.resources if a not in desired.files and a not in desired.jobs
    )
    for address in not_in_spec:
        res = current.resources[address]
        if options.prune and (not options.targets or matches(address, options.targets)):
            changes.append(_plan_prune(res, observed))
    for address in sorted(set(intents_by_address) - set(desired.files) - set(desired.jobs)):
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

    models_kept = _models_kept(current, observed, changes)
    return Plan(
        tool_version=__version__,
        created_at=time.time(),
        target=options.target_description,
        spec_paths=list(options.spec_paths),
        lineage=state.lineage if state is not None else None,
        serial=state.serial if state is not None else None,
        spec_digest=options.spec_digest,
        changes=_ordered(changes),
        drift=drift,
        not_in_spec=not_in_spec,
        warnings=warnings,
        options={
            "targets": list(options.targets),
            "replace": list(options.replace),
            "prune": options.prune,
        },
        models_kept=models_kept,
        storage_cost_per_model=MODEL_STORAGE_COST_PER_MONTH,
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


def _ordered(changes: list[Change]) -> list[Change]:
    """Execution order: file uploads, jobs, then prunes (jobs before files)."""

    def key(c: Change) -> tuple[int, str]:
        if c.action in (Action.DELETE, Action.FORGET):
            return (2 if c.type == "job" else 3, c.address)
        return (0 if c.type == "file" else 1, c.address)

    return sorted(changes, key=key)


def _plan_file(
    f: DesiredFile,
    res: ResourceState | None,
    observed: Observed,
    drift: list[Drift],
    intents: Mapping[str, Any],
) -> Change:
    after = f.summary()
    change = functools.partial(Change, address=f.address, type="file")
    if res is None:
        if f.address in intents:
            return change(
                action=Action.CREATE,
                reason="recover-intent",
                after=after,
            )
        existing = observed.file_by_name(f.filename, f.bytes)
        reason = "exists-remotely-identical" if existing is not None else "not-in-state"
        after = {**after, "reuse": existing["id"]} if existing is not None else after
        return change(action=Action.CREATE, reason=reason, after=after)
    before = {
        "id": res.remote_id,
        **{k: res.attributes.get(k) for k in ("filename", "sha256", "bytes")},
    }
    if res.fingerprint != f.fingerprint:
        return change(
            action=Action.REPLACE,
            reason="content-changed",
            before=before,
            after=after,
            replace_paths=[
                p for p in ("filename", "sha256", "bytes") if before.get(p) != after.get(p)
            ],
            previous={"id": res.remote_id, "disposition": "keep"},
        )
    if res.remote_id not in observed.files:
        return _recreate_deleted(
            res,
            "file",
            "file was deleted outside reconciler; it will be uploaded again",
            before,
            after,
            [],
            drift,
        )
    return change(
        action=Action.NOOP,
        reason="in-sync",
        before=before,
        after=after,
    )


def _recreate_deleted(
    res: ResourceState,
    kind: str,
    message: str,
    before: dict[str, Any],
    after: dict[str, Any],
    deps: list[str],
    drift: list[Drift],
) -> Change:
    """A recorded object that is gone remotely: drift, and a create to restore it."""
    drift.append(
        Drift(address=res.address, remote_id=res.remote_id, kind="deleted", message=message)
    )
    return Change(
        address=res.address,
        type=kind,
        action=Action.CREATE,
        reason="deleted-remotely",
        before=before,
        after=after,
        depends_on=deps,
    )


def _job_after(job: DesiredJob) -> dict[str, Any]:
    spec = job.job
    return {
        "request": _masked_identity(job),
        "start": spec.start,
        "budget": spec.budget.model_dump() if spec.budget else None,
        "fine_tuned_model": spec.fine_tuned_model.model_dump() if spec.fine_tuned_model else None,
        "on_replace": spec.on_replace.model_dump(),
        "matrix": dict(spec.matrix_values),
        "source": spec.source,
    }


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
    managed: set[str],
    *,
    force_replace: bool,
    recovering: bool,
) -> Change:
    after = _job_after(job)
    deps = list(job.depends_on)
    # Every change of this address shares these; each branch adds what is its own.
    change = functools.partial(Change, address=job.address, type="job", after=after)
    if res is None:
        if recovering:
            return change(
                action=Action.CREATE,
                reason="recover-intent",
                depends_on=deps,
            )
        twins = [
            j
            for jid, j in observed.jobs.items()
            if jid not in managed and remote_job_matches(job.identity, j, file_ids)
        ]
        blocked = None
        if twins:
            twin = max(twins, key=lambda j: j.get("created_at") or 0)
            blocked = (
                f"possible duplicate: remote job {twin['id']} ({twin.get('status')}) was created "
                f"from the same request but is not in the state; adopt it with "
                f"'reconciler import {job.address} {twin['id']}', or apply with "
                "--allow-duplicates to create another"
            )
        return change(
            action=Action.CREATE,
            reason="not-in-state",
            depends_on=deps,
            blocked=blocked,
        )

    remote = observed.jobs.get(res.remote_id)
    status = remote.get("status") if remote else None
    before = {
        "id": res.remote_id,
        "status": status,
        "fine_tuned_model": remote.get("fine_tuned_model") if remote else None,
        "request": res.attributes.get("identity"),
    }
    previous = {
        "id": res.remote_id,
        "status": status,
        "disposition": "cancel"
        if status in ACTIVE_STATUSES and job.job.on_replace.active_job == "cancel"
        else "keep",
        "fine_tuned_model": before["fine_tuned_model"],
        "model_disposition": job.job.on_replace.previous_model
        if before["fine_tuned_model"]
        else None,
    }
    if res.fingerprint != job.fingerprint:
        paths = changed_paths(res.attributes.get("identity") or {}, dict(job.identity))
        return change(
            action=Action.REPLACE,
            reason="spec-changed",
            before=before,
            replace_paths=paths or ["(request)"],
            previous=previous,
            depends_on=deps,
        )
    if force_replace:
        return change(
            action=Action.REPLACE,
            reason="replace-by-request",
            before=before,
            previous=previous,
            depends_on=deps,
        )
    if remote is None:
        return _recreate_deleted(
            res,
            "job",
            "job no longer exists remotely; a new one will be created",
            before,
            after,
            deps,
            drift,
        )
    if status == "CANCELLED" and not res.attributes.get("cancelled_by_reconciler"):
        drift.append(
            Drift(
                address=job.address,
                remote_id=res.remote_id,
                kind="cancelled",
                message="job was cancelled outside reconciler; run it again with "
                f"--replace {job.address}",
            )
        )
    elif status in FAILED_STATUSES:
        drift.append(
            Drift(
                address=job.address,
                remote_id=res.remote_id,
                kind=str(status).lower().replace("_", "-"),
                message=f"job {status}; it is not retried automatically (one attempt per "
                f"spec revision): fix the cause, then --replace {job.address}",
            )
        )
    if status in ("QUEUED", "VALIDATING", "VALIDATED") and job.job.start:
        # Created with auto_start=false and not started yet (an earlier apply stopped at
        # the budget gate or was interrupted): start it once the remote has validated it.
        return change(
            action=Action.START,
            reason="validated-not-started" if status == "VALIDATED" else "awaiting-validation",
            before=before,
            cost=_remote_cost(remote),
        )
    if status == "SUCCESS":
        fields = _model_updates(job, remote, observed)
        if fields:
            return change(
                action=Action.UPDATE,
                reason="model-metadata-changed",
                before=before,
                update_fields=fields,
            )
    return change(
        action=Action.NOOP,
        reason="in-sync",
        before=before,
    )


def _remote_cost(remote: Mapping[str, Any]) -> dict[str, Any] | None:
    meta = remote.get("metadata") or {}
    if meta.get("cost") is None:
        return None
    return {
        "amount": meta["cost"],
        "currency": meta.get("cost_currency"),
        "source": "remote-validation",
    }


def _model_updates(
    job: DesiredJob, remote: Mapping[str, Any], observed: Observed
) -> dict[str, dict[str, Any]]:
    spec = job.model_spec
    model_id = remote.get("fine_tuned_model")
    if spec is None or not model_id:
        return {}
    card = observed.models.get(str(model_id))
    if card is None:
        return {}
    fields: dict[str, dict[str, Any]] = {}
    for key in ("name", "description"):
        wanted = getattr(spec, key)
        if wanted is not None and card.get(key) != wanted:
            fields[key] = {"before": card.get(key), "after": wanted}
    if bool(card.get("archived")) != spec.archived:
        fields["archived"] = {"before": bool(card.get("archived")), "after": spec.archived}
    return fields


def _plan_prune(res: ResourceState, observed: Observed) -> Change:
    if res.type == "file":
        exists = res.remote_id in observed.files
        return Change(
            address=res.address,
            type="file",
            action=Action.DELETE if exists else Action.FORGET,
            reason="not-in-spec",
            before={"id": res.remote_id, "filename": res.attributes.get("filename")},
        )
    remote = observed.jobs.get(res.remote_id) or {}
    status = remote.get("status")
    return Change(
        address=res.address,
        type="job",
        action=Action.FORGET,
        reason="not-in-spec",
        before={
            "id": res.remote_id,
            "status": status,
            "fine_tuned_model": remote.get("fine_tuned_model"),
        },
        previous={
            "id": res.remote_id,
            "status": status,
            "disposition": "cancel" if status in ACTIVE_STATUSES else "keep",
            "model_disposition": "keep",
        },
    )


def _models_kept(state: State, observed: Observed, changes: list[Change]) -> int:
    managed = _managed_job_ids(state)
    existing = {
        str(j["fine_tuned_model"])
        for jid, j in observed.jobs.items()
        if jid in managed and j.get("fine_tuned_model")
    }
    planned = sum(
        1 for c in changes if c.type == "job" and c.action in (Action.CREATE, Action.REPLACE)
    )
    return len(existing) + planned
