"""The test suite's ways of running the CLI: in-process, as forked processes, from a shell."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from pathlib import Path

from tests.cli_inprocess import process_state, run_cli, still_running, threads_started_here
from tests.cli_processes import CliProcesses
from tests.cli_relay import run_script


def test_process_state_is_restored(tmp_path: Path) -> None:
    before_cwd, before_env = os.getcwd(), dict(os.environ)
    with process_state(tmp_path, {"ONLY": "this"}):
        assert Path.cwd() == tmp_path
        assert dict(os.environ) == {"ONLY": "this"}
    assert os.getcwd() == before_cwd and dict(os.environ) == before_env


def test_threads_started_by_the_run_are_found_others_are_not() -> None:
    release = threading.Event()
    outside_started = threading.Event()
    outside: list[threading.Thread] = []

    def start_outside() -> None:
        # A thread started by a thread that existed before: a fixture's server, say.
        outside_started.wait()
        worker = threading.Thread(target=release.wait, name="fixture-worker")
        outside.append(worker)
        worker.start()

    fixture = threading.Thread(target=start_outside, name="fixture")
    fixture.start()
    try:
        with threads_started_here() as own:
            child = threading.Thread(
                target=lambda: threading.Thread(target=release.wait, name="grandchild").start(),
                name="child",
            )
            child.start()
            child.join()
            outside_started.set()
            fixture.join()
        assert [t.name for t in own] == ["child", "grandchild"]
        assert outside and outside[0] not in own
        assert still_running(own, grace=0.05) == ["grandchild"]
    finally:
        release.set()
    assert still_running(own) == []


def test_run_cli_reports_exit_code_and_separate_streams(tmp_path: Path) -> None:
    ok = run_cli(["--version"], cwd=tmp_path, env={})
    assert (ok.returncode, ok.stderr) == (0, "")
    assert ok.stdout.startswith("reconciler ")
    bad = run_cli(["validate", "missing-dir"], cwd=tmp_path, env={})
    assert bad.returncode == 1 and "missing-dir" in bad.stdout + bad.stderr


def test_cli_processes_run_each_command_in_its_own_process(
    tmp_path: Path, cli_processes: CliProcesses
) -> None:
    version = cli_processes.start(["--version"], cwd=tmp_path, env={})
    out, err = version.communicate(timeout=60)
    assert (version.returncode, err) == (0, "") and out.startswith("reconciler ")
    assert version.pid != os.getpid()
    # Its own working directory: the relative path is looked up there.
    (tmp_path / "specs").mkdir()
    missing = cli_processes.start(["validate", "specs/none.yaml"], cwd=tmp_path, env={})
    out, err = missing.communicate(timeout=60)
    assert missing.returncode == 1 and "none.yaml" in out + err


def test_a_killed_process_reports_sigkill(tmp_path: Path, cli_processes: CliProcesses) -> None:
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    server = cli_processes.start(
        ["sandbox", "--port", str(free), "--data-dir", str(tmp_path / "data")],
        cwd=tmp_path,
        env=dict(os.environ),
    )
    deadline = time.monotonic() + 60
    while not (tmp_path / "data").exists() and server.poll() is None:
        assert time.monotonic() < deadline, "the sandbox server did not start"
        time.sleep(0.01)
    assert server.poll() is None  # it serves until stopped
    server.kill()
    server.communicate(timeout=60)
    assert server.returncode == -signal.SIGKILL


def test_run_script_relays_reconciler_calls_with_the_shell_around_them(tmp_path: Path) -> None:
    script = (
        'reconciler --version > version.txt\nset +e\nreconciler validate nowhere\necho "exit=$?"\n'
    )
    result = run_script(script, cwd=tmp_path, env={"PATH": os.environ["PATH"]})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "version.txt").read_text().startswith("reconciler ")
    assert result.stdout.splitlines()[-1] == "exit=1"
    assert "nowhere" in result.stdout + result.stderr
