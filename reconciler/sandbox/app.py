"""Assembles one sandbox: the store, the FastAPI routes and the ASGI gate in front.

:func:`create_app` is the only entry point; :mod:`.server` runs its result with uvicorn,
either embedded in the calling process or as the ``reconciler sandbox`` server. The sandbox
implements the Mistral files and fine-tuning API contract; it never trains a model.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from reconciler.sandbox.asgi import Receive, Scope, Send
from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.gate import Gate
from reconciler.sandbox.routes import ROUTERS
from reconciler.sandbox.store import Store

__all__ = ["SandboxAPI", "SandboxConfig", "create_app"]

log = logging.getLogger("reconciler.sandbox")


class SandboxAPI(FastAPI):
    """The FastAPI application of one sandbox, with the :class:`~.gate.Gate` in front.

    The gate (journal, rate limit, auth, upload size, faults) runs outermost, before
    FastAPI's own middleware, so it sees the server's raw ``send`` and can drop a connection.

    Attributes:
        config: the configuration it was built from.
        store: its persistence (also ``state.store``).
        gate: the outer ASGI layer.
    """

    config: SandboxConfig
    store: Store
    gate: Gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.gate(scope, receive, send)

    async def _inner(self, scope: Scope, receive: Receive, send: Send) -> None:
        await super().__call__(scope, receive, send)

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        """Recorded requests with id > ``since`` (see :meth:`.store.Store.journal`)."""
        return self.store.journal(since)

    def close(self) -> None:
        """Release the database."""
        self.store.close()


def create_app(config: SandboxConfig) -> SandboxAPI:
    """Build the sandbox application for ``config`` (creates ``config.data_dir`` if needed)."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    (config.data_dir / "tmp").mkdir(exist_ok=True)  # uploads in progress
    store = Store(config.data_dir, clock=config.clock, seed=config.seed)
    api = SandboxAPI(
        title="reconciler sandbox",
        description="A local implementation of the Mistral files and fine-tuning API. "
        "It never trains a model.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    api.config = config
    api.store = store
    api.gate = Gate(api._inner, store=store, config=config)
    api.state.store = store
    api.state.config = config
    api.state.journal = store.journal
    for router in ROUTERS:
        api.include_router(router)

    @api.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        # A bug, never bad input: answer in the API's error shape rather than plain text.
        log.exception("sandbox error on %s %s", request.method, request.url.path)
        return JSONResponse(
            {"detail": f"Internal sandbox error ({type(exc).__name__}); see the server log."},
            status_code=500,
        )

    return api
