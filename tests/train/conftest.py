"""Fixtures of the trainer and Ray tests: the tiny model and its data.

Tests that train need the ``train`` extra and skip, saying so, without it; tests that talk to
Ray take the ``ray_address`` fixture (tests/conftest.py: one head for the whole run).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from train_helpers import need_train_extra
from train_tiny import build_tiny_model, chat_samples, write_jsonl


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of the tiny Mistral model and its tokenizer, built once per test run.

    Under pytest-xdist the workers share one: the first to need it builds it in the run's
    temporary directory (the parent of every worker's own) while holding a lock, the others
    wait for it and take it. Building means importing torch and transformers (seconds of CPU),
    which a worker that only hands the model to Ray jobs then never pays.
    """
    need_train_extra()
    from filelock import FileLock  # a dependency of torch's

    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    model = root / "tiny-mistral"
    with FileLock(str(root / "tiny-mistral.lock")):
        if not model.is_dir():
            partial = root / "tiny-mistral.partial"  # what a failed build left goes
            shutil.rmtree(partial, ignore_errors=True)
            model = build_tiny_model(partial).rename(model)
    return model


@pytest.fixture
def chat_files(tmp_path: Path) -> dict[str, Path]:
    """Two training files (the second without system prompts) and a validation file."""
    return {
        "train": write_jsonl(tmp_path / "train.jsonl", chat_samples(40, seed=0)),
        "extra": write_jsonl(tmp_path / "extra.jsonl", chat_samples(12, seed=5, system=False)),
        "valid": write_jsonl(tmp_path / "valid.jsonl", chat_samples(8, seed=1)),
    }
