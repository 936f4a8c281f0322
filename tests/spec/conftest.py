"""Fixtures of the spec tests: writing spec trees and running the CLI in-process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from click.testing import Result
from spec_helpers import EXAMPLE_SPECS, VALID_CHAT_LINE, WriteTree
from typer.testing import CliRunner

from reconciler.cli.app import app


@pytest.fixture
def write_tree(tmp_path: Path) -> WriteTree:
    """Write ``{relative path: text or bytes}`` under tmp_path; returns tmp_path."""

    def write(files: Mapping[str, str | bytes]) -> Path:
        for rel, content in files.items():
            target = tmp_path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        return tmp_path

    return write


@pytest.fixture
def example_dir(write_tree: WriteTree) -> Path:
    """The issue's example document set plus a one-line valid training file."""
    return write_tree({"specs.yaml": EXAMPLE_SPECS, "data/train.jsonl": VALID_CHAT_LINE})


@pytest.fixture
def cli() -> Callable[..., Result]:
    """Run ``reconciler ARGS`` in-process; returns click's Result (exit_code, stdout, ...)."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return run
