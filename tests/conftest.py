"""Shared test fixtures for the whole suite (kept generic; area fixtures live in subdirs)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout under test (tests never depend on the current directory)."""


@pytest.fixture
def repo_root() -> Path:
    """Root of the repository: where pyproject.toml, schemas/ and specs/ are."""
    return REPO_ROOT
