"""A throw-away local Ray head for the tests, on loopback and free ports.

One implementation for both callers: the ``ray_address`` fixture starts a head when the
environment gives none, and ``.ci/run`` starts one for the whole run with

    eval "$(python tests/train/rayhead.py start)"     # exports RECONCILER_TEST_RAY_*
    python tests/train/rayhead.py stop "$RECONCILER_TEST_RAY_PGID" "$RECONCILER_TEST_RAY_DIR"

The head runs as ``ray start --head --block`` in a process group of its own, so stopping it
ends exactly its processes (the group), never another Ray on the machine as ``ray stop``
would.

It declares two GPUs. Ray's GPUs are scheduling resources only: a job that asks for two is
given them (and ``CUDA_VISIBLE_DEVICES``) whether or not the machine has any, so a job of a
Provider with ``gpus: 2`` runs as on a GPU node — the trainer under torchrun, one process per
GPU — and the trainer, finding no CUDA device, trains on the CPU (gloo between the processes).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_TIMEOUT = 120.0
"""Seconds to wait for the dashboard to answer (a cold start on a busy 2-core box is slow)."""

_PROCESSES: dict[int, subprocess.Popen[bytes]] = {}
"""Heads started by this process, by process group: held so that the ``Popen`` outlives the
call that started it (dropping it while the head runs is a ResourceWarning), and reaped when
the head is stopped."""


@dataclass(frozen=True)
class Head:
    """A running head: its Jobs API address, process group and temporary directory."""

    address: str
    pgid: int
    temp_dir: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ray_executable() -> str | None:
    """The ``ray`` command beside this interpreter, or on PATH."""
    beside = Path(sys.executable).with_name("ray")
    if beside.exists():
        return str(beside)
    return shutil.which("ray")


def start_head(num_cpus: int = 2, num_gpus: int = 2) -> Head:
    """Start a head with these logical CPUs and GPUs; raises RuntimeError with the reason
    when it does not come up."""
    ray = ray_executable()
    if ray is None:
        raise RuntimeError(
            "the ray command is not installed (pip install 'finetune-reconciler[ray]')"
        )
    # Ray's socket paths must stay short: a short directory name under the system temp dir.
    temp_dir = tempfile.mkdtemp(prefix="rt-")
    dashboard_port = _free_port()
    command = [
        ray, "start", "--head", "--block", "--disable-usage-stats",
        f"--num-cpus={num_cpus}", f"--num-gpus={num_gpus}",
        "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1",
        "--include-dashboard=true",  # the Jobs API is served by the dashboard
        "--include-log-monitor=false",  # job logs are read from files; no driver to stream to
        f"--port={_free_port()}", f"--dashboard-port={dashboard_port}",
        f"--ray-client-server-port={_free_port()}",
        f"--dashboard-agent-listen-port={_free_port()}",
        f"--temp-dir={temp_dir}",
    ]  # fmt: skip
    log = open(Path(temp_dir) / "head.log", "wb")  # noqa: SIM115 - the head outlives this call
    # Without this, Ray replaces 127.0.0.1 by the machine's address: everything stays on
    # loopback with it (Ray's single-machine mode).
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env,
    )  # fmt: skip
    log.close()
    _PROCESSES[process.pid] = process
    head = Head(f"http://127.0.0.1:{dashboard_port}", process.pid, temp_dir)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (Path(temp_dir) / "head.log").read_text(errors="replace")[-2000:]
            stop_head(head)
            raise RuntimeError(f"ray start exited with {process.returncode}: {tail}")
        try:
            if httpx.get(f"{head.address}/api/version", timeout=2).status_code == 200:
                return head
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop_head(head)
    raise RuntimeError(f"the Ray dashboard did not answer within {START_TIMEOUT:.0f}s")


def _group_alive(pgid: int) -> bool:
    try:  # reap the group leader when it is our child: a zombie still counts as a member
        os.waitpid(pgid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_head(head: Head, grace: float = 2.0) -> None:
    """End the head's process group (TERM, then KILL after ``grace`` seconds)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(head.pgid):
            break
        os.killpg(head.pgid, sig)
        deadline = time.monotonic() + grace
        while _group_alive(head.pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
    process = _PROCESSES.pop(head.pgid, None)
    if process is not None:
        process.wait()
    shutil.rmtree(head.temp_dir, ignore_errors=True)


def main(argv: list[str]) -> int:
    """``start`` prints shell exports; ``stop PGID DIR`` ends that head."""
    if argv[:1] == ["start"]:
        try:
            head = start_head()
        except RuntimeError as exc:
            print(f"ray head did not start: {exc}", file=sys.stderr)
            return 1
        for name, value in (
            ("RECONCILER_TEST_RAY_ADDRESS", head.address),
            ("RECONCILER_TEST_RAY_PGID", str(head.pgid)),
            ("RECONCILER_TEST_RAY_DIR", head.temp_dir),
        ):
            print(f"export {name}={shlex.quote(value)}")
        return 0
    if argv[:1] == ["stop"] and len(argv) == 3:
        stop_head(Head("", int(argv[1]), argv[2]))
        return 0
    print("usage: rayhead.py start | stop PGID DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
