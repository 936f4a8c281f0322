"""The official OpenAI Python SDK (pinned in the test extra) runs unchanged against the
OpenAI-dialect sandbox on 127.0.0.1.

The SDK is configured as any user would (API key, base URL, its own httpx client with a
response hook that keeps every response); the flow uploads, creates jobs with metadata,
pages through them by a metadata filter, retrieves, reads events and checkpoints, pauses,
resumes, cancels, and lists and deletes models. Every response the sandbox sent in that flow
must validate against the reference document (errors against the service's error shape).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from reconciler.sandbox import EmbeddedSandbox, ManualClock
from tests.sandbox.conftest import API_KEY, STEP, chat_lines
from tests.sandbox.contract import Recorder, check_openai_answers, openai_json_operations

pytestmark = pytest.mark.contract

if TYPE_CHECKING:  # the SDK itself is imported by the tests that run (seconds of CPU)
    import openai
    from openai.types.fine_tuning import FineTuningJob

    SDK = tuple[openai.OpenAI, Recorder]


@pytest.fixture
def sdk(openai_sandbox: EmbeddedSandbox) -> Iterator[SDK]:
    """The SDK on the sandbox, and every response it received."""
    openai = pytest.importorskip("openai", reason="the openai SDK is not installed")
    recorder = Recorder()
    client = openai.OpenAI(
        api_key=API_KEY,
        base_url=f"{openai_sandbox.base_url}/v1",
        http_client=httpx.Client(event_hooks={"response": [recorder]}, timeout=10),
        max_retries=0,  # a failure must show, not be retried away
    )
    yield client, recorder
    client.close()


def _wait(
    client: openai.OpenAI, clock: ManualClock, job_id: str, statuses: set[str]
) -> FineTuningJob:
    """Advance the sandbox's clock until the SDK sees the job in one of ``statuses``."""
    for _ in range(2000):
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        clock.advance(STEP)
    raise AssertionError(f"job {job_id} stuck in {job.status}, wanted {statuses}")


