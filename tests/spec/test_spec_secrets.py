"""Secret references: resolution from env and files, masking, and validate's leniency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from spec_helpers import WriteTree

from reconciler.errors import SecretError
from reconciler.spec.loader import load_specs
from reconciler.spec.models import SecretRef
from reconciler.spec.secrets import Secret, resolve_secret


def test_env_reference(tmp_path: Path) -> None:
    ref = SecretRef(env="MY_KEY")
    assert resolve_secret(ref, tmp_path, purpose="x", environ={"MY_KEY": "v4lue"}) == "v4lue"


def test_env_reference_reads_the_process_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_TEST_SECRET", "from-env")
    ref = SecretRef(env="RECONCILER_TEST_SECRET")
    assert resolve_secret(ref, tmp_path, purpose="x") == "from-env"


@pytest.mark.parametrize(("environ", "state"), [({}, "is not set"), ({"K": ""}, "is empty")])
def test_missing_env_names_variable_purpose_and_fix(
    tmp_path: Path, environ: dict[str, str], state: str
) -> None:
    with pytest.raises(SecretError) as info:
        resolve_secret(
            SecretRef(env="K"), tmp_path, purpose="WandbIntegration/team api_key", environ=environ
        )
    text = str(info.value)
    assert "WandbIntegration/team api_key" in text
    assert f"K {state}" in text
    assert "export K=" in text


def test_file_reference_is_relative_to_base_dir_and_stripped(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "wandb.key").write_text("  abc123\n\n")
    ref = SecretRef(file="keys/wandb.key")
    assert resolve_secret(ref, tmp_path, purpose="p", environ={}) == "abc123"
    # An absolute path only inside a directory the operator allows.
    absolute = SecretRef(file=str(tmp_path / "keys" / "wandb.key"))
    allowed = {"RECONCILER_ALLOWED_PATHS": str(tmp_path / "keys")}
    assert resolve_secret(absolute, Path("/nonexistent"), purpose="p", environ=allowed) == "abc123"


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "does not exist"), ("  \n", "is empty"), (b"\xff\xfe", "cannot read")],
)
def test_file_reference_problems(
    tmp_path: Path, content: str | bytes | None, fragment: str
) -> None:
    target = tmp_path / "k.txt"
    if isinstance(content, bytes):
        target.write_bytes(content)
    elif content is not None:
        target.write_text(content)
    with pytest.raises(SecretError) as info:
        resolve_secret(SecretRef(file="k.txt"), tmp_path, purpose="Provider api_key", environ={})
    assert fragment in str(info.value)
    assert "Provider api_key" in str(info.value)
    assert str(target) in str(info.value)


def test_secret_masks_itself() -> None:
    secret = Secret("hunter2", source="env:K")
    assert repr(secret) == str(secret) == "***"
    assert f"{secret}" == "***" and "hunter2" not in repr([secret, {"k": secret}])
    assert secret.reveal() == "hunter2"
    assert secret == Secret("hunter2") and secret != Secret("other")


def test_missing_env_var_is_not_a_validate_error(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SURELY_NOT_SET_ANYWHERE", raising=False)
    root = write_tree(
        {
            "w.yaml": "kind: WandbIntegration\nname: w\nproject: p\n"
            "api_key: {env: SURELY_NOT_SET_ANYWHERE}\n---\n"
            "kind: Provider\nname: p\ntype: mistral\napi_key: {file: missing.key}\n"
        }
    )
    specs = load_specs([root])
    assert specs.integrations["w"].doc.api_key.describe() == "env:SURELY_NOT_SET_ANYWHERE"
    assert specs.provider is not None
    with pytest.raises(SecretError):
        ref = specs.provider.doc.api_key
        assert ref is not None
        resolve_secret(ref, specs.provider.base_dir, purpose="Provider/p api_key")


# ----------------------------------------------------------------- names that are secrets

WANDB_SHAPED = "c9f3a2710e0b84d5f96a1c7e2d4b8f0a3c5e7d9b"  # 40 hex characters
NOT_NAMES = [
    WANDB_SHAPED,
    "Xk9fQ2mZ7rLp4sVt8wYb3nHc6jDg1eAu",  # 32 mixed-case alphanumerics
    "a" * 65,  # longer than any real name
    "sk-proj-abc123",  # not a name at all
    "MISTRAL_API_KEY=abc",
]
NAMES = [
    "MISTRAL_API_KEY",
    "WANDB_API_KEY",
    "RECONCILER_PG_DSN",
    "MY_TEAM_FINE_TUNING_WANDB_API_KEY_FOR_PROD",  # long, but words joined by _
    "OPENAI_API_KEY_2024_PRODUCTION_ACCOUNT",
    "_PRIVATE",
]


@pytest.mark.parametrize("name", NOT_NAMES)
def test_an_env_reference_that_looks_like_a_secret_is_refused_without_echo(name: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        SecretRef(env=name)
    message = info.value.errors()[0]["msg"]
    assert "this looks like a secret value, not a variable name" in message
    assert name not in message


@pytest.mark.parametrize("name", NAMES)
def test_real_variable_names_pass(name: str) -> None:
    assert SecretRef(env=name).env == name


def test_validate_reports_a_pasted_key_at_its_line_and_never_prints_it(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch, cli: Any
) -> None:
    root = write_tree(
        {
            "w.yaml": f"kind: WandbIntegration\nname: w\nproject: p\napi_key: {{env: {WANDB_SHAPED}}}\n"
        }
    )
    monkeypatch.chdir(root)
    for fmt in ("text", "json", "github"):
        result = cli("validate", "w.yaml", "--format", fmt)
        assert result.exit_code == 1
        assert WANDB_SHAPED not in result.output and WANDB_SHAPED[:12] not in result.output
        assert "this looks like a secret value, not a variable name" in result.output
    assert "w.yaml:4:" in cli("validate", "w.yaml").output


# ----------------------------------------------------------------- allowlist and registry


def test_env_references_outside_the_allowlist_are_refused_before_reading(tmp_path: Path) -> None:
    environ = {"RECONCILER_ALLOWED_SECRETS": "MISTRAL_API_KEY,WANDB_*", "AWS_KEY": "aws-value-1"}
    with pytest.raises(SecretError) as info:
        resolve_secret(
            SecretRef(env="AWS_KEY"), tmp_path, purpose="Provider/p api_key", environ=environ
        )
    text = str(info.value)
    assert "AWS_KEY" in text and "RECONCILER_ALLOWED_SECRETS" in text and "aws-value-1" not in text
    environ["WANDB_TEAM_KEY"] = "wandb-value-1"
    ref = SecretRef(env="WANDB_TEAM_KEY")
    assert resolve_secret(ref, tmp_path, purpose="p", environ=environ) == "wandb-value-1"


def test_every_resolved_secret_is_scrubbed_from_errors(tmp_path: Path) -> None:
    from reconciler.errors import ApiError
    from reconciler.redact import forget_secrets

    forget_secrets()
    try:
        value = "dsn-password-0123456789"
        resolve_secret(SecretRef(env="K"), tmp_path, purpose="p", environ={"K": value})
        error = ApiError(f"server said: {value} is wrong", method="POST", path="/v1/x", status=422)
        assert value not in str(error) and "server said: *** is wrong" in str(error)
    finally:
        forget_secrets()
