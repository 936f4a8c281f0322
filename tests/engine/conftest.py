"""Fixtures for engine end-to-end tests: a sandbox server on 127.0.0.1 and a CLI runner.

The runner drives the real command line in this process (:func:`tests.cli_inprocess.run_cli`:
own working directory and environment, captured output, a check that nothing is left
running). The few tests that need real processes (kill -9, concurrent applies) start them
with :class:`tests.cli_processes.CliProcesses`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_inprocess import run_cli
from tests.engine.project import FLAVOURS, SANDBOX_KEY_ENV, WANDB_KEY, Flavour

SANDBOX_KEY = "sandbox-test-key-4f1c9a"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the postgres state backend (``RECONCILER_TEST_STATE_BACKEND=postgres``), leave out
    the tests marked ``state_backend_independent``: they never touch the backend the variable
    names (planner, executor and cost tests on in-memory or file states), so a second run would
    repeat the first. Of a test run on each provider (``flavour``), keep the first provider's
    run: the state backend sees the same reads, writes, intents and locks from either. For the
    same reason, leave out the tests marked ``provider_behaviour`` (what one provider does
    differently): the providers' own differences are the subject of the file-backend run."""
    from tests.postgres.pg_helpers import BACKEND_ENV

    if os.environ.get(BACKEND_ENV) != "postgres":
        return
    first = next(iter(FLAVOURS.values()))
    kept, left_out = [], []
    for item in items:
        independent = any(
            item.get_closest_marker(name) is not None
            for name in ("state_backend_independent", "provider_behaviour")
        )
        callspec = getattr(item, "callspec", None)
        flavour = callspec.params.get("flavour", first) if callspec is not None else first
        (left_out if independent or flavour is not first else kept).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


MUTATING = {"POST", "PATCH", "DELETE", "PUT"}


@dataclass
class Cli:
    """Runs ``reconciler`` in a project directory with the test environment."""

    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, check: int | None = None) -> subprocess.CompletedProcess[str]:
        """``reconciler ARGS`` in this process; ``check``: the exit code it must end with."""
        proc = run_cli(args, cwd=self.cwd, env=self.env)
        assert "Traceback" not in proc.stderr, proc.stderr
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.server import EmbeddedSandbox

    sb = EmbeddedSandbox(
        SandboxConfig(data_dir=tmp_path / "sandbox-data", api_key=SANDBOX_KEY, time_scale=50.0)
    )
    sb.start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture(params=list(FLAVOURS.values()), ids=list(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> Flavour:
    """Each provider in turn: the sandbox speaking Mistral's API, then OpenAI's."""
    chosen: Flavour = request.param
    return chosen


@pytest.fixture
def provider_sandbox(tmp_path: Path, flavour: Flavour) -> Iterator[Any]:
    """A sandbox server on 127.0.0.1 speaking ``flavour``'s API."""
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.server import EmbeddedSandbox

    config = SandboxConfig(
        data_dir=tmp_path / "sandbox-data",
        api_key=SANDBOX_KEY,
        time_scale=50.0,
        dialect=flavour.dialect,
    )
    with EmbeddedSandbox(config) as sb:
        yield sb


@pytest.fixture
def provider_cli(tmp_path: Path, flavour: Flavour, provider_sandbox: Any) -> Cli:
    """The CLI runner for a project on ``provider_sandbox`` (its endpoint allowed)."""
    project = tmp_path / "project"
    project.mkdir()
    return Cli(cwd=project, env=cli_env(**flavour.env(provider_sandbox.base_url)))


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    env.update(
        {
            SANDBOX_KEY_ENV: SANDBOX_KEY,
            "WANDB_API_KEY": WANDB_KEY,
            "COLUMNS": "120",
            "RECONCILER_SANDBOX_TIME_SCALE": "50",
        }
    )
    from tests.postgres.pg_helpers import DSN_ENV, E2E_DSN_ENV

    if os.environ.get(DSN_ENV):  # the postgres state backend, when the run uses it
        env[E2E_DSN_ENV] = os.environ[DSN_ENV]
    env.update(extra)
    return env


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    project = tmp_path / "project"
    project.mkdir()
    return Cli(cwd=project, env=cli_env())


def mutating(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in journal if e["method"] in MUTATING and e["path"].startswith("/v1/")]
