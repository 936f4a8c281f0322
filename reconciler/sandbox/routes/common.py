"""What every resource router shares: the store and configuration of the app, error shapes.

Routers are module-level :class:`fastapi.APIRouter` objects; an endpoint reaches the sandbox
it serves through the dependencies :data:`StoreDep` and :data:`ConfigDep`, which read the
request's ASGI scope (the sandbox puts itself there under :data:`SCOPE_KEY`; see
:mod:`reconciler.sandbox.app`), so one router, and one application, serves any number of
sandboxes (of either dialect: the OpenAI routers use them too).

:class:`MistralWire` is how the Mistral dialect words errors outside its routes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Protocol

from fastapi import Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.database import INT64_MAX
from reconciler.sandbox.store import Store
from reconciler.sandbox.wire import Headers, finite

PAGE_SIZE_MAX = 1000
#: Largest page number: the row offset ``page * page_size`` must stay a SQLite integer.
PAGE_MAX = INT64_MAX // PAGE_SIZE_MAX


SCOPE_KEY = "reconciler.sandbox"
"""Key of the ASGI scope under which the sandbox serving a request puts itself (a
:class:`Served`), for the endpoints' dependencies."""


class Served(Protocol):
    """What an endpoint needs of the sandbox it serves.

    Attributes:
        store: the sandbox's persistence.
        config: the configuration it was built from.
    """

    store: Store
    config: SandboxConfig


def _served(request: Request) -> Served:
    served: Served = request.scope[SCOPE_KEY]
    return served


def _store(request: Request) -> Store:
    return _served(request).store


def _config(request: Request) -> SandboxConfig:
    return _served(request).config


StoreDep = Annotated[Store, Depends(_store)]
ConfigDep = Annotated[SandboxConfig, Depends(_config)]
PageQ = Annotated[int, Query(ge=0, le=PAGE_MAX, description="0-based page number")]
PageSizeQ = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX, description="items per page")]


def detail(status: int, message: str) -> JSONResponse:
    """An error in the API's string form: ``{"detail": message}``."""
    return JSONResponse({"detail": message}, status_code=status)


def value_error(loc: tuple[str | int, ...], message: str, value: Any = None) -> JSONResponse:
    """A 422 in FastAPI's validation shape, for a rule pydantic cannot express."""
    item: dict[str, Any] = {
        "type": "value_error",
        "loc": list(loc),
        "msg": f"Value error, {message}",
        "input": value,
        "ctx": {"error": message},
    }
    return JSONResponse({"detail": [item]}, status_code=422)


#: The Mistral API's 429 body.
RATE_LIMITED_BODY = {
    "object": "error",
    "message": "Rate limit exceeded",
    "type": "rate_limited",
    "param": None,
    "code": "1300",
}

#: Injected server errors: status -> (message, the Mistral error code).
_SERVER_ERRORS = {
    500: ("Internal server error", "3000"),
    502: ("Bad gateway", "3002"),
    503: ("Service unavailable", "3003"),
    504: ("Gateway timeout", "3004"),
}


class MistralWire:
    """The Mistral dialect's errors: ``{"detail": ...}``, FastAPI's list-shaped 422, and
    the service's ``{"object": "error", ...}`` for rate limits and server errors."""

    def unauthorized(self, provided: bool) -> dict[str, Any]:
        return {"detail": "Unauthorized"}

    def rate_limited(self) -> dict[str, Any]:
        return RATE_LIMITED_BODY

    def injected(self, status: int) -> dict[str, Any]:
        message, code = _SERVER_ERRORS[status]
        return {
            "object": "error",
            "message": f"{message} (injected fault)",
            "type": "server_error",
            "param": None,
            "code": code,
        }

    def refused(self, status: int, message: str) -> dict[str, Any]:
        return {"detail": message}

    def rate_headers(self, per_minute: int, remaining: int) -> Headers:
        return [
            (b"x-ratelimit-limit-req-minute", str(per_minute).encode()),
            (b"x-ratelimit-remaining-req-minute", str(remaining).encode()),
        ]

    async def invalid_request(self, request: Request, errors: Sequence[Any]) -> Response:
        # FastAPI's own answer, except that a non-finite number quoted from the request
        # (Python's JSON parser reads Infinity and NaN) must not make it unsendable.
        return JSONResponse({"detail": finite(jsonable_encoder(errors))}, status_code=422)

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        return await http_exception_handler(request, exc)

    async def internal(self, request: Request, exc: Exception) -> Response:
        return JSONResponse(
            {"detail": f"Internal sandbox error ({type(exc).__name__}); see the server log."},
            status_code=500,
        )
