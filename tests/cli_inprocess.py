"""Running the ``reconciler`` command inside the test process, isolated like a subprocess.

:func:`run_cli` calls the console script's own entry point (:func:`reconciler.cli.app.main`,
so command loading and the top-level error handling are the real ones) with:

* the working directory, ``os.environ`` and ``sys.argv`` of the given "process" — replaced
  for the run and restored after it (the command reads all three);
* stdin empty and not a terminal, stdout and stderr captured separately (click's
  :class:`~click.testing.CliRunner` isolation), as with ``stdin=DEVNULL`` and pipes;
* the exit code taken from the ``SystemExit`` the entry point ends with; an exception that
  escapes the entry point is printed to stderr as a traceback and gives exit code 1, as the
  interpreter does for a child process.

Afterwards it checks that the command left nothing running: every thread it started, directly
or through threads it started (the embedded sandbox's server and its workers, the executor's
pool), has ended. Threads of servers the test itself runs (a sandbox fixture answering the
command's requests) are not the command's and are left alone. A command that leaks a thread
fails the test that ran it, naming the thread.

Only one in-process run at a time: the working directory and the environment belong to the
whole process, so concurrent runs are refused rather than silently mixed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from typer.testing import CliRunner

LEAK_GRACE = 5.0
"""Seconds a thread the command started may take to finish after the command returned
(a stopped server's thread ends a few milliseconds later)."""

_one_at_a_time = threading.Lock()


@contextmanager
def process_state(cwd: Path, env: Mapping[str, str], argv0: str = "reconciler") -> Iterator[None]:
    """Make ``cwd``, ``env`` (the whole environment) and ``[argv0]`` the process's; restore."""
    saved_cwd, saved_env, saved_argv = os.getcwd(), dict(os.environ), sys.argv
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = [argv0]
    try:
        yield
    finally:
        sys.argv = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)
        os.chdir(saved_cwd)


def _exit_code(code: object) -> int:
    """The process exit status ``sys.exit(code)`` gives (printing a message, as it does)."""
    if code is None or isinstance(code, int):
        return code or 0
    print(code, file=sys.stderr)  # sys.exit("message"): printed, exit status 1
    return 1


@contextmanager
def threads_started_here() -> Iterator[list[threading.Thread]]:
    """Collects the threads started by the current thread and, transitively, by those."""
    runner = threading.current_thread()
    own: list[threading.Thread] = []
    original = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        starter = threading.current_thread()
        if starter is runner or starter in own:
            own.append(thread)
        original(thread)

    threading.Thread.start = start  # type: ignore[method-assign]
    try:
        yield own
    finally:
        threading.Thread.start = original  # type: ignore[method-assign]


def still_running(threads: list[threading.Thread], grace: float = LEAK_GRACE) -> list[str]:
    """Names of ``threads`` still alive after waiting up to ``grace`` seconds for them."""
    deadline = time.monotonic() + grace
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    return sorted(t.name for t in threads if t.is_alive())


def run_cli(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``reconciler ARGS`` in this process as if in a child process; see the module doc."""
    from reconciler.cli.app import main

    if not _one_at_a_time.acquire(blocking=False):
        raise RuntimeError("run_cli: another in-process run is active (one at a time)")
    try:
        runner = CliRunner()
        with (
            threads_started_here() as started,
            process_state(cwd, env),
            runner.isolation() as (out, err, _),
        ):
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = _exit_code(exc.code)
            except Exception:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            stdout = out.getvalue().decode("utf-8", errors="replace")
            stderr = err.getvalue().decode("utf-8", errors="replace")
        leaked = still_running(started)
        assert not leaked, f"reconciler {' '.join(args)} left threads running: {leaked}"
        return subprocess.CompletedProcess(["reconciler", *args], code, stdout, stderr)
    finally:
        _one_at_a_time.release()
