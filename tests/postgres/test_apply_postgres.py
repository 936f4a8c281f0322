"""Applies from several processes sharing one postgres state, against a real sandbox.

The same checks as the file backend's reliability harness: whatever the interleaving or a
SIGKILL, the sandbox ends with exactly one file per dataset and one job per spec.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from pg_helpers import postgres_state_yaml, unique_workspace

from reconciler.engine.state_postgres import PostgresStateBackend
from tests.cli_processes import CliProcess, CliProcesses

pytest.importorskip("reconciler.sandbox.server")
harness = pytest.importorskip("tests.engine.harness")
engine_conftest = pytest.importorskip("tests.engine.conftest")
project = pytest.importorskip("tests.engine.project")

# These start several CLI processes each, like the file backend's reliability harness.
pytestmark = pytest.mark.slow

N_DATASETS, N_JOBS = 1, 2


def _project(tmp_path: Path, pg_dsn: str, sandbox: Any) -> tuple[Any, PostgresStateBackend]:
    workspace = unique_workspace("apply")
    root = project.make_project(
        tmp_path / "project",
        endpoint=sandbox.base_url,
        n_datasets=N_DATASETS,
        n_jobs=N_JOBS,
        state_yaml=postgres_state_yaml(workspace, "TEAM_PG_DSN"),
    )
    cli = engine_conftest.Cli(cwd=root, env=engine_conftest.cli_env(TEAM_PG_DSN=pg_dsn))
    return cli, PostgresStateBackend(pg_dsn, workspace)


@pytest.fixture
def sandbox(tmp_path: Path) -> Any:
    sb = harness._sandbox(tmp_path / "sandbox")
    yield sb
    sb.stop()


def _start(children: CliProcesses, cli: Any, *args: str) -> CliProcess:
    return children.start(args, cwd=cli.cwd, env=cli.env)


def _finished(proc: CliProcess) -> tuple[int | None, str, str]:
    """(exit code, stdout, stderr) of a child once it has ended."""
    out, err = proc.communicate(timeout=300)
    return proc.returncode, out, err


def _exact(sandbox: Any, label: str) -> None:
    report = harness.HarnessReport()
    harness.check_exact(sandbox.base_url, N_DATASETS, N_JOBS, report, label)
    assert report.ok, (report.duplicates, report.missing)


def test_concurrent_applies_one_proceeds_others_name_the_holder(
    tmp_path: Path, pg_dsn: str, sandbox: Any, cli_processes: CliProcesses
) -> None:
    cli, backend = _project(tmp_path, pg_dsn, sandbox)
    procs = [_start(cli_processes, cli, "apply", "--yes", "--lock-timeout", "0s") for _ in range(3)]
    results = [_finished(p) for p in procs]
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0, results
    for code, _, err in results:
        assert "Traceback" not in err
        if code != 0:
            assert "locked" in err and "pid" in err and "lock ID" in err, err
    # The run that got the lock finished the whole apply: nothing is left to converge.
    _exact(sandbox, "concurrent")
    state = backend.read()
    assert state is not None and not state.intents
    assert {a for a in state.resources if a.startswith("job.")} == {
        f"job.job{j}" for j in range(N_JOBS)
    }
    backend.close()


def test_concurrent_applies_with_lock_timeout_all_succeed(
    tmp_path: Path, pg_dsn: str, sandbox: Any, cli_processes: CliProcesses
) -> None:
    cli, backend = _project(tmp_path, pg_dsn, sandbox)
    procs = [_start(cli_processes, cli, "apply", "--yes", "--lock-timeout", "2m") for _ in range(2)]
    results = [_finished(p) for p in procs]
    assert [code for code, _, _ in results] == [0, 0], results
    _exact(sandbox, "lock-timeout")
    assert backend.lock_info() is None
    # A saved plan is refused once another writer moved the serial on, as on the file backend.
    cli.run("plan", "--out", "saved.plan", check=0)
    state = backend.read()
    assert state is not None
    backend.write(state, state.serial)
    proc = cli.run("apply", "saved.plan", "--yes", check=1)
    assert f"serial {state.serial} then, {state.serial + 1} now" in proc.stderr, proc.stderr
    _exact(sandbox, "stale plan")
    backend.close()


def test_apply_killed_while_holding_the_lock_is_recovered(
    tmp_path: Path, pg_dsn: str, sandbox: Any, cli_processes: CliProcesses
) -> None:
    cli, backend = _project(tmp_path, pg_dsn, sandbox)
    proc = _start(cli_processes, cli, "apply", "--yes")
    # Kill it once it holds the lock and has begun writing the state (or when it is done).
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if backend.lock_info() is not None and backend.read() is not None:
            break
        time.sleep(0.02)
    proc.kill()
    proc.communicate(timeout=60)
    # The dead runner's connection is gone, so its lock is too; the next apply converges.
    assert harness.converge(cli) >= 1
    _exact(sandbox, "after kill -9")
    state = backend.read()
    assert state is not None and not state.intents
    assert backend.lock_info() is None
    backend.close()
