"""State lock of the file backend, between real processes."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from state_helpers import Holder

from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import LockInfo
from reconciler.errors import StateError, StateLockedError


def test_lock_records_holder_and_release_clears_it(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / ".reconciler" / "state.json")
    assert backend.lock_info() is None
    with backend.lock("apply") as info:
        assert info.operation == "apply" and info.pid == os.getpid()
        assert info.path == str(backend.path)
        recorded = json.loads(backend.lock_path.read_text(encoding="utf-8"))
        assert recorded["id"] == info.id
        assert backend.lock_info() == info
        # a second backend object in this process is a different holder: excluded too
        with pytest.raises(StateLockedError):
            FileStateBackend(backend.path).acquire_lock("plan", 0)
    assert backend.lock_info() is None
    assert FileStateBackend(backend.path).lock_info() is None


def test_contention_fails_at_once_naming_holder(
    tmp_path: Path, holder_factory: type[Holder]
) -> None:
    path = tmp_path / "state.json"
    holder = holder_factory(path, "apply")
    backend = FileStateBackend(path)
    with pytest.raises(StateLockedError) as info:
        backend.acquire_lock("apply", 0)
    err = info.value
    message = str(err)
    assert f"pid {holder.pid}, operation apply" in message
    assert f"lock ID {holder.lock_id}" in message
    assert "--lock-timeout 5m" in message
    assert f"reconciler state unlock {holder.lock_id}" in message
    assert err.holder["id"] == holder.lock_id and err.holder["pid"] == holder.pid
    seen = backend.lock_info()
    assert seen is not None and seen.id == holder.lock_id and seen.operation == "apply"


def test_waits_with_timeout_then_gets_lock_after_release(
    tmp_path: Path, holder_factory: type[Holder]
) -> None:
    path = tmp_path / "state.json"
    holder = holder_factory(path)
    backend = FileStateBackend(path)
    got: list[LockInfo] = []
    errors: list[BaseException] = []

    def wait_for_lock() -> None:
        try:
            got.append(backend.acquire_lock("apply", 60))
        except BaseException as exc:  # reported below
            errors.append(exc)

    waiter = threading.Thread(target=wait_for_lock)
    waiter.start()
    # The waiter cannot have the lock while the holder lives.
    waiter.join(0.3)
    assert waiter.is_alive() and not got
    holder.release()
    waiter.join(30)
    assert not errors and len(got) == 1
    assert backend.lock_info() == got[0]
    backend.release_lock(got[0])


def test_timeout_expires_while_held(tmp_path: Path, holder_factory: type[Holder]) -> None:
    path = tmp_path / "state.json"
    holder = holder_factory(path)
    with pytest.raises(StateLockedError, match=r"after waiting 0\.3s"):
        FileStateBackend(path).acquire_lock("apply", 0.3)
    assert holder.proc.poll() is None


def test_kill_9_of_holder_releases_lock(tmp_path: Path, holder_factory: type[Holder]) -> None:
    path = tmp_path / "state.json"
    holder = holder_factory(path)
    backend = FileStateBackend(path)
    with pytest.raises(StateLockedError):
        backend.acquire_lock("apply", 0)
    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait(timeout=30)
    # The dead holder's record is still in the file, but it is not a lock any more.
    assert json.loads(backend.lock_path.read_text(encoding="utf-8"))["id"] == holder.lock_id
    assert backend.lock_info() is None
    info = backend.acquire_lock("apply", 0)
    assert info.pid == os.getpid()
    backend.release_lock(info)


def test_force_unlock_wrong_then_right_id(tmp_path: Path, holder_factory: type[Holder]) -> None:
    path = tmp_path / "state.json"
    holder = holder_factory(path)
    backend = FileStateBackend(path)
    with pytest.raises(StateError) as info:
        backend.force_unlock("not-the-id")
    assert not isinstance(info.value, StateLockedError)
    assert f"does not match the current holder's lock ID {holder.lock_id}" in str(info.value)
    assert backend.lock_info() is not None  # still locked
    backend.force_unlock(holder.lock_id)
    assert not backend.lock_path.exists()
    assert backend.lock_info() is None
    mine = backend.acquire_lock("apply", 0)  # a fresh lock file, although the holder lives
    assert holder.proc.poll() is None
    assert backend.lock_info() == mine
    # The old holder releasing later must not disturb the new holder's record.
    holder.release()
    assert backend.lock_info() == mine
    backend.release_lock(mine)


def test_force_unlock_when_not_locked(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "state.json")
    with pytest.raises(StateError, match="not locked; nothing to unlock"):
        backend.force_unlock("abc")


def test_force_unlock_own_lock(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "state.json")
    info = backend.acquire_lock("import", 0)
    backend.force_unlock(info.id)
    assert backend.lock_info() is None
    backend.release_lock(info)  # releasing again is harmless
    FileStateBackend(backend.path).release_lock(backend.acquire_lock("apply", 0))


def test_held_lock_without_record_is_reported_not_hidden(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl

    from reconciler.engine import state_file

    # How long a reader waits for a new holder's record; shortened to keep the test quick.
    monkeypatch.setattr(state_file, "_INFO_SETTLE_SECONDS", 0.2)
    backend = FileStateBackend(tmp_path / "state.json")
    fd = os.open(backend.lock_path, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        info = backend.lock_info()
        assert info is not None and info.id == "unknown"
        with pytest.raises(StateLockedError, match="lock ID unknown"):
            backend.acquire_lock("apply", 0)
    finally:
        os.close(fd)
    assert backend.lock_info() is None
