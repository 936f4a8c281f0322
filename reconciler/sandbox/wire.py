"""What an API dialect says outside its routes: errors, auth, rate limits, refused bodies.

Each dialect (the Mistral one in :mod:`.routes.common`, the OpenAI one in
:mod:`.openai.errors`) implements :class:`Wire`; the gate (:mod:`.gate`), the connection
guard (:mod:`.protocol`) and the application's exception handlers (:mod:`.app`) answer
through it, so one core serves both APIs, each in its own words.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

#: Response headers, as ASGI sends them.
Headers = list[tuple[bytes, bytes]]


class Wire(Protocol):
    """How a dialect words the answers that do not come from one of its routes."""

    def unauthorized(self, provided: bool) -> dict[str, Any]:
        """The 401 body; ``provided``: a key was sent, but not the right one."""
        ...

    def rate_limited(self) -> dict[str, Any]:
        """The 429 body, over the rate limit (or injected)."""
        ...

    def injected(self, status: int) -> dict[str, Any]:
        """The body of an injected 500, 502, 503 or 504."""
        ...

    def refused(self, status: int, message: str) -> dict[str, Any]:
        """The body of a request refused before the application saw it (408, 413)."""
        ...

    def rate_headers(self, per_minute: int, remaining: int) -> Headers:
        """The rate-limit counters sent with every answer when a limit is set."""
        ...

    async def invalid_request(self, request: Request, errors: Sequence[Any]) -> Response:
        """The answer to a request that breaks the declared parameters or body (pydantic's
        error list, as FastAPI gives it)."""
        ...

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        """The answer for an HTTP error raised by routing or a route (404, 405, 400 ...)."""
        ...

    async def internal(self, request: Request, exc: Exception) -> Response:
        """The 500 answer for a bug (never for bad input)."""
        ...


def finite(value: Any) -> Any:
    """``value`` with every infinite or NaN float replaced by its text (``"inf"``), so an
    error that quotes a request's ``Infinity`` can still be sent as JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
