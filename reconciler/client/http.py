"""The boundary between httpx and reconciler: error translation and retry timing.

Everything httpx can raise is turned into :mod:`reconciler.errors` here, in one context
manager (:func:`translate_errors`), chained with ``from`` so ``--debug`` style inspection still
sees the cause. Error messages are built from the method, the request *path* (never the query
string, never headers), the status and the server's own reason, and every message is scrubbed
of the API key in case a server echoes it back.

The retry timing rules live here too: which failures are worth another attempt, how long the
server asked us to wait (``Retry-After`` as seconds or HTTP-date, ``x-ratelimit-reset*``), and
exponential backoff with full jitter.
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import re
import time
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from reconciler.errors import (
    ApiError,
    AuthError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
)
from reconciler.redact import scrub

log = logging.getLogger("reconciler.client")

MAX_REASON = 300
"""Longest server reason kept in a message; bodies can be whole HTML error pages."""

NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
"""Transport failures that happen before any byte of the request reached the server."""

_HINTS: dict[int, str] = {
    400: "the request was malformed; check the spec values named above",
    401: "check the API key: Provider.api_key (default {env: MISTRAL_API_KEY} for mistral, "
    "{env: OPENAI_API_KEY} for openai) or the sandbox's --api-key",
    403: "the API key lacks permission for this operation (e.g. deleting a base model)",
    404: "the object does not exist (deleted remotely?); run `reconciler plan` to refresh",
    409: "a similar job is already queued, validated or running; wait for it or cancel it",
    413: "the file is over the server's upload limit (512 MB); split the dataset",
    422: "the server rejected the values named above; fix them in the spec",
    429: "rate limited; lower Provider.rate_limit / parallelism or try again later",
}


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: httpx.URL) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of a URL, the port made explicit: what "same host" means."""
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, 0)


class BearerAuth(httpx.Auth):
    """Attaches the bearer key to requests for the endpoint it belongs to, and only to those.

    The key is configured for one endpoint (scheme, host and port). A request for any other
    origin — an absolute URL taken from a response, a redirect followed by a future caller —
    goes out without it. The header is added per request, never as a client default that
    would travel with every request the client makes.
    """

    def __init__(self, key: str, base_url: str) -> None:
        self._header = f"Bearer {key}"
        self._origin = origin(httpx.URL(base_url))

    def __repr__(self) -> str:
        return f"BearerAuth(origin={self._origin!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add ``Authorization`` when the request goes to the key's own endpoint."""
        if origin(request.url) == self._origin:
            request.headers["Authorization"] = self._header
        else:
            request.headers.pop("Authorization", None)
            scheme, host, port = origin(request.url)
            log.warning(
                "not sending the API key to %s://%s:%s: it is configured for %s://%s:%s only",
                scheme,
                host,
                port,
                *self._origin,
            )
        yield request


