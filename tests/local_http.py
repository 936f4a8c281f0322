"""An HTTP server on 127.0.0.1, on a free port, served from a thread while its ``with`` block
runs: the base of the test doubles that speak HTTP (a recording endpoint, a proxy that loses
query parameters, a fake GitLab API)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

POLL_SECONDS = 0.02
"""How often the serving thread looks whether it should stop: leaving the ``with`` block waits
for that look (``serve_forever``'s default of 0.5 s made each server cost 0.4 s to stop)."""


class LocalHTTPServer:
    """Serves ``handler`` on 127.0.0.1 from entering its ``with`` block until leaving it."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(POLL_SECONDS,), daemon=True
        )

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Release what a subclass holds besides the server (called on leaving)."""

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
        self.close()
