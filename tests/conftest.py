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


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The Jobs API address of a running Ray head, one for the whole run: the head in
    ``RECONCILER_TEST_RAY_ADDRESS`` (``.ci/run`` starts one), or one started for the session
    (tests/train/rayhead.py); the test skips with the reason when none can run."""
    import httpx

    from tests.train.rayhead import Head, start_head, stop_head

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
