"""``reconciler`` commands as real child processes that start in milliseconds.

The tests that need real processes — killed with SIGKILL in the middle of an apply, or
several applies at once competing for the state lock — would each pay for an interpreter
start that imports the whole package again. :class:`CliProcesses` pays it once: it starts
one helper interpreter that imports the command line and its modules, and then forks a
child from it for every command. Each child is an ordinary process with its own pid, its
own working directory and environment, stdout and stderr in files and stdin empty; it runs
the console script's entry point (:func:`reconciler.cli.app.main`) and exits with its exit
code. Killing it kills exactly that command, as with a child started from scratch.

The helper forks while it has no other threads (nothing runs in it between requests), and
it reaps its children, so it reports their exit status as ``subprocess`` does (``-9`` for
SIGKILL).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tests.fast_polls import POLLS

PRELOAD = (
    "reconciler.cli.commands",
    "reconciler.operations",
    "reconciler.workspace",
    "reconciler.client.api",
    "reconciler.engine.executor",
    "reconciler.engine.planner",
    "reconciler.engine.state_file",
    "reconciler.engine.state_postgres",
    "reconciler.render.plan",
    "reconciler.data.prepare",
    "reconciler.engine.backends",
    "reconciler.providers.mistral",
    "reconciler.providers.openai",
    "reconciler.sandbox.server",  # the embedded sandbox: FastAPI, uvicorn
    "httpcore",  # imported by httpx when its first client is made
)
"""Modules the helper imports before forking (what an apply imports; missing ones are
skipped, so a renamed module only costs its children the import)."""

HELPER = r"""
import importlib, json, os, sys, traceback

for name in sys.argv[2:]:
    try:
        importlib.import_module(name)
    except ImportError:
        pass
for target, value in json.loads(sys.argv[1]).items():
    module, _, attribute = target.partition(":")
    setattr(importlib.import_module(module), attribute, value)
from reconciler.cli.app import main

try:  # one TLS context, built before forking, for every child's HTTP clients
    from tests.tls_context import share_default_context
except ImportError:
    pass
else:
    if share_default_context():
        importlib.import_module("httpx._transports.default").create_ssl_context()

