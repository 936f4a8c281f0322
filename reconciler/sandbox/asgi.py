"""ASGI plumbing shared by the sandbox's outer layers: the callable types and raw answers.

The gate (:mod:`.gate`) and the request-body guards (:mod:`.bodies`) speak plain ASGI in front
of FastAPI; this module gives them the types, a JSON answer in one call, and a way to drop a
connection without a byte of response.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: ``Connection: close``, for answers sent before the request body was read to its end.
CLOSE = (b"connection", b"close")


async def send_json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Answer ``status`` with ``body`` as JSON, plus ``headers``."""
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload, "more_body": False})


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of request header ``name`` (lower case), or None."""
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


def transport_of(send: Send) -> Any:
    """The connection's transport behind uvicorn's ``send`` (None under other servers)."""
    return getattr(getattr(send, "__self__", None), "transport", None)


async def abort(transport: Any) -> None:
    """Close the client's connection without sending anything."""
    if transport is None:
        raise ConnectionAbortedError("injected fault: connection dropped")
    transport.abort()
    # Let the server notice the lost connection, so it does not try to answer either.
    for _ in range(3):
        await asyncio.sleep(0)
