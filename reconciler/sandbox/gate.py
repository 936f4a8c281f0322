"""The ASGI layer in front of the API: auth, journal, rate limit, body limits, faults.

Order for every HTTP request:

1. bearer auth, when a key is set: a ``/v1/*`` or ``/sandbox/journal`` request without the
   key gets 401 and nothing else happens — it takes no rate-limit token and writes no journal
   row. Requests to the open paths (``/sandbox/health``, signed downloads) are served, but
   recorded only when they carry the key;
2. rate limit (``/v1/*``; 429 + ``Retry-After``);
3. body limits (:mod:`.bodies`): a declared ``Content-Length`` over the limit is 413 at once;
4. injected faults (``/v1/*`` matching the fault spec);
5. the body: an upload streams through to the application, watched for size and stalls;
   any other body is read whole first (413 over ``max_body_bytes``, 408 when it stalls);
6. the application.

Every recorded request is in the journal with its status and the fault injected, if any.
Whatever the gate answers itself is worded by the dialect's :class:`~.wire.Wire`.

A dropped connection is a real one: the socket is aborted without a byte of response (the
transport is reached through uvicorn's ``send`` callable; without it, e.g. under an in-memory
test transport, the request fails with an exception instead).
"""

from __future__ import annotations

import asyncio
import hmac
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from reconciler.sandbox.asgi import (
    CLOSE,
    ASGIApp,
    Message,
    Receive,
    Scope,
    Send,
    abort,
    header,
    send_json,
    transport_of,
)
from reconciler.sandbox.bodies import (
    BodyLimits,
    BodyProblem,
    Watch,
    declared_length,
    read_body,
    replay,
    watched,
)
from reconciler.sandbox.clock import Clock
from reconciler.sandbox.config import FAULT_KINDS, SandboxConfig
from reconciler.sandbox.routes.common import MistralWire
from reconciler.sandbox.store import Store
from reconciler.sandbox.wire import Headers, Wire


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


class _Exchange:
    """One request as the gate handles it: what to record, and how it ended.

    Attributes:
        method: the HTTP method.
        path: the request path.
        status: the status answered, None until (or unless) one is sent.
        fault: the fault injected or ``rate_limit``, if any.
        extra_headers: headers added to every answer (the rate-limit counters).
    """

    def __init__(self, scope: Scope) -> None:
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.status: int | None = None
        self.fault: str | None = None
        self.extra_headers: Headers = []

    @property
    def is_api(self) -> bool:
        """Whether it is a ``/v1/*`` request."""
        return self.path.startswith("/v1/")


