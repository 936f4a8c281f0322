"""Fixtures for the provider tests: the sandbox in its OpenAI dialect on 127.0.0.1, on a
manual clock (jobs move only when a test advances it), and the OpenAI provider talking to it.
The sandbox fixtures are the sandbox tests' own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.providers.openai import OpenAIProvider
from reconciler.sandbox import EmbeddedSandbox
from tests.sandbox.conftest import API_KEY as KEY
from tests.sandbox.conftest import StartSandbox, chat_lines, clock, openai_sandbox, start_sandbox

__all__ = ["KEY", "StartSandbox", "chat_file", "clock", "openai_sandbox", "start_sandbox"]


@pytest.fixture
def provider(openai_sandbox: EmbeddedSandbox) -> Iterator[OpenAIProvider]:
    with OpenAIProvider(f"{openai_sandbox.base_url}/v1", KEY) as client:
        yield client


def chat_file(path: Path, n: int = 12, tag: str = "t") -> Path:
    """A JSONL file of ``n`` chat samples (distinct per ``tag``)."""
    path.write_bytes(chat_lines(n, tag))
    return path
