"""The official Mistral Python SDK (mistralai 2.5.1) works against the sandbox unchanged."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from reconciler.sandbox import EmbeddedSandbox, ManualClock
from tests.sandbox.conftest import API_KEY, STEP, chat_lines


def _wait(client: object, clock: ManualClock, job_id: str, statuses: set[str]) -> object:
    """Advance the sandbox's clock until the SDK sees the job in one of ``statuses``."""
    for _ in range(1000):
        job = client.fine_tuning.jobs.get(job_id=job_id)  # type: ignore[attr-defined]
        if job.status in statuses:
            return job
        clock.advance(STEP)
    raise AssertionError(f"job stuck in {job.status}")


def test_sdk_scenario(sandbox: EmbeddedSandbox, clock: ManualClock, tmp_path: Path) -> None:
    mistral_client = pytest.importorskip("mistralai.client", reason="mistralai SDK not installed")
    client = mistral_client.Mistral(api_key=API_KEY, server_url=sandbox.base_url)

    # Files: upload, list, retrieve, (dedupe), delete.
    data = chat_lines(25)
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    with path.open("rb") as fh:
        uploaded = client.files.upload(
            file={"file_name": "train.jsonl", "content": fh}, purpose="fine-tune"
        )
    assert uploaded.filename == "train.jsonl"
    assert uploaded.num_lines == 25
    assert uploaded.sample_type == "instruct"
    assert uploaded.size_bytes == len(data)
    again = client.files.upload(file={"file_name": "train.jsonl", "content": data})
    assert again.id == uploaded.id
    listed = client.files.list(search="train", sample_type=["instruct"], page_size=10)
    assert [f.id for f in listed.data] == [uploaded.id]
    assert listed.total == 1
    got = client.files.retrieve(file_id=uploaded.id)
    assert got.deleted is False and got.id == uploaded.id
    assert client.files.download(file_id=uploaded.id).read() == data
    url = client.files.get_signed_url(file_id=uploaded.id, expiry=1)
    assert url.url.startswith(sandbox.base_url)
    scratch = client.files.upload(file={"file_name": "scratch.jsonl", "content": chat_lines(3)})
    deleted = client.files.delete(file_id=scratch.id)
    assert deleted.deleted is True

    # Jobs: create (auto_start False), get, start, list with filters, cancel.
    job = client.fine_tuning.jobs.create(
        model="open-mistral-7b",
        training_files=[{"file_id": uploaded.id, "weight": 1}],
        hyperparameters={"training_steps": 10, "learning_rate": 0.0001},
        suffix="sdk-run",
        auto_start=False,
    )
    assert job.status in ("QUEUED", "VALIDATING")
    validated = _wait(client, clock, job.id, {"VALIDATED"})
    assert validated.metadata.cost > 0  # type: ignore[attr-defined]
    started = client.fine_tuning.jobs.start(job_id=job.id)
    assert started.status in ("STARTED", "RUNNING", "SUCCESS")
    finished = _wait(client, clock, job.id, {"SUCCESS"})
    model_id = finished.fine_tuned_model  # type: ignore[attr-defined]
    assert model_id and model_id.startswith("ft:open-mistral-7b:sdk-run:")
    assert finished.checkpoints  # type: ignore[attr-defined]

    second = client.fine_tuning.jobs.create(
        model="open-mistral-7b",
        training_files=[{"file_id": uploaded.id, "weight": 1}],
        hyperparameters={"training_steps": 20},
        suffix="sdk-cancel",
        auto_start=False,
    )
    cancelled = client.fine_tuning.jobs.cancel(job_id=second.id)
    assert cancelled.status in ("CANCELLATION_REQUESTED", "CANCELLED")
    _wait(client, clock, second.id, {"CANCELLED"})

    by_suffix = client.fine_tuning.jobs.list(suffix="sdk-run")
    assert [j.id for j in by_suffix.data] == [job.id] and by_suffix.total == 1
    by_status = client.fine_tuning.jobs.list(status="CANCELLED", model="open-mistral-7b")
    assert [j.id for j in by_status.data] == [second.id]
    window = client.fine_tuning.jobs.list(
        created_after=dt.datetime.fromtimestamp(clock.now(), dt.UTC) - dt.timedelta(minutes=5),
        created_by_me=True,
        page=0,
        page_size=1,
    )
    assert window.total == 2 and len(window.data) == 1
    future = client.fine_tuning.jobs.list(
        created_after=dt.datetime.fromtimestamp(clock.now(), dt.UTC) + dt.timedelta(minutes=5)
    )
    assert future.total == 0

    # Models: update, archive, unarchive, and they show in /v1/models.
    updated = client.models.update(model_id=model_id, name="My model", description="from sdk")
    assert updated.name == "My model" and updated.description == "from sdk"
    assert client.models.archive(model_id=model_id).archived is True
    assert client.models.unarchive(model_id=model_id).archived is False
    ids = [m.id for m in client.models.list().data]
    assert model_id in ids and "open-mistral-7b" in ids
    card = client.models.retrieve(model_id=model_id)
    assert card.id == model_id
    assert client.models.delete(model_id=model_id).deleted is True
    assert model_id not in [m.id for m in client.models.list().data]
