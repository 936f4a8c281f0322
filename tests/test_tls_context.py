"""The suite's shared default TLS context (tests/tls_context.py)."""

from __future__ import annotations

import importlib
import ssl
from typing import Any

import certifi
import httpx
import pytest

from tests.tls_context import share_default_context


def _build(**kwargs: Any) -> ssl.SSLContext:
    context: ssl.SSLContext = importlib.import_module(
        "httpx._transports.default"
    ).create_ssl_context(**kwargs)
    return context


def _context_of(client: httpx.Client) -> Any:
    return client._transport._pool._ssl_context  # type: ignore[attr-defined]


@pytest.fixture
def no_ca_settings(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    return monkeypatch


def test_clients_share_the_default_context(no_ca_settings: pytest.MonkeyPatch) -> None:
    assert share_default_context() is True
    assert share_default_context() is True  # installing twice keeps the one builder
    default = _build()
    assert _build(verify=True, cert=None, trust_env=True) is default
    with httpx.Client() as client, httpx.Client(timeout=3) as other:
        assert _context_of(client) is default and _context_of(other) is default
        assert default.verify_mode is ssl.CERT_REQUIRED and default.check_hostname


def test_other_settings_get_contexts_of_their_own(no_ca_settings: pytest.MonkeyPatch) -> None:
    share_default_context()
    default = _build()
    unverified = _build(verify=False)
    assert unverified is not default and unverified.verify_mode is ssl.CERT_NONE
    with httpx.Client(verify=False) as client:
        assert _context_of(client) is not default
    assert _build(trust_env=False) is not default
    no_ca_settings.setenv("SSL_CERT_FILE", certifi.where())
    from_file = _build()
    assert from_file is not default and _build() is from_file
