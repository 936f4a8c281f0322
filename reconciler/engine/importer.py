"""Adopting an existing remote file or job under a spec address (``reconciler import``).

:func:`import_object` looks the remote object up, compares it with what the spec declares and
records it in the state — nothing is created or changed remotely. When the remote object
matches the spec it is recorded with the spec's fingerprint, so the next plan shows no change;
when it differs, it is recorded with what the remote shows, so the plan names the differing
fields and proposes a replacement.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState
from reconciler.engine.fingerprint import changed_paths, file_fingerprint, job_fingerprint
from reconciler.engine.planner import remote_job_matches
from reconciler.engine.state_model import ResourceState, State, StateBackend
from reconciler.errors import ApiError, NotFoundError, ReconcilerError, StateError
from reconciler.errors import ValidationError as RejectedError

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
    """

    address: str
    kind: Kind
    remote_id: str
    differences: tuple[str, ...]


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
) -> ImportResult:
    """Record the remote object ``remote_id`` under ``address`` in the state.

    ``desired`` builds the desired state (preparing the datasets) and ``client`` the API
    client; both are called only once the cheap checks passed. ``target`` names the remote
    in messages. The state is written under its lock (waiting up to ``lock_timeout``
    seconds); any pending create intent of the address is resolved by the import.

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
        if kind == "file":
            resource, differences = _import_file(api, wanted.files[address], remote_id, target)
        else:
            resource, differences = _import_job(
                api, wanted.jobs[address], remote_id, state, wanted.files, target
            )
        new = state.model_copy(deep=True) if state is not None else State()
        new.resources[address] = resource
        # The import resolves any pending create of this address: recovery must not
        # adopt a different object for it later.
        for intent_id in [k for k, i in new.intents.items() if i.address == address]:
            del new.intents[intent_id]
        backend.write(new, state.serial if state is not None else None)
    return ImportResult(address, kind, remote_id, tuple(differences))


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
    client: Provider, desired: DesiredFile, remote_id: str, target: str
) -> tuple[ResourceState, list[str]]:
    try:
        remote = client.get_file(remote_id)
    except (NotFoundError, RejectedError) as exc:
        raise _not_found(exc, "file", remote_id, target) from exc
    differences = [
        name
        for name, want, got in (
            ("filename", desired.filename, remote.filename),
            ("bytes", desired.bytes, remote.bytes),
        )
        if want != got
    ]
    if not differences:
        # Same name (which carries the content hash) and size: the engine's own dedupe rule.
        return (
            ResourceState(
                address=desired.address,
                type="file",
                remote_id=remote.id,
                fingerprint=desired.fingerprint,
                attributes={**desired.summary(), "imported": True},
            ),
            [],
        )
    # Not the spec's content: its hash is unknown without downloading it, and it does not
    # matter — any fingerprint other than the spec's makes the plan upload the spec's content.
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
) -> tuple[ResourceState, list[str]]:
    try:
        remote = client.get_job(remote_id)
    except (NotFoundError, RejectedError) as exc:
        raise _not_found(exc, "job", remote_id, target) from exc
    remote_json = remote.model_dump(mode="json")
    # Remote ids of the spec's files: recorded in the state, else found by name and size.
    file_ids: dict[str, str] = {}
    for dep in desired.depends_on:
        recorded = state.resources.get(dep) if state is not None else None
        if recorded is not None and recorded.fingerprint == files[dep].fingerprint:
            file_ids[dep] = recorded.remote_id
            continue
        found = client.find_file(files[dep].filename, size=files[dep].bytes)
        if found is not None:
            file_ids[dep] = found.id
    if remote_job_matches(desired.identity, remote_json, file_ids):
        identity: dict[str, Any] = dict(desired.identity)
        fp = desired.fingerprint
        differences: list[str] = []
    else:
        identity = _identity_from_remote(desired, remote_json, file_ids, files)
        fp = job_fingerprint(identity)
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
        fingerprint=fp,
        attributes=attributes,
    )
    return resource, differences


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
        elif not _same_value(hyper[key], value):
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


def _same_value(a: Any, b: Any) -> bool:
    # The remote may echo 1e-4 as 0.00010000000000000002: compare numbers with a tolerance.
    if isinstance(a, int | float) and isinstance(b, int | float):
        return abs(float(a) - float(b)) <= 1e-12 * max(1.0, abs(float(a)), abs(float(b)))
    return bool(a == b)
