"""``reconciler state ...`` and ``reconciler import``: inspect and edit the state by hand.

* ``state list`` / ``state show ADDRESS``: what the state records (read-only, no lock).
* ``state rm ADDRESS...``: forget objects; the remote is never touched.
* ``state lock-info`` / ``state unlock LOCK_ID``: who holds the lock; break a stuck one.
* ``import ADDRESS REMOTE_ID``: adopt an existing remote file or job under an address.

The state is found from the spec PATHs (the Provider document names the backend), or given
directly with ``--state FILE`` — useful when the specs themselves do not load.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fnmatch
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reconciler.cli.app import app
from reconciler.cli.common import OutputFormat, handle_errors, stderr
from reconciler.engine.duration import parse_duration
from reconciler.engine.fingerprint import changed_paths, file_fingerprint, job_fingerprint
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import LockInfo, ResourceState, State, StateBackend
from reconciler.errors import ApiError, NotFoundError, ReconcilerError, StateError
from reconciler.errors import ValidationError as RejectedError

if TYPE_CHECKING:
    from reconciler.engine.desired import DesiredFile, DesiredJob
    from reconciler.workspace import Workspace

JSON_FORMAT_VERSION = 1
"""Version of the ``--format json`` documents these commands print."""

state_app = typer.Typer(
    name="state",
    help="Inspect and edit the state: list, show, rm, lock-info, unlock.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(state_app, name="state")


def parse_lock_timeout(value: str | float) -> float:
    """Typer parser for ``--lock-timeout``: ``30s``, ``5m``, ``1h30m``, ``90``, ``0``."""
    if isinstance(value, int | float):  # the default arrives already converted
        return float(value)
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


PathsOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--path",
        "-p",
        help="Spec file or directory (repeatable; default: the current directory). The "
        "Provider document there says where the state is.",
    ),
]
StateFileOption = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="Use this state file directly instead of the backend the specs name.",
        dir_okay=False,
    ),
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        parser=parse_lock_timeout,
        metavar="DURATION",
        help="How long to wait for the state lock (e.g. 30s, 5m; default 0: fail at once).",
    ),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="Output format: text or json.")
]


@contextlib.contextmanager
def opened_backend(paths: Sequence[Path] | None, state_file: Path | None) -> Iterator[StateBackend]:
    """The state backend for these options; says on stderr which one it is."""
    if state_file is not None:
        backend: StateBackend = FileStateBackend(state_file)
        stderr.print(f"State: {backend.describe()}", markup=False)
        try:
            yield backend
        finally:
            backend.close()
        return
    from reconciler.workspace import open_workspace

    with open_workspace(list(paths or [Path(".")])) as workspace:
        stderr.print(
            f"Target: {workspace.target}; state: {workspace.backend.describe()}", markup=False
        )
        yield workspace.backend


def _echo_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps({"format_version": JSON_FORMAT_VERSION, **document}, indent=2))


def _status(res: ResourceState) -> str:
    if res.type == "file":
        return "uploaded"
    return str(res.attributes.get("status") or "-")


def _no_such_address(state: State | None, address: str, backend: StateBackend) -> StateError:
    known = sorted(state.resources) if state else []
    close = difflib.get_close_matches(address, known, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return StateError(
        f"{address}: no such address in the state ({backend.describe()}).{hint} "
        "Run 'reconciler state list' to see the recorded addresses."
    )


def _when(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- list / show


@state_app.command("list")
@handle_errors
def state_list(
    patterns: Annotated[
        list[str] | None,
        typer.Argument(help="Only addresses matching these glob patterns, e.g. 'job.*'."),
    ] = None,
    path: PathsOption = None,
    state_file: StateFileOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """List the managed objects: address, type, remote id, status."""
    with opened_backend(path, state_file) as backend:
        state = backend.read()
    resources = sorted((state.resources if state else {}).values(), key=lambda r: r.address)
    if patterns:
        resources = [
            r for r in resources if any(fnmatch.fnmatchcase(r.address, p) for p in patterns)
        ]
    intents = sorted((state.intents if state else {}).values(), key=lambda i: i.created_at)
    if output is OutputFormat.json:
        _echo_json(
            {
                "lineage": state.lineage if state else None,
                "serial": state.serial if state else None,
                "resources": [
                    {
                        "address": r.address,
                        "type": r.type,
                        "remote_id": r.remote_id,
                        "status": _status(r),
                        "fingerprint": r.fingerprint,
                    }
                    for r in resources
                ],
                "intents": [i.model_dump(mode="json") for i in intents],
            }
        )
        return
    if state is None:
        typer.echo("No state yet: nothing is managed. 'reconciler apply' creates it.")
        return
    rows = [("ADDRESS", "TYPE", "REMOTE ID", "STATUS")] + [
        (r.address, r.type, r.remote_id, _status(r)) for r in resources
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        typer.echo(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}")
    if intents:
        typer.echo(
            f"\n{len(intents)} unresolved create intent(s) ("
            + ", ".join(f"{i.address} {i.operation}" for i in intents)
            + "): the next plan or apply looks them up remotely before creating anything."
        )


@state_app.command("show")
@handle_errors
def state_show(
    address: Annotated[str, typer.Argument(help="Address, e.g. job.dumbledore-v1.")],
    path: PathsOption = None,
    state_file: StateFileOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show one managed object: remote id, fingerprint, attributes and history."""
    with opened_backend(path, state_file) as backend:
        state = backend.read()
        res = state.resources.get(address) if state else None
        if res is None:
            raise _no_such_address(state, address, backend)
    pending = [i for i in state.intents.values() if i.address == address] if state else []
    if output is OutputFormat.json:
        _echo_json(
            {
                "resource": res.model_dump(mode="json"),
                "intents": [i.model_dump(mode="json") for i in pending],
            }
        )
        return
    typer.echo(f"{res.address}")
    typer.echo(f"  type:        {res.type}")
    typer.echo(f"  remote id:   {res.remote_id}")
    typer.echo(f"  status:      {_status(res)}")
    typer.echo(f"  fingerprint: {res.fingerprint}")
    typer.echo("  attributes:")
    for line in json.dumps(res.attributes, indent=2, sort_keys=True).splitlines():
        typer.echo(f"    {line}")
    if res.history:
        typer.echo("  history (previous remote objects of this address):")
        for entry in res.history:
            rest = {k: v for k, v in sorted(entry.items()) if k not in ("remote_id", "replaced_at")}
            extra = " ".join(f"{k}={v}" for k, v in rest.items() if v is not None)
            typer.echo(
                f"    - {entry.get('remote_id')} replaced {_when(entry.get('replaced_at'))}"
                + (f" {extra}" if extra else "")
            )
    else:
        typer.echo("  history:     (none)")
    for intent in pending:
        typer.echo(
            f"  unresolved intent {intent.id}: {intent.operation} since {_when(intent.created_at)}"
        )


