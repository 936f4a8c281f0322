"""The sandbox's own endpoints, outside the API contract: health probe and request journal."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from reconciler.sandbox.database import INT64_MAX
from reconciler.sandbox.routes.common import StoreDep

router = APIRouter()


@router.get("/sandbox/health")
def health() -> Any:
    return {"status": "ok", "sandbox": True, "trains_models": False}


@router.get("/sandbox/journal")
def journal(store: StoreDep, since: Annotated[int, Query(ge=0, le=INT64_MAX)] = 0) -> Any:
    return store.journal(since)


@router.delete("/sandbox/journal")
def clear_journal(store: StoreDep) -> Any:
    return {"deleted": store.journal_clear()}