class _StatusError(Exception):
    """Internal carrier: a response with an error status, raised inside the boundary."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


def raise_for_status(response: httpx.Response) -> None:
    """Inside :func:`translate_errors`: turn an error status into the matching ApiError."""
    if response.is_error:
        raise _StatusError(response)


def _truncate(text: str, limit: int = MAX_REASON) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _format_detail(detail: Any) -> str:
    """FastAPI-style ``detail``: a string, or a list of ``{loc, msg, type}`` items."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", []) if p != "body")
                msg = str(item.get("msg", item))
                parts.append(f"{loc}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(parts)
    return json.dumps(detail, default=str)


def parse_body(response: httpx.Response, secret: str | None = None) -> tuple[str, Any]:
    """The server's reason (one line) and its parsed ``detail`` (or ``None``), scrubbed.

    The whole body is scrubbed of ``secret`` and of every registered secret
    (:mod:`reconciler.redact`) *before* it is parsed or shortened: shortening first could cut
    a key in two and leave its first half in the message.
    """
    try:
        text = scrub(response.text, (secret,)) if response.content else ""
    except UnicodeDecodeError:
        text = ""
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return (_truncate(text) or response.reason_phrase or "no reason given"), None
    if isinstance(body, dict):
        if "detail" in body:
            return _truncate(_format_detail(body["detail"])), body["detail"]
        if "message" in body:
            return _truncate(str(body["message"])), None
        if "error" in body:
            error = body["error"]
            # OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return _truncate(error["message"]), error
            return _truncate(str(error)), None
    return _truncate(json.dumps(body, default=str)), None


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """Seconds the server asks us to wait, from ``Retry-After`` or ``x-ratelimit-reset*``.

    ``retry-after-ms`` (milliseconds), when present, wins over ``Retry-After``.
    ``Retry-After`` may be delta-seconds or an HTTP-date. The ``x-ratelimit-reset*`` family is
    not standardised: values are taken as relative seconds (optionally with an ``s``/``ms``
    unit), or as an absolute unix time when they are larger than a year of seconds.
    """
    now = time.time() if now is None else now
    precise = headers.get("retry-after-ms")
    if precise:
        # Sent next to Retry-After by some servers; it is not rounded up to whole seconds.
        try:
            return max(float(precise) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        value = value.strip()
        try:
            return max(float(value), 0.0)
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                when = None
            if when is not None:
                return max(when.timestamp() - now, 0.0)
    waits = []
    for name, raw in headers.items():
        if not name.lower().startswith("x-ratelimit-reset"):
            continue
        m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?\s*", raw)
        if not m:
            continue
        number = float(m.group(1))
        if m.group(2) == "ms":
            number /= 1000.0
        elif number > 365 * 24 * 3600:
            number -= now  # an absolute unix timestamp
        waits.append(max(number, 0.0))
    return max(waits) if waits else None


def parse_rate_limit(headers: httpx.Headers) -> float | None:
    """The server's advertised request limit in requests per second, if it says.

    Reads ``x-ratelimit-limit-req-minute`` (seen on Mistral's API) and the per-second variant.
    """
    for name, per in (
        ("x-ratelimit-limit-req-second", 1.0),
        ("x-ratelimit-limit-req-minute", 60.0),
    ):
        raw = headers.get(name)
        if raw:
            try:
                value = float(raw)
            except ValueError:
                continue
            if value > 0:
                return value / per
    return None


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Full-jitter exponential backoff after failed attempt number ``attempt`` (1-based).

    Full jitter (uniform in ``[0, base * 2**(attempt-1)]``) rather than a fixed schedule so
    that many parallel workers failing together do not retry in lockstep.
    """
    return random.uniform(0.0, min(cap, base * (2 ** (attempt - 1))))


def error_for_response(
    response: httpx.Response, method: str, path: str, secret: str | None = None
) -> ApiError:
    """The ApiError subclass for an error response, with the server's reason and a hint."""
    status = response.status_code
    reason, detail = parse_body(response, secret)
    hint = _HINTS.get(status)
    if hint is None and status >= 500:
        hint = "the server failed; try again later"
    text = f"{reason} ({hint})" if hint else reason
    kw: dict[str, Any] = {"method": method, "path": path, "status": status, "detail": detail}
    if status in (401, 403):
        return AuthError(text, **kw)
    if status == 404:
        return NotFoundError(text, **kw)
    if status == 409:
        return ConflictError(text, **kw)
    if status == 413:
        return PayloadTooLargeError(text, **kw)
    if status in (400, 422):
        return ValidationError(text, **kw)
    if status == 429:
        return RateLimitedError(text, retry_after=parse_retry_after(response.headers), **kw)
    if status >= 500:
        return ServerError(text, **kw)
    return ApiError(text, **kw)


def _describe_transport(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        kind = {
            httpx.ConnectTimeout: "timed out connecting",
            httpx.ReadTimeout: "timed out waiting for the response",
            httpx.WriteTimeout: "timed out sending the request",
            httpx.PoolTimeout: "timed out waiting for a free connection",
        }.get(type(exc), "timed out")
        return kind
    if isinstance(exc, httpx.ConnectError):
        return "could not connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was dropped before a complete response"
    if isinstance(exc, httpx.ReadError | httpx.WriteError):
        return "the connection failed mid-request"
    return "transport failure"


@contextmanager
def translate_errors(
    method: str, path: str, *, base_url: str = "", secret: str | None = None
) -> Iterator[None]:
    """Translate httpx failures (and :func:`raise_for_status`) into reconciler errors.

    The one place where httpx exceptions cross into our tree. Only the path goes into the
    message: query strings may carry search terms, and headers carry the key.
    """
    try:
        yield
    except _StatusError as exc:
        response = exc.response
        cause = httpx.HTTPStatusError(
            f"HTTP {response.status_code}", request=response.request, response=response
        )
        raise error_for_response(response, method, path, secret) from cause
    except httpx.HTTPError as exc:
        detail = _truncate(scrub(str(exc) or type(exc).__name__, (secret,)))
        where = f" to {base_url}" if base_url else ""
        raise TransportError(
            f"{_describe_transport(exc)}{where} ({type(exc).__name__}: {detail}); "
            "check that the endpoint is reachable and try again",
            method=method,
            path=path,
        ) from exc
