"""Fixtures of the trainer and Ray tests: the tiny model, its data, a Ray head.

Tests that train need the ``train`` extra and skip, saying so, without it; tests that talk to
Ray use the head in ``RECONCILER_TEST_RAY_ADDRESS`` (``.ci/run`` starts one) or start their own
for the session, and skip with the reason when none can run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from rayhead import Head, start_head, stop_head
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


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The Jobs API address of a running Ray head."""
    given = os.environ.get("RECONCILER_TEST_RAY_ADDRESS")
    if given:
        try:
            httpx.get(f"{given}/api/version", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            pytest.skip(
                f"the Ray head in RECONCILER_TEST_RAY_ADDRESS ({given}) does not answer: {exc}"
            )
        yield given
        return
    head: Head | None = None
    try:
        head = start_head()
    except RuntimeError as exc:
        pytest.skip(f"no Ray head: {exc}")
    try:
        yield head.address
    finally:
        stop_head(head)
