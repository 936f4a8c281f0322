"""Fixtures of the security tests: no ambient trust settings, an empty secret registry, the
command line as a child process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from security_helpers import RunCli, cli_runner

from reconciler.redact import forget_secrets
from reconciler.spec.trust import ENDPOINTS_ENV, PATHS_ENV, SECRETS_ENV
from tests.cli_processes import CliProcesses


@pytest.fixture(autouse=True)
def _clean_trust_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the operator's defaults and sees no other test's secrets."""
    for name in (ENDPOINTS_ENV, SECRETS_ENV, PATHS_ENV):
        monkeypatch.delenv(name, raising=False)
    forget_secrets()
    yield
    forget_secrets()


@pytest.fixture
def run_cli(cli_processes: CliProcesses) -> RunCli:
    """Runs ``reconciler`` as a child process with exactly the environment a test gives it."""
    return cli_runner(cli_processes)
