"""The in-process CLI runner's own guarantees: isolation restored, leaked threads found."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from tests.cli_inprocess import process_state, run_cli, still_running, threads_started_here


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
