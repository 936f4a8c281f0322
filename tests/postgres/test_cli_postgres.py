"""``reconciler state lock-info`` / ``unlock`` / ``list`` on a postgres-backed project."""

from __future__ import annotations

import json
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
from pg_helpers import Holder, postgres_state_yaml, python_env, sample_state, unique_workspace
from psycopg import conninfo

from reconciler.engine.state_postgres import PostgresStateBackend
from tests.cli_inprocess import run_cli


def _project(tmp_path: Path, workspace: str) -> Path:
    specs = tmp_path / "specs"
    specs.mkdir()
    (specs / "provider.yaml").write_text(
        "kind: Provider\nname: team\ntype: sandbox\n"
        + postgres_state_yaml(workspace, "TEAM_PG_DSN"),
        encoding="utf-8",
    )
    return specs


def _run(cwd: Path, dsn: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = run_cli(["state", *args], cwd=cwd, env=python_env({"TEAM_PG_DSN": dsn}))
    if "No such command" in result.stderr:
        pytest.skip("the `state` command group is not registered")
    assert "Traceback" not in result.stderr, result.stderr
    return result


def test_lock_info_and_unlock_through_the_cli(
    tmp_path: Path, pg_dsn: str, holders: type[Holder]
) -> None:
    workspace = unique_workspace()
    _project(tmp_path, workspace)
    with closing(PostgresStateBackend(pg_dsn, workspace)) as backend:
        backend.write(sample_state(), None)

    result = _run(tmp_path, pg_dsn, "lock-info", "-p", "specs", "--format", "json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["locked"] is False

    holder = holders(pg_dsn, workspace, "apply")
    result = _run(tmp_path, pg_dsn, "lock-info", "-p", "specs", "--format", "json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["locked"] is True
    lock = document["lock"]
    assert (lock["id"], lock["pid"], lock["operation"]) == (holder.lock_id, holder.pid, "apply")
    assert lock["path"] == f"postgres:{workspace}"

    result = _run(tmp_path, pg_dsn, "rm", "job.dumbledore-v0", "-p", "specs")
    assert result.returncode == 1
    assert holder.lock_id in result.stderr and f"pid {holder.pid}" in result.stderr

    result = _run(tmp_path, pg_dsn, "unlock", holder.lock_id, "-p", "specs", "--yes")
    assert result.returncode == 0, result.stderr
    assert "Unlocked" in result.stdout
    answer = holder.send("write")
    assert "lost the state lock" in answer, answer

    result = _run(tmp_path, pg_dsn, "list", "-p", "specs")
    assert result.returncode == 0, result.stderr
    assert "job.dumbledore-v0" in result.stdout
    password = conninfo.conninfo_to_dict(pg_dsn).get("password")
    if password:
        assert str(password) not in result.stdout + result.stderr


def test_state_mv_on_the_postgres_backend(
    tmp_path: Path, pg_dsn: str, holders: type[Holder]
) -> None:
    workspace = unique_workspace()
    _project(tmp_path, workspace)
    with closing(PostgresStateBackend(pg_dsn, workspace)) as backend:
        stored = backend.write(sample_state(), None)
    remote_id = stored.resources["job.dumbledore-v0"].remote_id

    holder = holders(pg_dsn, workspace, "apply")
    result = _run(tmp_path, pg_dsn, "mv", "job.dumbledore-v0", "job.dumbledore", "-p", "specs")
    assert result.returncode == 1 and holder.lock_id in result.stderr
    holder.release()

    result = _run(tmp_path, pg_dsn, "mv", "job.dumbledore-v0", "job.dumbledore", "-p", "specs")
    assert result.returncode == 0, result.stderr
    assert f"remote {remote_id} is untouched" in result.stdout
    with closing(PostgresStateBackend(pg_dsn, workspace)) as backend:
        after = backend.read()
    assert after is not None and after.serial == stored.serial + 1
    assert after.resources["job.dumbledore"].remote_id == remote_id
    assert "job.dumbledore-v0" not in after.resources
