"""The workspace builds the provider the Provider document's ``type`` names, and says where
commands act: Mistral's API, OpenAI's (official endpoint, or an embedded sandbox speaking it
with its own data directory), or the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import SpecError
from reconciler.providers.mistral import MistralProvider
from reconciler.providers.openai import OpenAIProvider
from reconciler.spec.trust import SECRETS_ENV
from reconciler.workspace import open_workspace


def _workspace(tmp_path: Path, provider: str) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "p.yaml").write_text(provider, encoding="utf-8")
    return root


@pytest.mark.parametrize(
    ("provider", "target"),
    [
        ("", "embedded sandbox (ws/.reconciler/sandbox)"),
        ("kind: Provider\nname: p\ntype: mistral\n", "mistral https://api.mistral.ai"),
        (
            "kind: Provider\nname: p\ntype: openai\n",
            "embedded sandbox, openai dialect (ws/.reconciler/sandbox-openai)",
        ),
        (
            "kind: Provider\nname: p\ntype: openai\napi_key: {env: MY_OPENAI_KEY}\n",
            "openai https://api.openai.com/v1",
        ),
        (
            "kind: Provider\nname: p\ntype: openai\nendpoint: https://api.openai.com/v1\n",
            "openai https://api.openai.com/v1",
        ),
    ],
)
def test_the_target_line_follows_the_provider_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, provider: str, target: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with open_workspace([_workspace(tmp_path, provider)]) as ws:
        assert ws.target == target


def test_an_openai_provider_without_endpoint_runs_the_embedded_sandbox_in_its_dialect(
    tmp_path: Path,
) -> None:
    root = _workspace(tmp_path, "kind: Provider\nname: p\ntype: openai\n")
    with open_workspace([root]) as ws:
        provider = ws.provider()
        assert isinstance(provider, OpenAIProvider) and ws.client() is provider
        assert provider.list_jobs() == [] and provider.list_files() == []
        assert any(m.id.startswith("gpt-4o-mini") for m in provider.list_models())
    assert (root / ".reconciler" / "sandbox-openai").is_dir()
    assert not (root / ".reconciler" / "sandbox").exists()


def test_the_openai_key_defaults_to_openai_api_key_once_it_points_at_openai(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment")
    root = _workspace(
        tmp_path,
        "kind: Provider\nname: p\ntype: openai\nendpoint: https://api.openai.com/v1\n"
        "organization: org-1\nproject: proj-1\n",
    )
    with open_workspace([root]) as ws:
        provider = ws.provider()  # built, nothing sent
        assert isinstance(provider, OpenAIProvider)
        assert provider.base_url == "https://api.openai.com"
        assert repr(provider) == (
            "OpenAIProvider(base_url='https://api.openai.com', api_key=<set>)"
        )
    # The default key is a secret the operator's settings hold, like any other.
    monkeypatch.setenv(SECRETS_ENV, "WANDB_API_KEY")
    with pytest.raises(SpecError, match="OPENAI_API_KEY"):
        open_workspace([root])


def test_an_embedded_openai_sandbox_needs_no_key_the_operator_must_allow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SECRETS_ENV, "")  # no secret may be read at all
    root = _workspace(tmp_path, "kind: Provider\nname: p\ntype: openai\n")
    with open_workspace([root]) as ws:
        assert ws.embedded


def test_mistral_and_sandbox_types_build_the_mistral_provider(tmp_path: Path) -> None:
    root = _workspace(tmp_path, "")
    with open_workspace([root]) as ws:
        assert isinstance(ws.provider(), MistralProvider)
