"""The default state backend: one JSON file beside the specs, with an OS-level lock.

Layout on disk (``<state>`` is ``.reconciler/state.json`` unless configured)::

    <state>          the state: pretty JSON, sorted keys, trailing newline
    <state>.backup   the previous version, rewritten before every write
    <state>.lock     lock file; while a process holds the lock it contains its LockInfo

Writes are atomic: the new content goes to a temporary file in the same directory, is
flushed and fsync'ed, then renamed over the state with ``os.replace`` and the directory is
fsync'ed, so a crash at any instant leaves either the old or the new state, never a mix.
Writes are compare-and-swap on ``serial`` (checked under a short directory lock, so two
writers that both read serial 5 cannot both store serial 6).

A writer killed between creating its temporary file and renaming it (kill -9) leaves
``.<state>.XXXXXXXX.tmp`` behind. Every temporary file of the state and its backup is created
and renamed while its writer holds the directory lock, so whoever holds that lock knows that
any such file is a leftover, never a concurrent writer's work in progress: the next write, and
the next process to take the state lock, remove them (only files of exactly that name pattern,
regular files owned by this user).

Reading is bounded: a state file that is not a regular file, is larger than
:data:`MAX_STATE_BYTES` or nests deeper than the JSON parser goes is a clean
:class:`~reconciler.errors.StateError` naming the file, not a hang, a memory blow-up or a
``RecursionError``.

The state lock is ``fcntl.flock`` on ``<state>.lock``. The kernel drops a flock when the
holding process dies for any reason (kill -9, a cancelled CI job, a lost container), so a
dead holder never blocks the next run, and there is no expiry to tune. The holder's
:class:`~reconciler.engine.state_model.LockInfo` is written into the lock file only so
others can say who is waiting on whom; it means nothing unless the flock is actually held.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from reconciler.engine.state_model import (
    STATE_FORMAT_VERSION,
    LockInfo,
    State,
    StateBackend,
    locked_error,
)
from reconciler.errors import StateError, StateLockedError
from reconciler.redact import scrub

_POLL_SECONDS = 0.1
"""How often a waiting process retries the lock (flock has no timed wait)."""

_INFO_SETTLE_SECONDS = 1.0
"""How long to wait for a new holder to finish writing its LockInfo before giving up."""

MAX_STATE_BYTES = 256 * 1024 * 1024
"""Largest state file read. A state of ten thousand jobs is a few megabytes; anything near
this is not a state, and reading it whole could take the machine's memory."""


def render_state(state: State) -> str:
    """The state's on-disk text: pretty JSON, sorted keys, trailing newline.

    Scrubbed of every secret the run resolved (:mod:`reconciler.redact`): none belongs in a
    state, and if one ever reached it (a server echoing a key into an object's attributes)
    it is written as ``***``.
    """
    text = json.dumps(state.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False)
    return scrub(text) + "\n"


def _fsync_dir(directory: Path) -> None:
    # The rename is only durable once the directory entry itself reaches the disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` atomically and durably (temp file, fsync, rename)."""
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    _fsync_dir(directory)


