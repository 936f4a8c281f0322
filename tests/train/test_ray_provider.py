"""The ray provider: storage as the file store, Ray jobs as fine-tuning jobs, adapters as
models. (Its cost estimate is the engine's: tests/engine/test_costs.py.)

File tests use a real storage directory; job tests run on a real local Ray head with the
stand-in trainer (ray_stub_trainer.py), so they check the provider — submission ids, what is
written and submitted, how jobs read back — in seconds. On the jobs they submit they also check
the Jobs client and Ray (tests/train/test_train_ray.py has the client's tests without a head):
a second submission with an id is refused, metadata and a masked secret come back as sent, the
job runs once, its logs, and a stop reaches the run as SIGTERM. tests/train/test_ray_apply.py
trains for real through ``reconciler apply``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ray_helpers import (
    POLL,
    STUB_PYTHON,
    job_env,
    poll_until,
    ray_jobs_of,
    stop_jobs,
    unique_name,
)
from train_tiny import chat_samples, write_jsonl

from reconciler.client.types import JobStatus
from reconciler.errors import (
    ConflictError,
    DuplicateSubmissionError,
    NotFoundError,
    ReconcilerError,
    ValidationError,
)
from reconciler.providers.base import RAY_CAPABILITIES, JobLookup, JobTag, Provider
from reconciler.providers.ray import (
    GPUS_KEY,
    OUTPUT_KEY,
    REQUEST_KEY,
    RayProvider,
    request_echo,
    submission_id,
)
from reconciler.ray import RayJob, RayJobsClient
from reconciler.spec.capabilities import CAPABILITIES
from reconciler.spec.models import RayResources
from reconciler.train.job import RunLayout, TrainJob, TrainResult
from reconciler.train.storage import file_sha256, read_bytes

WANDB_KEY = "wandbsecret0000000000000000000000000000"
"""A W&B key that must travel only in the job's runtime environment."""


def _provider(storage: Path, address: str = "http://127.0.0.1:9", **kw: Any) -> RayProvider:
    return RayProvider(address, str(storage), sleep=lambda _: None, **kw)


# -------------------------------------------------------------------------------- files


