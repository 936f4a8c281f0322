"""The ASGI layer in front of the API: journal, rate limit, auth, upload size, faults.

Order for every HTTP request: rate limit (``/v1/*``; 429 + ``Retry-After``) → bearer auth
(``/v1/*`` and ``/sandbox/journal`` when a key is set; 401) → upload size (``POST /v1/files``;
413, checked on ``Content-Length`` and while the body streams in) → injected faults
(``/v1/*`` matching the fault spec) → the application. Every request except the journal's own
is recorded in the journal with its status and the fault injected, if any.

A dropped connection is a real one: the socket is aborted without a byte of response (the
transport is reached through uvicorn's ``send`` callable; without it, e.g. under an in-memory
test transport, the request fails with an exception instead).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from reconciler.sandbox.clock import Clock
from reconciler.sandbox.config import FAULT_KINDS, FaultSpec
from reconciler.sandbox.store import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Multipart framing allowed on top of the file size before the early 413.
MULTIPART_SLACK = 1024 * 1024

RATE_LIMITED_BODY = {
    "object": "error",
    "message": "Rate limit exceeded",
    "type": "rate_limited",
    "param": None,
    "code": "1300",
}

_SERVER_ERRORS = {
    500: ("Internal server error", "3000"),
    502: ("Bad gateway", "3002"),
    503: ("Service unavailable", "3003"),
    504: ("Gateway timeout", "3004"),
}


class TokenBucket:
    """A thread-safe token bucket: ``rate`` tokens/s, capacity ``max(1, rate)``.

    Attributes:
        rate: refill rate in tokens (requests) per second.
        capacity: the burst size.
        clock: the time source of the refill (real seconds: the time scale does not apply).
    """

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.clock = clock
        self._tokens = self.capacity
        self._stamp = clock.now()
        self._lock = threading.Lock()

    def take(self) -> tuple[bool, float, float]:
        """Take one token: (allowed, tokens left, seconds until one is available)."""
        with self._lock:
            now = self.clock.now()
            # max(0, ...): the wall clock may step back; that must not remove tokens.
            elapsed = max(0.0, now - self._stamp)
            self._tokens = min(self.capacity, self._tokens + elapsed * self.rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return True, self._tokens, 0.0
            return False, self._tokens, (1.0 - self._tokens) / self.rate


class Gate:
    """ASGI middleware wrapping the FastAPI app (see module docstring).

    Attributes:
        app: the wrapped application.
        store: where the journal is written.
        api_key: required bearer token, or None.
        faults: fault spec, or None.
        bucket: the rate limiter, or None.
        max_upload_bytes: upload size limit.
        seed: seed of the fault decisions.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        store: Store,
        api_key: str | None,
        faults: FaultSpec | None,
        rate_limit: float | None,
        max_upload_bytes: int,
        seed: int,
    ) -> None:
        self.app = app
        self.store = store
        self.api_key = api_key
        self.faults = faults
        self.bucket = TokenBucket(rate_limit, store.clock) if rate_limit else None
        self.max_upload_bytes = max_upload_bytes
        self.seed = faults.seed if faults is not None and faults.seed is not None else seed
        self._counter = 0
        self._counter_lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        started = self.store.clock.now()
        ticks = time.perf_counter()
        outcome: dict[str, Any] = {"status": None, "fault": None}
        recorded = path.startswith("/sandbox/journal")  # the journal skips itself

        async def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            # A short SQLite insert; kept off the event loop.
            await asyncio.to_thread(
                self.store.journal_add,
                ts=started,
                method=method,
                path=path,
                query=scope.get("query_string", b"").decode("latin-1"),
                status=outcome["status"],
                fault=outcome["fault"],
                duration_ms=(time.perf_counter() - ticks) * 1000,
            )

        async def journaled_send(message: Message) -> None:
            # Record before the response leaves, so a client that has its answer can
            # already see the request in the journal.
            if message["type"] == "http.response.start":
                outcome["status"] = message["status"]
                await record()
            await send(message)

        try:
            await self._handle(
                scope, receive, journaled_send, path, method, outcome, record, _transport(send)
            )
        finally:
            await record()

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        path: str,
        method: str,
        outcome: dict[str, Any],
        record: Callable[[], Awaitable[None]],
        transport: Any,
    ) -> None:
        is_api = path.startswith("/v1/")
        extra_headers: list[tuple[bytes, bytes]] = []
        if is_api and self.bucket is not None:
            allowed, left, wait = self.bucket.take()
            per_minute = int(self.bucket.rate * 60)
            extra_headers = [
                (b"x-ratelimit-limit-req-minute", str(per_minute).encode()),
                (b"x-ratelimit-remaining-req-minute", str(max(0, int(left))).encode()),
            ]
            if not allowed:
                outcome.update(status=429, fault="rate_limit")
                await _json(
                    send,
                    429,
                    RATE_LIMITED_BODY,
                    [
                        (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                        (b"retry-after-ms", str(max(1, math.ceil(wait * 1000))).encode()),
                        *extra_headers,
                    ],
                )
                return
        if self.api_key is not None and (is_api or path.startswith("/sandbox/journal")):
            if not self._authorized(scope):
                outcome["status"] = 401
                await _json(
                    send,
                    401,
                    {"detail": "Unauthorized"},
                    [(b"www-authenticate", b"Bearer"), *extra_headers],
                )
                return
        too_large = {"hit": False}
        if method == "POST" and path == "/v1/files":
            length = _content_length(scope)
            limit = self.max_upload_bytes + MULTIPART_SLACK
            if length is not None and length > limit:
                outcome["status"] = 413
                await _json(
                    send,
                    413,
                    {"detail": too_large_text(self.max_upload_bytes)},
                    [(b"connection", b"close"), *extra_headers],
                )
                return
            receive = _counting(receive, limit, too_large)
        fault = self._pick_fault(method, path)
        if fault is not None:
            outcome["fault"] = fault
        if fault is not None and fault.isdigit():
            code = int(fault)
            outcome["status"] = code
            if code == 429:
                assert self.faults is not None
                retry = self.faults.retry_after
                await _json(
                    send,
                    429,
                    RATE_LIMITED_BODY,
                    [
                        (b"retry-after", str(retry).encode()),
                        (b"retry-after-ms", str(retry * 1000).encode()),
                        *extra_headers,
                    ],
                )
            else:
                message, err_code = _SERVER_ERRORS[code]
                body = {
                    "object": "error",
                    "message": f"{message} (injected fault)",
                    "type": "server_error",
                    "param": None,
                    "code": err_code,
                }
                await _json(send, code, body, extra_headers)
            return
        if fault == "drop":
            await record()
            await _abort(transport)
            return

        swallow = fault == "timeout_after_commit"

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                if too_large["hit"]:
                    # The body went over the limit mid-stream: whatever the app made of the
                    # truncated body, the answer is 413.
                    too_large["hit"] = False
                    too_large["replaced"] = True
                    outcome["status"] = 413
                    if not swallow:
                        await _json(
                            send,
                            413,
                            {"detail": too_large_text(self.max_upload_bytes)},
                            [(b"connection", b"close"), *extra_headers],
                        )
                    return
                outcome["status"] = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *extra_headers]
            if swallow or too_large.get("replaced"):
                return
            await send(message)

        await self.app(scope, receive, send_wrapper)
        if swallow:
            # The work is committed; the client never hears about it.
            await record()
            await _abort(transport)

    def _authorized(self, scope: Scope) -> bool:
        assert self.api_key is not None
        header = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value
                break
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(token.strip().encode(), self.api_key.encode())

    def _pick_fault(self, method: str, path: str) -> str | None:
        faults = self.faults
        if faults is None or not faults.probabilities or not faults.applies_to(method, path):
            return None
        with self._counter_lock:
            self._counter += 1
            n = self._counter
        # One independent draw per matching request, keyed by (seed, request number): the
        # same sequence of requests meets the same faults on every run.
        draw = random.Random(f"{self.seed}:{n}").random()
        edge = 0.0
        for kind in FAULT_KINDS:
            edge += faults.probabilities.get(kind, 0.0)
            if draw < edge:
                return kind
        return None


def too_large_text(limit: int) -> str:
    """The 413 detail for an upload over ``limit`` bytes."""
    return (
        f"Request Entity Too Large: files are limited to {limit // (1024 * 1024)} MiB "
        f"({limit} bytes). Split the dataset into smaller files."
    )


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _counting(receive: Receive, limit: int, flag: dict[str, bool]) -> Receive:
    """Wrap ``receive`` to stop the body (as a disconnect) once it passes ``limit`` bytes."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        if flag["hit"]:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                flag["hit"] = True
                return {"type": "http.disconnect"}
        return message

    return wrapped


async def _json(
    send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
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


def _transport(send: Send) -> Any:
    """The connection's transport behind uvicorn's ``send`` (None under other servers)."""
    return getattr(getattr(send, "__self__", None), "transport", None)


async def _abort(transport: Any) -> None:
    """Close the client's connection without sending anything."""
    if transport is None:
        raise ConnectionAbortedError("injected fault: connection dropped")
    transport.abort()
    # Let the server notice the lost connection, so it does not try to answer either.
    for _ in range(3):
        await asyncio.sleep(0)
