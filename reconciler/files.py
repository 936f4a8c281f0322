"""Opening the files users name: regular files only, never a device, FIFO, socket or directory.

Spec files and dataset paths may come from an untrusted pull request: a path
(or a symlink, which Git carries) may name ``/dev/zero``, which never ends, or a FIFO, whose
``open`` blocks until some writer appears. Every reader of spec and data files opens
them with :func:`open_regular`: it looks at the path with ``os.stat`` first (so a device is
never opened at all), then opens it with ``O_NONBLOCK`` (so a path swapped for a FIFO in
between cannot block) and checks the opened descriptor again with ``fstat``. What is not a
regular file raises :class:`NotRegularFile`, which says what it is instead;
:func:`not_a_file` turns that into the ``NOT_A_FILE`` problem users see.

Only the standard library and :mod:`reconciler.errors` are used, so the spec loader, the data
package and the sandbox (through the validator) can all open files through here.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import IO

from reconciler.errors import Location, Problem

DIRECTORY = "a directory"
"""The :attr:`NotRegularFile.kind` of a directory (callers suggest the files inside it)."""

_KINDS = (
    (stat.S_ISDIR, DIRECTORY),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
"""Read-only; never wait for a FIFO's writer; never become a terminal's controlling process."""


class NotRegularFile(OSError):
    """A path exists but is not a regular file.

    Attributes:
        kind: what it is instead, e.g. ``a character device`` (see :func:`kind_of`).
    """

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        super().__init__(errno.EINVAL, f"is {kind}, not a regular file", str(path))
        self.kind = kind


def kind_of(mode: int) -> str:
    """What an ``st_mode`` describes, for messages: ``a regular file``, ``a FIFO (named
    pipe)``, ``a character device``, ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def check_regular(path: str | os.PathLike[str]) -> os.stat_result:
    """The ``stat`` of ``path`` (symlinks followed) when it is a regular file.

    Raises:
        NotRegularFile: it exists but is something else.
        OSError: it cannot be looked at (missing, no permission, ...).
    """
    st = os.stat(path)
    if not stat.S_ISREG(st.st_mode):
        raise NotRegularFile(path, kind_of(st.st_mode))
    return st


def open_regular(path: str | os.PathLike[str]) -> IO[bytes]:
    """Open a regular file for binary reading, without ever blocking on or reading anything
    else (see the module docstring).

    Raises:
        NotRegularFile: the path is a directory, device, FIFO or socket.
        OSError: it cannot be opened (missing, no permission, ...).
    """
    check_regular(path)
    fd = os.open(path, _OPEN_FLAGS)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            # Replaced between stat and open.
            raise NotRegularFile(path, kind_of(mode))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def files_under(directory: Path, pattern: str) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The regular files matching ``pattern`` under ``directory`` (recursively, sorted), and
    the other matches that are neither regular files nor directories, with their kind.

    Symlinked directories are not descended into; a symlink that leads nowhere is skipped.
    """
    files: list[Path] = []
    others: list[tuple[Path, str]] = []
    for path in sorted(directory.rglob(pattern)):
        try:
            mode = os.stat(path).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode):
            files.append(path)
        elif not stat.S_ISDIR(mode):
            others.append((path, kind_of(mode)))
    return files, others


NOT_A_FILE_HINT = (
    "name a regular JSONL file; devices, FIFOs, sockets and directories are never read as data"
)


def not_a_file(name: str, kind: str, hint: str | None = None) -> Problem:
    """The ``NOT_A_FILE`` problem of ``name``, which is ``kind`` (see :func:`kind_of`)."""
    return Problem(
        "NOT_A_FILE", f"is {kind}, not a regular file", Location(name), hint=hint or NOT_A_FILE_HINT
    )
