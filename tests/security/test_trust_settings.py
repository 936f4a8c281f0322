"""The operator's trust settings: endpoint matching, secret allowlists, malformed values."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import InvalidValueError
from reconciler.spec.trust import (
    ENDPOINTS_ENV,
    PATHS_ENV,
    SECRETS_ENV,
    STORAGE_ENV,
    TrustSettings,
    local_storage_path,
    parse_endpoint,
)

OFFICIAL = "https://api.mistral.ai"

# (provider type, endpoint, RECONCILER_ALLOWED_ENDPOINTS or None for unset, allowed?)
ENDPOINT_CASES = [
    ("mistral", "https://api.mistral.ai", None, True),
    ("mistral", "https://api.mistral.ai/", None, True),
    ("mistral", "https://api.mistral.ai/v1", None, True),
    ("mistral", "https://API.Mistral.AI:443", None, True),
    ("mistral", "http://api.mistral.ai", None, False),  # plain http: another origin
    ("mistral", "https://api.mistral.ai:8443", None, False),
    ("mistral", "https://api.mistral.ai.evil.com", None, False),
    ("mistral", "https://evil.com/https://api.mistral.ai", None, False),
    ("mistral", "https://api.mistral.ai@evil.com", None, False),
    ("mistral", "https://evil.com#@api.mistral.ai", None, False),
    ("mistral", "https://evil.com?x=https://api.mistral.ai", None, False),
    ("mistral", "https://api.mistral.ai\\@evil.com", None, False),
    ("mistral", "https://api.mistral.ai\t.evil.com", None, False),
    ("mistral", "https://xapi.mistral.ai", None, False),
    ("mistral", "http://127.0.0.1:8080", None, False),  # loopback is for sandboxes only
    ("sandbox", "http://127.0.0.1:8080", None, True),
    ("sandbox", "http://127.8.9.10:1", None, True),
    ("sandbox", "http://localhost:8080", None, True),
    ("sandbox", "http://[::1]:8080", None, True),
    ("sandbox", "http://10.0.0.5:8080", None, False),
    ("sandbox", "http://127.0.0.1.nip.io:8080", None, False),
    ("sandbox", "http://0x7f000001:8080", None, False),
    ("openai", "https://api.openai.com/v1", None, True),
    ("openai", "https://api.openai.com/v1/", None, True),
    ("openai", "https://api.openai.com/v10", None, False),  # path prefix by segment
    ("openai", "https://api.openai.com", None, False),
    # A ray Provider's address: a head on this machine by default, like a sandbox.
    ("ray", "http://127.0.0.1:8265", None, True),
    ("ray", "http://localhost:8265", None, True),
    ("ray", "http://10.0.0.5:8265", None, False),
    ("ray", "http://raycluster-head-svc.ml.svc:8265", None, False),
    (
        "ray",
        "http://raycluster-head-svc.ml.svc:8265",
        "http://raycluster-head-svc.ml.svc:8265",
        True,
    ),
    ("ray", "http://127.0.0.1:8265", "https://proxy.corp.example", False),
    # Set: the official endpoint and the entries, nothing else; loopback no longer implied.
    ("sandbox", "http://127.0.0.1:8080", "", False),
    ("sandbox", "http://127.0.0.1:8080", OFFICIAL, False),
    ("sandbox", "http://127.0.0.1:8080", "http://127.0.0.1:8080", True),
    ("sandbox", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/", True),
    ("sandbox", "http://127.0.0.1:8081", "http://127.0.0.1:8080", False),
    ("sandbox", "https://127.0.0.1:8080", "http://127.0.0.1:8080", False),
    ("mistral", "https://api.mistral.ai", "", True),
    ("mistral", "https://proxy.corp.example/mistral", "proxy.corp.example", True),
    ("mistral", "http://proxy.corp.example/mistral", "proxy.corp.example", False),  # host: https
    ("mistral", "https://proxy.corp.example:8443/m", "proxy.corp.example:8443", True),
    ("mistral", "https://proxy.corp.example/m", "proxy.corp.example:8443", False),
    (
        "mistral",
        "https://proxy.corp.example/mistral/v1",
        "https://proxy.corp.example/mistral",
        True,
    ),
    ("mistral", "https://proxy.corp.example/mistralx", "https://proxy.corp.example/mistral", False),
    ("mistral", "https://proxy.corp.example/other", "https://proxy.corp.example/mistral", False),
    ("mistral", "https://proxy.corp.example.evil.com", "proxy.corp.example", False),
    ("mistral", "https://evil.com", "a.example, https://b.example ,", False),
    ("mistral", "https://b.example", "a.example, https://b.example ,", True),
]


@pytest.mark.parametrize(
    ("kind", "endpoint", "allowed", "ok"),
    ENDPOINT_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in ENDPOINT_CASES],
)
def test_endpoint_matching(kind: str, endpoint: str, allowed: str | None, ok: bool) -> None:
    environ = {} if allowed is None else {ENDPOINTS_ENV: allowed}
    refusal = TrustSettings.from_environ(environ).endpoint_refusal(endpoint, kind)
    assert (refusal is None) is ok, refusal


def test_refusals_say_why() -> None:
    settings = TrustSettings.from_environ({})
    assert "uses https://api.mistral.ai" in str(
        settings.endpoint_refusal("https://evil.com", "mistral")
    )
    assert "loopback" in str(settings.endpoint_refusal("http://10.0.0.1", "sandbox"))
    assert "plain http(s) URL" in str(settings.endpoint_refusal("https://a@b.c", "mistral"))
    strict = TrustSettings.from_environ({ENDPOINTS_ENV: "a.example"})
    assert ENDPOINTS_ENV in str(strict.endpoint_refusal("https://b.example", "mistral"))


@pytest.mark.parametrize(
    "entry",
    ["ftp://x.example", "https://", "https://a@b.example", "a b.example", "https://x:99999", "*"],
)
def test_a_malformed_endpoint_entry_is_a_clean_error_naming_the_variable(entry: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        TrustSettings.from_environ({ENDPOINTS_ENV: f"https://ok.example,{entry}"})
    assert ENDPOINTS_ENV in str(info.value) and repr(entry) in str(info.value)


def test_endpoint_origin() -> None:
    parsed = parse_endpoint("HTTPS://Proxy.Example/a/")
    assert parsed is not None
    assert parsed.origin == "https://proxy.example:443" and parsed.path == "/a"


@pytest.mark.parametrize(
    ("allowed", "name", "ok"),
    [
        (None, "ANYTHING", True),
        ("", "MISTRAL_API_KEY", False),
        ("MISTRAL_API_KEY,WANDB_*", "MISTRAL_API_KEY", True),
        ("MISTRAL_API_KEY,WANDB_*", "WANDB_API_KEY", True),
        ("MISTRAL_API_KEY,WANDB_*", "WANDB", False),
        ("MISTRAL_API_KEY,WANDB_*", "mistral_api_key", False),  # case-sensitive, like env
        ("MISTRAL_API_KEY,WANDB_*", "MISTRAL_API_KEY_2", False),
        ("MISTRAL_API_KEY,WANDB_*", "AWS_SECRET_ACCESS_KEY", False),
        (" MISTRAL_API_KEY , ", "MISTRAL_API_KEY", True),
    ],
)
def test_secret_name_allowlist(allowed: str | None, name: str, ok: bool) -> None:
    environ = {} if allowed is None else {SECRETS_ENV: allowed}
    assert TrustSettings.from_environ(environ).secret_name_allowed(name) is ok


def test_secret_file_allowlist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = TrustSettings.from_environ({SECRETS_ENV: "WANDB_*,/run/secrets/*,keys/wandb.key"})
    assert settings.secret_names == ("WANDB_*",)
    assert settings.secret_file_allowed(Path("/run/secrets/wandb"))
    assert settings.secret_file_allowed(tmp_path / "keys" / "wandb.key")  # from the cwd
    assert not settings.secret_file_allowed(tmp_path / "keys" / "other.key")
    assert not settings.secret_file_allowed(Path("/etc/shadow"))
    assert TrustSettings.from_environ({}).secret_file_allowed(Path("/anything"))


def test_allowed_paths_are_absolute_and_comma_separated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = TrustSettings.from_environ({PATHS_ENV: "/mnt/data, shared ,"})
    assert settings.paths == (Path("/mnt/data"), tmp_path / "shared")


# (storage URI, RECONCILER_ALLOWED_STORAGE or None for unset, allowed?)
STORAGE_CASES = [
    ("s3://ft-bucket/tone", None, False),  # unset: no URI at all
    ("s3://ft-bucket/tone", "", False),
    ("s3://ft-bucket/tone", "s3://ft-bucket", True),
    ("s3://ft-bucket", "s3://ft-bucket", True),
    ("s3://ft-bucket/tone/", "s3://ft-bucket/tone", True),
    ("s3://ft-bucket/tone/v2", "s3://ft-bucket/tone", True),
    ("s3://ft-bucket/tonex", "s3://ft-bucket/tone", False),  # a path prefix by segment
    ("s3://ft-bucket-evil/tone", "s3://ft-bucket", False),
    ("gs://ft-bucket/tone", "s3://ft-bucket", False),  # another filesystem
    ("s3://ft-bucket/tone/../../other", "s3://ft-bucket/tone", False),
    ("s3://user@ft-bucket/tone", "s3://ft-bucket", False),
    ("s3://ft-bucket/tone?x=1", "s3://ft-bucket", False),
    ("s3://evil/x", "gs://a, s3://evil ,", True),
]


@pytest.mark.parametrize(
    ("uri", "allowed", "ok"), STORAGE_CASES, ids=[f"{c[0]}-{c[1]}" for c in STORAGE_CASES]
)
def test_storage_uri_matching(uri: str, allowed: str | None, ok: bool) -> None:
    environ = {} if allowed is None else {STORAGE_ENV: allowed}
    refusal = TrustSettings.from_environ(environ).storage_refusal(uri)
    assert (refusal is None) is ok, refusal


def test_storage_refusals_say_why() -> None:
    assert STORAGE_ENV in str(TrustSettings.from_environ({}).storage_refusal("s3://b/p"))
    strict = TrustSettings.from_environ({STORAGE_ENV: "s3://a"})
    assert "not among the storage URIs" in str(strict.storage_refusal("s3://b/p"))
    assert "plain storage URI" in str(strict.storage_refusal("s3://a/../b"))


@pytest.mark.parametrize("entry", ["/mnt/ft", "s3://", "s3://a:9/b", "s3://a/../b"])
def test_a_malformed_storage_entry_is_a_clean_error_naming_the_variable(entry: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        TrustSettings.from_environ({STORAGE_ENV: f"s3://ok,{entry}"})
    assert STORAGE_ENV in str(info.value) and repr(entry) in str(info.value)


@pytest.mark.parametrize(
    ("storage", "local"),
    [
        ("ft", "ft"),
        ("/mnt/ft", "/mnt/ft"),
        ("file:///mnt/ft", "/mnt/ft"),
        ("s3://b/ft", None),
        ("gs://b", None),
    ],
)
def test_local_storage_is_a_path_and_a_uri_is_not(storage: str, local: str | None) -> None:
    assert local_storage_path(storage) == local