def test_sdk_flow(sdk: SDK, clock: ManualClock, tmp_path: Path) -> None:
    import openai

    client, recorder = sdk

    # Files: upload (a path, then bytes with an expiry), list, page, retrieve, download.
    data = chat_lines(30, "t")
    path = tmp_path / "train.jsonl"
    path.write_bytes(data)
    with path.open("rb") as fh:
        training = client.files.create(file=fh, purpose="fine-tune")
    assert (training.filename, training.bytes, training.purpose) == (
        "train.jsonl",
        len(data),
        "fine-tune",
    )
    assert training.id.startswith("file-") and training.status == "processed"
    validation = client.files.create(
        file=("valid.jsonl", chat_lines(10, "v")),
        purpose="fine-tune",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert validation.expires_at == validation.created_at + 3600
    notes = client.files.create(file=("notes.txt", b"hello"), purpose="user_data")
    assert client.files.content(notes.id).read() == b"hello"
    with pytest.raises(openai.BadRequestError, match="Not allowed to download"):
        client.files.content(training.id)
    assert [f.id for f in client.files.list(purpose="fine-tune").data] == [
        validation.id,
        training.id,
    ]
    # One file per page: the SDK follows the cursor.
    assert [f.id for f in client.files.list(limit=1, order="asc")] == [
        training.id,
        validation.id,
        notes.id,
    ]
    assert client.files.retrieve(training.id).filename == "train.jsonl"
    assert client.files.delete(notes.id).deleted is True
    with pytest.raises(openai.NotFoundError, match="No such File object"):
        client.files.retrieve(notes.id)

    # Jobs with metadata, listed by a metadata filter one page at a time.
    tone = [
        client.fine_tuning.jobs.create(
            model="gpt-4o-mini",
            training_file=training.id,
            validation_file=validation.id if i == 0 else openai.omit,
            suffix=f"tone-{i}",
            seed=i,
            metadata={"team": "tone", "run": str(i)},
        )
        for i in range(5)
    ]
    other = client.fine_tuning.jobs.create(
        model="gpt-4o-mini", training_file=training.id, metadata={"team": "other"}
    )
    first = tone[0]
    assert first.status == "validating_files"
    assert first.model == "gpt-4o-mini-2024-07-18"
    assert first.metadata == {"team": "tone", "run": "0"}
    assert first.hyperparameters.n_epochs == "auto"  # resolved once the files are validated
    newest_first = [j.id for j in reversed(tone)]
    page = client.fine_tuning.jobs.list(limit=2, metadata={"team": "tone"})
    assert [j.id for j in page.data] == newest_first[:2] and page.has_more is True
    page = client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id, metadata={"team": "tone"})
    assert [j.id for j in page.data] == newest_first[2:4] and page.has_more is True
    page = client.fine_tuning.jobs.list(limit=2, after=page.data[-1].id, metadata={"team": "tone"})
    assert [j.id for j in page.data] == newest_first[4:] and page.has_more is False
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2, metadata={"team": "tone"})] == (
        newest_first
    )
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"run": "3"})] == [tone[3].id]
    assert {j.id for j in client.fine_tuning.jobs.list(limit=100).data} == {
        *newest_first,
        other.id,
    }

    # Run, pause (nothing moves), resume, succeed.
    running = _wait(client, clock, first.id, {"running"})
    assert isinstance(running.hyperparameters.n_epochs, int)
    assert running.estimated_finish is not None
    paused = client.fine_tuning.jobs.pause(first.id)
    assert paused.status == "paused" and paused.estimated_finish is None
    trained = len(client.fine_tuning.jobs.checkpoints.list(first.id, limit=100).data)
    clock.advance(120)
    assert client.fine_tuning.jobs.retrieve(first.id).status == "paused"
    assert len(client.fine_tuning.jobs.checkpoints.list(first.id, limit=100).data) == trained
    assert client.fine_tuning.jobs.resume(first.id).status == "queued"
    done = _wait(client, clock, first.id, {"succeeded"})
    model = done.fine_tuned_model
    assert model is not None
    assert re.fullmatch(r"ft:gpt-4o-mini-2024-07-18:sandbox:tone-0:[0-9A-Za-z]{8}", model)
    assert done.trained_tokens and done.finished_at and done.finished_at >= done.created_at

    # Events (newest first, five per page, followed by the SDK) and checkpoints.
    messages = [e.message for e in client.fine_tuning.jobs.list_events(first.id, limit=5)]
    assert messages[0] == "The job has successfully completed"
    assert messages[-1] == f"Created fine-tuning job: {first.id}"
    assert messages.index("Fine-tuning job resumed") < messages.index("Fine-tuning job paused")
    assert any(m.startswith("Step ") and "validation loss=" in m for m in messages)
    checkpoints = list(client.fine_tuning.jobs.checkpoints.list(first.id, limit=3))
    steps = [c.step_number for c in checkpoints]
    assert steps == sorted(steps, reverse=True) and len(steps) > trained
    last = checkpoints[0]
    assert last.fine_tuned_model_checkpoint == f"{model}:ckpt-step-{last.step_number}"
    assert last.metrics.full_valid_loss is not None and last.metrics.train_mean_token_accuracy

    # Cancel a job that runs, and a second cancel of the finished job is refused.
    late = client.fine_tuning.jobs.create(model="gpt-4.1-mini", training_file=training.id)
    _wait(client, clock, late.id, {"running"})
    assert client.fine_tuning.jobs.cancel(late.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError, match="has not finished"):
        client.fine_tuning.jobs.cancel(late.id)

    # Models: listed, retrieved, deleted.
    assert {model, "gpt-4o-mini", "gpt-4o-mini-2024-07-18"} <= {m.id for m in client.models.list()}
    assert client.models.retrieve(model).owned_by == done.organization_id
    assert client.models.delete(model).deleted is True
    assert model not in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.models.retrieve(model)

    checked, statuses = check_openai_answers(recorder.seen)
    # The refused download and cancel, and the two 404s, were errors in the service's shape.
    assert sorted(s for s in statuses if s != 200) == [400, 400, 404, 404]
    wanted = openai_json_operations()
    assert wanted <= checked, f"operations never exercised: {sorted(wanted - checked)}"
