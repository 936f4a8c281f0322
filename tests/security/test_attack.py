"""The attack a pull request can make, played through the real command line.

Whoever can open a pull request writes the specs; CI runs ``plan`` (and, after the merge,
``apply``) with keys in its environment. A recording HTTP endpoint on 127.0.0.1 stands for the
attacker's server. The environment is the one the GitHub recipes give reconciler (their
``env:`` read from examples/ci/github/), plus other secrets a runner typically holds. No key
may reach the endpoint, no file outside the workspace may be read, and no secret may be
printed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from security_helpers import RecordingEndpoint, recipe_env, run_cli, write_tree

MISTRAL_PLAN_KEY = "plan-key-" + "p1" * 16
MISTRAL_KEY = "apply-key-" + "a2" * 16
WANDB_KEY = "w" * 8 + "0123456789abcdef" * 2
DSN = "postgresql://reconciler:pg-password-42@db.internal/state"
RUNNER_SECRETS = {
    "AWS_SECRET_ACCESS_KEY": "aws-" + "s3" * 18,
    "GITHUB_TOKEN": "ghs_" + "t0k3n" * 7,
}
ALL_SECRETS = [MISTRAL_PLAN_KEY, MISTRAL_KEY, WANDB_KEY, DSN, *RUNNER_SECRETS.values()]

SECRETS = {
    "MISTRAL_PLAN_API_KEY": MISTRAL_PLAN_KEY,
    "MISTRAL_API_KEY": MISTRAL_KEY,
    "WANDB_API_KEY": WANDB_KEY,
    "RECONCILER_PG_DSN": DSN,
}
CHAT = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n'


def _environments() -> dict[str, dict[str, str]]:
    """Command → the environment the recipes run it in, plus the runner's other secrets."""
    return {
        "plan": {**RUNNER_SECRETS, **recipe_env("plan", "plan", SECRETS)},
        "apply": {**RUNNER_SECRETS, **recipe_env("apply", "apply", SECRETS)},
    }


def test_the_recipes_set_the_allowlists_this_test_relies_on() -> None:
    envs = _environments()
    assert envs["plan"]["RECONCILER_ALLOWED_ENDPOINTS"] == "https://api.mistral.ai"
    assert envs["plan"]["MISTRAL_API_KEY"] == MISTRAL_PLAN_KEY
    assert "WANDB_API_KEY" not in envs["plan"] and envs["apply"]["WANDB_API_KEY"] == WANDB_KEY
    for command in ("plan", "apply"):
        assert set(envs[command]["RECONCILER_ALLOWED_SECRETS"].split(",")) == {
            "MISTRAL_API_KEY",
            "WANDB_API_KEY",
            "RECONCILER_PG_DSN",
        }


@pytest.fixture
def endpoint() -> Iterator[RecordingEndpoint]:
    with RecordingEndpoint() as server:
        yield server


def _job_using_wandb(key_ref: str) -> str:
    return (
        "kind: Dataset\nname: d\npath: data/train.jsonl\n---\n"
        f"kind: WandbIntegration\nname: w\nproject: p\napi_key: {key_ref}\n---\n"
        "kind: FineTuningJob\nname: j\nmodel: open-mistral-7b\ntraining_files: [d]\n"
        "integrations: [w]\nhyperparameters: {training_steps: 10}\n"
    )


# (name, provider document with {url} and {port}, other spec files, line of `endpoint:`)
PROVIDER_ATTACKS = [
    (
        "mistral provider pointed at the attacker",
        "kind: Provider\nname: p\ntype: mistral\nendpoint: {url}\n",
        {},
    ),
    (
        "sandbox provider sending any variable",
        "kind: Provider\nname: p\ntype: sandbox\nendpoint: {url}\n"
        "api_key: {{env: AWS_SECRET_ACCESS_KEY}}\n",
        {},
    ),
    (
        "loopback alias",
        "kind: Provider\nname: p\ntype: sandbox\nendpoint: http://localhost:{port}/v1\n"
        "api_key: {{env: MISTRAL_API_KEY}}\n",
        {},
    ),
    (
        "W&B key in the create body",
        "kind: Provider\nname: p\ntype: sandbox\nendpoint: {url}\n"
        "api_key: {{env: MISTRAL_API_KEY}}\n",
        {
            "specs/job.yaml": _job_using_wandb("{env: WANDB_API_KEY}"),
            "specs/data/train.jsonl": CHAT,
        },
    ),
]


