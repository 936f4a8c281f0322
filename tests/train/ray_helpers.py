"""Helpers of the Ray provider tests: spec projects, the jobs a test made, a holding proxy.

Every test names its jobs uniquely (:func:`unique_name`): the Ray head is shared by the whole
test run, and a job's submission id follows from its address and request, so two tests with
the same spec would otherwise find each other's jobs (by design: it would be the same job).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from reconciler.providers.base import IDENTITY_ADDRESS_KEY
from reconciler.ray import RayJob, RayJobsClient
from tests.cli_processes import shared as shared_processes

POLL = 0.2
"""Seconds between the tests' looks at a Ray job (the Jobs client waits 1 s by default)."""


def poll_until(
    condition: Callable[[], bool], timeout: float, why: Callable[[], object] = lambda: ""
) -> None:
    """Look at ``condition`` every :data:`POLL` seconds until it holds; fail with ``why()``
    (what the job says, say) when it still does not after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, why()
        time.sleep(POLL)


STUB = Path(__file__).with_name("ray_stub_trainer.py")
"""The stand-in trainer (see ray_stub_trainer.py)."""

STUB_PYTHON = f"{sys.executable} {STUB}"
"""A Provider ``python`` that runs the stub instead of ``-m reconciler.train``."""


@dataclass(frozen=True)
class Cli:
    """Runs ``python -m reconciler`` as a child process in a spec directory (a process of its
    own, so that it can be killed with SIGKILL like a CI job).

    ``storage``: a storage directory outside the spec directory that the operator allows
    (``RECONCILER_ALLOWED_PATHS``), as a cluster's shared storage is allowed.
    """

    cwd: Path
    storage: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        # The test run's settings (RECONCILER_TEST_*) are not the command's.
        env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
        if self.storage is not None:
            env["RECONCILER_ALLOWED_PATHS"] = str(self.storage)
        return env

    def run(
        self, *args: str, timeout: float = 180, check: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``reconciler ARGS``; ``check``: the exit status it must end with.

        The process is forked from the suite's pre-imported helper (tests/cli_processes.py):
        a process of its own with exactly :attr:`env`, without an interpreter's start-up.
        """
        child = shared_processes(os.environ).start(list(args), cwd=self.cwd, env=self.env)
        stdout, stderr = child.communicate(timeout=timeout)
        assert child.returncode is not None
        proc = subprocess.CompletedProcess(["reconciler", *args], child.returncode, stdout, stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """``reconciler ARGS`` started, not waited for."""
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )


def unique_name(prefix: str) -> str:
    """A job name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def job_env(repo_root: Path, **extra: str) -> dict[str, str]:
    """Environment variables of the tests' Ray jobs: the code under test, no hub access, and
    the suite's one torch thread per process (tests/conftest.py)."""
    env = {"PYTHONPATH": str(repo_root), "HF_HUB_OFFLINE": "1"}
    return {**env, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), **extra}


def ray_jobs_of(ray_address: str, job_address: str) -> list[RayJob]:
    """The Ray jobs whose metadata names ``job_address`` (e.g. ``job.tone-1a2b3c4d``)."""
    with RayJobsClient(ray_address) as client:
        return [
            j for j in client.list_jobs() if j.metadata.get(IDENTITY_ADDRESS_KEY) == job_address
        ]


def stop_jobs(ray_address: str, job_addresses: list[str]) -> None:
    """Stop the jobs of these addresses that still run (a test's clean-up)."""
    with RayJobsClient(ray_address) as client:
        for job in client.list_jobs():
            if job.metadata.get(IDENTITY_ADDRESS_KEY) in job_addresses and not job.is_terminal:
                client.stop(str(job.submission_id))


def _yaml(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML: no quoting surprises in paths


def write_project(
    root: Path,
    *,
    ray_address: str,
    storage: Path,
    python: str,
    env_vars: Mapping[str, str],
    model: str,
    name: str,
    files: Mapping[str, Path],
    hyperparameters: Mapping[str, Any],
    rank: int = 8,
    cpus: float | None = None,
    gpus: int = 0,
) -> Path:
    """A spec directory: a ``type: ray`` Provider, a Dataset per file (``train`` trains,
    ``valid`` validates, when given; copied into the directory, as data belongs in the
    workspace) and one job ``name``. ``gpus``: what each job asks of the test head's logical
    GPUs (tests/train/rayhead.py); more than one runs the trainer under torchrun."""
    (root / "data").mkdir(parents=True, exist_ok=True)
    resources: dict[str, float] = {"gpus": gpus}
    if cpus is not None:
        resources["cpus"] = cpus
    docs = [
        "kind: Provider\nname: cluster\ntype: ray\n"
        f"address: {_yaml(ray_address)}\nstorage: {_yaml(str(storage))}\n"
        f"resources: {_yaml(resources)}\npython: {_yaml(python)}\n"
        f"runtime_env: {_yaml({'env_vars': dict(env_vars)})}\nprice_per_gpu_hour: 2.0\n"
    ]
    for dataset, path in files.items():
        shutil.copyfile(path, root / "data" / f"{dataset}.jsonl")
        docs.append(f"kind: Dataset\nname: {dataset}\npath: data/{dataset}.jsonl\n")
    validation = "validation_files: [valid]\n" if "valid" in files else ""
    docs.append(
        f"kind: FineTuningJob\nname: {name}\nmodel: {_yaml(model)}\ntraining_files: [train]\n"
        f"{validation}hyperparameters: {_yaml(dict(hyperparameters))}\nlora: {{rank: {rank}}}\n"
    )
    (root / "specs.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return root


class HoldingProxy:
    """An HTTP proxy in front of the Ray head that can hold a job submission.

    With ``hold = "after"`` it forwards ``POST /api/jobs/`` to Ray and then holds the answer
    (Ray has the job; the client never hears of it); with ``hold = "before"`` it holds the
    request without forwarding it. ``reached`` is set when a submission is held; ``release``
    lets the handler finish (a held-before request is then answered 503, never forwarded).
    Everything else is forwarded as it is.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.hold: str | None = None
        self.reached = threading.Event()
        self.release = threading.Event()
        self.submissions = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                submission = self.command == "POST" and self.path.rstrip("/") == "/api/jobs"
                hold = proxy.hold if submission else None
                if submission:
                    proxy.submissions += 1
                if hold == "before":
                    proxy.reached.set()
                    proxy.release.wait(300)
                    self._reply(503, b"held and dropped by the test proxy", "text/plain")
                    return
                answer = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=body,
                    headers={
                        "content-type": self.headers.get("content-type") or "application/json"
                    },
                    timeout=60,
                )
                if hold == "after":
                    proxy.reached.set()
                    proxy.release.wait(300)
                ctype = answer.headers.get("content-type", "application/json")
                self._reply(answer.status_code, answer.content, ctype)

            def _reply(self, status: int, content: bytes, ctype: str) -> None:
                try:
                    self.send_response(status)
                    self.send_header("content-type", ctype)
                    self.send_header("content-length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content)
                except OSError:
                    pass  # the client was killed while the answer was held

            do_GET = do_POST = _handle

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HoldingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
