"""What the operator hands a command outside the specs — flags that name secrets, environment
variables that tune it — is held to the same rules as the specs: allowlisted, scrubbed, and a
bad value is a clean error naming the flag or variable, never a traceback or an echo."""

from __future__ import annotations

import os
from pathlib import Path

from security_helpers import write_tree

from reconciler.spec.trust import SECRETS_ENV
from tests.cli_inprocess import run_cli

DSN = "postgresql://ci:migrate-pw-4242@127.0.0.1:1/db"


def _specs(tmp_path: Path) -> Path:
    return write_tree(tmp_path, {"specs/h.yaml": "kind: Hyperparameters\nname: h\n"})


def _migrate(root: Path, env: dict[str, str], *args: str) -> tuple[int, str]:
    base = {k: v for k, v in os.environ.items() if k != SECRETS_ENV}
    result = run_cli(
        ["state", "migrate", "--to", "postgres", "-p", "specs", *args], cwd=root, env=base | env
    )
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    return result.returncode, output


def test_state_migrate_reads_the_dsn_variable_only_if_the_operator_allows_it(
    tmp_path: Path,
) -> None:
    root = _specs(tmp_path)
    env = {"TEAM_PG_DSN": DSN, SECRETS_ENV: "MISTRAL_API_KEY,RECONCILER_PG_DSN"}
    code, output = _migrate(root, env, "--dsn-env", "TEAM_PG_DSN")
    assert code == 1
    assert f"TEAM_PG_DSN is not among the secrets the operator allows ({SECRETS_ENV})" in output
    assert "cannot connect" not in output  # refused before any connection


def test_state_migrate_scrubs_the_dsn_it_read(tmp_path: Path) -> None:
    root = _specs(tmp_path)
    code, output = _migrate(root, {"TEAM_PG_DSN": DSN}, "--dsn-env", "TEAM_PG_DSN")
    assert code == 1 and "cannot connect" in output
    assert "migrate-pw-4242" not in output


def test_a_connection_string_pasted_as_dsn_env_is_refused_without_an_echo(
    tmp_path: Path,
) -> None:
    root = _specs(tmp_path)
    code, output = _migrate(root, {}, "--dsn-env", DSN)
    assert code == 1 and "--dsn-env takes the name of the environment variable" in output
    assert "migrate-pw-4242" not in output
