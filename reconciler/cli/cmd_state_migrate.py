"""``reconciler state migrate``: move the state to another backend (file <-> postgres).

The source is the backend the specs configure (the Provider's ``state`` section, or the
default state file); the destination is given by flags. Both locks are taken, the state is
copied exactly (lineage, serial, resources, intents) and read back, and the source is left
as it was: afterwards the user points the Provider's ``state`` section at the destination.
"""

from __future__ import annotations

import contextlib
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pydantic
import typer

from reconciler.cli.cmd_state import PathsOption, StateFileOption
from reconciler.cli.common import LOCK_TIMEOUT, handle_errors
from reconciler.cli.consoles import stderr, stdout
from reconciler.engine.backends import default_state_path
from reconciler.engine.migrate import migrate_locked
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import StateBackend
from reconciler.errors import InvalidValueError, StateError
from reconciler.spec.models import NAME_MAX, NAME_PATTERN, SecretRef
from reconciler.spec.secrets import resolve_secret

DEFAULT_DSN_ENV = "RECONCILER_PG_DSN"
_WORKSPACE_NAME = re.compile(NAME_PATTERN)

commands = typer.Typer()
"""``state migrate``."""


class BackendKind(StrEnum):
    """Destination backends of ``state migrate``."""

    postgres = "postgres"
    file = "file"


def _destination(
    kind: BackendKind, dsn_env: str, workspace: str, file: Path | None, root: Path
) -> StateBackend:
    """Build the destination backend from the command-line flags."""
    if not _WORKSPACE_NAME.match(workspace) or len(workspace) > NAME_MAX:
        # Same rule as the Provider's `workspace` field, so the printed hint is a valid spec.
        raise StateError(
            f"--workspace {workspace!r}: use lower-case letters, digits and '-' (at most 63 "
            "characters), e.g. --workspace ml-team"
        )
    if kind is BackendKind.file:
        return FileStateBackend(file if file is not None else default_state_path(root))
    try:
        ref = SecretRef(env=dsn_env)
    except pydantic.ValidationError:
        # Never repeated: a connection string pasted here holds a password.
        raise InvalidValueError(
            "--dsn-env takes the name of the environment variable that holds the connection "
            f"string ([A-Za-z_][A-Za-z0-9_]*), not the connection string itself, e.g. "
            f"--dsn-env {DEFAULT_DSN_ENV}"
        ) from None
    # Like every secret: held to the operator's allowlist, and scrubbed from every message.
    dsn = resolve_secret(ref, root, purpose="state migrate --to postgres --dsn-env")
    from reconciler.engine.state_postgres import PostgresStateBackend

    return PostgresStateBackend(dsn, workspace, dsn_source=f"env:{dsn_env}")


def _provider_hint(kind: BackendKind, dsn_env: str, workspace: str, file: Path | None) -> str:
    if kind is BackendKind.postgres:
        return (
            "state: {backend: postgres, dsn: {env: " + dsn_env + "}, workspace: " + workspace + "}"
        )
    return "state: {backend: file" + (f", path: {file}" if file else "") + "}"


@commands.command("migrate")
@handle_errors
def migrate(
    to: Annotated[BackendKind, typer.Option("--to", help="Destination backend: postgres or file.")],
    dsn_env: Annotated[
        str,
        typer.Option("--dsn-env", help="postgres: environment variable holding the DSN."),
    ] = DEFAULT_DSN_ENV,
    workspace: Annotated[
        str, typer.Option("--workspace", help="postgres: destination workspace name.")
    ] = "default",
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            dir_okay=False,
            help="file: destination state file (default .reconciler/state.json beside the specs).",
        ),
    ] = None,
    path: PathsOption = None,
    state_file: StateFileOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a different, non-empty state at the destination."),
    ] = False,
    lock_timeout: float = LOCK_TIMEOUT,
) -> None:
    """Copy the state to another backend exactly (lineage, serial, resources, intents).

    The source is the backend the specs name (or --state FILE); both locks are held while
    copying, and the source is left unchanged.
    """
    with contextlib.ExitStack() as stack:
        if state_file is not None:
            src: StateBackend = FileStateBackend(state_file)
            stack.callback(src.close)
            root = Path.cwd()
        else:
            from reconciler.workspace import open_workspace

            ws = stack.enter_context(open_workspace(list(path or [Path(".")])))
            src, root = ws.backend, ws.specs.root
        dst = _destination(to, dsn_env, workspace, file, root)
        stack.callback(dst.close)
        stderr.print(f"Migrating the state from {src.describe()} to {dst.describe()}", markup=False)
        state = migrate_locked(src, dst, force=force, lock_timeout=lock_timeout)
        stdout.print(
            f"Migrated: lineage {state.lineage}, serial {state.serial}, "
            f"{len(state.resources)} resource(s), {len(state.intents)} pending intent(s) now in "
            f"{dst.describe()}.\n"
            "The source was left unchanged. Now set the Provider's state section to\n"
            f"    {_provider_hint(to, dsn_env, workspace, file)}\n"
            "and remove the old state once a plan against the new backend shows no changes.",
            markup=False,
        )
