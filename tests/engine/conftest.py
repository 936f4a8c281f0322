"""Fixtures for engine end-to-end tests: a sandbox server on 127.0.0.1 and a CLI runner.

The runner drives the real command line in this process (:func:`tests.cli_inprocess.run_cli`:
own working directory and environment, captured output, a check that nothing is left
running); :meth:`Cli.run_process` and :meth:`Cli.popen` start a real ``python -m reconciler``
child for the few tests that need one (kill -9, concurrent processes).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.cli_inprocess import run_cli
from tests.engine.project import SANDBOX_KEY_ENV, WANDB_KEY

SANDBOX_KEY = "sandbox-test-key-4f1c9a"
MUTATING = {"POST", "PATCH", "DELETE", "PUT"}


@dataclass
class Cli:
    """Runs ``reconciler`` in a project directory with the test environment."""

    cwd: Path
    env: dict[str, str]

    def run(self, *args: str, check: int | None = None) -> subprocess.CompletedProcess[str]:
        """``reconciler ARGS`` in this process; ``check``: the exit code it must end with."""
        return self._checked(run_cli(args, cwd=self.cwd, env=self.env), check)

    def run_process(
        self, *args: str, timeout: float = 120, check: int | None = None
    ) -> subprocess.CompletedProcess[str]:
        """``python -m reconciler ARGS`` as a child process."""
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return self._checked(proc, check)

    @staticmethod
    def _checked(
        proc: subprocess.CompletedProcess[str], check: int | None
    ) -> subprocess.CompletedProcess[str]:
        assert "Traceback" not in proc.stderr, proc.stderr
        if check is not None:
            assert proc.returncode == check, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "reconciler", *args],
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )


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
