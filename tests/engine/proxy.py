"""A reverse proxy on 127.0.0.1 that loses query parameters, as a misconfigured one would.

Used to check what ``plan --remote-estimate`` does when ``dry_run=true`` never reaches the
remote: it forwards every request to the upstream server unchanged except for the query
parameters it drops. Bodies must carry a ``Content-Length`` (JSON requests do; chunked
uploads are not supported: upload without the proxy).
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx

from tests.local_http import LocalHTTPServer

_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "content-length",
    "content-encoding",
    "accept-encoding",
    "host",
}


class DroppingProxy(LocalHTTPServer):
    """Forwards to ``upstream``, without the query parameters named in ``drop``.

    Attributes:
        base_url: where it listens (served once entered).
        dropped: how many requests lost a parameter.
    """

    def __init__(self, upstream: str, drop: frozenset[str]) -> None:
        self.upstream = upstream
        self.drop = drop
        self.dropped = 0
        self._client = httpx.Client(base_url=upstream, timeout=30)
        super().__init__(self._handler())

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qsl(parts.query, keep_blank_values=True)
                kept = [(k, v) for k, v in query if k not in proxy.drop]
                if len(kept) != len(query):
                    proxy.dropped += 1
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                target = parts.path + (f"?{urlencode(kept)}" if kept else "")
                answer = proxy._client.request(self.command, target, content=body, headers=headers)
                self.send_response(answer.status_code)
                for key, value in answer.headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Quiet: the test reads the sandbox's journal instead."""

        return Handler

    def close(self) -> None:
        """Close the client to the upstream."""
        self._client.close()
