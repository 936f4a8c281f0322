"""Fixtures of the trainer and Ray tests: the tiny model and its data.

Tests that train need the ``train`` extra and skip, saying so, without it; tests that talk to
Ray take the ``ray_address`` fixture (tests/conftest.py: one head for the whole run).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from train_helpers import need_train_extra
from train_tiny import build_tiny_model, chat_samples, write_jsonl


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the tiny Mistral model and its tokenizer (built once per session)."""
    need_train_extra()
    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def chat_files(tmp_path: Path) -> dict[str, Path]:
    """Two training files (the second without system prompts) and a validation file."""
    return {
        "train": write_jsonl(tmp_path / "train.jsonl", chat_samples(40, seed=0)),
        "extra": write_jsonl(tmp_path / "extra.jsonl", chat_samples(12, seed=5, system=False)),
        "valid": write_jsonl(tmp_path / "valid.jsonl", chat_samples(8, seed=1)),
    }