# ---------------------------------------------------------------------------- rm


@state_app.command(
    "rm",
    help="Forget objects: they stay on the remote, untouched, and are no longer managed.\n\n"
    "Pending create intents of these addresses are forgotten too. While the specs still "
    "declare an address, the next plan proposes creating it again and flags the remote "
    "object as a possible duplicate, with an import hint.",
)
@handle_errors
def state_rm(
    addresses: Annotated[list[str], typer.Argument(help="Addresses to forget.")],
    path: PathsOption = None,
    state_file: StateFileOption = None,
    lock_timeout: LockTimeoutOption = 0.0,
) -> None:
    """Forget objects: they stay on the remote, untouched, and are no longer managed.

    Pending create intents of these addresses are forgotten too. Until the specs stop
    naming an address, the next plan proposes creating it again (and flags the remote
    twin as a possible duplicate, with an import hint).
    """
    with opened_backend(path, state_file) as backend, backend.lock("state rm", lock_timeout):
        state = backend.read()
        if state is None:
            raise StateError(
                f"there is no state yet ({backend.describe()}): nothing to remove. "
                "Check --path/--state."
            )
        missing = [
            a
            for a in addresses
            if a not in state.resources and not any(i.address == a for i in state.intents.values())
        ]
        if missing:
            raise (
                _no_such_address(state, missing[0], backend)
                if len(missing) == 1
                else StateError(
                    f"no such addresses in the state ({backend.describe()}): {', '.join(missing)}. "
                    "Nothing was removed; run 'reconciler state list' to see the recorded addresses."
                )
            )
        new = state.model_copy(deep=True)
        removed: list[tuple[str, str | None]] = []
        for address in dict.fromkeys(addresses):
            res = new.resources.pop(address, None)
            removed.append((address, res.remote_id if res else None))
            for intent_id in [k for k, i in new.intents.items() if i.address == address]:
                del new.intents[intent_id]
        backend.write(new, state.serial)
    for address, remote_id in removed:
        what = f"remote {remote_id} is untouched" if remote_id else "pending create forgotten"
        typer.echo(f"Removed {address} from the state ({what}).")


