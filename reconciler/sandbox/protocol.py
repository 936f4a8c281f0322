"""The sandbox's HTTP server settings: uvicorn's h11 protocol with a header timeout, a
connection limit, and accept errors logged once per interval.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) and refuses requests
over ``limit_concurrency`` with a 503, but a connection that never finishes its request
headers is never timed out: with the process's open-file limit reached, half-open
connections starve everyone. :class:`GuardedH11Protocol` closes a connection that takes more
than ``header_timeout`` to send a request's headers (answering 408), and lets a connection
over the limit go after :data:`OVER_LIMIT_GRACE` if it sends nothing. When ``accept()`` still
fails for lack of file descriptors, asyncio logs a traceback per attempt — thousands a
second; :class:`AcceptErrorLog` makes that one line per interval.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

#: Seconds a connection over the limit may take to send its request (then answered 503).
OVER_LIMIT_GRACE = 1.0

#: errno values of ``accept()`` failing for lack of resources (asyncio retries after 1 s).
_RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def raw_response(status: bytes, body: dict[str, Any]) -> bytes:
    """A complete JSON error response, written straight to a connection before it closes."""
    payload = json.dumps(body).encode()
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(payload)).encode() + b"\r\n\r\n" + payload
    )


#: Why a connection gets the 408 of :attr:`ConnectionGuard.timeout_response`.
HEADER_TIMEOUT_TEXT = "Request Timeout: the request headers did not arrive in time."

#: What a connection too slow to send its request headers gets before it is closed, unless
#: the dialect words it otherwise.
REQUEST_TIMEOUT = raw_response(b"408 Request Timeout", {"detail": HEADER_TIMEOUT_TEXT})


@dataclass(frozen=True)
class ConnectionGuard:
    """Limits on connections.

    Attributes:
        header_timeout: seconds to send a request's headers, from when the connection opens
            or the previous response ends.
        max_connections: connections served at once.
        timeout_response: the raw 408 response written to a connection that was too slow.
    """

    header_timeout: float = 10.0
    max_connections: int = 512
    timeout_response: bytes = REQUEST_TIMEOUT


def connection_limit(wanted: int) -> int:
    """``wanted``, lowered to half the process's open-file limit when that is smaller.

    The other half is left for the database, uploads in progress and the listening socket,
    so the limit is reached before ``accept()`` runs out of file descriptors.
    """
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft // 2))


class GuardedConfig(uvicorn.Config):
    """uvicorn's configuration with :class:`GuardedH11Protocol` and a :class:`ConnectionGuard`.

    Attributes:
        guard: the connection limits.
    """

    def __init__(self, app: Any, *, guard: ConnectionGuard, idle_timeout: float, **kwargs: Any):
        super().__init__(
            app,
            http=GuardedH11Protocol,
            # uvicorn counts the connection asking among those open: +1 serves max_connections.
            limit_concurrency=guard.max_connections + 1,
            **kwargs,
        )
        # Annotated int by uvicorn, but only ever handed to loop.call_later: seconds as float.
        self.timeout_keep_alive = idle_timeout  # type: ignore[assignment]
        self.guard = guard


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request-header timeout (see module docstring)."""

    def __init__(
        self,
        config: uvicorn.Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = config.guard if isinstance(config, GuardedConfig) else ConnectionGuard()
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        timeout = self.guard.header_timeout
        if len(self.connections) > self.guard.max_connections:
            # Its request will be answered 503; one that never comes must not hold a socket.
            timeout = min(timeout, OVER_LIMIT_GRACE)
        self._arm(timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        if self.cycle is not cycle:  # a request's headers are complete: it is being served
            self._disarm()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        if self.cycle is cycle and not self.transport.is_closing():
            self._arm(self.guard.header_timeout)  # for the next request on this connection

    def _arm(self, timeout: float) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing() or (
            self.cycle is not None and not self.cycle.response_complete
        ):
            return
        self.transport.write(self.guard.timeout_response)
        self.transport.close()


class AcceptErrorLog:
    """A loop exception handler: ``accept()`` out of resources is one line per interval.

    Anything else goes to the loop's default handler.

    Attributes:
        logger: where the line goes.
        interval: seconds between two lines.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._last = -math.inf
        self._repeats = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, ValueError) and "_start_serving" in str(context.get("message")):
            # After a resource error asyncio schedules accept() retries; one that fires after
            # the server has closed its socket fails on the closed descriptor, harmlessly.
            return
        if not (isinstance(exc, OSError) and exc.errno in _RESOURCE_ERRNOS):
            loop.default_exception_handler(context)
            return
        now = self._clock()
        if now - self._last < self.interval:
            self._repeats += 1
            return
        repeats = f" ({self._repeats} more since the last report)" if self._repeats else ""
        self.logger.error(
            "cannot accept connections: %s%s; retrying. Too many connections or open files: "
            "raise the open-file limit (ulimit -n) or lower the connection limit.",
            exc.strerror or exc,
            repeats,
        )
        self._last = now
        self._repeats = 0
