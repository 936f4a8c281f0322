"""FileStateBackend on hostile or broken input: deep, huge or special files, leftovers of
killed writers, and secrets that must never be written."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from state_helpers import Holder, sample_state, state_echoing_a_secret

from reconciler.engine.state_file import MAX_STATE_BYTES, FileStateBackend
from reconciler.engine.state_model import State
from reconciler.errors import StateError


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_a_state_nested_100k_deep_is_a_clean_error(tmp_path: Path, opener: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(opener * 100_000, encoding="utf-8")
    with pytest.raises(StateError) as info:
        FileStateBackend(path).read()
    assert str(path) in str(info.value) and "nests too deeply" in str(info.value)


def test_deep_nesting_inside_a_valid_state_is_a_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    stored = FileStateBackend(path).write(sample_state(1), None)
    text = path.read_text(encoding="utf-8")
    # Free-form attributes are the one place a state takes arbitrary JSON.
    deep = '{"pad": ' + "[" * 50_000 + "]" * 50_000 + ","
    path.write_text(text.replace('"attributes": {', '"attributes": ' + deep, 1), encoding="utf-8")
    assert stored.serial == 1
    with pytest.raises(StateError, match="nests too deeply|not a valid state"):
        FileStateBackend(path).read()


def test_a_huge_state_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    with open(path, "wb") as handle:
        handle.truncate(MAX_STATE_BYTES + 1)  # sparse: no disk used, no memory either
    with pytest.raises(StateError) as info:
        FileStateBackend(path).read()
    assert str(path) in str(info.value) and "over the limit" in str(info.value)


def test_a_fifo_as_state_is_refused_not_waited_on(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    os.mkfifo(path)
    done: list[BaseException] = []

    def read() -> None:
        try:
            FileStateBackend(path).read()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            done.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    if reader.is_alive():  # unblock it so the test run can end, then fail
        with open(path, "w", encoding="utf-8"):
            pass
        pytest.fail("reading a FIFO as the state blocked")
    assert len(done) == 1 and isinstance(done[0], StateError)
    assert "not a regular file" in str(done[0])


def _leftover(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text('{"half": ', encoding="utf-8")
    return path


def test_temp_files_left_by_a_killed_writer_are_removed_at_the_next_write(
    tmp_path: Path,
) -> None:
    backend = FileStateBackend(tmp_path / "state.json")
    stored = backend.write(State(), None)
    ours = [
        _leftover(tmp_path, ".state.json.k9x_2ab1.tmp"),
        _leftover(tmp_path, ".state.json.backup.0a1b2c3d.tmp"),
    ]
    others = [
        _leftover(tmp_path, ".other.json.k9x_2ab1.tmp"),  # another file's
        _leftover(tmp_path, ".state.json.too-long-name.tmp"),  # not a mkstemp name
        _leftover(tmp_path, "state.json.k9x_2ab1.tmp"),
    ]
    link = tmp_path / ".state.json.linkxxxx.tmp"
    link.symlink_to(others[0])  # a link is never ours to remove
    backend.write(stored, stored.serial)
    assert not any(p.exists() for p in ours)
    assert all(p.exists() for p in others) and link.is_symlink()


def test_temp_files_are_removed_when_the_next_run_takes_the_lock(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "state.json")
    backend.write(State(), None)
    stale = _leftover(tmp_path, ".state.json.abcd1234.tmp")
    info = backend.acquire_lock("plan", 0)
    try:
        assert not stale.exists()
    finally:
        backend.release_lock(info)


def test_a_concurrent_writers_temp_file_is_left_alone(
    tmp_path: Path, holder_factory: type[Holder]
) -> None:
    import fcntl

    FileStateBackend(tmp_path / "state.json").write(State(), None)
    # Another writer between creating its temp file and renaming it: it holds the directory
    # lock for that whole time, as every writer does.
    temp = _leftover(tmp_path, ".state.json.inflig_1.tmp")
    fd = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    holders: list[Holder] = []
    try:
        # The next run takes the state lock; its cleanup has to wait for the directory lock.
        starter = threading.Thread(
            target=lambda: holders.append(holder_factory(tmp_path / "state.json"))
        )
        starter.start()
        time.sleep(1.0)
        assert temp.exists(), "removed while its writer was still writing"
        temp.unlink()  # the writer renames its file and is done...
    finally:
        os.close(fd)  # ...and releases the directory lock
    starter.join(timeout=60)
    assert len(holders) == 1
    holders[0].release()


def test_registered_secrets_are_never_written_into_the_state(tmp_path: Path) -> None:
    with state_echoing_a_secret() as (state, key):
        path = tmp_path / "state.json"
        FileStateBackend(path).write(state, None)
        text = path.read_text(encoding="utf-8")
        assert key not in text and "bad key ***" in text
