"""Fixtures for the sandbox tests: real servers on 127.0.0.1, real files in tmp_path.

Time is the test's: every sandbox runs on the test's :class:`ManualClock` (``clock``), which
only moves when a test advances it, so nothing sleeps and job timing is exact (the durations
of :mod:`reconciler.sandbox.lifecycle` at scale 1). ``start_sandbox(**config)`` starts an
:class:`EmbeddedSandbox` (stopped at teardown); ``api`` is an httpx client on a default sandbox
with an API key, ``oai`` one on an OpenAI-dialect sandbox; helpers build valid training data
and move a job to a status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.sandbox import EmbeddedSandbox, ManualClock, SandboxConfig

API_KEY = "sandbox-test-key"
#: How far :func:`wait_status` moves the clock between two looks at the job (seconds).
STEP = 0.25


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


def preference_lines(n: int, tag: str = "x") -> bytes:
    """``n`` valid DPO preference samples (distinct per ``tag``)."""
    lines = [
        json.dumps(
            {
                "input": {"messages": [{"role": "user", "content": f"question {tag} {i}"}]},
                "preferred_output": [{"role": "assistant", "content": f"good {tag} {i}"}],
                "non_preferred_output": [{"role": "assistant", "content": f"bad {tag} {i}"}],
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
def clock() -> ManualClock:
    """The test's clock (starts at the real time now, then moves only when advanced)."""
    return ManualClock()


@pytest.fixture
def start_sandbox(tmp_path: Path, clock: ManualClock) -> Iterator[StartSandbox]:
    """Factory: start a sandbox (default data dir tmp_path/sandbox, the test's clock).

    Passing ``time_scale`` gives the sandbox the real clock at that scale instead.
    """
    started: list[EmbeddedSandbox] = []

    def start(**kwargs: Any) -> EmbeddedSandbox:
        kwargs.setdefault("data_dir", tmp_path / "sandbox")
        if "time_scale" not in kwargs:
            kwargs.setdefault("clock", clock)
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


def client_of(sandbox: EmbeddedSandbox, **kwargs: Any) -> httpx.Client:
    """An httpx client of ``sandbox`` that sends ``API_KEY`` (more client options in
    ``kwargs``, e.g. ``event_hooks``)."""
    return httpx.Client(
        base_url=sandbox.base_url,
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=10,
        **kwargs,
    )


@pytest.fixture
def api(sandbox: EmbeddedSandbox) -> Iterator[httpx.Client]:
    """An authenticated client of ``sandbox``."""
    with client_of(sandbox) as client:
        yield client


@pytest.fixture
def openai_sandbox(start_sandbox: StartSandbox) -> EmbeddedSandbox:
    """A running OpenAI-dialect sandbox requiring ``API_KEY``."""
    return start_sandbox(api_key=API_KEY, dialect="openai")


@pytest.fixture
def oai(openai_sandbox: EmbeddedSandbox) -> Iterator[httpx.Client]:
    """An authenticated client of ``openai_sandbox``."""
    with client_of(openai_sandbox) as client:
        yield client


def oai_file_id(
    client: httpx.Client,
    content: bytes | None = None,
    filename: str = "train.jsonl",
    purpose: str = "fine-tune",
) -> str:
    """Upload to an OpenAI-dialect sandbox (valid chat data by default); the file id."""
    r = upload(
        client, content if content is not None else chat_lines(20), filename, purpose=purpose
    )
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


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
    client: httpx.Client,
    clock: ManualClock,
    job_id: str,
    statuses: set[str],
    limit: float = 600.0,
) -> dict[str, Any]:
    """Advance ``clock`` until GET job shows a status in ``statuses``: by :data:`STEP` after
    each change of status, then by twice as much at each look that shows none (up to 16
    steps), so that a run of a minute takes tens of looks, not hundreds, and a phase of a
    second is still seen.

    Returns the job. Raises AssertionError if ``limit`` simulated seconds are not enough.
    """
    moved, step, last = 0.0, STEP, None
    while True:
        job: dict[str, Any] = client.get(f"/v1/fine_tuning/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        if moved >= limit:
            raise AssertionError(f"job {job_id} stuck in {job['status']}, wanted {statuses}")
        step = STEP if job["status"] != last else min(step * 2, 16 * STEP)
        last = job["status"]
        clock.advance(step)
        moved += step
