"""What every resource router shares: the store and configuration of the app, error shapes.

Routers are module-level :class:`fastapi.APIRouter` objects; an endpoint reaches the sandbox
it serves through the dependencies :data:`StoreDep` and :data:`ConfigDep` (set on
``app.state`` by :func:`reconciler.sandbox.app.create_app`), so one router serves any number
of sandboxes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.responses import JSONResponse

from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.store import Store

PAGE_SIZE_MAX = 1000


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _config(request: Request) -> SandboxConfig:
    config: SandboxConfig = request.app.state.config
    return config


StoreDep = Annotated[Store, Depends(_store)]
ConfigDep = Annotated[SandboxConfig, Depends(_config)]
PageQ = Annotated[int, Query(ge=0, description="0-based page number")]
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