def test_datasets_are_stored_once_under_their_content_hash(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chats.jsonl", chat_samples(5))
    sha = file_sha256(data)
    provider = _provider(tmp_path / "storage")
    seen: list[tuple[int, int]] = []

    first = provider.upload_file(
        data, f"chats-{sha[:12]}.jsonl", sha256=sha, progress=lambda *a: seen.append(a)
    )
    again = provider.upload_file(data, "another-name.jsonl")

    size = data.stat().st_size
    assert (first.id, first.filename, first.bytes) == (sha, f"{sha}.jsonl", size)
    assert again.id == sha and seen[-1] == (size, size)
    stored = tmp_path / "storage" / "datasets" / f"{sha}.jsonl"
    assert stored.read_bytes() == data.read_bytes()
    assert sorted(p.name for p in stored.parent.iterdir()) == [f"{sha}.jsonl"]
    assert provider.stats.by_method == {"PUT": 1, "HEAD": 1}
    assert provider.stats.bytes_uploaded == size

    assert [f.id for f in provider.list_files()] == [sha]
    assert provider.get_file(sha).bytes == size
    # The engine's upload names end with 12 hex digits of the content: found by content.
    assert provider.find_file(f"chats-{sha[:12]}.jsonl", size=size) is not None
    assert provider.find_file(f"chats-{sha[:12]}.jsonl", size=size + 1) is None
    assert provider.find_file("chats-000000000000.jsonl") is None

    provider.delete_file(sha)
    provider.delete_file(sha)  # already gone: deleted
    assert provider.list_files() == []
    with pytest.raises(NotFoundError, match="no dataset at"):
        provider.get_file(sha)
    with pytest.raises(NotFoundError, match="not a dataset id"):
        provider.get_file("../../etc/passwd")


def test_an_empty_storage_lists_nothing(tmp_path: Path) -> None:
    assert _provider(tmp_path / "nothing-yet").list_files() == []


# -------------------------------------------------------------------------------- requests


def _request(sha: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "/models/tiny",
        "job_type": "completion",
        "training_files": [{"file_id": sha, "weight": 2.0}],
        "validation_files": [sha],
        "hyperparameters": {"training_steps": 4, "learning_rate": 0.001, "seq_len": 128},
        "auto_start": False,
        "invalid_sample_skip_percentage": 0.0,
        "lora": {"rank": 4},
        **extra,
    }


WANDB = [{"type": "wandb", "project": "tone", "name": None, "run_name": "r1", "api_key": WANDB_KEY}]


def test_submission_ids_follow_address_fingerprint_and_generation() -> None:
    tag = JobTag("job.tone", "f" * 64)
    sid = submission_id(tag)
    assert sid.startswith("reconciler-tone-") and len(sid) == len("reconciler-tone-") + 16
    assert submission_id(JobTag("job.tone", "f" * 64)) == sid
    others = {
        submission_id(JobTag("job.tone", "f" * 64, 1)),
        submission_id(JobTag("job.tone", "e" * 64)),
        submission_id(JobTag("job.other", "f" * 64)),
    }
    assert sid not in others and len(others) == 3
    tagged = JobTag("job.tone", "f" * 64, 3)
    assert JobTag.from_metadata(tagged.metadata()) == tagged


def test_a_request_becomes_the_trainers_job_description(tmp_path: Path) -> None:
    sha = "a" * 64
    provider = _provider(
        tmp_path / "s",
        resources=RayResources(gpus=2),
        python="/opt/venv/bin/python",
        runtime_env={"env_vars": {"HF_HOME": "/models"}, "pip": ["wandb"]},
    )
    tag = JobTag("job.tone", "f" * 64)
    request = _request(sha, integrations=WANDB)
    job = provider.train_job(request, "s3://ft/runs/x", tag)
    assert job == TrainJob.model_validate(
        {
            "base_model": "/models/tiny",
            "training_files": [{"uri": f"{tmp_path}/s/datasets/{sha}.jsonl", "weight": 2.0}],
            "validation_files": [{"uri": f"{tmp_path}/s/datasets/{sha}.jsonl"}],
            "hyperparameters": {"training_steps": 4, "learning_rate": 0.001, "seq_len": 128},
            "lora": {"rank": 4},
            "output_uri": "s3://ft/runs/x",
            "wandb": {"project": "tone", "run_name": "r1"},
            "metadata": tag.metadata(),
        }
    )
    assert WANDB_KEY not in job.model_dump_json()
    # The key travels in the runtime environment only, beside the Provider's own settings.
    assert provider.job_runtime_env(request) == {
        "env_vars": {"HF_HOME": "/models", "WANDB_API_KEY": WANDB_KEY},
        "pip": ["wandb"],
    }
    assert provider.runtime_env == {"env_vars": {"HF_HOME": "/models"}, "pip": ["wandb"]}
    assert WANDB_KEY not in json.dumps(request_echo(request))
    # Two GPUs: one trainer process per GPU under torchrun.
    assert provider.entrypoint("s3://ft/runs/x/job.json") == (
        "/opt/venv/bin/python -m torch.distributed.run --standalone --nproc-per-node 2 "
        "-m reconciler.train s3://ft/runs/x/job.json"
    )
    single = _provider(tmp_path / "s", resources=RayResources(gpus=0.5))
    assert single.entrypoint("/a b/job.json") == "python -m reconciler.train '/a b/job.json'"


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"hyperparameters": {"learning_rate": 0.001}}, "exactly one of 'training_steps'"),
        ({"training_files": [{"file_id": "not-a-sha"}]}, "not a dataset id"),
        ({"model": ""}, "base_model"),
    ],
)
def test_a_request_the_trainer_cannot_run_is_refused_before_anything_is_sent(
    tmp_path: Path, change: dict[str, Any], fragment: str
) -> None:
    provider = _provider(tmp_path / "s")
    with pytest.raises(ValidationError, match=fragment) as info:
        provider.create_job(
            {**_request("a" * 64), **change}, JobLookup(tag=JobTag("job.x", "f" * 64))
        )
    assert info.value.status == 400  # "refused": the executor forgets the create's intent
    assert provider.stats.requests == 0


