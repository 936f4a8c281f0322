"""Shared test fixtures for the whole suite (kept generic; area fixtures live in subdirs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_processes import CliProcesses

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout under test (tests never depend on the current directory)."""


@pytest.fixture
def repo_root() -> Path:
    """Root of the repository: where pyproject.toml, schemas/ and specs/ are."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def cli_processes() -> Iterator[CliProcesses]:
    """Starts ``reconciler`` commands as real child processes (see tests/cli_processes.py).

    One helper for the whole test run: the package is imported once, not once per test that
    needs real processes (kill -9, concurrent applies).
    """
    with CliProcesses(os.environ) as processes:
        yield processes
