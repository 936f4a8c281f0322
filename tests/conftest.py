"""Shared test fixtures for the whole suite (kept generic; area fixtures live in subdirs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout under test (tests never depend on the current directory)."""


@pytest.fixture
def repo_root() -> Path:
    """Root of the repository: where pyproject.toml, schemas/ and specs/ are."""
    return REPO_ROOT


@pytest.fixture(scope="session", autouse=True)
def shared_bytecode_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Child Python processes of the tests share one bytecode cache in a temporary directory.

    Without it, each ``python -m reconciler`` child compiles every module it imports again
    whenever ``PYTHONDONTWRITEBYTECODE`` is set (as in many CI images), a large part of a
    short command's cost. The cache lives outside the checkout and goes with the session's
    temporary directory; the test process itself is unaffected (it read its settings at
    start-up).
    """
    saved = {
        name: os.environ.get(name) for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")
    }
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