# ---------------------------------------------------------------------------- locking


def _lock_document(info: LockInfo | None) -> dict[str, Any]:
    return {"locked": info is not None, "lock": info.model_dump(mode="json") if info else None}


@state_app.command("lock-info")
@handle_errors
def state_lock_info(
    path: PathsOption = None,
    state_file: StateFileOption = None,
    output: FormatOption = OutputFormat.text,
) -> None:
    """Show who holds the state lock, if anyone."""
    with opened_backend(path, state_file) as backend:
        info = backend.lock_info()
    if output is OutputFormat.json:
        _echo_json(_lock_document(info))
    elif info is None:
        typer.echo("The state is not locked.")
    else:
        typer.echo(f"The state is locked.\nLock Info:\n{info.describe()}")


@state_app.command(
    "unlock",
    help="Break a stuck lock, only when its holder is gone.\n\n"
    "Locks are released automatically when their holder exits, even when killed; a lock "
    "that stays is held by a process that still runs (or hangs) somewhere. After unlock "
    "that process, if alive, is no longer excluded from the state.",
)
@handle_errors
def state_unlock(
    lock_id: Annotated[str, typer.Argument(help="The lock ID, as printed by the lock error.")],
    path: PathsOption = None,
    state_file: StateFileOption = None,
    yes: Annotated[
        bool,
        typer.Option("--yes", "-y", "--force", help="Do not ask for confirmation."),
    ] = False,
) -> None:
    """Break a stuck lock. Only when its holder is gone: a live holder is no longer excluded.

    Locks are released automatically when their holder exits, even when killed; a lock
    that stays is held by a process that still runs (or hangs) somewhere.
    """
    with opened_backend(path, state_file) as backend:
        holder = backend.lock_info()
        if holder is None:
            raise StateError(
                f"the state is not locked ({backend.describe()}); nothing to unlock. A lock is "
                "released automatically when its holder exits."
            )
        if holder.id == lock_id and not yes:
            stderr.print(f"Lock Info:\n{holder.describe()}", markup=False)
            stderr.print(
                "If this process is still running, two writers may change the state at once.",
                markup=False,
            )
            if not typer.confirm("Really unlock the state?", default=False, err=True):
                raise ReconcilerError("unlock cancelled; the lock is unchanged.")
        backend.force_unlock(lock_id)
    typer.echo(f"Unlocked the state (lock ID {lock_id}).")


# ---------------------------------------------------------------------------- import