class FileStateBackend(StateBackend):
    """State in a local JSON file; see the module docstring for the layout and guarantees.

    Attributes:
        path: the state file.
        backup_path: ``<path>.backup``, the previous version of the state.
        lock_path: ``<path>.lock``, the lock file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.backup_path = self.path.with_name(self.path.name + ".backup")
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        # Lock id -> fd of the flock'ed lock file, for the locks this object holds.
        self._held: dict[str, int] = {}

    # ------------------------------------------------------------------ reading / writing

    def describe(self) -> str:
        """``file <path>``."""
        return f"file {self.path}"

    def read(self) -> State | None:
        """The stored state, or None when the file does not exist."""
        text = self._read_text(self.path)
        if text is None:
            return None
        return self._parse(text, self.path)

    def _read_text(self, path: Path) -> str | None:
        try:
            # Non-blocking, then checked: a FIFO or device named as the state must not hang
            # or read forever.
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as handle:
                info = os.fstat(handle.fileno())
                if not stat.S_ISREG(info.st_mode):
                    raise StateError(
                        f"{path}: the state path is not a regular file. Point the Provider's "
                        "state.path at a file (it is created on the first apply)."
                    )
                if info.st_size > MAX_STATE_BYTES:
                    raise StateError(
                        f"{path}: state file is {info.st_size} bytes, over the limit of "
                        f"{MAX_STATE_BYTES // (1024 * 1024)} MiB: this is not a reconciler "
                        f"state. {self._recovery_hint(path)}"
                    )
                return handle.read(MAX_STATE_BYTES + 1).decode("utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise StateError(
                f"{path}: state file is not UTF-8 text ({exc.reason} at byte {exc.start}). "
                f"{self._recovery_hint(path)}"
            ) from exc
        except OSError as exc:
            raise StateError(
                f"{path}: cannot read the state file: {exc.strerror or exc}. "
                "Check that it exists and that this user may read it."
            ) from exc

    def _recovery_hint(self, path: Path) -> str:
        if path == self.path and self.backup_path.exists():
            return (
                f"The previous version is kept in {self.backup_path}: inspect it and, if it is "
                f"right, restore it with: cp {self.backup_path} {self.path}"
            )
        return (
            "Restore it from version control or a copy; as a last resort move it away and "
            "re-adopt remote objects with 'reconciler import'."
        )

    def _parse(self, text: str, path: Path) -> State:
        try:
            return self._parse_state(text, path)
        except RecursionError:
            raise StateError(
                f"{path}: state file nests too deeply to be read (JSON arrays or objects inside "
                f"one another thousands of levels deep): it is not a reconciler state. "
                f"{self._recovery_hint(path)}"
            ) from None

    def _parse_state(self, text: str, path: Path) -> State:
        try:
            raw: Any = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(
                f"{path}:{exc.lineno}:{exc.colno}: state file is not valid JSON ({exc.msg}). "
                f"{self._recovery_hint(path)}"
            ) from exc
        if not isinstance(raw, dict):
            raise StateError(
                f"{path}: state file must hold a JSON object, found {type(raw).__name__}. "
                f"{self._recovery_hint(path)}"
            )
        version = raw.get("format_version")
        if version != STATE_FORMAT_VERSION:
            if isinstance(version, int) and version > STATE_FORMAT_VERSION:
                how = "it was written by a newer reconciler: upgrade reconciler to read it"
            else:
                how = f"this reconciler reads format_version {STATE_FORMAT_VERSION} only"
            raise StateError(f"{path}: unsupported state format_version {version!r}; {how}.")
        try:
            return State.model_validate(raw)
        except PydanticValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "(top level)"
            raise StateError(
                f"{path}: state file is not a valid state: {where}: {first['msg']} "
                f"({exc.error_count()} problem(s)). {self._recovery_hint(path)}"
            ) from exc

    @contextlib.contextmanager
    def _write_guard(self) -> Iterator[None]:
        # A short exclusive flock on the directory makes read-compare-replace one step
        # across processes, independent of the (long-held) state lock.
        fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def write(self, state: State, expected_serial: int | None) -> State:
        """Compare-and-swap write: stores ``state`` with serial ``expected + 1`` (new state: 1)
        and the bound target (:meth:`~StateBackend.store_target`).

        Raises:
            StateError: the stored serial is not ``expected_serial``, the stored state has
                another lineage, or the file cannot be written.
        """
        serial = (expected_serial or 0) + 1
        new = self.store_target(state).model_copy(update={"serial": serial}, deep=True)
        return self._store(new, expected_serial, same_lineage=True)

    def store_exact(self, state: State, expected_serial: int | None) -> State:
        """Store ``state`` as it is (lineage and serial kept), if the stored serial matches.

        For ``state migrate``, which copies a state between backends exactly and may replace
        a state of another lineage on purpose.

        Raises:
            StateError: the stored serial is not ``expected_serial``, or the file cannot be
                written.
        """
        return self._store(state.model_copy(deep=True), expected_serial, same_lineage=False)

    def _store(self, new: State, expected_serial: int | None, *, same_lineage: bool) -> State:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateError(
                f"{self.path.parent}: cannot create the state directory: {exc.strerror or exc}."
            ) from exc
        with self._write_guard():
            self._remove_stale_temp_files()
            current_text = self._read_text(self.path)
            current = None if current_text is None else self._parse(current_text, self.path)
            stored_serial = None if current is None else current.serial
            if stored_serial != expected_serial:
                raise StateError(
                    f"{self.path}: state changed since it was read (serial "
                    f"{_serial_text(stored_serial)}, expected {_serial_text(expected_serial)}): "
                    "another process wrote it; re-run."
                )
            if same_lineage and current is not None and current.lineage != new.lineage:
                raise StateError(
                    f"{self.path}: refusing to overwrite state of lineage {current.lineage} with "
                    f"a state of lineage {new.lineage}: they are different workspaces. Check "
                    "the state path in the Provider document."
                )
            try:
                if current_text is not None:
                    atomic_write_text(self.backup_path, current_text, self._mode())
                atomic_write_text(self.path, render_state(new), self._mode())
            except OSError as exc:
                raise StateError(
                    f"{self.path}: cannot write the state: {exc.strerror or exc}. The previous "
                    "state is unchanged; fix the cause (disk space, permissions) and re-run."
                ) from exc
            return new

    def _remove_stale_temp_files(self) -> None:
        """Remove temporary files of the state and backup that a killed writer left.

        Call only while holding :meth:`_write_guard`: then no writer of ours is between
        creating such a file and renaming it, so every one found is a leftover.
        """
        names = "|".join(re.escape(p.name) for p in (self.path, self.backup_path))
        # tempfile.mkstemp names: prefix, 8 characters of [a-z0-9_], suffix.
        pattern = re.compile(rf"\.(?:{names})\.[a-z0-9_]{{8}}\.tmp")
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return
        for entry in entries:
            if not pattern.fullmatch(entry.name):
                continue
            try:
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid():
                    os.unlink(entry.path)
            except OSError:
                continue  # gone meanwhile, or not ours to remove: harmless either way

    def _mode(self) -> int:
        # Keep whatever permissions the user gave the state file; new files get 0644.
        try:
            return self.path.stat().st_mode & 0o777
        except OSError:
            return 0o644

    # ------------------------------------------------------------------ locking

    def acquire_lock(self, operation: str, timeout: float) -> LockInfo:
        """Take the state lock, polling up to ``timeout`` seconds (0: one attempt).

        Raises:
            StateLockedError: another process still holds it after ``timeout``.
            StateError: the lock file cannot be created.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        while True:
            fd = self._try_lock()
            if fd is not None:
                break
            if time.monotonic() >= deadline:
                holder = self.lock_info()
                if holder is None:
                    # Released between our attempt and the probe: one more try.
                    fd = self._try_lock()
                    if fd is not None:
                        break
                raise _locked_error(holder, self.lock_path, timeout)
            time.sleep(_POLL_SECONDS)
        info = LockInfo.for_this_process(operation, str(self.path))
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (info.model_dump_json() + "\n").encode("utf-8"), 0)
        except OSError as exc:
            os.close(fd)
            raise StateError(f"{self.lock_path}: cannot write the lock record: {exc}") from exc
        self._held[info.id] = fd
        with contextlib.suppress(OSError), self._write_guard():
            self._remove_stale_temp_files()  # housekeeping only: never a reason to fail
        return info

    def _open_lock_file(self) -> int:
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(
                f"{self.lock_path}: cannot open the lock file: {exc.strerror or exc}. Check "
                "that the state directory exists and is writable."
            ) from exc

    def _try_lock(self) -> int | None:
        """One non-blocking attempt; the flock'ed fd on success, None when held elsewhere."""
        while True:
            fd = self._open_lock_file()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    return None
                raise StateError(f"{self.lock_path}: cannot lock: {exc.strerror or exc}") from exc
            # ``state unlock`` removes the lock file; if that happened between our open and
            # our flock we hold a lock on an orphaned inode nobody else will ever see. Only
            # the inode currently at the path counts: if it changed, start over on the new one.
            if _same_file(fd, self.lock_path):
                return fd
            os.close(fd)

    def release_lock(self, info: LockInfo) -> None:
        """Release a lock taken by :meth:`acquire_lock` on this object (no-op otherwise)."""
        fd = self._held.pop(info.id, None)
        if fd is None:
            return
        try:
            # Clear the record first so nobody reads our info as if we still held the lock.
            # Only if the file at the path is still ours: after a forced unlock it belongs
            # to somebody else.
            if _same_file(fd, self.lock_path):
                os.ftruncate(fd, 0)
        except OSError:
            pass  # the kernel still drops the flock on close; the record is only advisory
        finally:
            os.close(fd)

    def _is_held(self) -> bool:
        """True when some open file description holds the flock (this process included)."""
        if self._held:
            return True
        try:
            fd = os.open(self.lock_path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"{self.lock_path}: cannot open the lock file: {exc}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return True
            raise StateError(f"{self.lock_path}: cannot probe the lock: {exc}") from exc
        finally:
            os.close(fd)
        return False

    def _read_info(self) -> LockInfo | None:
        try:
            text = self.lock_path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        except OSError as exc:
            raise StateError(f"{self.lock_path}: cannot read the lock file: {exc}") from exc
        try:
            return LockInfo.model_validate_json(text)
        except PydanticValidationError:
            return None

    def lock_info(self) -> LockInfo | None:
        """The current holder, or None when nobody holds the lock (stale records are ignored)."""
        deadline = time.monotonic() + _INFO_SETTLE_SECONDS
        while True:
            if not self._is_held():
                return None
            info = self._read_info()
            if info is not None:
                return info
            if time.monotonic() >= deadline:
                # Held, but the holder never wrote a readable record (e.g. an older or a
                # foreign process): report what we know rather than "not locked".
                return LockInfo(
                    id="unknown",
                    operation="unknown",
                    who="unknown",
                    host="unknown",
                    pid=0,
                    user="unknown",
                    created=_mtime(self.lock_path),
                    path=str(self.path),
                )
            # A new holder takes the flock first and writes its record just after.
            time.sleep(_POLL_SECONDS / 2)

    def force_unlock(self, lock_id: str) -> None:
        """Break the lock held by ``lock_id`` by removing the lock file.

        The holder, if it is in fact still alive, keeps its flock on the removed file and is
        no longer excluded: the next process locks a fresh file. Use it only when the holder
        is known to be gone or hung.

        Raises:
            StateError: the state is not locked, or ``lock_id`` is not the holder's id.
        """
        fd = self._held.pop(lock_id, None)
        if fd is not None:
            # Our own lock: releasing it is all "unlock" means.
            if _same_file(fd, self.lock_path):
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, 0)
            os.close(fd)
            return
        holder = self.lock_info()
        if holder is None:
            raise StateError(
                f"{self.lock_path}: the state is not locked; nothing to unlock (lock ID "
                f"{lock_id}). A lock is released automatically when its holder exits."
            )
        if holder.id != lock_id:
            raise StateError(
                f"{self.lock_path}: lock ID {lock_id} does not match the current holder's lock "
                f"ID {holder.id} ({holder.who}, pid {holder.pid}, operation {holder.operation}). "
                "Check 'reconciler state lock-info' and pass the current ID."
            )
        try:
            os.unlink(self.lock_path)
        except FileNotFoundError:
            pass  # released meanwhile: the goal is reached
        except OSError as exc:
            raise StateError(
                f"{self.lock_path}: cannot remove the lock file: {exc.strerror or exc}."
            ) from exc

    def close(self) -> None:
        """Release every lock this object still holds."""
        for fd in self._held.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._held.clear()


def _same_file(fd: int, path: Path) -> bool:
    """True when ``fd`` is the file currently at ``path`` (not a removed or replaced one)."""
    try:
        st_fd, st_path = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (st_fd.st_dev, st_fd.st_ino) == (st_path.st_dev, st_path.st_ino)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return time.time()


def _serial_text(serial: int | None) -> str:
    return "none: no state stored" if serial is None else str(serial)


def _locked_error(holder: LockInfo | None, lock_path: Path, timeout: float) -> StateLockedError:
    """The file backend's lock error (see :func:`locked_error`)."""
    note = (
        f", or if you are sure the holder is gone run: reconciler state unlock {holder.id}"
        if holder is not None
        else ""
    )
    return locked_error(holder, str(lock_path), timeout, note)
