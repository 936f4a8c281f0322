"""What the operator hands a command outside the specs — flags that name secrets, environment
variables that tune it — is held to the same rules as the specs: allowlisted, scrubbed, and a
bad value is a clean error naming the flag or variable, never a traceback or an echo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from security_helpers import write_tree

from reconciler.cli.cmd_sandbox import API_KEY_ENV
from reconciler.cli.consoles import PIPE_WIDTH, columns_from_environment
from reconciler.spec.trust import ENDPOINTS_ENV, SECRETS_ENV
from reconciler.workspace import SANDBOX_TIME_SCALE_ENV
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


# Every environment variable reconciler reads, with a value it cannot use: a clean error that
# names the variable, before anything happens. (COLUMNS and the trainer's torchrun variables
# are below.)
BAD_ENVIRONMENT = [
    (["plan", "specs"], ENDPOINTS_ENV, "ftp://files.example"),
    (["plan", "specs"], ENDPOINTS_ENV, "https://user@host.example"),
    (["plan", "specs"], SANDBOX_TIME_SCALE_ENV, "abc"),
    (["plan", "specs"], SANDBOX_TIME_SCALE_ENV, "nan"),
    (["sandbox", "--port", "0"], SANDBOX_TIME_SCALE_ENV, "-1"),
    (["sandbox", "--port", "0"], SANDBOX_TIME_SCALE_ENV, "abc"),
    (["sandbox", "--port", "0"], API_KEY_ENV, ""),
    (["sandbox", "--port", "0"], API_KEY_ENV, "   "),
]


@pytest.mark.parametrize(
    ("args", "name", "value"), BAD_ENVIRONMENT, ids=[f"{b[1]}={b[2]!r}" for b in BAD_ENVIRONMENT]
)
def test_a_bad_environment_value_is_a_clean_error_naming_the_variable(
    tmp_path: Path, args: list[str], name: str, value: str
) -> None:
    root = write_tree(
        tmp_path,
        {
            "specs/d.yaml": "kind: Dataset\nname: d\npath: d.jsonl\n",
            "specs/d.jsonl": '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "ok"}]}\n',
        },
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}
    result = run_cli(args, cwd=root, env={**env, name: value})
    output = " ".join((result.stdout + result.stderr).split())
    assert result.returncode in (1, 2), output  # 2: a usage error, as for a bad flag
    assert name in output and "Traceback" not in output
    assert "to add" not in output and "Sandbox (never trains a model) on" not in output


@pytest.mark.parametrize("columns", ["0", "abc", "-5", "99999999999"])
def test_an_unusable_columns_is_ignored_not_obeyed(tmp_path: Path, columns: str) -> None:
    # COLUMNS belongs to the terminal: a value that is no width is ignored (rich would print
    # every table as nothing at COLUMNS=0, and draw rules a hundred billion characters wide).
    root = write_tree(
        tmp_path,
        {
            "specs/d.yaml": "kind: Dataset\nname: d\npath: d.jsonl\n",
            "specs/d.jsonl": '{"messages": [{"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "ok"}]}\n',
        },
    )
    result = run_cli(["status", "specs"], cwd=root, env={**os.environ, "COLUMNS": columns})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "dataset.d[all]" in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= PIPE_WIDTH


def test_columns_is_a_width_only_when_it_is_one(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, width in [("120", 120), (" 80 ", 80), ("0", None), ("x", None), ("10001", None)]:
        monkeypatch.setenv("COLUMNS", value)
        assert columns_from_environment() == width, value


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"RANK": "abc"}, "environment variable RANK: 'abc' is not a whole number"),
        ({"WORLD_SIZE": "2.5"}, "environment variable WORLD_SIZE: '2.5'"),
        ({"LOCAL_RANK": "x"}, "environment variable LOCAL_RANK: 'x'"),
        ({"WORLD_SIZE": "0"}, "RANK=0, WORLD_SIZE=0, LOCAL_RANK=0 do not describe"),
        ({"RANK": "2", "WORLD_SIZE": "2"}, "RANK=2, WORLD_SIZE=2"),
        ({"RANK": "-1", "WORLD_SIZE": "2"}, "RANK=-1, WORLD_SIZE=2"),
    ],
)
def test_the_trainers_torchrun_variables_are_checked(
    monkeypatch: pytest.MonkeyPatch, values: dict[str, str], named: str
) -> None:
    pytest.importorskip("torch", reason="the trainer needs the train extra")
    from reconciler.errors import TrainingError
    from reconciler.train.trainer import Dist

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert Dist.from_env() == Dist(rank=0, world=1, local_rank=0)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(TrainingError) as info:
        Dist.from_env()
    assert named in str(info.value)
