"""Finding the workspace root: the one directory whose ``.reconciler/`` holds the state.

Commands find their workspace the way git finds a repository. From each PATH given (a
directory, or the directory of a file) they look upward for the nearest directory that
*marks a workspace*:

* it holds ``.reconciler/state.json``, a state an apply wrote there; or
* it holds a ``reconciler.yaml`` root marker (:data:`MARKER_FILE`), which declares the
  workspace before any state exists. Its content is empty, or only
  ``apiVersion: reconciler/v1``; it never holds spec documents.

A ``.reconciler/`` that holds only caches (``validate`` creates ``.reconciler/cache``) or an
embedded sandbox's data does not mark a workspace: no state was written there.

When no directory above a PATH marks a workspace, the spec files found *below* it are
considered too: if they all belong to one workspace below (``reconciler status job.x`` run at
a repository's top while the state is in ``specs/``), that workspace is used. Otherwise the
root is the first PATH (the directory, or the directory of a file), where the first apply
will create the state — unless the specs reach a workspace that already has one
(:attr:`RootDiscovery.nested`), or the PATHs belong to different workspaces
(:attr:`RootDiscovery.conflicts`); then commands that use the state refuse with a message
that names the states and how to point at the right one, so a second state is never created
silently.

Upward search stops below the directories listed in ``RECONCILER_CEILING_DIRECTORIES``
(like git's ``GIT_CEILING_DIRECTORIES``: ``:``-separated; a ceiling itself is not looked at).

Paths named inside specs stay relative to the file that names them; the root only anchors
``.reconciler/`` (state, caches, the embedded sandbox) and is the directory such paths must
stay inside.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from reconciler.errors import Location, Problem
from reconciler.files import open_regular
from reconciler.spec.models import API_VERSION
from reconciler.spec.yamlpos import decode_text, load_yaml_text

MARKER_FILE = "reconciler.yaml"
"""Name of the root marker file; never read as a spec."""

STATE_DIR = ".reconciler"
"""The directory under the root that holds the state, caches and the embedded sandbox."""

DEFAULT_STATE_FILE = Path(STATE_DIR) / "state.json"
"""Where the file backend keeps the state, relative to the root (unless a Provider says)."""

CEILING_ENV = "RECONCILER_CEILING_DIRECTORIES"
"""Environment variable: ``:``-separated directories the upward search does not enter."""

_MAX_MARKER_BYTES = 64 * 1024


class FoundBy(StrEnum):
    """How the root was found.

    Attributes:
        STATE: a directory at or above a PATH holds ``.reconciler/state.json``.
        MARKER: a directory at or above a PATH holds ``reconciler.yaml``.
        BELOW: every spec file belongs to the one workspace found below the PATH.
        DEFAULT: nothing marks a workspace; the first PATH is the root (a new one).
    """

    STATE = "state"
    MARKER = "marker"
    BELOW = "below"
    DEFAULT = "default"


@dataclass(frozen=True)
class RootDiscovery:
    """The workspace root of some PATHs, and the other workspaces they reach.

    Attributes:
        root: the root directory (absolute, symbolic links resolved).
        found_by: how it was found.
        conflicts: roots of *other* workspaces that some of the PATHs are in (the PATHs span
            several workspaces); using the state then is an error.
        nested: roots below ``root`` that mark a workspace and hold some of the spec files,
            when ``root`` itself has no state yet; creating one there is an error.
    """

    root: Path
    found_by: FoundBy
    conflicts: tuple[Path, ...] = ()
    nested: tuple[Path, ...] = ()

    @property
    def state_file(self) -> Path:
        """The default state file of the root: ``ROOT/.reconciler/state.json``."""
        return self.root / DEFAULT_STATE_FILE


def find_workspace_root(paths: Sequence[Path | str], files: Sequence[Path] = ()) -> Path:
    """The workspace root of ``paths`` (see the module docstring); ``files`` are the spec
    files found under them, used when nothing above the PATHs marks a workspace."""
    return discover_root(paths, files).root


def discover_root(
    paths: Sequence[Path | str],
    files: Sequence[Path] = (),
    *,
    environ: Mapping[str, str] | None = None,
) -> RootDiscovery:
    """Find the root of ``paths`` and the other workspaces they reach.

    Args:
        paths: the PATHs of the command (default: the current directory).
        files: the spec files found under them.
        environ: where to read :data:`CEILING_ENV` (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    ceilings = _ceilings(env.get(CEILING_ENV, ""))
    starts = _dedupe(_start_dir(Path(p)) for p in (paths or [Path(".")]))
    found = _dedupe(r for r in (_marked_above(s, ceilings) for s in starts) if r is not None)
    if found:
        root = found[0]
        how = FoundBy.STATE if _has_state(root) else FoundBy.MARKER
        nested = () if how is FoundBy.STATE else _owners_below({root}, files)[0]
        return RootDiscovery(root, how, conflicts=tuple(found[1:]), nested=nested)
    owners, outside = _owners_below(set(starts), files)
    if len(owners) == 1 and not outside:
        return RootDiscovery(owners[0], FoundBy.BELOW)
    return RootDiscovery(starts[0], FoundBy.DEFAULT, nested=owners)


def marks_workspace(directory: Path) -> bool:
    """Whether ``directory`` holds a state (``.reconciler/state.json``) or a root marker."""
    return _has_state(directory) or (directory / MARKER_FILE).is_file()


def _has_state(directory: Path) -> bool:
    return (directory / DEFAULT_STATE_FILE).is_file()


def _real(path: Path | str) -> Path:
    # os.path.realpath, unlike Path.resolve, never raises on a looping link.
    return Path(os.path.realpath(path))


def _start_dir(path: Path) -> Path:
    resolved = _real(path)
    return resolved if resolved.is_dir() else resolved.parent


def _dedupe(paths: Iterable[Path]) -> list[Path]:
    return list(dict.fromkeys(paths))


def _ceilings(text: str) -> frozenset[Path]:
    return frozenset(_real(p) for p in text.split(os.pathsep) if p.strip())


def _marked_above(start: Path, ceilings: frozenset[Path]) -> Path | None:
    """The nearest directory at or above ``start`` that marks a workspace."""
    for directory in (start, *start.parents):
        if directory in ceilings:
            return None
        if marks_workspace(directory):
            return directory
    return None


def _owners_below(tops: set[Path], files: Sequence[Path]) -> tuple[tuple[Path, ...], bool]:
    """(workspaces strictly below ``tops`` that own some of ``files``, whether some file
    belongs to none). A file's owner is the nearest marked directory above it."""
    owners: list[Path] = []
    outside = False
    memo: dict[Path, Path | None] = {}
    for file in files:
        owner = _owner(_real(file).parent, tops, memo)
        if owner is None:
            outside = True
        elif owner not in owners:
            owners.append(owner)
    return tuple(owners), outside


def _owner(directory: Path, tops: set[Path], memo: dict[Path, Path | None]) -> Path | None:
    """The nearest marked directory from ``directory`` up to (not including) a top."""
    if directory in memo:
        return memo[directory]
    if directory in tops or directory.parent == directory:
        owner = None
    elif marks_workspace(directory):
        owner = directory
    else:
        owner = _owner(directory.parent, tops, memo)
    memo[directory] = owner
    return owner


# --------------------------------------------------------------------------- the marker file


def check_marker(path: Path, display: str) -> list[Problem]:
    """Problems of a root marker file: it must be empty or hold only ``apiVersion``.

    ``display`` is the path as shown in messages.
    """
    where = Location(display)
    try:
        with open_regular(path) as handle:
            raw = handle.read(_MAX_MARKER_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return [Problem("invalid-root-marker", f"cannot read the root marker: {reason}", where)]
    hint = (
        f"{MARKER_FILE} only marks the workspace root: leave it empty or write "
        f"'apiVersion: {API_VERSION}'; put spec documents in other files"
    )
    if len(raw) > _MAX_MARKER_BYTES:
        return [Problem("invalid-root-marker", "root marker file is too large", where, hint=hint)]
    text, problem = decode_text(raw, display)
    if problem is not None or text is None:
        return [problem or Problem("invalid-encoding", "unreadable", where)]
    docs, problems = load_yaml_text(text, display)
    if problems:
        return problems
    for doc in docs:
        data = doc.data
        keys = sorted(str(k) for k in data) if isinstance(data, dict) else None
        others = [k for k in keys or () if k != "apiVersion"]
        if keys is None or others:
            found = f" (found: {', '.join(others)})" if others else ""
            return [
                Problem(
                    "invalid-root-marker",
                    f"{MARKER_FILE} marks the workspace root and holds no spec documents{found}",
                    doc.location,
                    hint=hint,
                )
            ]
        if keys and data["apiVersion"] != API_VERSION:
            return [
                Problem(
                    "unknown-api-version",
                    f"unknown apiVersion in the root marker ({data['apiVersion']!r})",
                    doc.value_locations.get(("apiVersion",), doc.location),
                    hint=f"write 'apiVersion: {API_VERSION}' or leave the file empty",
                )
            ]
    return []
