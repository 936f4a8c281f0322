"""Every resolved secret is scrubbed from remote errors, and the bearer key goes to its own
endpoint only."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import pytest
from client_fakes import KEY, FakeApi, Fault

from reconciler.client import MistralClient
from reconciler.client.http import BearerAuth
from reconciler.errors import ValidationError
from reconciler.redact import forget_secrets, register_secret

WANDB_KEY = "f3e1c0ffee" * 4  # 40 characters, like a W&B key


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def _echo_422(padding: int) -> dict[str, object]:
    """A FastAPI 422 echoing the create body, the W&B key ``padding`` characters in."""
    return {
        "detail": [
            {
                "type": "extra_forbidden",
                "loc": ["body", "integrations", 0, "x" * padding],
                "msg": "Extra inputs are not permitted",
                "input": {"type": "wandb", "project": "p", "api_key": WANDB_KEY},
            }
        ]
    }


@pytest.mark.parametrize("padding", [0, 200, 260])
def test_a_422_echoing_the_wandb_key_prints_stars(padding: int) -> None:
    register_secret(WANDB_KEY)  # what resolve_secret does when the key is read
    api = FakeApi()
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", status=422, body=_echo_422(padding)))
    with MistralClient("http://remote.test", KEY, transport=api.transport()) as client:
        with pytest.raises(ValidationError) as info:
            client.create_job({"model": "m", "training_files": [], "hyperparameters": {}})
    error = info.value
    for text in (str(error), error.reason, repr(error.detail)):
        # Not the key, and not a piece of it left by shortening the message.
        assert WANDB_KEY[:12] not in text
    assert "***" in str(error) + repr(error.detail)


def _recording_client(seen: list[httpx.Request]) -> MistralClient:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"data": [], "total": 0, "object": "list"})

    return MistralClient(
        "https://api.example.test", KEY, transport=httpx.MockTransport(handler), max_attempts=1
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example.test/v1/files",
        "https://api.example.test.evil.test/v1/files",
        "http://api.example.test/v1/files",  # same host, other scheme (and port)
        "https://api.example.test:8443/v1/files",
    ],
)
def test_the_bearer_never_goes_to_another_origin(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[httpx.Request] = []
    with _recording_client(seen) as client:
        # An absolute URL (e.g. one taken from a response) on the client's own session.
        client._http.send(client._http.build_request("GET", url))
        client.list_files()
    foreign, own = seen
    assert "authorization" not in foreign.headers
    assert own.headers["authorization"] == f"Bearer {KEY}"
    assert "not sending the API key" in caplog.text and KEY not in caplog.text


def test_a_redirect_to_another_host_does_not_carry_the_bearer() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.host == "api.example.test":
            return httpx.Response(307, headers={"Location": "https://collector.test/steal"})
        return httpx.Response(200, json={})

    with httpx.Client(
        transport=httpx.MockTransport(handler),
        auth=BearerAuth(KEY, "https://api.example.test"),
        follow_redirects=True,
    ) as http:
        http.get("https://api.example.test/v1/files")
    assert [r.url.host for r in seen] == ["api.example.test", "collector.test"]
    assert seen[0].headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in seen[1].headers


def test_the_client_itself_does_not_follow_redirects() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(307, headers={"Location": "https://collector.test/steal"})

    with MistralClient(
        "https://api.example.test", KEY, transport=httpx.MockTransport(handler), max_attempts=1
    ) as client:
        with pytest.raises(Exception):  # noqa: B017 - any error: what matters is below
            client.list_files()
    assert [r.url.host for r in seen] == ["api.example.test"]


def test_the_auth_repr_names_the_origin_not_the_key() -> None:
    auth = BearerAuth(KEY, "https://api.example.test/v1")
    assert KEY not in repr(auth) and "api.example.test" in repr(auth)
    logging.getLogger("reconciler.client").debug("repr %r", auth)