def child(request):
    replies.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = ["reconciler", *request["args"]]
    stdin = os.open(os.devnull, os.O_RDONLY)
    out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for fd, target in ((stdin, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdin = open(0, closefd=False)  # not the helper's read-ahead of its requests
    code = 0
    try:
        main(list(request["args"]))
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"): the interpreter prints it and exits 1
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)

def status(pid, flags):
    done, raw = os.waitpid(pid, flags)
    if done == 0:
        return None
    return -os.WTERMSIG(raw) if os.WIFSIGNALED(raw) else os.WEXITSTATUS(raw)

replies = os.fdopen(os.dup(1), "w")
print("READY", file=replies, flush=True)
for line in sys.stdin:
    request = json.loads(line)
    if request["op"] == "start":
        pid = os.fork()
        if pid == 0:
            child(request)
        answer = {"pid": pid}
    elif request["op"] == "poll":
        answer = {"code": status(request["pid"], os.WNOHANG)}
    else:
        answer = {"code": status(request["pid"], 0)}
    print(json.dumps(answer), file=replies, flush=True)
"""


class CliProcess:
    """One ``reconciler`` command running in its own process (see :class:`CliProcesses`)."""

    def __init__(self, helper: CliProcesses, pid: int, stdout: Path, stderr: Path) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._helper = helper
        self._stdout = stdout
        self._stderr = stderr

    def poll(self) -> int | None:
        """The exit code once the process has ended, else ``None``."""
        if self.returncode is None:
            self.returncode = self._helper.request({"op": "poll", "pid": self.pid})["code"]
        return self.returncode

    def kill(self) -> None:
        """SIGKILL the process (if it is still running)."""
        if self.poll() is None:
            os.kill(self.pid, signal.SIGKILL)

    def stdout_so_far(self) -> str:
        """What the process has written to stdout until now (it may still be running; right
        after the fork, its output file may not exist yet)."""
        try:
            return self._stdout.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def communicate(self, timeout: float = 300) -> tuple[str, str]:
        """Wait for the end (killing it after ``timeout`` s); its (stdout, stderr)."""
        deadline = time.monotonic() + timeout
        pause = 0.005  # most commands end within a few looks; a long one is looked at 10/s
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 1.5, 0.1)
        if self.returncode is None:
            os.kill(self.pid, signal.SIGKILL)
            self.returncode = self._helper.request({"op": "wait", "pid": self.pid})["code"]
            raise subprocess.TimeoutExpired(["reconciler"], timeout)
        return (
            self._stdout.read_text(encoding="utf-8", errors="replace"),
            self._stderr.read_text(encoding="utf-8", errors="replace"),
        )


class CliProcesses:
    """Starts ``reconciler`` commands as child processes of a pre-imported helper.

    Use as a context manager; leaving it kills whatever is still running and ends the helper.

    Args:
        env: the helper's environment (where it imports the package from:
            ``PYTHONPATH``); each command gets its own environment in :meth:`start`.
        settings: module attributes the helper sets before forking, as
            ``{"package.module:NAME": value}`` (JSON values).
    """

    def __init__(self, env: Mapping[str, str], settings: Mapping[str, Any] | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="cli-processes-")
        self._count = 0
        self._started: list[CliProcess] = []
        self._errors = Path(self._tmp.name) / "helper.err"
        with self._errors.open("w") as errors:
            self._helper = subprocess.Popen(
                [sys.executable, "-c", HELPER, json.dumps(dict(settings or {})), *PRELOAD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=errors,
                env=dict(env),
                cwd=Path(__file__).resolve().parent.parent,  # `tests` importable (the TLS context)
                text=True,
            )
        self._ready = False  # the helper imports in the background until the first request

    def start(self, args: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> CliProcess:
        """Start ``reconciler ARGS`` in ``cwd`` with exactly the environment ``env``."""
        self._count += 1
        out = Path(self._tmp.name) / f"{self._count}.out"
        err = Path(self._tmp.name) / f"{self._count}.err"
        request = {
            "op": "start",
            "args": list(args),
            "cwd": str(cwd),
            "env": dict(env),
            "stdout": str(out),
            "stderr": str(err),
        }
        process = CliProcess(self, self.request(request)["pid"], out, err)
        self._started.append(process)
        return process

    def request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request to the helper and return its answer."""
        if not self._ready:
            ready = self._read()
            if ready != "READY":
                errors = self._errors.read_text(encoding="utf-8", errors="replace")
                raise RuntimeError(f"the process helper did not start: {ready!r}\n{errors}")
            self._ready = True
        assert self._helper.stdin is not None
        self._helper.stdin.write(json.dumps(request) + "\n")
        self._helper.stdin.flush()
        answer: dict[str, Any] = json.loads(self._read())
        return answer

    def _read(self) -> str:
        assert self._helper.stdout is not None
        return self._helper.stdout.readline().strip()

    def close(self) -> None:
        """Kill and reap every command still running, end the helper, remove the files."""
        if self._helper.poll() is None:
            for process in self._started:
                if process.returncode is None:
                    process.kill()
                    process.returncode = self.request({"op": "wait", "pid": process.pid})["code"]
            assert self._helper.stdin is not None
            self._helper.stdin.close()
            self._helper.wait(timeout=30)
        if self._helper.stdout is not None:
            self._helper.stdout.close()
        self._tmp.cleanup()

    def __enter__(self) -> CliProcesses:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


_shared: CliProcesses | None = None


def shared(env: Mapping[str, str]) -> CliProcesses:
    """The helper of this test process, started at its first use (with ``env``, where it
    imports the package from, and the suite's poll intervals: :data:`tests.fast_polls.POLLS`)
    and ended by :func:`close_shared`; the ``cli_processes`` fixture is this one."""
    global _shared
    if _shared is None:
        _shared = CliProcesses(env, settings=POLLS)
    return _shared


def close_shared() -> None:
    """End the helper :func:`shared` started, if it did (the suite does at its end)."""
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None
