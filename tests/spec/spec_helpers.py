"""Constants and types shared by the spec tests (imported by name; tests/ is no package)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

# The example document set of the foundation issue: it must load and validate as is.
EXAMPLE_SPECS = """\
kind: Dataset
name: dumbledore-train
path: data/train.jsonl
---
kind: Hyperparameters
name: short
training_steps: 10
learning_rate: 1.0e-4
---
kind: WandbIntegration
name: team
project: dumbledore
api_key: {env: WANDB_API_KEY}
---
kind: FineTuningJob
name: dumbledore-v1
model: open-mistral-7b
training_files:
  - dataset: dumbledore-train
    weight: 1
hyperparameters: short
integrations: [team]
suffix: dumbledore
"""

VALID_CHAT_LINE = (
    '{"messages": [{"role": "user", "content": "What is magic?"}, '
    '{"role": "assistant", "content": "It is what we believe it to be."}]}\n'
)

WriteTree = Callable[[Mapping[str, str | bytes]], Path]
"""The ``write_tree`` fixture: writes files under tmp_path and returns it."""