def test_the_provider_is_what_the_engine_speaks_to_and_says_what_ray_does_not_do(
    tmp_path: Path,
) -> None:
    provider = _provider(tmp_path / "s")
    assert isinstance(provider, Provider)
    assert provider.capabilities is RAY_CAPABILITIES is CAPABILITIES["ray"]
    assert not RAY_CAPABILITIES.auto_start and RAY_CAPABILITIES.job_metadata
    with pytest.raises(ReconcilerError, match="no cost estimate"):
        provider.estimate_job(_request("a" * 64))
    with pytest.raises(ReconcilerError, match="no model registry"):
        provider.update_model("x", name="y")
    with pytest.raises(ReconcilerError, match="no model registry"):
        provider.archive_model("x")
    # Only an adapter of its own jobs is ever deleted; nothing was sent or touched.
    runs = f"{tmp_path / 's'}/runs"
    for outside in ("/etc", f"{runs}/../datasets", f"{runs}/../adapter", f"{runs}/x/y/adapter"):
        with pytest.raises(NotFoundError, match="nothing was deleted"):
            provider.delete_model(outside)
    assert provider.stats.requests == 0


def test_a_dataset_downloads_and_an_adapter_deletes_in_storage(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chats.jsonl", chat_samples(4))
    provider = _provider(tmp_path / "s")
    stored = provider.upload_file(data, "chats.jsonl")
    provider.download_file(stored.id, tmp_path / "back.jsonl")
    assert (tmp_path / "back.jsonl").read_bytes() == data.read_bytes()
    with pytest.raises(NotFoundError):
        provider.download_file("b" * 64, tmp_path / "none.jsonl")
    adapter = tmp_path / "s" / "runs" / "reconciler-tone-0123456789abcdef" / "adapter"
    adapter.mkdir(parents=True)
    (adapter / "adapter_model.safetensors").write_bytes(b"weights")
    provider.delete_model(str(adapter))
    assert not adapter.exists() and adapter.parent.exists()
    provider.delete_model(str(adapter))  # gone already: deleted


# -------------------------------------------------------------------------------- jobs


@pytest.fixture
def stub_provider(
    ray_address: str, tmp_path: Path, repo_root: Path
) -> Iterator[tuple[RayProvider, list[str]]]:
    """A provider on the Ray head whose jobs run the stand-in trainer; the addresses a test
    adds to the list get their jobs stopped afterwards."""
    addresses: list[str] = []
    provider = RayProvider(
        ray_address,
        str(tmp_path / "storage"),
        resources=RayResources(gpus=0),
        python=STUB_PYTHON,
        runtime_env={"env_vars": job_env(repo_root)},
        price_per_gpu_hour=2.0,
    )
    try:
        yield provider, addresses
    finally:
        provider.close()
        stop_jobs(ray_address, addresses)


def _wait(provider: RayProvider, job_id: str, timeout: float = 120) -> Any:
    """The job once it has ended."""

    def ended() -> bool:
        status = JobStatus.of(provider.get_job(job_id).status)
        return status is not None and status.is_terminal

    poll_until(ended, timeout, lambda: provider.get_job(job_id))
    return provider.get_job(job_id)


def test_a_job_is_submitted_once_and_reads_back_as_a_fine_tuning_job(
    stub_provider: tuple[RayProvider, list[str]], tmp_path: Path, ray_address: str
) -> None:
    provider, addresses = stub_provider
    address = f"job.{unique_name('stub')}"
    addresses.append(address)
    data = write_jsonl(tmp_path / "chats.jsonl", chat_samples(5))
    sha = provider.upload_file(data, "chats.jsonl").id
    tag = JobTag(address, "f" * 64)
    request = _request(sha, integrations=WANDB)

    created = provider.create_job(request, JobLookup(tag=tag))
    # A retry: Ray refuses the id, and the create returns the same job.
    again = provider.create_job(request, JobLookup(tag=tag))

    sid = submission_id(tag)
    assert created.id == again.id == sid
    assert provider.stats.lookups == 1
    assert [j.submission_id for j in ray_jobs_of(ray_address, address)] == [sid]
    assert [j.id for j in provider.find_jobs(request, JobLookup(tag=tag))] == [sid]
    assert provider.find_jobs(request, JobLookup(tag=tag, exclude=frozenset({sid}))) == []
    assert provider.find_jobs(request, JobLookup(tag=JobTag(address, "f" * 64, 1))) == []
    assert sid in [j.id for j in provider.find_jobs(request_echo(request))]
    assert sid not in [
        j.id for j in provider.find_jobs(request_echo(request), JobLookup(exclude=frozenset({sid})))
    ]
    # A create whose job an address already holds is a conflict, never that job again.
    with pytest.raises(ConflictError):
        provider.create_job(request, JobLookup(tag=tag, exclude=frozenset({sid})))

    # The Jobs client: Ray refuses a second job with the id, and the one job runs to its end.
    with RayJobsClient(ray_address) as client:
        with pytest.raises(DuplicateSubmissionError) as info:
            client.submit("echo a second run", submission_id=sid)
        assert (info.value.submission_id, info.value.status) == (sid, 500)
        ray_job = client.wait(sid, timeout=120, interval=POLL)
        logs = client.logs(sid)
        with pytest.raises(NotFoundError):
            client.get(f"{sid}-missing")
    assert (ray_job.status, ray_job.reconciler_status) == ("SUCCEEDED", "SUCCESS"), logs[-3000:]
    assert "training succeeded" in logs and "a second run" not in logs
    done = provider.get_job(sid)
    layout = RunLayout(str(tmp_path / "storage" / "runs" / sid))
    assert ray_job.entrypoint == provider.entrypoint(layout.job)
    assert done.status == "SUCCESS"
    assert done.fine_tuned_model == layout.adapter
    assert Path(layout.adapter, "adapter_config.json").exists()
    assert (done.model, done.training_files, done.validation_files) == (
        "/models/tiny",
        [sha],
        [sha],
    )
    assert done.hyperparameters == request["hyperparameters"]
    assert done.integrations == [
        {"type": "wandb", "project": "tone", "name": None, "run_name": "r1"}
    ]
    assert done.user_metadata == tag.metadata()
    assert [c["step_number"] for c in done.checkpoints] == [4, 2]  # newest first, as the API
    assert (
        done.checkpoints[0]["metrics"]["train_loss"] < done.checkpoints[1]["metrics"]["train_loss"]
    )
    assert done.trained_tokens == 400
    assert [e["data"]["status"] for e in done.events] == ["SUCCESS", "RUNNING", "QUEUED"]
    # The job description in storage is the one the provider made from the request, and the
    # one that ran (the stand-in wrote its tag into the result).
    assert TrainJob.model_validate_json(read_bytes(layout.job)) == provider.train_job(
        request, layout.output_uri, tag
    )
    result = TrainResult.model_validate_json(read_bytes(layout.result))
    assert (result.status, result.steps_completed, result.metadata) == (
        "succeeded",
        4,
        tag.metadata(),
    )
    # Ray hands the metadata back as it was submitted.
    metadata = dict(ray_job.metadata)
    assert json.loads(metadata.pop(REQUEST_KEY)) == request_echo(request)
    assert metadata == {**tag.metadata(), OUTPUT_KEY: layout.output_uri, GPUS_KEY: "0"}
    # The key is nowhere but in the runtime environment, which Ray hands back masked.
    assert ray_job.runtime_env["env_vars"]["WANDB_API_KEY"] == "***"
    for text in (ray_job.model_dump_json(), ray_job.entrypoint, logs, done.model_dump_json()):
        assert WANDB_KEY not in text
    listed = {j.id: j for j in provider.list_jobs()}
    assert listed[sid].status == "SUCCESS" and listed[sid].checkpoints == []
    assert listed[sid].auto_start  # Ray started it: nothing to start by hand
    # Its adapter is its model while it is in storage.
    models = {m.id: m for m in provider.list_models()}
    assert models[layout.adapter].job == sid and models[layout.adapter].root == "/models/tiny"
    provider.delete_model(layout.adapter)
    assert layout.adapter not in {m.id for m in provider.list_models()}


def test_a_failed_run_says_why_and_a_stopped_one_is_cancelled(
    stub_provider: tuple[RayProvider, list[str]],
    tmp_path: Path,
    repo_root: Path,
    ray_address: str,
) -> None:
    provider, addresses = stub_provider
    sha = provider.upload_file(write_jsonl(tmp_path / "c.jsonl", chat_samples(3)), "c.jsonl").id
    failing, sleeping = (f"job.{unique_name(p)}" for p in ("fail", "sleep"))
    addresses += [failing, sleeping]

    provider.runtime_env = {"env_vars": job_env(repo_root, STUB_TRAINER="fail")}
    failed_id = provider.create_job(_request(sha), JobLookup(tag=JobTag(failing, "f" * 64))).id
    provider.runtime_env = {"env_vars": job_env(repo_root, STUB_TRAINER="sleep")}
    sleeping_id = provider.create_job(_request(sha), JobLookup(tag=JobTag(sleeping, "f" * 64))).id

    failed = _wait(provider, failed_id)
    assert failed.status == "FAILED" and failed.fine_tuned_model is None
    last = failed.events[0]  # newest first: the end of the log, then the reason
    assert last["name"] == "logs"
    assert "error: stub: the base model does not load" in last["data"]["logs"]
    assert failed.events[1]["data"] == {
        "status": "FAILED",
        "message": "stub: the base model does not load",
    }

    with RayJobsClient(ray_address) as client:
        # The stand-in says "step 1" once its SIGTERM handler is in place (as the trainer's is
        # in its loop); stopped then, it records the signal that ends it, as the trainer does.
        poll_until(
            lambda: (
                provider.get_job(sleeping_id).status == "RUNNING"
                and "stub trainer: step" in client.logs(sleeping_id)
            ),
            120,
            lambda: client.logs(sleeping_id)[-3000:],
        )
        assert client.stop(sleeping_id) is True
        stopped = _wait(provider, sleeping_id)
        assert client.get(sleeping_id).status == "STOPPED"
        assert client.stop(sleeping_id) is False  # nothing left to stop
    assert stopped.status == "CANCELLED"
    # Ray's stop reached the job's Python process (not only a shell around it) as SIGTERM, not
    # SIGKILL: the reason is the run's result.json.
    assert stopped.events[0]["data"] == {
        "status": "CANCELLED",
        "message": "stopped by signal SIGTERM",
    }
    assert provider.cancel_job(sleeping_id).status == "CANCELLED"  # ended: left as it is


def test_a_ray_job_not_made_by_reconciler_is_not_a_fine_tuning_job(
    stub_provider: tuple[RayProvider, list[str]], ray_address: str
) -> None:
    provider, _ = stub_provider
    sid = f"someone-else-{unique_name('x')}"
    with RayJobsClient(ray_address) as client:
        client.submit("true", submission_id=sid, metadata={"owner": "someone"})
    assert sid not in [j.id for j in provider.list_jobs()]
    with pytest.raises(NotFoundError, match="not made by reconciler"):
        provider.get_job(sid)


def test_a_finished_run_costs_its_gpu_hours_at_the_providers_price(tmp_path: Path) -> None:
    tag = JobTag("job.tone", "f" * 64)
    request = _request("a" * 64)
    ray_job = RayJob.model_validate(
        {
            "submission_id": submission_id(tag),
            "status": "SUCCEEDED",
            "start_time": 1_700_000_000_000,
            "end_time": 1_700_003_600_000,
            "metadata": {
                **tag.metadata(),
                REQUEST_KEY: json.dumps(request_echo(request)),
                OUTPUT_KEY: "s3://ft/runs/x",
                GPUS_KEY: "2",
            },
        }
    )
    result = TrainResult(status="succeeded", training_steps=4, elapsed_seconds=2700.0)
    job = _provider(tmp_path, price_per_gpu_hour=2.0).remote_job(ray_job, result=result)
    # 2 GPUs for 45 minutes: 1.5 GPU-hours, 3.00 USD.
    assert job.metadata == {
        "training_steps": 4,
        "gpu_hours": 1.5,
        "cost": 3.0,
        "cost_currency": "USD",
    }
    assert (job.status, job.fine_tuned_model) == ("SUCCESS", "s3://ft/runs/x/adapter")
    assert (job.created_at, job.modified_at) == (1_700_000_000, 1_700_003_600)
    unpriced = _provider(tmp_path).remote_job(ray_job, result=result)
    assert unpriced.metadata == {"training_steps": 4, "gpu_hours": 1.5}
