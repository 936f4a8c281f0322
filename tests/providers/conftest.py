"""Fixtures for the provider tests: the sandbox in its OpenAI dialect on 127.0.0.1, on a
manual clock (jobs move only when a test advances it), and the OpenAI provider talking to it."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.providers.openai import OpenAIProvider
from reconciler.sandbox import EmbeddedSandbox, ManualClock
from reconciler.sandbox.app import SandboxConfig

KEY = "provider-test-key-0c1d"

StartSandbox = Callable[..., EmbeddedSandbox]


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def start_openai(tmp_path: Path, clock: ManualClock) -> Iterator[StartSandbox]:
    """Factory: an OpenAI-dialect sandbox on the test's clock (``SandboxConfig`` options)."""
    started: list[EmbeddedSandbox] = []

    def start(**options: Any) -> EmbeddedSandbox:
        options.setdefault("data_dir", tmp_path / f"sandbox{len(started)}")
        sb = EmbeddedSandbox(
            SandboxConfig(api_key=KEY, dialect="openai", clock=clock, **options)
        ).start()
        started.append(sb)
        return sb

    yield start
    for sb in started:
        sb.stop()


@pytest.fixture
def openai_sandbox(start_openai: StartSandbox) -> EmbeddedSandbox:
    return start_openai()


@pytest.fixture
def provider(openai_sandbox: EmbeddedSandbox) -> Iterator[OpenAIProvider]:
    with OpenAIProvider(f"{openai_sandbox.base_url}/v1", KEY) as client:
        yield client


def chat_file(path: Path, n: int = 12, tag: str = "t") -> Path:
    """A JSONL file of ``n`` chat samples (distinct per ``tag``)."""
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"question {tag} {i}"},
                    {"role": "assistant", "content": f"answer {tag} {i}"},
                ]
            }
        )
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
