"""Adopting an existing remote file or job under a spec address (``reconciler import``).

:func:`import_object` looks the remote object up, compares it with what the spec declares and
records it in the state — nothing is created or changed remotely. Objects are recognised by
what they are (:mod:`~reconciler.engine.adopt`): a file by its content, whatever its name; a
job by its request, with its files matched by content — and the job's files are recorded too,
for file addresses the state does not record yet. When the remote object matches the spec it
is recorded with the spec's fingerprint, so the next plan shows no change; when it differs,
it is recorded with what the remote shows, so the plan names the differing fields and
proposes a replacement. A job that carries an identity tag (OpenAI) matches by its tag. Where
the service does not give back training files' content (OpenAI), an object whose files
cannot be compared is refused with the reason, never recorded on a guess.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from reconciler.engine import adopt
from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState
from reconciler.engine.fingerprint import changed_paths, file_fingerprint, job_fingerprint
from reconciler.engine.state_model import ResourceState, State, StateBackend
from reconciler.errors import ApiError, NotFoundError, ReconcilerError, StateError
from reconciler.errors import ValidationError as RejectedError
from reconciler.identity import job_file_ids, same_number

if TYPE_CHECKING:
    from reconciler.providers.base import Provider

Kind = Literal["file", "job"]


@dataclass(frozen=True)
class ImportResult:
    """What an import recorded.

    Attributes:
        address: the spec address the object is now managed under.
        kind: ``file`` or ``job``.
        remote_id: the remote object's id.
        differences: the spec fields the remote object differs in (empty when it matches);
            the next plan proposes replacing it.
        files: for a job, the file addresses recorded with it (the remote files it uses that
            hold their prepared content, for addresses the state did not record), with
            their remote ids.
    """

    address: str
    kind: Kind
    remote_id: str
    differences: tuple[str, ...]
    files: tuple[tuple[str, str], ...] = ()


def import_kind(address: str) -> Kind:
    """What ``address`` names, if it can be imported; raises ReconcilerError otherwise."""
    if address.startswith("dataset."):
        return "file"
    if address.startswith("job."):
        return "job"
    raise ReconcilerError(
        f"{address}: cannot import this address: import takes a dataset file address "
        "(dataset.NAME[all|train|validation]) or a job address (job.NAME)."
    )


def import_object(
    address: str,
    remote_id: str,
    *,
    backend: StateBackend,
    client: Callable[[], Provider],
    desired: Callable[[], DesiredState],
    target: str,
    lock_timeout: float = 0.0,
    scratch: Path | None = None,
) -> ImportResult:
    """Record the remote object ``remote_id`` under ``address`` in the state.

    ``desired`` builds the desired state (preparing the datasets) and ``client`` the API
    client; both are called only once the cheap checks passed. ``target`` names the remote
    in messages. The state is written under its lock (waiting up to ``lock_timeout``
    seconds); any pending create intent of the address is resolved by the import. Remote
    files whose content must be hashed are downloaded into ``scratch`` one at a time (and
    removed; default: the system's temporary directory).

    Raises:
        ReconcilerError: the address cannot be imported or is not declared in the specs.
        StateError: the address or the remote object is already managed.
        NotFoundError: the remote has no such object.
    """
    kind = import_kind(address)
    check_importable(backend.read(), address, remote_id, backend)
    wanted = desired()
    declared: Mapping[str, DesiredFile | DesiredJob] = (
        wanted.files if kind == "file" else wanted.jobs
    )
    if address not in declared:
        close = difflib.get_close_matches(address, sorted(declared), n=1)
        raise ReconcilerError(
            f"{address}: not declared in the specs"
            + (f" (did you mean {close[0]}?)" if close else "")
            + ". Declare it first, so the plan knows what it should be, then import it."
        )
    with backend.lock("import", lock_timeout):
        state = backend.read()
        check_importable(state, address, remote_id, backend)
        api = client()
        hasher = adopt.ContentHasher(api, scratch)
        files: dict[str, ResourceState] = {}
        if kind == "file":
            resource, differences = _import_file(
                api, wanted.files[address], remote_id, target, hasher
            )
        else:
            resource, differences, files = _import_job(
                api, wanted.jobs[address], remote_id, state, wanted.files, target, hasher
            )
        new = state.model_copy(deep=True) if state is not None else State()
        for record in [resource, *files.values()]:
            new.resources[record.address] = record
            # The import resolves any pending create of this address: recovery must not
            # adopt a different object for it later.
            for intent_id in [k for k, i in new.intents.items() if i.address == record.address]:
                del new.intents[intent_id]
        backend.write(new, state.serial if state is not None else None)
    bound = tuple((a, r.remote_id) for a, r in sorted(files.items()))
    return ImportResult(address, kind, remote_id, tuple(differences), bound)


def check_importable(
    state: State | None, address: str, remote_id: str, backend: StateBackend
) -> None:
    """Raise StateError when the address or the remote object is already managed."""
    if state is None:
        return
    res = state.resources.get(address)
    if res is not None:
        raise StateError(
            f"{address}: already managed (remote {res.remote_id}) in {backend.describe()}. "
            f"To manage {remote_id} instead, first run: reconciler state rm {address}"
        )
    for other in state.resources.values():
        if other.remote_id == remote_id:
            raise StateError(
                f"{remote_id}: already managed as {other.address} in {backend.describe()}; one "
                f"remote object has one address. To move it: reconciler state rm {other.address}, "
                "then import again."
            )


def _not_found(exc: ApiError, kind: Kind, remote_id: str, target: str) -> ApiError:
    why = "the remote rejects it as malformed" if exc.status in (400, 422) else "not found"
    return NotFoundError(
        f"there is no {kind} {remote_id} at {target} ({why}): check the id, and that the "
        "specs' Provider points at the remote that holds it",
        method=exc.method,
        path=exc.path,
        status=exc.status,
    )


def _import_file(
    client: Provider,
    desired: DesiredFile,
    remote_id: str,
    target: str,
    hasher: adopt.ContentHasher,
) -> tuple[ResourceState, list[str]]:
    try:
        remote = client.get_file(remote_id)
    except (NotFoundError, RejectedError) as exc:
        raise _not_found(exc, "file", remote_id, target) from exc
    shown = remote.model_dump(mode="json", by_alias=True)
    if adopt.needs_hash(desired, shown) and not hasher.available:
        raise ReconcilerError(
            f"{desired.address}: {adopt.unreadable_file(desired, shown, hasher.service)}"
        )
    content = {remote.id: hasher.sha256(remote.id)} if adopt.needs_hash(desired, shown) else {}
    if adopt.file_matches(desired, shown, content):
        # The prepared content, whatever the file is named: recorded with the part's
        # fingerprint, so the next plan neither uploads it again nor replaces its jobs.
        return adopt.file_record(desired, remote.id, remote.filename, imported=True), []
    differences = ["bytes"] if remote.bytes is not None and remote.bytes != desired.bytes else []
    differences = differences or ["sha256"]
    # Not the spec's content: any fingerprint other than the spec's makes the plan upload the
    # spec's content.
    return (
        ResourceState(
            address=desired.address,
            type="file",
            remote_id=remote.id,
            fingerprint=file_fingerprint(remote.filename, "unknown"),
            attributes={
                "dataset": desired.dataset,
                "part": desired.part,
                "filename": remote.filename,
                "sha256": None,
                "bytes": remote.bytes,
                "num_lines": remote.num_lines,
                "imported": True,
            },
        ),
        differences,
    )


def _import_job(
    client: Provider,
    desired: DesiredJob,
    remote_id: str,
    state: State | None,
    files: Mapping[str, DesiredFile],
    target: str,
    hasher: adopt.ContentHasher,
) -> tuple[ResourceState, list[str], dict[str, ResourceState]]:
    """The job's record, how it differs from the spec, and the records of its files.

    The spec's files are named by the remote files the job uses: the one the state records
    for an address, else one holding the address's prepared content (hashed when its name
    does not carry the hash). Files found so are recorded for addresses the state does not
    record yet.
    """
    try:
        remote = client.get_job(remote_id)
    except (NotFoundError, RejectedError) as exc:
        raise _not_found(exc, "job", remote_id, target) from exc
    remote_json = remote.model_dump(mode="json")
    resources = state.resources if state is not None else {}
    used: dict[str, dict[str, Any]] = {}
    for file_id in dict.fromkeys(job_file_ids(remote_json)):
        try:
            used[file_id] = client.get_file(file_id).model_dump(mode="json", by_alias=True)
        except NotFoundError:
            continue  # gone: only the state's record of it can name it
    to_hash = [
        file_id
        for file_id, shown in used.items()
        if any(adopt.needs_hash(files[dep], shown) for dep in desired.depends_on)
    ]
    file_ids = adopt.job_files(
        desired,
        remote_json,
        files,
        used,
        hasher.hashes(to_hash) if hasher.available else {},
        adopt.recorded_files(files, resources),
    )
    unread = [
        adopt.unreadable_file(files[dep], used[file_id], hasher.service)
        for file_id in to_hash
        for dep in desired.depends_on
        if dep not in file_ids and adopt.needs_hash(files[dep], used[file_id])
    ]
    if unread and not hasher.available:
        # Never a guess: recording it as another request would replace (retrain) it.
        raise ReconcilerError(
            f"{desired.address}: cannot tell whether job {remote_id} was made from the spec's "
            "datasets: " + "; ".join(dict.fromkeys(unread))
        )
    bound = {
        dep: adopt.file_record(files[dep], file_id, used[file_id].get("filename"), imported=True)
        for dep, file_id in file_ids.items()
        if dep not in resources and file_id in used
    }
    if adopt.made_from_spec_files(desired, file_ids) and adopt.job_matches(
        desired, remote_json, file_ids
    ):
        return adopt.job_record(desired, remote_json, imported=True), [], bound
    identity = _identity_from_remote(desired, remote_json, file_ids, files)
    differences = changed_paths(identity, dict(desired.identity)) or ["(request)"]
    attributes: dict[str, Any] = {
        "identity": identity,
        "status": remote.status,
        "created_at": remote.created_at,
        "imported": True,
    }
    if remote.fine_tuned_model:
        attributes["fine_tuned_model"] = remote.fine_tuned_model
    resource = ResourceState(
        address=desired.address,
        type="job",
        remote_id=remote.id,
        fingerprint=job_fingerprint(identity),
        attributes=attributes,
    )
    return resource, differences, bound


def _identity_from_remote(
    desired: DesiredJob,
    remote: Mapping[str, Any],
    file_ids: Mapping[str, str],
    files: Mapping[str, DesiredFile],
) -> dict[str, Any]:
    """The identity (see ``DesiredJob``) of a remote job that does not match the spec.

    Starts from the spec's identity and replaces what the remote shows to be different,
    comparing only what the remote returns (as the planner does): server-filled defaults and
    fields the remote never returns (training weights, the skip percentage) are taken as equal,
    so the plan names only real differences.
    """
    identity: dict[str, Any] = json.loads(json.dumps(dict(desired.identity)))
    for key in ("model", "suffix"):
        if remote.get(key) != identity.get(key):
            identity[key] = remote.get(key)
    if (remote.get("job_type") or "completion") != identity["job_type"]:
        identity["job_type"] = remote.get("job_type")
    by_id = {remote_file: address for address, remote_file in file_ids.items()}

    def ref(file_id: str) -> dict[str, Any]:
        address = by_id.get(file_id)
        if address is None:
            return {"file": f"remote:{file_id}"}
        return {
            "file": address,
            "filename": files[address].filename,
            "sha256": files[address].sha256,
        }

    for key in ("training_files", "validation_files"):
        wanted = sorted(file_ids.get(f["file"], "?") for f in identity[key])
        got = [str(f) for f in remote.get(key) or []]
        if sorted(got) != wanted:
            weight = {"weight": 1.0} if key == "training_files" else {}
            identity[key] = [{**ref(f), **weight} for f in got]
    hyper = remote.get("hyperparameters") or {}
    for key, value in list(identity["hyperparameters"].items()):
        if key not in hyper or hyper[key] is None:
            del identity["hyperparameters"][key]
        elif not same_number(hyper[key], value):
            identity["hyperparameters"][key] = hyper[key]
    got_integrations = [
        {
            "type": "wandb",
            "project": i.get("project"),
            "name": i.get("name"),
            "run_name": i.get("run_name"),
        }
        for i in remote.get("integrations") or []
    ]
    if sorted(map(repr, got_integrations)) != sorted(map(repr, identity["integrations"])):
        identity["integrations"] = got_integrations
    return identity
