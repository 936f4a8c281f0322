"""A tap at the client's boundary: see, or edit, what crosses the wire in a real run.

:func:`tap_clients` makes every API client that the code under test creates (the CLI's
workspace makes its own provider) send through a :class:`Tap` around the real HTTP transport. The tap
can record each request as sent, and rewrite JSON answers — to replay, against the real
sandbox, an answer the contract allows but the sandbox never gives (``bytes: null``, say).
Nothing of reconciler is replaced: the client, the engine and the sandbox all run as shipped.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from reconciler.client import api as client_api

OnRequest = Callable[[httpx.Request, bytes], None]
"""Sees each request and its full body before it is sent."""
Edit = Callable[[httpx.Request, Any], Any]
"""Returns the JSON answer to give the client instead of the one the server gave."""


class Tap(httpx.BaseTransport):
    """Wraps ``inner``: calls ``on_request`` with each request, passes JSON answers through
    ``edit``."""

    def __init__(
        self, inner: httpx.BaseTransport, *, on_request: OnRequest | None, edit: Edit | None
    ) -> None:
        self.inner = inner
        self.on_request = on_request
        self.edit = edit

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()  # streamed uploads are read in full: test files are small
        if self.on_request is not None:
            self.on_request(request, body)
        response = self.inner.handle_request(request)
        media = response.headers.get("content-type", "").split(";")[0]
        if self.edit is None or media != "application/json":
            return response
        answer = json.loads(response.read())
        response.close()
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-length", "content-encoding", "transfer-encoding")
        ]
        edited = self.edit(request, answer)
        return httpx.Response(response.status_code, headers=headers, json=edited)

    def close(self) -> None:
        self.inner.close()


def tap_clients(
    monkeypatch: pytest.MonkeyPatch,
    *,
    on_request: OnRequest | None = None,
    edit: Edit | None = None,
) -> None:
    """Every API client made after this call (until the test ends) sends through a tap: the
    Mistral client, and the providers the workspace builds (Mistral's and OpenAI's)."""
    from reconciler.providers import mistral, openai

    def tapped(shipped: type[Any]) -> type[Any]:
        class Tapped(shipped):  # type: ignore[misc, valid-type]
            def __init__(self, base_url: str, api_key: str | None, **kw: Any) -> None:
                inner = kw.pop("transport", None) or httpx.HTTPTransport(retries=0)
                tap = Tap(inner, on_request=on_request, edit=edit)
                super().__init__(base_url, api_key, transport=tap, **kw)

        return Tapped

    # The workspace imports the classes when it makes its provider: the tapped ones, here.
    monkeypatch.setattr(client_api, "MistralClient", tapped(client_api.MistralClient))
    monkeypatch.setattr(mistral, "MistralProvider", tapped(mistral.MistralProvider))
    monkeypatch.setattr(openai, "OpenAIProvider", tapped(openai.OpenAIProvider))
