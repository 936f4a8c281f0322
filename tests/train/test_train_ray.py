"""The Ray Jobs API client against a real local Ray head.

The jobs run the stand-in trainer (ray_stub_trainer.py): what these tests check is the client
and Ray — one run per submission id, metadata, a masked secret, logs, a stop that reaches the
run as SIGTERM. The real trainer runs on Ray in test_ray_apply.py's last test, and its own
handling of SIGTERM is checked in test_train_cpu.py.
"""

from __future__ import annotations

import json
import shlex
import socket
import sys
import uuid
from pathlib import Path

import pytest
from ray_helpers import POLL, STUB_PYTHON, job_env, poll_until
from train_helpers import tiny_job

from reconciler.errors import DuplicateSubmissionError, NotFoundError, TransportError
from reconciler.ray import RayJobsClient, job_status, upload_dataset
from reconciler.train.job import RunLayout, TrainResult
from reconciler.train.storage import write_bytes

FAKE_KEY = "wandbkey0000000000000000000000000000000000"
"""Stands for a secret travelling in the runtime environment; must never come back."""


@pytest.mark.parametrize(
    ("ray", "ours"),
    [
        ("PENDING", "QUEUED"),
        ("RUNNING", "RUNNING"),
        ("SUCCEEDED", "SUCCESS"),
        ("FAILED", "FAILED"),
        ("STOPPED", "CANCELLED"),
        ("stopped", "CANCELLED"),
        ("SOMETHING_NEW", "UNKNOWN"),
    ],
)
def test_status_mapping(ray: str, ours: str) -> None:
    assert job_status(ray) == ours


def test_an_unreachable_head_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    with RayJobsClient(f"http://127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(TransportError, match="could not connect"):
            client.version()


def _submit_trainer(
    client: RayJobsClient,
    job: dict[str, object],
    storage: Path,
    repo_root: Path,
    python: str = shlex.quote(sys.executable),
    **env: str,
) -> tuple[str, RunLayout]:
    """Write the job description to storage and submit the trainer on it (``python``: the
    command that runs ``-m reconciler.train``; ``env``: more of the job's environment)."""
    submission_id = f"reconciler-test-{uuid.uuid4().hex[:12]}"
    layout = RunLayout(str(storage / "runs" / submission_id))
    write_bytes(layout.job, json.dumps({**job, "output_uri": layout.output_uri}).encode())
    client.submit(
        f"{python} -m reconciler.train {shlex.quote(layout.job)}",
        submission_id=submission_id,
        runtime_env={"env_vars": job_env(repo_root, WANDB_API_KEY=FAKE_KEY, **env)},
        metadata={"address": "job.tiny", "fingerprint": "abc123"},
        entrypoint_num_cpus=1,
    )
    return submission_id, layout


def test_a_submission_runs_exactly_once_and_its_secret_stays_masked(
    ray_address: str, chat_files: dict[str, Path], tmp_path: Path, repo_root: Path
) -> None:
    storage = tmp_path / "storage"
    stored = {name: upload_dataset(path, str(storage)) for name, path in chat_files.items()}
    assert all(s.uri.startswith(f"{storage}/datasets/") for s in stored.values())
    files = {name: Path(s.uri) for name, s in stored.items()}
    job = tiny_job(tmp_path / "used-by-the-stub-only-as-a-name", files, storage)
    with RayJobsClient(ray_address) as client:
        submission_id, layout = _submit_trainer(client, job, storage, repo_root, STUB_PYTHON)
        with pytest.raises(DuplicateSubmissionError) as info:
            client.submit("echo a second run", submission_id=submission_id)
        assert info.value.submission_id == submission_id
        assert info.value.status == 500

        job = client.wait(submission_id, timeout=300, interval=POLL)
        logs = client.logs(submission_id)
        assert job.status == "SUCCEEDED", logs[-3000:]
        assert job.reconciler_status == "SUCCESS"
        assert job.metadata == {"address": "job.tiny", "fingerprint": "abc123"}
        assert job.runtime_env["env_vars"]["WANDB_API_KEY"] == "***"
        assert FAKE_KEY not in job.model_dump_json()
        same = [j for j in client.list_jobs() if j.submission_id == submission_id]
        assert len(same) == 1 and "reconciler.train" in same[0].entrypoint
        assert "training succeeded" in logs and "a second run" not in logs
        assert FAKE_KEY not in logs
        with pytest.raises(NotFoundError):
            client.get(f"{submission_id}-missing")
    # The job description the client stored is the one that ran, with the stored datasets.
    result = TrainResult.model_validate_json(Path(layout.result).read_text())
    assert (result.status, result.steps_completed) == ("succeeded", 20)
    assert result.metadata == {"address": "job.tiny", "fingerprint": "abc123"}


def test_stopping_the_ray_job_sends_sigterm_to_the_run(
    ray_address: str, chat_files: dict[str, Path], tmp_path: Path, repo_root: Path
) -> None:
    # The stand-in trainer, sleeping, records the signal that ends it as the trainer does (the
    # trainer's own handling of SIGTERM is test_train_cpu.py's): Ray's stop must reach the
    # Python process of the job, not only a shell around it, and as SIGTERM, not SIGKILL.
    job = tiny_job(tmp_path / "used-by-the-stub-only-as-a-name", chat_files, tmp_path)
    storage = tmp_path / "storage"
    with RayJobsClient(ray_address) as client:
        submission_id, layout = _submit_trainer(
            client, job, storage, repo_root, STUB_PYTHON, STUB_TRAINER="sleep"
        )

        def stepping() -> bool:
            logs = client.logs(submission_id)
            assert not client.get(submission_id).is_terminal, logs[-3000:]
            return "step " in logs

        poll_until(stepping, 180, lambda: client.logs(submission_id)[-3000:])
        assert client.stop(submission_id) is True
        stopped = client.wait(submission_id, timeout=60, interval=POLL)
        assert stopped.status == "STOPPED"
        assert stopped.reconciler_status == "CANCELLED"
        assert client.stop(submission_id) is False
    result = TrainResult.model_validate_json(Path(layout.result).read_text())
    assert (result.status, result.message) == ("cancelled", "stopped by signal SIGTERM")
