"""Helpers shared by the trainer tests: the tiny job, and what its outputs must look like."""

from __future__ import annotations

import importlib.util
import json
import struct
from pathlib import Path
from typing import Any

import pytest

from reconciler.train.job import CheckpointRecord, RunLayout, TrainResult

TRAIN_PACKAGES = ("torch", "transformers", "peft", "tokenizers", "safetensors", "fsspec")


def need_train_extra() -> None:
    """Skip the calling test (or module) when a package of the ``train`` extra is missing.

    Looked up, not imported: importing torch, transformers and peft costs seconds of CPU, in
    a worker that may only hand the model to other processes (the Ray tests).
    """
    for name in TRAIN_PACKAGES:
        if importlib.util.find_spec(name) is None:
            pytest.skip(f"{name} is not installed: pip install -e '.[train]'")


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


def _safetensors(path: Path) -> tuple[dict[str, Any], bytes]:
    """The header (tensor name to dtype, shape and data offsets) and the data of a
    safetensors file, read as its format defines them: no torch needed."""
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length])
    header.pop("__metadata__", None)
    return header, raw[8 + length :]


def check_adapter_tensors(tiny_model: Path, adapter: Path, rank: int) -> None:
    """What :func:`check_adapter_loads` checks, read from the files without torch (for a
    worker that has not imported it): the adapter holds LoRA pairs of ``rank`` for linear
    layers of the base model (A: rank x in, B: out x rank), and training moved B away from the
    zeros it starts at."""
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == rank
    tensors, data = _safetensors(adapter / "adapter_model.safetensors")
    base, _ = _safetensors(tiny_model / "model.safetensors")
    layers = [k.removesuffix(".lora_A.weight") for k in tensors if k.endswith(".lora_A.weight")]
    assert layers and len(tensors) == 2 * len(layers), sorted(tensors)
    trained = 0
    for layer in layers:
        out_features, in_features = base[layer.removeprefix("base_model.model.") + ".weight"][
            "shape"
        ]
        a, b = tensors[f"{layer}.lora_A.weight"], tensors[f"{layer}.lora_B.weight"]
        assert (a["shape"], b["shape"]) == ([rank, in_features], [out_features, rank]), layer
        start, end = b["data_offsets"]
        trained += any(data[start:end])
    assert trained, "every LoRA B matrix is still zero: the adapter was not trained"
