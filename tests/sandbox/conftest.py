"""Fixtures for the sandbox tests: real servers on 127.0.0.1, real files in tmp_path.

``start_sandbox(**config)`` starts an :class:`EmbeddedSandbox` (stopped at teardown) with a
fast time scale; ``api`` is an httpx client on a default sandbox with an API key; helpers
build valid training data and wait for job statuses.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.sandbox import EmbeddedSandbox, SandboxConfig

API_KEY = "sandbox-test-key"
#: Jobs finish in a fraction of a second at this scale (a 10-step job: ~0.08 s).
FAST = 50.0


def chat_lines(n: int, tag: str = "x") -> bytes:
    """``n`` valid instruct samples (distinct per ``tag``)."""
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {tag} {i}"},
                    {"role": "assistant", "content": f"answer {tag} {i}"},
                ]
            }
        )
        for i in range(n)
    ]
    return ("\n".join(lines) + "\n").encode()


def pretrain_lines(n: int) -> bytes:
    """``n`` valid pretrain samples."""
    return ("\n".join(json.dumps({"text": f"document {i}"}) for i in range(n)) + "\n").encode()


StartSandbox = Callable[..., EmbeddedSandbox]


@pytest.fixture
def start_sandbox(tmp_path: Path) -> Iterator[StartSandbox]:
    """Factory: start a sandbox (default data dir tmp_path/sandbox, fast clock)."""
    started: list[EmbeddedSandbox] = []

    def start(**kwargs: Any) -> EmbeddedSandbox:
        kwargs.setdefault("data_dir", tmp_path / "sandbox")
        kwargs.setdefault("time_scale", FAST)
        sb = EmbeddedSandbox(SandboxConfig(**kwargs)).start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()


@pytest.fixture
def sandbox(start_sandbox: StartSandbox) -> EmbeddedSandbox:
    """A running sandbox requiring ``API_KEY``."""
    return start_sandbox(api_key=API_KEY)


@pytest.fixture
def api(sandbox: EmbeddedSandbox) -> Iterator[httpx.Client]:
    """An authenticated client of ``sandbox``."""
    with httpx.Client(
        base_url=sandbox.base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
    ) as client:
        yield client


def upload(
    client: httpx.Client, content: bytes, filename: str = "train.jsonl", **data: str
) -> httpx.Response:
    """POST /v1/files with one file part."""
    return client.post("/v1/files", files={"file": (filename, content)}, data=data or None)


def uploaded_id(
    client: httpx.Client, content: bytes | None = None, filename: str = "train.jsonl"
) -> str:
    """Upload valid data and return the file id."""
    r = upload(client, content if content is not None else chat_lines(20), filename)
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def job_body(file_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid completion job request."""
    body: dict[str, Any] = {
        "model": "open-mistral-7b",
        "training_files": [{"file_id": file_id, "weight": 1}],
        "hyperparameters": {"training_steps": 10, "learning_rate": 0.0001},
        "auto_start": False,
    }
    body.update(overrides)
    return body


def wait_status(
    client: httpx.Client, job_id: str, statuses: set[str], timeout: float = 10.0
) -> dict[str, Any]:
    """Poll GET job until its status is in ``statuses``; returns the job."""
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} stuck in {job['status']}, wanted {statuses}")
        time.sleep(0.02)