@app.command(
    "import",
    help="Adopt an existing remote file or job under ADDRESS; nothing changes remotely.\n\n"
    "The address must be declared in the specs. When the remote object matches the spec, "
    "the next plan shows no change for it; when it differs, the plan names the differing "
    "fields and proposes a replacement.",
)
@handle_errors
def import_(
    address: Annotated[
        str, typer.Argument(help="Address declared in the specs, e.g. job.dumbledore-v1.")
    ],
    remote_id: Annotated[str, typer.Argument(help="Id of the existing remote file or job.")],
    path: PathsOption = None,
    lock_timeout: LockTimeoutOption = 0.0,
) -> None:
    """Adopt an existing remote file or job under ADDRESS (nothing is created or changed remotely).

    The address must be declared in the specs. When the remote object matches the spec, the
    next plan shows no change for it; when it differs, the plan names the differing fields
    and proposes a replacement.
    """
    from reconciler.operations import prepare
    from reconciler.workspace import open_workspace

    if address.startswith("dataset."):
        kind = "file"
    elif address.startswith("job."):
        kind = "job"
    else:
        raise ReconcilerError(
            f"{address}: cannot import this address: import takes a dataset file address "
            "(dataset.NAME[all|train|validation]) or a job address (job.NAME)."
        )
    with open_workspace(list(path or [Path(".")])) as ws:
        stderr.print(f"Target: {ws.target}; state: {ws.backend.describe()}", markup=False)
        _check_importable(ws.backend.read(), address, remote_id, ws.backend)
        desired = prepare(ws).desired
        if address not in (desired.files if kind == "file" else desired.jobs):
            known = sorted(desired.files if kind == "file" else desired.jobs)
            close = difflib.get_close_matches(address, known, n=1)
            raise ReconcilerError(
                f"{address}: not declared in the specs"
                + (f" (did you mean {close[0]}?)" if close else "")
                + ". Declare it first, so the plan knows what it should be, then import it."
            )
        with ws.backend.lock("import", lock_timeout):
            state = ws.backend.read()
            _check_importable(state, address, remote_id, ws.backend)
            if kind == "file":
                resource, differences = _import_file(ws, desired.files[address], remote_id)
            else:
                resource, differences = _import_job(
                    ws, desired.jobs[address], remote_id, state, desired.files
                )
            new = state.model_copy(deep=True) if state is not None else State()
            new.resources[address] = resource
            # The import resolves any pending create of this address: recovery must not
            # adopt a different object for it later.
            for intent_id in [k for k, i in new.intents.items() if i.address == address]:
                del new.intents[intent_id]
            ws.backend.write(new, state.serial if state is not None else None)
    typer.echo(f"Imported {address} = {kind} {remote_id}.")
    if differences:
        typer.echo(
            f"Warning: the remote {kind} differs from the spec in: {', '.join(differences)}. "
            "The next plan proposes replacing it; change the spec to match if you mean to keep it."
        )
    elif kind == "job":
        typer.echo(
            "Note: the remote never shows training-file weights or "
            "invalid_sample_skip_percentage; they are recorded as the spec sets them."
        )


def _check_importable(
    state: State | None, address: str, remote_id: str, backend: StateBackend
) -> None:
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


def _not_found(exc: ApiError, kind: str, remote_id: str, target: str) -> ApiError:
    why = "the remote rejects it as malformed" if exc.status in (400, 422) else "not found"
    return NotFoundError(
        f"there is no {kind} {remote_id} at {target} ({why}): check the id, and that the "
        "specs' Provider points at the remote that holds it",
        method=exc.method,
        path=exc.path,
        status=exc.status,
    )


def _import_file(
    ws: Workspace, desired: DesiredFile, remote_id: str
) -> tuple[ResourceState, list[str]]:
    try:
        remote = ws.client().get_file(remote_id)
    except (NotFoundError, RejectedError) as exc:
        raise _not_found(exc, "file", remote_id, ws.target) from exc
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
    ws: Workspace,
    desired: DesiredJob,
    remote_id: str,
    state: State | None,
    files: Mapping[str, DesiredFile],
) -> tuple[ResourceState, list[str]]:
    from reconciler.identity import RequestIdentity, matches

    client = ws.client()
    try:
        remote = client.get_job(remote_id)
    except (NotFoundError, RejectedError) as exc:
        raise _not_found(exc, "job", remote_id, ws.target) from exc
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
    wanted = RequestIdentity.of_content(desired.identity, file_ids)
    if wanted is not None and matches(wanted, remote_json):
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
    from reconciler.identity import same_number

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
