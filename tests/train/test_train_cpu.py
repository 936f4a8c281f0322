"""Real LoRA training of the tiny Mistral model on the CPU, through the trainer's entrypoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import need_train_extra

from reconciler.train.__main__ import main
from reconciler.train.job import CheckpointRecord, RunLayout, TrainJob, TrainResult

need_train_extra()

from reconciler.train.trainer import lr_factor, total_steps  # noqa: E402


def write_job(path: Path, **job: Any) -> Path:
    path.write_text(json.dumps(job), encoding="utf-8")
    return path


def tiny_job(
    tiny_model: Path, files: dict[str, Path], output: Path, **extra: Any
) -> dict[str, Any]:
    """Twenty steps on the two training files (weights 3:1), validated every five."""
    return {
        "base_model": str(tiny_model),
        "training_files": [
            {"uri": str(files["train"]), "weight": 3},
            {"uri": str(files["extra"]), "weight": 1},
        ],
        "validation_files": [{"uri": str(files["valid"])}],
        "hyperparameters": {
            "training_steps": 20,
            "learning_rate": 5e-3,
            "warmup_fraction": 0.1,
            "seq_len": 128,
            "batch_size": 4,
        },
        "lora": {"rank": 8},
        "checkpoint_interval": 5,
        "seed": 1,
        "output_uri": str(output),
        "metadata": {"address": "job.tiny", "fingerprint": "abc123"},
        **extra,
    }


def check_training_outputs(output: Path, tiny_model: Path) -> list[CheckpointRecord]:
    """What a successful tiny run leaves in storage; returns the checkpoint records."""
    layout = RunLayout(str(output))
    result = TrainResult.model_validate_json(Path(layout.result).read_text())
    assert result.status == "succeeded", result.message
    assert (result.steps_completed, result.training_steps) == (20, 20)
    assert result.adapter_uri == layout.adapter
    assert result.metadata == {"address": "job.tiny", "fingerprint": "abc123"}
    assert result.trained_tokens > 0

    lines = Path(layout.metrics).read_text().splitlines()
    records = [CheckpointRecord.model_validate_json(line) for line in lines]
    assert [r.step_number for r in records] == [5, 10, 15, 20]
    first, last = records[0].metrics, records[-1].metrics
    assert first.train_loss is not None and last.train_loss is not None
    assert last.train_loss < first.train_loss * 0.95
    assert first.valid_loss is not None and last.valid_loss is not None
    assert last.valid_loss < first.valid_loss
    assert last.valid_mean_token_accuracy is not None
    assert 0.0 <= last.valid_mean_token_accuracy <= 1.0
    assert result.metrics == last

    for uri in [layout.adapter, *(r.adapter_uri for r in records)]:
        assert uri is not None
        assert sorted(p.name for p in Path(uri).glob("adapter_*")) == [
            "adapter_config.json",
            "adapter_model.safetensors",
        ]
    check_adapter_loads(tiny_model, Path(layout.adapter))
    return records


def check_adapter_loads(tiny_model: Path, adapter: Path) -> None:
    """The adapter loads with peft onto the base model and changes its predictions."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["lora_alpha"] == 16
    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    ids = torch.tensor([[1, 4, 10, 11, 12, 5]])
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, adapter)
        after = tuned(input_ids=ids).logits
    assert {n for n, _ in tuned.named_parameters() if "lora_A" in n}
    assert not torch.allclose(before, after)


def test_training_lowers_the_loss_and_writes_adapters_that_load(
    tiny_model: Path, chat_files: dict[str, Path], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.json", **tiny_job(tiny_model, chat_files, tmp_path / "out"))
    assert main([str(job)]) == 0
    check_training_outputs(tmp_path / "out", tiny_model)


def test_a_failing_run_still_writes_its_result(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    files = {"train": questions, "extra": questions, "valid": questions}
    job = write_job(tmp_path / "job.json", **tiny_job(tiny_model, files, tmp_path / "out"))
    assert main([str(job)]) == 1
    assert "no sample with an assistant message" in capsys.readouterr().err
    result = TrainResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert result.status == "failed"
    assert result.message is not None and "questions.jsonl" in result.message
    assert result.steps_completed == 0


def test_an_invalid_job_description_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = write_job(
        tmp_path / "job.json",
        base_model="m",
        training_files=[{"uri": "t.jsonl"}],
        hyperparameters={"learning_rate": 1e-4},
        output_uri=str(tmp_path / "out"),
    )
    assert main([str(job)]) == 2
    err = capsys.readouterr().err
    assert "not a valid training job description" in err
    assert "exactly one of 'training_steps' and 'epochs'" in err
    assert not (tmp_path / "out").exists()
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_schema_is_printable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "TrainJob"
    assert {"base_model", "training_files", "hyperparameters", "output_uri"} <= set(
        schema["required"]
    )


@pytest.mark.parametrize(
    ("step", "factor"),
    [(0, 0.5), (1, 1.0), (2, 1.0), (11, 0.5), (19, 1 / 18), (20, 0.0)],
)
def test_learning_rate_warms_up_then_decays_linearly(step: int, factor: float) -> None:
    # 20 steps, warmup_fraction 0.1: two warm-up steps, then 18 steps down to zero.
    assert lr_factor(step, 20, 0.1) == pytest.approx(factor)


def test_epochs_become_steps(chat_files: dict[str, Path], tmp_path: Path) -> None:
    job = TrainJob.model_validate(
        {
            "base_model": "m",
            "training_files": [
                {"uri": str(chat_files["train"])},
                {"uri": str(chat_files["extra"])},
            ],
            "hyperparameters": {"epochs": 1.5, "batch_size": 4},
            "output_uri": str(tmp_path),
        }
    )
    # 52 samples * 1.5 epochs / (4 per step * 2 processes) = 9.75 -> 10 steps
    assert total_steps(job, world=2) == 10
