"""Writing a file the user names on the command line (``plan --out``): whole or not at all.

The text goes to a temporary file in the same directory, which is then renamed over the
target (:func:`~reconciler.engine.state_file.atomic_write_text`), so an interrupted write
never leaves half a file. A path that cannot take the file is refused before anything is
written, with a :class:`~reconciler.errors.StorageError` naming the path and the fix:
a missing directory, a directory, something that is not a regular file (``/dev/null``, a
FIFO: a rename would replace it), a read-only file (a rename would replace it too, whatever
its mode says, so its mode is honoured here).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from reconciler.engine.state_file import atomic_write_text
from reconciler.errors import StorageError
from reconciler.files import kind_of

_ELSEWHERE = "or choose another path"


def write_output_file(path: Path, text: str, *, what: str) -> None:
    """Write ``text`` to ``path``, replacing the file there, atomically.

    Args:
        path: the file the user named.
        text: the whole content.
        what: what is written, for messages, e.g. ``the plan``.

    Raises:
        StorageError: the path cannot take the file, or the write failed (nothing was
            written then); the message names the path and how to fix it.
    """
    where = f"cannot write {what} to {path}"
    parent = path.parent
    try:
        parent_mode = os.stat(parent).st_mode
    except FileNotFoundError:
        raise StorageError(
            f"{where}: the directory {parent} does not exist; create it first "
            f"(mkdir -p {parent}) {_ELSEWHERE}"
        ) from None
    except OSError as exc:
        raise StorageError(f"{where}: {exc.strerror or exc}; {_ELSEWHERE}") from None
    if not stat.S_ISDIR(parent_mode):
        raise StorageError(f"{where}: {parent} is not a directory; {_ELSEWHERE}")
    try:
        mode: int | None = os.stat(path).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise StorageError(f"{where}: {exc.strerror or exc}; {_ELSEWHERE}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise StorageError(
            f"{where}: it is a directory; name a file in it (e.g. {path / 'plan.json'}) "
            f"{_ELSEWHERE}"
        )
    if mode is not None and not stat.S_ISREG(mode):
        raise StorageError(f"{where}: it is {kind_of(mode)}, not a regular file; {_ELSEWHERE}")
    if mode is not None and (not mode & 0o222 or not os.access(path, os.W_OK)):
        raise StorageError(
            f"{where}: the file is read-only; make it writable (chmod u+w {path}) {_ELSEWHERE}"
        )
    try:
        atomic_write_text(path, text, stat.S_IMODE(mode) if mode is not None else 0o644)
    except (OSError, ValueError) as exc:  # ValueError: text the encoder refuses
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise StorageError(
            f"{where}: {reason}; nothing was written. Check that {parent} is writable and "
            f"has space, {_ELSEWHERE}"
        ) from None
