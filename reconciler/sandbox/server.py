"""Running a sandbox: embedded in the calling process, or as a standalone server.

:class:`EmbeddedSandbox` starts uvicorn in a daemon thread on ``127.0.0.1`` with an
ephemeral port (the socket is bound before the thread starts, so the port is known at once)
and stays quiet; it is how the command line uses the sandbox as its default target.
:func:`serve` runs the ``reconciler sandbox`` server in the foreground and logs requests.
Both serve the same application (:func:`~.app.create_app`) with the same connection guards
(:mod:`.protocol`: header and idle timeouts, a connection limit, accept errors logged once per
interval), so they behave identically. :func:`serve` refuses to listen beyond loopback
without an API key.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from reconciler.closing import Closing
from reconciler.sandbox.app import SandboxAPI, create_app
from reconciler.sandbox.config import SandboxConfig, check_exposure
from reconciler.sandbox.protocol import (
    HEADER_TIMEOUT_TEXT,
    AcceptErrorLog,
    ConnectionGuard,
    GuardedConfig,
    connection_limit,
    raw_response,
)

#: How long :meth:`EmbeddedSandbox.start` waits for the server loop to come up.
START_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """uvicorn's server with accept errors rate-limited in the log, and a quick stop.

    A finer main-loop tick and no fixed wait at shutdown make :meth:`EmbeddedSandbox.stop`
    take milliseconds.
    """

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().set_exception_handler(
            AcceptErrorLog(logging.getLogger("uvicorn.error"))
        )
        await super().startup(sockets)

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            # on_tick refreshes the Date header every 10 ticks; 10 ms ticks keep it current.
            await asyncio.sleep(0.01)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn always waits 0.1 s for open connections to wind down; with none open (the
        # usual case when an embedded sandbox stops) there is nothing to wait for.
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()


class SandboxStartError(RuntimeError):
    """The embedded server did not come up (the reason is in the message)."""


class EmbeddedSandbox(Closing):
    """A sandbox served from a daemon thread of this process.

    Use as a context manager (entering starts it, leaving stops it), or call :meth:`start`
    and :meth:`stop`::

        with EmbeddedSandbox(SandboxConfig(data_dir=tmp)) as sb:
            httpx.get(sb.base_url + "/v1/files", headers={"Authorization": ...})

    Attributes:
        config: the sandbox configuration.
        app: the application (``None`` until started).
        port: the TCP port (``0`` until started).
    """

    def __init__(self, config: SandboxConfig, *, log_requests: bool = False) -> None:
        self.config = config
        self.app: SandboxAPI | None = None
        self.port = 0
        self._log_requests = log_requests
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>`` (valid once started)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_key(self) -> str | None:
        """The bearer token clients must send, or None when auth is off."""
        return self.config.api_key

    def start(self) -> EmbeddedSandbox:
        """Start serving; returns self. Raises SandboxStartError if it cannot."""
        if self._thread is not None:
            return self
        self.app = create_app(self.config)
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
        # proto says TCP, and without it every keep-alive response waits ~40 ms (Nagle).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        self._sock = sock
        config = _uvicorn_config(
            self.app,
            log_config=None,
            log_level="info" if self._log_requests else "critical",
            access_log=self._log_requests,
            timeout_graceful_shutdown=1,
        )
        if not self._log_requests:
            _quiet()
        server = _Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="reconciler-sandbox", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not server.started:
            if not self._thread.is_alive():
                self._cleanup()
                raise SandboxStartError("the embedded sandbox server stopped while starting")
            if time.monotonic() > deadline:
                self.stop()
                raise SandboxStartError(
                    f"the embedded sandbox server did not start within {START_TIMEOUT:.0f} s"
                )
            time.sleep(0.002)
        return self

    def stop(self) -> None:
        """Stop serving and release the port and the database."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._cleanup()

    def _cleanup(self) -> None:
        if self._sock is not None:
            self._sock.close()
        if self.app is not None:
            self.app.close()
        self._sock = None
        self._server = None
        self._thread = None

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        """Recorded requests with id > ``since``, oldest first."""
        if self.app is None:
            raise SandboxStartError("the sandbox is not running")
        return self.app.journal(since)

    def close(self) -> None:
        """:meth:`stop`: what leaving a ``with`` block does."""
        self.stop()

    def __enter__(self) -> EmbeddedSandbox:
        return self.start()


def _uvicorn_config(app: SandboxAPI, **kwargs: Any) -> GuardedConfig:
    """uvicorn's settings for a sandbox: h11 with the connection guard, no lifespan.

    Proxy headers are off: nothing in front of the sandbox is trusted to rewrite the client's
    address or scheme (a public address for signed URLs is configured instead).
    """
    config = app.config
    return GuardedConfig(
        app,
        guard=ConnectionGuard(
            header_timeout=config.header_timeout,
            max_connections=connection_limit(config.max_connections),
            timeout_response=raw_response(
                b"408 Request Timeout", app.wire.refused(408, HEADER_TIMEOUT_TEXT)
            ),
        ),
        idle_timeout=config.idle_timeout,
        lifespan="off",
        loop="asyncio",
        proxy_headers=False,
        **kwargs,
    )


def _quiet() -> None:
    # uvicorn logs through these loggers; without handlers, Python's last-resort handler
    # would print warnings to stderr in the middle of the command's output.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        logger.propagate = False


def serve(
    config: SandboxConfig,
    host: str = "127.0.0.1",
    port: int = 8080,
    announce: Callable[[str], None] | None = None,
) -> None:
    """Serve the sandbox on ``host:port`` in the foreground until interrupted, logging requests.

    ``announce`` is called with the base URL once the socket listens (with ``port=0`` the
    URL carries the port actually chosen); connections made from then on wait in the backlog
    until the server accepts them. Raises OSError when the address cannot be bound (port in
    use, bad host), ValueError when ``host`` is not loopback and ``config`` has no API key,
    :class:`~.store.WrongDialect` when the data directory holds another dialect's objects.
    """
    check_exposure(host, config.api_key)
    app = create_app(config)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        app.close()
        raise
    if announce is not None:
        bound = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        announce(f"http://{shown}:{bound}")
    server = _Server(
        _uvicorn_config(app, log_level="info", access_log=True, timeout_graceful_shutdown=2)
    )
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        app.close()
