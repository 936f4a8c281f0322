"""``reconciler gc``: list, and with ``--yes`` delete, the remote files the state no longer uses.

Which files, and which are always kept, is :mod:`reconciler.engine.gc`'s to decide; here it is
parsed, listed and confirmed. Deleting holds the state lock, so no apply records one of these
files meanwhile.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from reconciler.cli.common import (
    LOCK_TIMEOUT,
    SPEC_PATHS,
    TEXT_OR_JSON,
    OutputFormat,
    handle_errors,
)
from reconciler.cli.consoles import stderr

commands = typer.Typer()
"""``gc``."""

JSON_FORMAT_VERSION = 1
"""Version of the ``--format json`` document ``gc`` prints."""


@commands.command(
    "gc",
    help="List (and with --yes delete) remote files that no address or job of the state "
    "uses.\n\n"
    "By default: the earlier uploads of the state's dataset addresses that no job of the "
    "state (current or in history) trained or validated on. With --all: every such remote "
    "file of the account, including other workspaces' and tools' files: review the list. "
    "A file an active job uses, or a pending create may have made, is always kept.",
)
@handle_errors
def gc(
    paths: list[str] | None = SPEC_PATHS,
    everything: Annotated[
        bool,
        typer.Option("--all", help="Every unused remote file of the account, not only ours."),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete the files listed.")] = False,
    lock_timeout: float = LOCK_TIMEOUT,
    output: OutputFormat = TEXT_OR_JSON,
) -> None:
    """List (and with --yes delete) remote files that no address or job of the state uses.

    By default: the earlier uploads of the state's dataset addresses that no job of the
    state (current or in history) trained or validated on. With --all: every such remote
    file of the account, including other workspaces' and tools' files: review the list. A
    file an active job uses, or a pending create may have made, is always kept.
    """
    from reconciler.engine.gc import delete_files, unused_files
    from reconciler.engine.observed import refresh
    from reconciler.workspace import open_workspace

    with open_workspace(paths or ["."]) as ws:
        stderr.print(ws.headline, markup=False)
        ws.read_state()  # a state bound to another target is refused before anything is read
        with ws.backend.lock("gc", lock_timeout):
            found = unused_files(ws.backend.read(), refresh(ws.client()), everything=everything)
            deleted = delete_files(found, ws.client().delete_file) if yes else []
    total = sum(f.bytes or 0 for f in found)
    if output is OutputFormat.json:
        document = {
            "format_version": JSON_FORMAT_VERSION,
            "files": [
                {
                    "id": f.id,
                    "filename": f.filename,
                    "bytes": f.bytes,
                    "replaced_by": f.replaced_by,
                    "deleted": f.id in deleted,
                }
                for f in found
            ],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    if not found:
        typer.echo("No unused remote files." + ("" if everything else " (--all looks wider.)"))
        return
    typer.echo(f"Unused remote files ({len(found)}, {total} bytes):")
    for f in found:
        why = f"earlier upload of {f.replaced_by}" if f.replaced_by else "not in the state"
        typer.echo(f"  {f.id}  {f.filename}  {f.bytes if f.bytes is not None else '?'} B  ({why})")
    if yes:
        typer.echo(f"Deleted {len(deleted)} remote file(s).")
    else:
        typer.echo("Nothing was deleted; run 'reconciler gc --yes' to delete them.")
