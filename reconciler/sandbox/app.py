"""Assembles one sandbox: the store, the routes of its dialect and the ASGI gate in front.

:func:`create_app` is the only entry point; :mod:`.server` runs its result with uvicorn,
either embedded in the calling process or as the ``reconciler sandbox`` server. The sandbox
implements the Mistral files and fine-tuning API, or the OpenAI one (``dialect``; see
:mod:`.dialects`); it never trains a model.

The FastAPI application behind the gate is built once per dialect and process
(:func:`dialect_app`) and serves every sandbox of that dialect: a sandbox passes itself to its
endpoints in the request's scope (:data:`.routes.common.SCOPE_KEY`), not in the application's
state. FastAPI analyses each route (parameters, bodies, response models) per application, at
the application's first requests: 50-100 ms of CPU that every embedded sandbox, so every
``apply`` on the default target, paid again.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from reconciler.sandbox.asgi import Receive, Scope, Send
from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.dialects import DIALECTS, Dialect
from reconciler.sandbox.gate import Gate
from reconciler.sandbox.routes.common import SCOPE_KEY
from reconciler.sandbox.store import Store
from reconciler.sandbox.wire import Wire

__all__ = ["SandboxAPI", "SandboxConfig", "create_app", "dialect_app"]

log = logging.getLogger("reconciler.sandbox")


class SandboxAPI:
    """The ASGI application of one sandbox: the :class:`~.gate.Gate`, then its dialect's
    FastAPI application (:func:`dialect_app`) with this sandbox in the request's scope.

    The gate (journal, rate limit, auth, upload size, faults) runs outermost, before
    FastAPI's own middleware, so it sees the server's raw ``send`` and can drop a connection.

    Attributes:
        config: the configuration it was built from.
        store: its persistence.
        wire: how its dialect words errors.
        gate: the outer ASGI layer.
        app: the dialect's FastAPI application, shared with the process's other sandboxes.
    """

    def __init__(self, config: SandboxConfig, store: Store, dialect: Dialect) -> None:
        self.config = config
        self.store = store
        self.wire: Wire = dialect.wire
        self.app = dialect_app(dialect.name)
        self.gate = Gate(self._inner, store=store, config=config, wire=self.wire)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gate(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope[SCOPE_KEY] = self
        await self.app(scope, receive, send)

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        """Recorded requests with id > ``since`` (see :meth:`.store.Store.journal`)."""
        return self.store.journal(since)

    def close(self) -> None:
        """Release the database."""
        self.store.close()


def create_app(config: SandboxConfig) -> SandboxAPI:
    """Build the sandbox application for ``config`` (creates ``config.data_dir`` if needed).

    Raises :class:`~.store.WrongDialect` when the data directory holds another dialect's
    objects.
    """
    dialect = DIALECTS[config.dialect]
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / "tmp").mkdir(exist_ok=True)  # uploads in progress
    store = Store(config.data_dir, clock=config.clock, seed=config.seed, dialect=dialect.name)
    return SandboxAPI(config, store, dialect)


@functools.cache
def dialect_app(name: str) -> FastAPI:
    """The FastAPI application of the dialect ``name``: its routers and error handlers, built
    on first use and shared by every sandbox of the dialect in this process (see the module
    doc). It holds no sandbox's state; an endpoint finds its sandbox in the request's scope."""
    dialect = DIALECTS[name]
    api = FastAPI(
        title="reconciler sandbox",
        description=f"A local implementation of {dialect.title}. It never trains a model.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    wire = dialect.wire
    for router in dialect.routers:
        api.include_router(router)

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        return await wire.invalid_request(request, exc.errors())

    @api.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        return await wire.http_error(request, exc)

    @api.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> Response:
        # A bug, never bad input: answer in the API's error shape rather than plain text.
        log.exception("sandbox error on %s %s", request.method, request.url.path)
        return await wire.internal(request, exc)

    return api