class Gate:
    """ASGI middleware wrapping the FastAPI app (see module docstring).

    Attributes:
        app: the wrapped application.
        store: where the journal is written.
        api_key: required bearer token, or None.
        faults: fault spec, or None.
        bucket: the rate limiter, or None.
        limits: the request-body limits.
        seed: seed of the fault decisions.
        wire: how the dialect words the gate's own answers (the Mistral dialect's by
            default).
    """

    def __init__(
        self, app: ASGIApp, *, store: Store, config: SandboxConfig, wire: Wire | None = None
    ) -> None:
        self.app = app
        self.store = store
        self.wire: Wire = wire if wire is not None else MistralWire()
        self.api_key = config.api_key
        self.faults = config.faults
        self.bucket = TokenBucket(config.rate_limit, store.clock) if config.rate_limit else None
        self.limits = BodyLimits(
            max_body_bytes=config.max_body_bytes,
            max_upload_bytes=config.max_upload_bytes,
            body_timeout=config.body_timeout,
        )
        faults = config.faults
        self.seed = faults.seed if faults is not None and faults.seed is not None else config.seed
        self._counter = 0
        self._counter_lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ex = _Exchange(scope)
        authenticated = self._authenticated(scope)
        if not authenticated and (ex.is_api or ex.path.startswith("/sandbox/journal")):
            # Before anything else: no token taken, no journal row, no body read.
            provided = header(scope, b"authorization") is not None
            await send_json(
                send, 401, self.wire.unauthorized(provided), [(b"www-authenticate", b"Bearer")]
            )
            return
        started = self.store.clock.now()
        ticks = time.perf_counter()
        # The journal skips itself, and requests that did not prove who they are.
        recorded = not authenticated or ex.path.startswith("/sandbox/journal")

        async def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            # A short SQLite insert; kept off the event loop.
            await asyncio.to_thread(
                self.store.journal_add,
                ts=started,
                method=ex.method,
                path=ex.path,
                query=scope.get("query_string", b"").decode("latin-1"),
                status=ex.status,
                fault=ex.fault,
                duration_ms=(time.perf_counter() - ticks) * 1000,
            )

        async def journaled_send(message: Message) -> None:
            # Record before the response leaves, so a client that has its answer can
            # already see the request in the journal.
            if message["type"] == "http.response.start":
                ex.status = message["status"]
                await record()
            await send(message)

        try:
            await self._handle(scope, receive, journaled_send, ex, record, transport_of(send))
        finally:
            await record()

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        ex: _Exchange,
        record: Callable[[], Awaitable[None]],
        transport: Any,
    ) -> None:
        if ex.is_api and self.bucket is not None and not await self._take_token(send, ex):
            return
        upload = self.limits.is_upload(ex.method, ex.path)
        limit = self.limits.limit(upload)
        length = declared_length(scope)
        if length is not None and length > limit:
            await self._refuse_body(send, ex, BodyProblem.TOO_LARGE, upload)
            return
        fault = self._pick_fault(ex.method, ex.path)
        ex.fault = fault
        if fault is not None and fault.isdigit():
            await self._answer_fault(send, ex, int(fault))
            return
        if fault == "drop":
            await record()
            await abort(transport)
            return
        watch = Watch()
        if upload:
            receive = watched(receive, limit, self.limits.body_timeout, watch)
        else:
            body = await read_body(receive, limit, self.limits.body_timeout)
            if isinstance(body, BodyProblem):
                if body is not BodyProblem.GONE:
                    await self._refuse_body(send, ex, body, upload)
                return
            receive = replay(body, receive)

        swallow = fault == "timeout_after_commit"
        replaced = False

        async def send_wrapper(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                if watch.problem is not None and not replaced:
                    # The body was cut mid-stream: whatever the application made of the
                    # truncated body, the answer is 413 or 408.
                    replaced = True
                    ex.status = watch.problem.value
                    if not swallow:
                        await self._refuse_body(send, ex, watch.problem, upload)
                    return
                ex.status = message["status"]
                message = dict(message)
                message["headers"] = [*message.get("headers", []), *ex.extra_headers]
            if swallow or replaced:
                return
            await send(message)

        await self.app(scope, receive, send_wrapper)
        if swallow:
            # The work is committed; the client never hears about it.
            await record()
            await abort(transport)

    async def _take_token(self, send: Send, ex: _Exchange) -> bool:
        """Take a rate-limit token, or answer 429 (False)."""
        assert self.bucket is not None
        allowed, left, wait = self.bucket.take()
        ex.extra_headers = self.wire.rate_headers(int(self.bucket.rate * 60), max(0, int(left)))
        if allowed:
            return True
        ex.fault = "rate_limit"
        await send_json(
            send,
            429,
            self.wire.rate_limited(),
            [
                (b"retry-after", str(max(1, math.ceil(wait))).encode()),
                (b"retry-after-ms", str(max(1, math.ceil(wait * 1000))).encode()),
                *ex.extra_headers,
            ],
        )
        return False

    async def _refuse_body(
        self, send: Send, ex: _Exchange, problem: BodyProblem, upload: bool
    ) -> None:
        """Answer 413 or 408 and close: the rest of the body is never read."""
        await send_json(
            send,
            problem.value,
            self.wire.refused(problem.value, self.limits.message(problem, upload)),
            [CLOSE, *ex.extra_headers],
        )

    async def _answer_fault(self, send: Send, ex: _Exchange, code: int) -> None:
        """Answer an injected error status without doing anything."""
        if code == 429:
            assert self.faults is not None
            retry = self.faults.retry_after
            await send_json(
                send,
                429,
                self.wire.rate_limited(),
                [
                    (b"retry-after", str(retry).encode()),
                    (b"retry-after-ms", str(retry * 1000).encode()),
                    *ex.extra_headers,
                ],
            )
            return
        await send_json(send, code, self.wire.injected(code), ex.extra_headers)

    def _authenticated(self, scope: Scope) -> bool:
        """Whether the request carries the bearer key (always, when no key is set)."""
        if self.api_key is None:
            return True
        scheme, _, token = (header(scope, b"authorization") or b"").decode("latin-1").partition(" ")
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
