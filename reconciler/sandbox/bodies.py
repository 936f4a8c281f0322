"""Limits on request bodies: a size limit on every route, and no stalling mid-body.

Uploads (``POST /v1/files``) stream to disk, so their body is watched as it passes
(:func:`watched`): over ``max_upload_bytes`` (plus multipart framing) or silent for
``body_timeout`` seconds, the application sees the client disconnect and the gate answers 413
or 408 instead of whatever the application made of the cut body. Every other body is small
JSON, so it is read whole before the application runs (:func:`read_body`), up to
``max_body_bytes``: the application never holds more, and a body over the limit is refused
without being parsed. A ``Content-Length`` over the limit is refused before a byte is read.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import Enum

from reconciler.sandbox.asgi import Message, Receive, Scope, header

MIB = 1024 * 1024
#: Multipart framing allowed on top of the file size before an upload is refused.
MULTIPART_SLACK = MIB


class BodyProblem(Enum):
    """Why a request body was not accepted."""

    TOO_LARGE = 413
    STALLED = 408
    GONE = 0  # the client went away; nobody to answer


@dataclass(frozen=True)
class BodyLimits:
    """How much body a request may send, and how slowly.

    Attributes:
        max_body_bytes: largest body of any request but an upload.
        max_upload_bytes: largest uploaded file (the multipart body may exceed it by
            :data:`MULTIPART_SLACK`).
        body_timeout: longest silence, in seconds, while a body is arriving.
    """

    max_body_bytes: int
    max_upload_bytes: int
    body_timeout: float

    @staticmethod
    def is_upload(method: str, path: str) -> bool:
        """Whether the request is a file upload (streamed, with the upload limit)."""
        return method == "POST" and path == "/v1/files"

    def limit(self, upload: bool) -> int:
        """The byte limit of a request body."""
        return self.max_upload_bytes + MULTIPART_SLACK if upload else self.max_body_bytes

    def message(self, problem: BodyProblem, upload: bool) -> str:
        """The ``detail`` of the 413 or 408 answer."""
        if problem is BodyProblem.STALLED:
            return (
                f"Request Timeout: the request body stopped arriving for {self.body_timeout:g} s; "
                "send it without pausing."
            )
        if upload:
            return upload_too_large_text(self.max_upload_bytes)
        return (
            f"Request Entity Too Large: request bodies are limited to {_size(self.max_body_bytes)} "
            "on this endpoint; files are uploaded with POST /v1/files."
        )


def upload_too_large_text(limit: int) -> str:
    """The 413 detail for an upload over ``limit`` bytes."""
    return f"Request Entity Too Large: files are limited to {_size(limit)}. Split the dataset into smaller files."


def _size(limit: int) -> str:
    return f"{limit // MIB} MiB ({limit} bytes)"


def declared_length(scope: Scope) -> int | None:
    """The request's ``Content-Length``, or None when absent or not a number."""
    value = header(scope, b"content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


async def _next(receive: Receive, timeout: float) -> Message | BodyProblem:
    """The next body message, or the problem that stopped it."""
    try:
        message = await asyncio.wait_for(receive(), timeout)
    except TimeoutError:
        return BodyProblem.STALLED
    if message["type"] == "http.disconnect":
        return BodyProblem.GONE
    return message


async def read_body(receive: Receive, limit: int, timeout: float) -> bytes | BodyProblem:
    """Read a whole request body of at most ``limit`` bytes, none of its parts late."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await _next(receive, timeout)
        if isinstance(message, BodyProblem):
            return message
        part = bytes(message.get("body", b""))
        size += len(part)
        if size > limit:
            return BodyProblem.TOO_LARGE
        parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` in one message, then passes on (disconnects)."""
    pending = True

    async def replayed() -> Message:
        nonlocal pending
        if pending:
            pending = False
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class Watch:
    """What :func:`watched` saw: the problem that cut the body short, if any.

    Attributes:
        problem: ``TOO_LARGE`` or ``STALLED`` once the body was cut, else None.
    """

    def __init__(self) -> None:
        self.problem: BodyProblem | None = None


def watched(receive: Receive, limit: int, timeout: float, watch: Watch) -> Receive:
    """Wrap ``receive`` to cut a streamed body (as a disconnect) past ``limit`` or a stall."""
    seen = 0
    done = False

    async def wrapped() -> Message:
        nonlocal seen, done
        if watch.problem is not None:
            return {"type": "http.disconnect"}
        if done:  # the body is complete: what follows is only ever a disconnect
            return await receive()
        message = await _next(receive, timeout)
        if message is BodyProblem.GONE:
            return {"type": "http.disconnect"}
        if isinstance(message, BodyProblem):
            watch.problem = message
            return {"type": "http.disconnect"}
        seen += len(message.get("body", b""))
        if seen > limit:
            watch.problem = BodyProblem.TOO_LARGE
            return {"type": "http.disconnect"}
        done = not message.get("more_body", False)
        return message

    return wrapped