def _assert_nothing_leaked(result: subprocess.CompletedProcess[str], workspace: Path) -> None:
    output = result.stdout + result.stderr
    files = [
        p.read_bytes().decode("utf-8", "replace")
        for p in workspace.rglob("*")
        if p.is_file() and not p.is_symlink()
    ]
    for secret in ALL_SECRETS:
        assert secret not in output, secret
        assert not any(secret in text for text in files), secret


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(
    ("attack", "provider", "others"), PROVIDER_ATTACKS, ids=[a[0] for a in PROVIDER_ATTACKS]
)
def test_no_key_reaches_an_endpoint_a_pull_request_names(
    tmp_path: Path,
    endpoint: RecordingEndpoint,
    command: str,
    attack: str,
    provider: str,
    others: dict[str, str],
) -> None:
    repo = write_tree(
        tmp_path / "repo",
        {
            "specs/provider.yaml": provider.format(url=endpoint.url, port=endpoint.port),
            **others,
        },
    )
    args = ["plan", "specs/"] if command == "plan" else ["apply", "specs/", "--yes"]
    result = run_cli(args, repo, _environments()[command])
    assert result.returncode == 1, result.stdout + result.stderr
    assert endpoint.requests == [], endpoint.everything_received()
    assert "specs/provider.yaml:4:" in result.stderr  # the `endpoint:` line
    assert (
        "endpoint-not-allowed" in result.stderr and "RECONCILER_ALLOWED_ENDPOINTS" in result.stderr
    )
    assert "nothing was sent" in result.stderr
    _assert_nothing_leaked(result, repo)


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_an_allowed_endpoint_still_gets_only_the_secrets_the_operator_allows(
    tmp_path: Path, endpoint: RecordingEndpoint, command: str
) -> None:
    # The operator trusts this endpoint (say, its proxy); the pull request names other
    # variables for the key and for W&B.
    repo = write_tree(
        tmp_path / "repo",
        {
            "specs/provider.yaml": f"kind: Provider\nname: p\ntype: mistral\n"
            f"endpoint: {endpoint.url}\napi_key: {{env: AWS_SECRET_ACCESS_KEY}}\n",
            "specs/job.yaml": _job_using_wandb("{env: GITHUB_TOKEN}"),
            "specs/data/train.jsonl": CHAT,
        },
    )
    env = {**_environments()[command], "RECONCILER_ALLOWED_ENDPOINTS": endpoint.url}
    args = ["plan", "specs/"] if command == "plan" else ["apply", "specs/", "--yes"]
    result = run_cli(args, repo, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert endpoint.requests == [], endpoint.everything_received()
    assert "specs/provider.yaml:5:" in result.stderr and "AWS_SECRET_ACCESS_KEY" in result.stderr
    assert "specs/job.yaml:8:" in result.stderr and "GITHUB_TOKEN" in result.stderr
    assert result.stderr.count("secret-not-allowed") == 2
    _assert_nothing_leaked(result, repo)


def test_the_recording_endpoint_does_see_what_an_allowed_provider_sends(
    tmp_path: Path, endpoint: RecordingEndpoint
) -> None:
    # The control: with the endpoint and the variable allowed, the key does arrive, so the
    # empty recordings above are refusals, not a deaf recorder.
    repo = write_tree(
        tmp_path / "repo",
        {
            "specs/provider.yaml": f"kind: Provider\nname: p\ntype: mistral\nendpoint: {endpoint.url}\n"
        },
    )
    env = {**_environments()["plan"], "RECONCILER_ALLOWED_ENDPOINTS": endpoint.url}
    result = run_cli(["plan", "specs/"], repo, env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert endpoint.requests
    assert {r.headers.get("Authorization") for r in endpoint.requests} == {
        f"Bearer {MISTRAL_PLAN_KEY}"
    }


# ----------------------------------------------------------------------------- files

CANARY = "CANARY-7f3a9c-never-upload-me"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the workspace that is valid training data, marked with a canary."""
    target = tmp_path / "outside" / "private.jsonl"
    target.parent.mkdir()
    target.write_text(CHAT.replace("hi", CANARY) * 3, encoding="utf-8")
    return target


FILE_ATTACKS = [
    ("dot-dot", "../../outside/private.jsonl"),
    ("etc-passwd", "../../../../../../../../etc/passwd"),
    ("absolute", "{outside}"),
    ("symlink", "data/innocent.jsonl"),
]


@pytest.mark.parametrize("command", ["plan", "apply"])
@pytest.mark.parametrize(("attack", "written"), FILE_ATTACKS, ids=[a[0] for a in FILE_ATTACKS])
def test_files_outside_the_workspace_are_never_read_or_uploaded(
    tmp_path: Path, outside: Path, command: str, attack: str, written: str
) -> None:
    repo = write_tree(
        tmp_path / "repo",
        {
            "specs/data.yaml": f"kind: Dataset\nname: d\npath: {written.format(outside=outside)}\n",
            "specs/job.yaml": "kind: FineTuningJob\nname: j\nmodel: open-mistral-7b\n"
            "training_files: [d]\nhyperparameters: {training_steps: 10}\n",
        },
    )
    (repo / "specs" / "data").mkdir()
    os.symlink(outside, repo / "specs" / "data" / "innocent.jsonl")
    args = ["plan", "specs/"] if command == "plan" else ["apply", "specs/", "--yes"]
    # Without a Provider: the embedded sandbox would store whatever is uploaded.
    result = run_cli(args, repo, _environments()[command])
    assert result.returncode == 1, result.stdout + result.stderr
    assert "specs/data.yaml:3:7" in result.stderr and "path-not-allowed" in result.stderr
    stored = [p for p in repo.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not [p for p in stored if CANARY in p.read_text(encoding="utf-8", errors="replace")]
    assert "root:" not in result.stdout + result.stderr  # nothing of /etc/passwd either


def test_secret_files_outside_the_workspace_are_never_read(tmp_path: Path, outside: Path) -> None:
    secret = outside.parent / "wandb.key"
    secret.write_text(WANDB_KEY, encoding="utf-8")
    repo = write_tree(
        tmp_path / "repo",
        {
            "specs/job.yaml": _job_using_wandb("{file: ../../outside/wandb.key}"),
            "specs/data/train.jsonl": CHAT,
        },
    )
    env = {**_environments()["apply"], "RECONCILER_ALLOWED_SECRETS": "WANDB_*,../outside/*"}
    # Even when the allowlist names the file: it is outside the workspace.
    result = run_cli(["apply", "specs/", "--yes"], repo, env)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "specs/job.yaml:8:" in result.stderr and "leads out of the workspace" in result.stderr
    _assert_nothing_leaked(result, repo)


def test_a_link_inside_a_dataset_directory_is_never_followed_out(
    tmp_path: Path, outside: Path
) -> None:
    repo = write_tree(
        tmp_path / "repo",
        {
            "specs/data.yaml": "kind: Dataset\nname: d\npath: data\n",
            "specs/data/own.jsonl": CHAT,
            "specs/job.yaml": "kind: FineTuningJob\nname: j\nmodel: open-mistral-7b\n"
            "training_files: [d]\nhyperparameters: {training_steps: 10}\n",
        },
    )
    os.symlink(outside, repo / "specs" / "data" / "zz-innocent.jsonl")
    result = run_cli(["apply", "specs/", "--yes"], repo, _environments()["apply"])
    stored = [p for p in repo.rglob("*") if p.is_file() and not p.is_symlink()]
    assert not [p for p in stored if CANARY in p.read_text(encoding="utf-8", errors="replace")]
    assert result.returncode == 1 and "path-not-allowed" in result.stderr
