"""FileStateBackend: round trip, on-disk format, compare-and-swap, lineage, corruption, crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from state_helpers import python_env, sample_state

from reconciler.engine.state_file import FileStateBackend, render_state
from reconciler.engine.state_model import Intent, State
from reconciler.errors import StateError


def test_missing_state_reads_as_none(tmp_path: Path) -> None:
    assert FileStateBackend(tmp_path / "nope" / "state.json").read() is None


def test_round_trip_and_format(tmp_path: Path) -> None:
    path = tmp_path / ".reconciler" / "state.json"
    backend = FileStateBackend(path)
    state = sample_state()
    state.intents["i1"] = Intent(
        id="i1",
        address="job.x",
        operation="create_job",
        fingerprint="f" * 64,
        lookup={"model": "open-mistral-7b"},
        created_at=1700000000.25,
    )
    stored = backend.write(state, None)
    assert stored.serial == 1
    assert backend.read() == stored
    assert backend.read().content_equal(state)  # type: ignore[union-attr]
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text == render_state(stored)
    # pretty and sorted: stable diffs when the state is kept in version control
    raw = json.loads(text)
    assert text == json.dumps(raw, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    assert "ünïcödé" in text
    assert raw["format_version"] == 1 and raw["lineage"] == state.lineage


def test_serial_increments_and_backup_keeps_previous(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    backend = FileStateBackend(path)
    first = backend.write(sample_state(1), None)
    assert not backend.backup_path.exists()
    second_in = first.model_copy(deep=True)
    second_in.resources.pop("job.dumbledore-v0")
    second = backend.write(second_in, first.serial)
    assert second.serial == 2 and second.lineage == first.lineage
    assert backend.read() == second
    backup = FileStateBackend(backend.backup_path)
    assert backup.read() == first
    third = backend.write(second, second.serial)
    assert third.serial == 3
    assert FileStateBackend(backend.backup_path).read() == second


@pytest.mark.parametrize(
    ("stored", "expected", "message"),
    [
        (None, 0, "serial none: no state stored, expected 0"),
        (1, None, "serial 1, expected none: no state stored"),
        (1, 0, "serial 1, expected 0"),
        (2, 1, "serial 2, expected 1"),
    ],
)
def test_compare_and_swap_conflict(
    tmp_path: Path, stored: int | None, expected: int | None, message: str
) -> None:
    backend = FileStateBackend(tmp_path / "state.json")
    state = State()
    current = None
    for _ in range(stored or 0):
        current = backend.write(state, None if current is None else current.serial)
    before = backend.path.read_bytes() if backend.path.exists() else None
    with pytest.raises(StateError) as info:
        backend.write(state, expected)
    text = str(info.value)
    assert f"state changed since it was read ({message})" in text
    assert "another process wrote it; re-run" in text
    assert str(backend.path) in text
    after = backend.path.read_bytes() if backend.path.exists() else None
    assert after == before  # nothing written


def test_two_writers_from_same_read_only_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    base = FileStateBackend(path).write(State(), None)
    a, b = FileStateBackend(path), FileStateBackend(path)
    a.write(sample_state(1).model_copy(update={"lineage": base.lineage}), base.serial)
    with pytest.raises(StateError, match="serial 2, expected 1"):
        b.write(sample_state(2).model_copy(update={"lineage": base.lineage}), base.serial)
    assert len(FileStateBackend(path).read().resources) == 2  # type: ignore[union-attr]


def test_other_lineage_is_refused(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "state.json")
    stored = backend.write(State(), None)
    other = State()
    assert other.lineage != stored.lineage
    with pytest.raises(StateError, match="lineage"):
        backend.write(other, stored.serial)
    assert backend.read() == stored


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"format_version": 1, "lineage": ', "state.json:1:34: state file is not valid JSON"),
        ("[1, 2]", "must hold a JSON object, found list"),
        ('{"format_version": 99, "lineage": "x"}', "format_version 99; it was written by a newer"),
        ('{"lineage": "x"}', "format_version None"),
        ('{"format_version": 1, "serial": "many"}', "serial: Input should be a valid integer"),
        ('{"format_version": 1, "surprise": 1}', "surprise: Extra inputs are not permitted"),
    ],
)
def test_corrupt_state_is_a_clear_error(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "state.json"
    path.write_text(content, encoding="utf-8")
    backend = FileStateBackend(path)
    with pytest.raises(StateError) as info:
        backend.read()
    assert expected in str(info.value)
    assert str(path) in str(info.value)
    with pytest.raises(StateError):  # and never overwritten blindly
        backend.write(State(), None)
    assert path.read_text(encoding="utf-8") == content


def test_corrupt_state_points_at_backup(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    backend = FileStateBackend(path)
    first = backend.write(State(), None)
    backend.write(first, first.serial)
    path.write_bytes(b'{"format_version": 1, "lin\xff')
    with pytest.raises(StateError) as info:
        backend.read()
    message = str(info.value)
    assert f"cp {backend.backup_path} {path}" in message
    # the advice works
    os.replace(backend.backup_path, path)
    assert backend.read() == first


def test_unreadable_state_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.mkdir()  # a directory where the file should be: reading fails with an OSError
    with pytest.raises(StateError, match="cannot read the state file"):
        FileStateBackend(path).read()


def test_keeps_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    backend = FileStateBackend(path)
    stored = backend.write(State(), None)
    assert path.stat().st_mode & 0o777 == 0o644
    path.chmod(0o600)
    backend.write(stored, stored.serial)
    assert path.stat().st_mode & 0o777 == 0o600
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from reconciler.engine.state_file import FileStateBackend
    from reconciler.engine.state_model import ResourceState

    backend = FileStateBackend(Path(sys.argv[1]))
    state = backend.read()
    while True:
        # Grow the state so a write takes long enough to be interrupted part-way.
        n = len(state.resources)
        for k in range(n, n + 50):
            state.resources[f"job.j{k}"] = ResourceState(
                address=f"job.j{k}", type="job", remote_id=str(k), fingerprint="f" * 64,
                attributes={"pad": "x" * 200},
            )
        state = backend.write(state, state.serial)
        print(state.serial, flush=True)
    """
)


def test_kill_during_write_loop_never_leaves_a_broken_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    FileStateBackend(path).write(State(), None)
    last_serial = 1
    for round_no in range(4):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER_SCRIPT, str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        assert proc.stdout is not None
        # Let it complete a varying number of writes, then kill it while it keeps writing.
        for _ in range(2 + 3 * round_no):
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else ""
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()  # type: ignore[union-attr]
        state = FileStateBackend(path).read()  # always complete, valid JSON
        assert state is not None
        assert state.serial > last_serial
        assert len(state.resources) == 50 * (state.serial - 1)
        last_serial = state.serial
        backup = FileStateBackend(tmp_path / "state.json.backup").read()
        assert backup is not None and backup.serial in (state.serial - 1, state.serial)


def test_store_exact_keeps_serial_and_lineage_with_cas(tmp_path: Path) -> None:
    backend = FileStateBackend(tmp_path / "state.json")
    existing = backend.write(State(), None)
    migrated = sample_state(1).model_copy(update={"serial": 41})
    with pytest.raises(StateError, match="serial 1, expected none"):
        backend.store_exact(migrated, None)
    stored = backend.store_exact(migrated, existing.serial)  # another lineage: allowed here
    assert stored.serial == 41 and stored.lineage == migrated.lineage
    assert backend.read() == stored
    assert FileStateBackend(backend.backup_path).read() == existing
    assert backend.write(stored, 41).serial == 42
