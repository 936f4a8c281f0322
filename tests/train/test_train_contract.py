"""The job description, the run layout and storage: what the submitting side relies on."""

from __future__ import annotations

import json
from pathlib import Path

import pydantic
import pytest

from reconciler.errors import StorageError
from reconciler.train.job import CheckpointRecord, RunLayout, TrainJob, TrainResult
from reconciler.train.storage import (
    dataset_uri,
    exists,
    file_sha256,
    iter_lines,
    read_bytes,
    read_bytes_if_exists,
    upload_dataset,
    write_bytes,
)

pytest.importorskip("fsspec", reason="fsspec is not installed: pip install -e '.[ray]'")


def _job(**overrides: object) -> dict[str, object]:
    job: dict[str, object] = {
        "base_model": "mistralai/Mistral-7B-v0.3",
        "training_files": [{"uri": "s3://bucket/datasets/abc.jsonl", "weight": 2}],
        "hyperparameters": {"training_steps": 100, "learning_rate": 1e-4},
        "output_uri": "s3://bucket/runs/job-1",
    }
    job.update(overrides)
    return job


def test_job_defaults_follow_mistral_finetune() -> None:
    job = TrainJob.model_validate(_job())
    assert job.version == 1
    assert job.chat_format == "auto"
    assert job.lora.rank == 16 and job.lora.scaled_alpha == 32
    assert job.hyperparameters.warmup_fraction == 0.05
    assert job.hyperparameters.weight_decay == 0.1
    assert job.training_files[0].weight == 2.0


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"hyperparameters": {"learning_rate": 1e-4}}, "hyperparameters"),
        ({"hyperparameters": {"training_steps": 10, "epochs": 1}}, "hyperparameters"),
        ({"training_files": []}, "training_files"),
        ({"training_files": [{"uri": "x.jsonl", "weight": 0}]}, "training_files.0.weight"),
        ({"version": 2}, "version"),
        ({"learning_rate": 1e-4}, "learning_rate"),
        ({"lora": {"rank": 0}}, "lora.rank"),
    ],
)
def test_job_rejects(change: dict[str, object], where: str) -> None:
    with pytest.raises(pydantic.ValidationError) as info:
        TrainJob.model_validate(_job(**change))
    locations = {".".join(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert any(loc.startswith(where) for loc in locations), locations


@pytest.mark.parametrize(
    ("total", "interval", "expected"),
    [
        (20, 5, [5, 10, 15, 20]),
        (20, None, [10, 20]),
        (7, None, [7]),
        (250, None, [25, 50, 75, 100, 125, 150, 175, 200, 225, 250]),
        (12, 5, [5, 10, 12]),
    ],
)
def test_checkpoint_steps(total: int, interval: int | None, expected: list[int]) -> None:
    job = TrainJob.model_validate(_job(checkpoint_interval=interval))
    assert job.checkpoint_steps(total) == expected


def test_layout_places_every_output_under_the_output_uri() -> None:
    layout = RunLayout("s3://bucket/runs/job-1/")
    assert layout.metrics == "s3://bucket/runs/job-1/metrics.jsonl"
    assert layout.result == "s3://bucket/runs/job-1/result.json"
    assert layout.adapter == "s3://bucket/runs/job-1/adapter"
    assert layout.job == "s3://bucket/runs/job-1/job.json"
    assert layout.checkpoint(30) == "s3://bucket/runs/job-1/checkpoints/step-000030"


def test_checkpoint_record_reads_as_a_hosted_checkpoint() -> None:
    line = {
        "step_number": 10,
        "created_at": 1700000000,
        "metrics": {"train_loss": 1.5, "valid_loss": 1.7, "valid_mean_token_accuracy": 0.6},
        "elapsed_seconds": 3.2,
        "future_field": "kept",
    }
    record = CheckpointRecord.model_validate(line)
    assert record.metrics.valid_mean_token_accuracy == 0.6
    assert record.model_dump()["future_field"] == "kept"
    result = TrainResult.model_validate({"status": "succeeded", "adapter_uri": "x"})
    assert result.version == 1


def test_upload_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    source = tmp_path / "prepared.jsonl"
    source.write_bytes(b'{"messages": []}\n' * 1000)
    storage = str(tmp_path / "storage")
    first = upload_dataset(source, storage)
    assert first.uploaded
    assert first.sha256 == file_sha256(source)
    assert first.uri == dataset_uri(storage, first.sha256)
    assert first.uri.endswith(f"/datasets/{first.sha256}.jsonl")
    assert Path(first.uri).read_bytes() == source.read_bytes()
    again = upload_dataset(source, storage, sha256=first.sha256)
    assert not again.uploaded and again.uri == first.uri
    assert sorted(p.name for p in (tmp_path / "storage" / "datasets").iterdir()) == [
        f"{first.sha256}.jsonl"
    ]


def test_upload_replaces_a_partial_object(tmp_path: Path) -> None:
    source = tmp_path / "prepared.jsonl"
    source.write_bytes(b"abc\n" * 100)
    storage = str(tmp_path / "storage")
    target = Path(dataset_uri(storage, file_sha256(source)))
    target.parent.mkdir(parents=True)
    target.write_bytes(b"abc\n")  # e.g. left by a copy tool that was interrupted
    stored = upload_dataset(source, storage)
    assert stored.uploaded
    assert target.read_bytes() == source.read_bytes()


def test_storage_round_trip_with_a_file_uri(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/run/result.json"
    write_bytes(uri, json.dumps({"a": 1}).encode())
    assert exists(uri)
    assert json.loads(read_bytes(uri)) == {"a": 1}
    assert read_bytes_if_exists(uri) == read_bytes(uri)
    assert read_bytes_if_exists(f"file://{tmp_path}/run/metrics.jsonl") is None
    write_bytes(uri, b"line 1\nline 2\n")
    assert list(iter_lines(uri)) == [b"line 1\n", b"line 2\n"]
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["result.json"]


@pytest.mark.parametrize(
    ("uri", "message"),
    [
        ("{tmp}/missing.jsonl", "does not exist"),
        ("nosuchscheme://bucket/x.jsonl", "nosuchscheme"),
    ],
)
def test_storage_errors_name_the_location(tmp_path: Path, uri: str, message: str) -> None:
    uri = uri.format(tmp=tmp_path)
    with pytest.raises(StorageError) as info:
        read_bytes(uri)
    assert uri in str(info.value)
    assert message in str(info.value)
