"""``reconciler state ...`` and ``reconciler import``: inspect and edit the state by hand.

* ``state list`` / ``state show ADDRESS``: what the state records (read-only, no lock).
* ``state rm ADDRESS...``: forget objects; the remote is never touched.
* ``state mv FROM TO``: rename an address (:mod:`reconciler.engine.moves`); the remote is
  never touched.
* ``state lock-info`` / ``state unlock LOCK_ID``: who holds the lock; break a stuck one.
* ``import ADDRESS REMOTE_ID``: adopt an existing remote file or job under an address (the
  work is :func:`reconciler.engine.importer.import_object`'s; here it is parsed and reported);
  ``import --discover``: adopt every remote object the specs describe exactly
  (:mod:`reconciler.engine.discover`).

The state is found from the spec PATHs (the Provider document names the backend), or given
directly with ``--state FILE`` — useful when the specs themselves do not load.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import fnmatch
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from reconciler.cli.common import LOCK_TIMEOUT, TEXT_OR_JSON, OutputFormat, handle_errors
from reconciler.cli.consoles import stderr
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import LockInfo, ResourceState, State, StateBackend
from reconciler.errors import ReconcilerError, StateError

if TYPE_CHECKING:
    from reconciler.workspace import Workspace

JSON_FORMAT_VERSION = 1
"""Version of the ``--format json`` documents these commands print."""

commands = typer.Typer()
"""``import``."""

state_commands = typer.Typer()
"""``state list``, ``show``, ``rm``, ``mv``, ``lock-info`` and ``unlock``."""


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
    with _workspace(paths) as workspace:
        yield workspace.backend


@contextlib.contextmanager
def _workspace(paths: Sequence[Path] | None) -> Iterator[Workspace]:
    """The workspace of the spec PATHs (default: the current directory), named on stderr."""
    from reconciler.workspace import open_workspace

    with open_workspace(list(paths or [Path(".")])) as workspace:
        stderr.print(workspace.headline, markup=False)
        yield workspace


def _echo_json(document: dict[str, Any]) -> None:
    typer.echo(json.dumps({"format_version": JSON_FORMAT_VERSION, **document}, indent=2))


def _status(res: ResourceState) -> str:
    if res.type == "file":
        return "uploaded"
    return str(res.attributes.get("status") or "-")


def _read_state(paths: Sequence[Path] | None, state_file: Path | None) -> tuple[State | None, str]:
    """The recorded state (``None``: none yet), read without the lock, and where it is (the
    backend's description, for messages)."""
    with opened_backend(paths, state_file) as backend:
        return backend.read(), backend.describe()


def _no_such_address(state: State | None, address: str, where: str) -> StateError:
    known = sorted(state.resources) if state else []
    close = difflib.get_close_matches(address, known, n=1)
    hint = f" Did you mean {close[0]}?" if close else ""
    return StateError(
        f"{address}: no such address in the state ({where}).{hint} "
        "Run 'reconciler state list' to see the recorded addresses."
    )


@contextlib.contextmanager
def _state_edit(
    paths: Sequence[Path] | None,
    state_file: Path | None,
    command: str,
    verb: str,
    lock_timeout: float,
) -> Iterator[tuple[StateBackend, State, State]]:
    """Under the state lock: the backend, the stored state and a copy of it to change.

    The copy is written back (against the stored serial) when the block ends without an
    error. With no state yet there is nothing to ``verb``: an error.
    """
    with opened_backend(paths, state_file) as backend, backend.lock(command, lock_timeout):
        state = backend.read()
        if state is None:
            raise StateError(
                f"there is no state yet ({backend.describe()}): nothing to {verb}. "
                "Check --path/--state."
            )
        new = state.model_copy(deep=True)
        yield backend, state, new
        backend.write(new, state.serial)


def _when(seconds: Any) -> str:
    if not isinstance(seconds, int | float) or seconds <= 0:
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- list / show


@state_commands.command("list")
@handle_errors
def state_list(
    patterns: Annotated[
        list[str] | None,
        typer.Argument(help="Only addresses matching these glob patterns, e.g. 'job.*'."),
    ] = None,
    path: PathsOption = None,
    state_file: StateFileOption = None,
    output: OutputFormat = TEXT_OR_JSON,
) -> None:
    """List the managed objects: address, type, remote id, status."""
    state, _ = _read_state(path, state_file)
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


@state_commands.command("show")
@handle_errors
def state_show(
    address: Annotated[str, typer.Argument(help="Address, e.g. job.dumbledore-v1.")],
    path: PathsOption = None,
    state_file: StateFileOption = None,
    output: OutputFormat = TEXT_OR_JSON,
) -> None:
    """Show one managed object: remote id, fingerprint, attributes and history."""
    state, where = _read_state(path, state_file)
    res = state.resources.get(address) if state else None
    if res is None:
        raise _no_such_address(state, address, where)
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


@state_commands.command(
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
    lock_timeout: float = LOCK_TIMEOUT,
) -> None:
    """Forget objects: they stay on the remote, untouched, and are no longer managed.

    Pending create intents of these addresses are forgotten too. Until the specs stop
    naming an address, the next plan proposes creating it again (and flags the remote
    twin as a possible duplicate, with an import hint).
    """
    with _state_edit(path, state_file, "state rm", "remove", lock_timeout) as (backend, state, new):
        missing = [
            a
            for a in addresses
            if a not in state.resources and not any(i.address == a for i in state.intents.values())
        ]
        if missing:
            raise (
                _no_such_address(state, missing[0], backend.describe())
                if len(missing) == 1
                else StateError(
                    f"no such addresses in the state ({backend.describe()}): {', '.join(missing)}. "
                    "Nothing was removed; run 'reconciler state list' to see the recorded addresses."
                )
            )
        removed: list[tuple[str, str | None]] = []
        for address in dict.fromkeys(addresses):
            res = new.resources.pop(address, None)
            removed.append((address, res.remote_id if res else None))
            for intent_id in [k for k, i in new.intents.items() if i.address == address]:
                del new.intents[intent_id]
    for address, remote_id in removed:
        what = f"remote {remote_id} is untouched" if remote_id else "pending create forgotten"
        typer.echo(f"Removed {address} from the state ({what}).")


# ---------------------------------------------------------------------------- mv


@state_commands.command(
    "mv",
    help="Rename an address: its record becomes TO's; the remote is untouched.\n\n"
    "For the imperative case of a rename (a renamed job is not trained again); a Moved "
    "document does the same through a reviewed plan. Pending create intents move too.",
)
@handle_errors
def state_mv(
    source: Annotated[str, typer.Argument(help="The recorded address, e.g. job.tone-v1.")],
    target: Annotated[str, typer.Argument(help="Its new address, e.g. job.tone.")],
    path: PathsOption = None,
    state_file: StateFileOption = None,
    lock_timeout: float = LOCK_TIMEOUT,
) -> None:
    """Rename an address: its record becomes TO's; the remote is untouched.

    For the imperative case of a rename (a renamed job is not trained again); a Moved
    document does the same through a reviewed plan. Pending create intents move too.
    """
    from reconciler.engine.moves import move_record

    with _state_edit(path, state_file, "state mv", "move", lock_timeout) as (_, _, new):
        moved = move_record(new, source, target)
    typer.echo(f"Moved {source} to {target} (remote {moved.remote_id} is untouched).")


# ---------------------------------------------------------------------------- locking


def _lock_document(info: LockInfo | None) -> dict[str, Any]:
    return {"locked": info is not None, "lock": info.model_dump(mode="json") if info else None}


@state_commands.command("lock-info")
@handle_errors
def state_lock_info(
    path: PathsOption = None,
    state_file: StateFileOption = None,
    output: OutputFormat = TEXT_OR_JSON,
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


@state_commands.command(
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


_WEIGHTS_NOTE = (
    "Note: the remote never shows training-file weights or invalid_sample_skip_percentage; "
    "{what} recorded as the spec sets them."
)


@commands.command(
    "import",
    help="Adopt an existing remote file or job under ADDRESS; nothing changes remotely.\n\n"
    "The address must be declared in the specs. A file is adopted by its content (whatever "
    "its name), a job by its request, with the files it uses. When the remote object "
    "matches the spec, the next plan shows no change for it; when it differs, the plan names "
    "the differing fields and proposes a replacement.\n\n"
    "With --discover (no ADDRESS, REMOTE_ID): for every address the state does not record, "
    "adopt the remote objects that are exactly what the specs ask for; addresses with "
    "several candidates are listed, never guessed.",
)
@handle_errors
def import_(
    address: Annotated[
        str | None,
        typer.Argument(
            metavar="ADDRESS", help="Address declared in the specs, e.g. job.dumbledore-v1."
        ),
    ] = None,
    remote_id: Annotated[
        str | None,
        typer.Argument(metavar="REMOTE_ID", help="Id of the existing remote file or job."),
    ] = None,
    path: PathsOption = None,
    lock_timeout: float = LOCK_TIMEOUT,
    discover: Annotated[
        bool,
        typer.Option(
            "--discover",
            help="Adopt every remote file and job that matches an address not in the state.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="With --discover: show what would be adopted, record nothing."
        ),
    ] = False,
) -> None:
    """Adopt an existing remote file or job under ADDRESS; nothing changes remotely.

    The address must be declared in the specs. A file is adopted by its content (whatever
    its name), a job by its request, with the files it uses. When the remote object matches
    the spec, the next plan shows no change for it; when it differs, the plan names the
    differing fields and proposes a replacement.

    With --discover (no ADDRESS, REMOTE_ID): for every address the state does not record,
    adopt the remote objects that are exactly what the specs ask for; addresses with
    several candidates are listed, never guessed.
    """
    from reconciler.engine.importer import import_kind, import_object
    from reconciler.operations import prepare

    if discover:
        if address is not None or remote_id is not None:
            raise typer.BadParameter(
                "--discover finds the objects itself: give no ADDRESS or REMOTE_ID",
                param_hint="--discover",
            )
        _discover(path, lock_timeout, dry_run)
        return
    if address is None or remote_id is None:
        raise typer.BadParameter(
            "give ADDRESS and REMOTE_ID (or --discover to find every match)",
            param_hint="ADDRESS REMOTE_ID",
        )
    if dry_run:
        raise typer.BadParameter("--dry-run goes with --discover", param_hint="--dry-run")
    kind = import_kind(address)  # before loading anything: a wrong address fails at once
    with _workspace(path) as ws:
        ws.read_state()  # a state bound to another target is refused before anything is read
        result = import_object(
            address,
            remote_id,
            backend=ws.backend,
            client=ws.client,
            desired=lambda: prepare(ws).desired,
            target=ws.target,
            lock_timeout=lock_timeout,
            scratch=ws.cache_dir / "remote-content",
        )
    typer.echo(f"Imported {address} = {kind} {remote_id}.")
    for file_address, file_id in result.files:
        typer.echo(f"Imported {file_address} = file {file_id} (the job's file, same content).")
    if result.differences:
        typer.echo(
            f"Warning: the remote {kind} differs from the spec in: "
            f"{', '.join(result.differences)}. The next plan proposes replacing it; change the "
            "spec to match if you mean to keep it."
        )
    elif kind == "job":
        typer.echo(_WEIGHTS_NOTE.format(what="they are"))


def _discover(paths: Sequence[Path] | None, lock_timeout: float, dry_run: bool) -> None:
    """``import --discover``: adopt every exact match; list the rest."""
    from reconciler.engine.discover import discover_and_import
    from reconciler.operations import prepare

    with _workspace(paths) as ws:
        ws.read_state()  # a state bound to another target is refused before anything is read
        found = discover_and_import(
            backend=ws.backend,
            client=ws.client(),
            desired=prepare(ws).desired,
            lock_timeout=lock_timeout,
            scratch=ws.cache_dir / "remote-content",
            dry_run=dry_run,
        )
    records = found.records
    if records:
        verb = "Would import" if dry_run else "Imported"
        typer.echo(f"{verb} {len(records)} object(s); nothing is created or changed remotely:")
        width = max(len(a) for a in records)
        for address, res in records.items():
            if res.type == "file":
                what = f"file {res.remote_id} ({res.attributes.get('filename')}, same content)"
            else:
                what = f"job {res.remote_id} ({res.attributes.get('status')}, same request)"
            typer.echo(f"  {address:<{width}} = {what}")
    else:
        typer.echo("Nothing to import: no remote object matches an address the state lacks.")
    if found.ambiguous:
        typer.echo(
            "Ambiguous, left alone (several remote objects match; adopt one with "
            "'reconciler import ADDRESS ID'):"
        )
        for address, candidates in sorted(found.ambiguous.items()):
            typer.echo(f"  {address}: {', '.join(candidates)}")
    if found.unverifiable:
        typer.echo(
            f"Not verifiable, left alone ({ws.provider_type} does not give back the "
            "content of training files, so files under other names than the parts' own "
            "content-addressed ones cannot be compared; the next plan creates these):"
        )
        for address, candidates in sorted(found.unverifiable.items()):
            typer.echo(f"  {address}: {', '.join(candidates)}")
    if found.unmatched:
        typer.echo("No remote match (the next plan creates them): " + ", ".join(found.unmatched))
    if found.pending:
        typer.echo("Pending creates, left to apply's recovery: " + ", ".join(found.pending))
    if any(r.type == "job" for r in records.values()):
        typer.echo(_WEIGHTS_NOTE.format(what="imported jobs are"))
