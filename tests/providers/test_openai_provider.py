"""The OpenAI provider: request and answer translation (tables), and every operation the engine
uses against the sandbox's OpenAI dialect on a manual clock — files, jobs found by their
metadata, cursor pages, events and metrics, pause/resume/cancel, models — plus lost answers
resolved by lookup (never a second job or upload)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.client.types import JobStatus
from reconciler.errors import ReconcilerError
from reconciler.providers import openai as openai_module
from reconciler.providers.base import OPENAI_CAPABILITIES, JobLookup, JobTag, Pausable, Provider
from reconciler.providers.openai import (
    HYPERPARAMETER_NAMES,
    OpenAIProvider,
    canonical_job,
    canonical_status,
    model_suffix,
    openai_request,
)
from reconciler.sandbox import EmbeddedSandbox, ManualClock
from reconciler.sandbox.config import parse_faults
from tests.providers.conftest import KEY, StartSandbox, chat_file

MODEL = "gpt-4o-mini-2024-07-18"
TAG = JobTag("job.tone", "f" * 64, 0)


def request(file_id: str, **fields: Any) -> dict[str, Any]:
    """A canonical create request (what the engine builds from a spec)."""
    return {
        "model": MODEL,
        "job_type": "completion",
        "training_files": [{"file_id": file_id, "weight": 1.0}],
        "validation_files": [],
        "hyperparameters": {"epochs": 1.0},
        "auto_start": False,
        "invalid_sample_skip_percentage": 0.0,
        **fields,
    }


def advance_until(
    provider: OpenAIProvider, clock: ManualClock, job_id: str, *statuses: JobStatus
) -> Any:
    for _ in range(4000):
        job = provider.get_job(job_id)
        if JobStatus.of(job.status) in statuses:
            return job
        clock.advance(0.25)
    raise AssertionError(f"job {job_id} stuck in {job.status}, wanted {statuses}")


# -- translation -----------------------------------------------------------------------------


def test_the_provider_implements_the_interface_and_declares_openai() -> None:
    provider = OpenAIProvider("http://127.0.0.1:1/v1", KEY)
    assert isinstance(provider, Provider) and isinstance(provider, Pausable)
    assert provider.capabilities is OPENAI_CAPABILITIES
    assert set(HYPERPARAMETER_NAMES) == OPENAI_CAPABILITIES.hyperparameters
    provider.close()


REQUESTS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "supervised with everything",
        {
            "validation_files": ["file-v"],
            "hyperparameters": {"epochs": 3.0, "batch_size": 4, "learning_rate_multiplier": 1.8},
            "suffix": "dumbledore-tone",
            "seed": 42,
            "integrations": [
                {"type": "wandb", "project": "p", "name": None, "run_name": None, "tags": ["a"]}
            ],
        },
        {
            "model": MODEL,
            "training_file": "file-t",
            "validation_file": "file-v",
            "suffix": "dumbledore-tone",
            "seed": 42,
            "method": {
                "type": "supervised",
                "supervised": {
                    "hyperparameters": {
                        "n_epochs": 3,
                        "batch_size": 4,
                        "learning_rate_multiplier": 1.8,
                    }
                },
            },
            "integrations": [{"type": "wandb", "wandb": {"project": "p", "tags": ["a"]}}],
            "metadata": TAG.metadata(),
        },
    ),
    (
        "dpo with beta, nothing else",
        {"method": "dpo", "hyperparameters": {"beta": 0.1}},
        {
            "model": MODEL,
            "training_file": "file-t",
            "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}},
            "metadata": TAG.metadata(),
        },
    ),
    (
        "no hyperparameters: the service's defaults",
        {"hyperparameters": {}},
        {
            "model": MODEL,
            "training_file": "file-t",
            "method": {"type": "supervised", "supervised": {}},
            "metadata": TAG.metadata(),
        },
    ),
]


@pytest.mark.parametrize(("case", "fields", "body"), REQUESTS, ids=[c[0] for c in REQUESTS])
def test_canonical_requests_map_to_openai_bodies(
    case: str, fields: dict[str, Any], body: dict[str, Any]
) -> None:
    assert openai_request(request("file-t", **fields), TAG) == body


def test_requests_openai_cannot_take_are_refused_naming_each_part() -> None:
    bad = request(
        "file-t",
        training_files=[{"file_id": "a", "weight": 1.0}, {"file_id": "b", "weight": 2.0}],
        hyperparameters={"learning_rate": 1e-4},
        integrations=[{"type": "wandb", "project": "p", "api_key": "k" * 40}],
    )
    with pytest.raises(ReconcilerError) as caught:
        openai_request(bad, None)
    text = str(caught.value)
    assert "2 training files" in text and "hyperparameter learning_rate" in text
    assert "W&B api_key" in text and "k" * 40 not in text


STATUSES = [
    ({"status": "validating_files"}, "VALIDATING"),
    ({"status": "queued"}, "QUEUED"),
    ({"status": "running"}, "RUNNING"),
    ({"status": "paused"}, "PAUSED"),
    ({"status": "succeeded"}, "SUCCESS"),
    ({"status": "cancelled"}, "CANCELLED"),
    (
        {"status": "failed", "error": {"code": "x", "param": "training_file", "message": "m"}},
        "FAILED_VALIDATION",
    ),
    (
        {"status": "failed", "error": {"code": "invalid_validation_file", "param": None}},
        "FAILED_VALIDATION",
    ),
    ({"status": "failed", "error": {"code": "training_failed", "param": None}}, "FAILED"),
    ({"status": "hibernating"}, "HIBERNATING"),
]


@pytest.mark.parametrize(("raw", "status"), STATUSES, ids=[s for _, s in STATUSES])
def test_statuses_map_to_canonical_ones(raw: dict[str, Any], status: str) -> None:
    assert canonical_status(raw) == status


def test_a_job_maps_to_the_canonical_shape_with_events_and_metrics() -> None:
    raw = {
        "id": "ftjob-1",
        "status": "failed",
        "model": MODEL,
        "created_at": 100,
        "finished_at": 160,
        "training_file": "file-t",
        "validation_file": None,
        "fine_tuned_model": None,
        "method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1, "n_epochs": "auto"}}},
        "metadata": TAG.metadata(),
        "error": {"code": "training_failed", "message": "The run failed.", "param": None},
        "integrations": [{"type": "wandb", "wandb": {"project": "p", "entity": "team"}}],
    }
    events = [
        {"id": "e2", "created_at": 150, "level": "info", "message": "Step 2/9", "type": "metrics",
         "data": {"step": 2, "train_loss": 0.9, "total_steps": 9}},
        {"id": "e1", "created_at": 140, "level": "info", "message": "Step 1/9", "type": "metrics",
         "data": {"step": 1, "train_loss": 1.2, "total_steps": 9}},
    ]  # fmt: skip
    job = canonical_job(raw, events, [])
    assert job["status"] == "FAILED" and job["auto_start"] is True
    assert job["hyperparameters"] == {"beta": 0.1}  # "auto" is left out
    assert job["user_metadata"] == TAG.metadata() and job["method"] == "dpo"
    assert job["training_files"] == ["file-t"] and job["validation_files"] == []
    assert job["integrations"] == [
        {"type": "wandb", "project": "p", "name": None, "run_name": None, "entity": "team"}
    ]
    assert job["metadata"] == {"training_steps": 9}
    # The failure in the service's words comes first, then the events, newest first.
    assert job["events"][0]["data"] == {"error": "The run failed. (training_failed)"}
    assert [e["id"] for e in job["events"][1:]] == ["e2", "e1"]
    assert [(c["step_number"], c["metrics"]) for c in job["checkpoints"]] == [
        (2, {"train_loss": 0.9}),
        (1, {"train_loss": 1.2}),
    ]


@pytest.mark.parametrize(
    ("model", "suffix"),
    [
        ("ft:gpt-4o-mini-2024-07-18:org:dumbledore-tone:AbC12xYz", "dumbledore-tone"),
        ("ft:gpt-4o-mini-2024-07-18:org::AbC12xYz", None),
        ("gpt-4o-mini", None),
    ],
)
def test_the_suffix_is_read_from_the_model_name(model: str, suffix: str | None) -> None:
    assert model_suffix(model) == suffix


def test_organization_and_project_headers_go_with_every_request() -> None:
    seen: list[httpx.Request] = []

    def handler(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return httpx.Response(200, json={"object": "list", "data": [], "has_more": False})

    with OpenAIProvider(
        "https://api.openai.com/v1",
        "sk-test-key",
        organization="org-123",
        project="proj_456",
        transport=httpx.MockTransport(handler),
    ) as provider:
        assert provider.list_jobs() == []
    (req,) = seen
    assert req.url.path == "/v1/fine_tuning/jobs"
    assert req.headers["OpenAI-Organization"] == "org-123"
    assert req.headers["OpenAI-Project"] == "proj_456"
    assert req.headers["Authorization"] == "Bearer sk-test-key"


# -- against the sandbox's OpenAI dialect ----------------------------------------------------


def test_files_upload_find_and_delete(provider: OpenAIProvider, tmp_path: Path) -> None:
    path = chat_file(tmp_path / "tone-abc.jsonl")
    uploaded = provider.upload_file(path, "tone-abc.jsonl")
    assert (uploaded.filename, uploaded.bytes, uploaded.purpose) == (
        "tone-abc.jsonl",
        path.stat().st_size,
        "fine-tune",
    )
    found = provider.find_file("tone-abc.jsonl", size=path.stat().st_size)
    assert found is not None and found.id == uploaded.id
    assert provider.find_file("tone-abc.jsonl", size=1) is None
    assert provider.get_file(uploaded.id).id == uploaded.id
    provider.delete_file(uploaded.id)
    assert provider.find_file("tone-abc.jsonl") is None


def test_a_job_lives_through_its_lifecycle(
    provider: OpenAIProvider, clock: ManualClock, tmp_path: Path
) -> None:
    train = provider.upload_file(chat_file(tmp_path / "t.jsonl", 20), "t.jsonl")
    valid = provider.upload_file(chat_file(tmp_path / "v.jsonl", 10, "v"), "v.jsonl")
    created = provider.create_job(
        request(train.id, validation_files=[valid.id], suffix="tone", seed=7), JobLookup(tag=TAG)
    )
    assert created.status == "VALIDATING" and created.user_metadata == TAG.metadata()
    # Found by its identity, exactly: an untagged job of the same request is not it.
    other = provider.create_job(request(train.id, suffix="tone", seed=7))
    assert [j.id for j in provider.find_jobs({}, JobLookup(tag=TAG))] == [created.id]
    assert {j.id for j in provider.find_jobs(request(train.id, seed=7))} >= {other.id}
    provider.cancel_job(other.id)
    provider.cancel_job(other.id)  # idempotent: already cancelled

    running = advance_until(provider, clock, created.id, JobStatus.RUNNING)
    assert provider.start_job(created.id).id == created.id  # started when created: a read
    paused = provider.pause_job(created.id)
    assert paused.status == "PAUSED"
    assert provider.pause_job(created.id).status == "PAUSED"  # idempotent
    assert provider.resume_job(created.id).status in ("QUEUED", "RUNNING")
    assert provider.resume_job(created.id).status in ("QUEUED", "RUNNING")  # idempotent
    assert running.hyperparameters == {
        "epochs": 1,
        "batch_size": 1,
        "learning_rate_multiplier": 1.0,
    }

    done = advance_until(provider, clock, created.id, JobStatus.SUCCESS)
    assert done.suffix == "tone" and done.fine_tuned_model
    assert done.metadata == {"training_steps": 20}
    steps = [c["step_number"] for c in done.checkpoints]
    assert steps == sorted(steps, reverse=True) and steps[0] == 20
    latest = done.checkpoints[0]["metrics"]
    assert {"train_loss", "valid_loss", "full_valid_loss", "train_mean_token_accuracy"} <= set(
        latest
    )
    messages = [e["data"].get("message") for e in done.events]
    assert "The job has successfully completed" in messages
    assert provider.cancel_job(created.id).status == "SUCCESS"  # finished: left as it is

    models = {m.id: m for m in provider.list_models()}
    assert models[done.fine_tuned_model].is_fine_tuned
    assert any(m.type == "base" for m in models.values())
    provider.delete_model(done.fine_tuned_model)
    assert done.fine_tuned_model not in {m.id for m in provider.list_models()}
    with pytest.raises(ReconcilerError, match="cannot be renamed"):
        provider.update_model(done.fine_tuned_model, name="x")


def test_lists_walk_every_cursor_page(
    provider: OpenAIProvider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_module, "PAGE_SIZE", 2)
    train = provider.upload_file(chat_file(tmp_path / "t.jsonl"), "t.jsonl")
    ids = {provider.create_job(request(train.id, suffix=f"s{i}")).id for i in range(5)}
    before = provider.stats.by_operation.get("list_jobs", 0)
    assert {j.id for j in provider.list_jobs()} == ids
    assert provider.stats.by_operation["list_jobs"] - before == 3  # 2 + 2 + 1


def test_a_lost_create_answer_is_resolved_by_the_metadata_lookup(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    faults = parse_faults("timeout_after_commit=1.0,methods=POST,paths=/v1/fine_tuning/jobs")
    sandbox: EmbeddedSandbox = start_sandbox(api_key=KEY, dialect="openai", faults=faults)
    with OpenAIProvider(f"{sandbox.base_url}/v1", KEY, sleep=lambda _: None) as provider:
        train = provider.upload_file(chat_file(tmp_path / "t.jsonl"), "t.jsonl")
        job = provider.create_job(request(train.id), JobLookup(tag=TAG))
        assert provider.stats.lookups == 1
        assert provider.stats.by_operation["create_job"] == 1  # never sent again
        assert [j.id for j in provider.list_jobs()] == [job.id]
    lookups = [
        e for e in sandbox.journal() if e["method"] == "GET" and "metadata" in (e["query"] or "")
    ]
    assert lookups and "reconciler_fingerprint" in lookups[0]["query"]


def test_a_lost_upload_answer_is_resolved_by_name_and_size(
    start_sandbox: StartSandbox, tmp_path: Path
) -> None:
    faults = parse_faults("timeout_after_commit=1.0,methods=POST,paths=/v1/files")
    sandbox: EmbeddedSandbox = start_sandbox(api_key=KEY, dialect="openai", faults=faults)
    with OpenAIProvider(f"{sandbox.base_url}/v1", KEY, sleep=lambda _: None) as provider:
        path = chat_file(tmp_path / "t.jsonl")
        uploaded = provider.upload_file(path, "t.jsonl")
        assert provider.stats.by_operation["upload_file"] == 1
        assert [f.id for f in provider.list_files()] == [uploaded.id]
