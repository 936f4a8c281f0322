"""Helpers shared by the trainer tests: the tiny job, and what its outputs must look like."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from reconciler.train.job import CheckpointRecord, RunLayout, TrainResult

TRAIN_PACKAGES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "fsspec")


def need_train_extra() -> None:
    """Skip the calling test (or module) when a package of the ``train`` extra is missing."""
    for name in TRAIN_PACKAGES:
        pytest.importorskip(name, reason=f"{name} is not installed: pip install -e '.[train]'")


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
