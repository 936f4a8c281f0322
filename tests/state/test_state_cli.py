"""``reconciler state list/show/rm/lock-info/unlock`` on state files built directly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from state_helpers import Holder, sample_state
from typer.testing import CliRunner

import reconciler.cli.commands  # noqa: F401 - registers the commands
from reconciler.cli.app import app
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import Intent, State

runner = CliRunner()


def make_state(path: Path) -> State:
    state = sample_state(2)
    state.intents["pending"] = Intent(
        id="pending",
        address="job.half-made",
        operation="create_job",
        fingerprint="c" * 64,
        created_at=1700000000.0,
    )
    return FileStateBackend(path).write(state, None)


@pytest.fixture
def state_path(tmp_path: Path) -> Path:
    path = tmp_path / "state.json"
    make_state(path)
    return path


def run(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_list_text(state_path: Path) -> None:
    code, out, err = run("state", "list", "--state", str(state_path))
    assert code == 0, err
    assert f"State: file {state_path}" in err
    lines = out.splitlines()
    assert lines[0].split() == ["ADDRESS", "TYPE", "REMOTE", "ID", "STATUS"]
    assert lines[1].split() == [
        "dataset.ultrachat[train]",
        "file",
        "5f3c1c3e-0000-4000-8000-000000000001",
        "uploaded",
    ]
    assert lines[2].split() == [
        "job.dumbledore-v0",
        "job",
        "9a1b2c3d-0000-4000-8000-000000000000",
        "SUCCESS",
    ]
    assert "1 unresolved create intent(s) (job.half-made create_job)" in out


@pytest.mark.parametrize(
    ("patterns", "expected"),
    [
        ([], ["dataset.ultrachat[train]", "job.dumbledore-v0", "job.dumbledore-v1"]),
        (["job.*"], ["job.dumbledore-v0", "job.dumbledore-v1"]),
        (["*v1", "dataset.*"], ["dataset.ultrachat[train]", "job.dumbledore-v1"]),
        (["nothing"], []),
    ],
)
def test_list_json_and_patterns(state_path: Path, patterns: list[str], expected: list[str]) -> None:
    code, out, err = run("state", "list", *patterns, "--state", str(state_path), "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["format_version"] == 1 and doc["serial"] == 1
    assert [r["address"] for r in doc["resources"]] == expected
    assert [i["id"] for i in doc["intents"]] == ["pending"]


def test_list_without_state(tmp_path: Path) -> None:
    code, out, _ = run("state", "list", "--state", str(tmp_path / "none.json"))
    assert code == 0 and "No state yet" in out


def test_show_text_and_json(state_path: Path) -> None:
    code, out, err = run("state", "show", "job.dumbledore-v1", "--state", str(state_path))
    assert code == 0, err
    assert "remote id:   9a1b2c3d-0000-4000-8000-000000000001" in out
    assert '"fine_tuned_model": "ft:open-mistral-7b:abc:1"' in out
    assert "- old-job replaced 1970-01-01T00:00:01+00:00 status=CANCELLED" in out
    code, out, err = run(
        "state", "show", "job.dumbledore-v1", "--state", str(state_path), "-f", "json"
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["resource"] == FileStateBackend(state_path).read().resources[  # type: ignore[union-attr]
        "job.dumbledore-v1"
    ].model_dump(mode="json")


def test_show_unknown_address_suggests(state_path: Path) -> None:
    code, out, err = run("state", "show", "job.dumbledore-v2", "--state", str(state_path))
    assert code == 1 and out == ""
    assert "job.dumbledore-v2: no such address in the state" in err
    assert "Did you mean job.dumbledore-v" in err
    assert "Traceback" not in err


def test_rm_forgets_and_bumps_serial(state_path: Path) -> None:
    code, out, err = run(
        "state", "rm", "job.dumbledore-v0", "job.half-made", "--state", str(state_path)
    )
    assert code == 0, err
    assert (
        "Removed job.dumbledore-v0 from the state (remote 9a1b2c3d-0000-4000-8000-000000000000 is untouched)"
        in out
    )
    assert "Removed job.half-made from the state (pending create forgotten)" in out
    after = FileStateBackend(state_path).read()
    assert after is not None and after.serial == 2
    assert sorted(after.resources) == ["dataset.ultrachat[train]", "job.dumbledore-v1"]
    assert after.intents == {}
    assert FileStateBackend(state_path).lock_info() is None  # lock released


def test_rm_unknown_changes_nothing(state_path: Path) -> None:
    before = state_path.read_bytes()
    code, _, err = run(
        "state", "rm", "job.dumbledore-v0", "job.x", "job.y", "--state", str(state_path)
    )
    assert code == 1
    assert "no such addresses in the state" in err and "job.x, job.y" in err
    assert state_path.read_bytes() == before


def test_rm_waits_for_lock_or_fails(state_path: Path, holder_factory: type[Holder]) -> None:
    holder = holder_factory(state_path, "apply")
    code, _, err = run("state", "rm", "job.dumbledore-v0", "--state", str(state_path))
    assert code == 1
    assert f"lock ID {holder.lock_id}" in err and "operation apply" in err
    code, _, err = run(
        "state", "rm", "job.dumbledore-v0", "--state", str(state_path), "--lock-timeout", "0.2s"
    )
    assert code == 1 and "after waiting 0.2s" in err
    holder.release()
    code, _, err = run(
        "state", "rm", "job.dumbledore-v0", "--state", str(state_path), "--lock-timeout", "1m"
    )
    assert code == 0, err


def test_mv_renames_the_record_and_its_pending_intents(state_path: Path) -> None:
    before = FileStateBackend(state_path).read()
    assert before is not None
    record = before.resources["job.dumbledore-v0"]
    code, out, err = run(
        "state", "mv", "job.dumbledore-v0", "job.dumbledore", "--state", str(state_path)
    )
    assert code == 0, err
    assert (
        f"Moved job.dumbledore-v0 to job.dumbledore (remote {record.remote_id} is untouched)."
        in out
    )
    after = FileStateBackend(state_path).read()
    assert after is not None and after.serial == before.serial + 1
    moved = after.resources["job.dumbledore"]
    assert "job.dumbledore-v0" not in after.resources
    assert moved.model_dump(exclude={"address"}) == record.model_dump(exclude={"address"})
    assert moved.address == "job.dumbledore"
    # An address with only a pending create cannot be moved (no record), but a record's
    # intents travel with it.
    code, _, err = run("state", "mv", "job.half-made", "job.made", "--state", str(state_path))
    assert code == 1 and "job.half-made: no such address in the state" in err
    assert FileStateBackend(state_path).lock_info() is None


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("job.dumbledore-v0", "job.dumbledore-v1", "job.dumbledore-v1: already recorded"),
        ("job.dumbledore-v0", "dataset.x[all]", "a move keeps the type"),
        ("job.dumbledore-v0", "model.x", "is not an address"),
    ],
    ids=["target taken", "other type", "not an address"],
)
def test_mv_refusals_change_nothing(
    state_path: Path, source: str, target: str, message: str
) -> None:
    before = state_path.read_bytes()
    code, _, err = run("state", "mv", source, target, "--state", str(state_path))
    assert code == 1 and message in err and "Traceback" not in err
    assert state_path.read_bytes() == before


def test_mv_takes_the_lock(state_path: Path, holder_factory: type[Holder]) -> None:
    holder = holder_factory(state_path, "apply")
    code, _, err = run("state", "mv", "job.dumbledore-v0", "job.d", "--state", str(state_path))
    assert code == 1 and f"lock ID {holder.lock_id}" in err
    holder.release()
    code, _, err = run("state", "mv", "job.dumbledore-v0", "job.d", "--state", str(state_path))
    assert code == 0, err


def test_bad_lock_timeout_is_a_usage_error(state_path: Path) -> None:
    code, _, err = run(
        "state", "rm", "job.x", "--state", str(state_path), "--lock-timeout", "5 min"
    )
    assert code == 2
    assert "invalid duration '5 min'" in err


def test_lock_info_and_unlock(state_path: Path, holder_factory: type[Holder]) -> None:
    code, out, _ = run("state", "lock-info", "--state", str(state_path))
    assert code == 0 and "not locked" in out
    holder = holder_factory(state_path, "apply")
    code, out, _ = run("state", "lock-info", "--state", str(state_path), "--format", "json")
    doc = json.loads(out)
    assert doc["locked"] is True and doc["lock"]["id"] == holder.lock_id
    assert doc["lock"]["pid"] == holder.pid and doc["lock"]["operation"] == "apply"

    code, _, err = run("state", "unlock", "wrong-id", "--state", str(state_path), "--yes")
    assert code == 1 and f"current holder's lock ID {holder.lock_id}" in err

    code, _, err = run("state", "unlock", holder.lock_id, "--state", str(state_path), input="n\n")
    assert code == 1 and "unlock cancelled" in err
    assert "Really unlock the state?" in err
    assert FileStateBackend(state_path).lock_info() is not None

    code, out, err = run("state", "unlock", holder.lock_id, "--state", str(state_path), input="y\n")
    assert code == 0, err
    assert f"Unlocked the state (lock ID {holder.lock_id})" in out
    assert FileStateBackend(state_path).lock_info() is None
    # and a write-capable command goes through, although the old holder still runs
    code, _, err = run("state", "rm", "job.dumbledore-v0", "--state", str(state_path))
    assert code == 0, err


def test_unlock_force_flag_and_not_locked(state_path: Path, holder_factory: type[Holder]) -> None:
    code, _, err = run("state", "unlock", "abc", "--state", str(state_path), "--force")
    assert code == 1 and "the state is not locked" in err and "nothing to unlock" in err
    holder = holder_factory(state_path)
    code, _, err = run("state", "unlock", holder.lock_id, "--state", str(state_path), "--force")
    assert code == 0, err


def test_corrupt_state_is_clean_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text("{oops", encoding="utf-8")
    code, _, err = run("state", "list", "--state", str(path))
    assert code == 1 and "state file is not valid JSON" in err and "Traceback" not in err


def test_paths_find_state_beside_specs(tmp_path: Path) -> None:
    specs = tmp_path / "specs"
    (specs / "data").mkdir(parents=True)
    (specs / "data" / "d.jsonl").write_text(
        '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n',
        encoding="utf-8",
    )
    (specs / "d.yaml").write_text("kind: Dataset\nname: d\npath: data/d.jsonl\n", encoding="utf-8")
    make_state(specs / ".reconciler" / "state.json")
    code, out, err = run("state", "list", "--path", str(specs))
    assert code == 0, err
    assert "embedded sandbox" in err
    assert "job.dumbledore-v1" in out
    code, out, err = run("state", "list", "-p", str(tmp_path / "missing"))
    assert code == 1 and "Traceback" not in err
