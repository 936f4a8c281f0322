"""The models resource: the base catalogue and fine-tuned models (update, archive, delete).

Responses have the contract's ``ModelList``, ``BaseModelCard``/``FTModelCard``,
``CompletionFTModelOut``/``ClassifierFTModelOut``, ``ArchiveFTModelOut``,
``UnarchiveFTModelOut`` and ``DeleteModelOut`` shapes.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from reconciler.sandbox.records import ModelRecord
from reconciler.sandbox.routes.common import StoreDep, detail
from reconciler.sandbox.schemas import BASE_MODEL_CREATED, BASE_MODELS, UpdateFTModelIn
from reconciler.sandbox.store import Store

#: Context length assumed for a fine-tuned model whose base is not in the catalogue.
_DEFAULT_CONTEXT = 32768

router = APIRouter()


@router.get("/v1/models")
def list_models(store: StoreDep, provider: str | None = None, model: str | None = None) -> Any:
    cards = [_base_card(m) for m in BASE_MODELS]
    cards += [_ft_card(store, m) for m in store.models()]
    if model is not None:
        cards = [c for c in cards if c["id"] == model]
    return {"object": "list", "data": cards}


@router.get("/v1/models/{model_id}")
def retrieve_model(store: StoreDep, model_id: str) -> Any:
    if model_id in BASE_MODELS:
        return _base_card(model_id)
    found = store.model(model_id)
    if found is None:
        return detail(404, f"Model {model_id!r} not found.")
    return _ft_card(store, found)


@router.delete("/v1/models/{model_id}")
def delete_model(store: StoreDep, model_id: str) -> Any:
    if model_id in BASE_MODELS:
        return detail(
            403, f"Model {model_id!r} is a base model; only fine-tuned models can be deleted."
        )
    if store.update_model(model_id, {"deleted": 1}) is None:
        return detail(404, f"Model {model_id!r} not found.")
    return {"id": model_id, "object": "model", "deleted": True}


def _update(store: Store, model_id: str, changes: dict[str, Any]) -> ModelRecord | JSONResponse:
    updated = store.update_model(model_id, changes)
    if updated is None:
        return detail(404, f"Fine-tuned model {model_id!r} not found.")
    return updated


@router.patch("/v1/fine_tuning/models/{model_id}")
def update_model(store: StoreDep, model_id: str, body: UpdateFTModelIn) -> Any:
    updated = _update(store, model_id, {k: getattr(body, k) for k in body.model_fields_set})
    if isinstance(updated, JSONResponse):
        return updated
    return _ft_model_out(store, updated)


def _archive(store: Store, model_id: str, archived: bool) -> Any:
    updated = _update(store, model_id, {"archived": int(archived)})
    if isinstance(updated, JSONResponse):
        return updated
    return {"id": model_id, "object": "model", "archived": archived}


@router.post("/v1/fine_tuning/models/{model_id}/archive")
def archive_model(store: StoreDep, model_id: str) -> Any:
    return _archive(store, model_id, True)


@router.delete("/v1/fine_tuning/models/{model_id}/archive")
def unarchive_model(store: StoreDep, model_id: str) -> Any:
    return _archive(store, model_id, False)


def _base_card(model_id: str) -> dict[str, Any]:
    context, types, caps = BASE_MODELS[model_id]
    capabilities = {
        "completion_chat": True,
        "function_calling": False,
        "completion_fim": False,
        "fine_tuning": True,
        "vision": False,
        "ocr": False,
        "classification": "classifier" in types,
        "moderation": False,
        "audio": False,
        "audio_transcription": False,
        **caps,
    }
    return {
        "id": model_id,
        "object": "model",
        "created": BASE_MODEL_CREATED,
        "owned_by": "mistralai",
        "capabilities": capabilities,
        "name": model_id,
        "description": f"{model_id} (sandbox catalogue entry; the sandbox serves no inference)",
        "max_context_length": context,
        "aliases": [],
        "deprecation": None,
        "deprecation_replacement_model": None,
        "default_model_temperature": 0.3,
        "type": "base",
    }


def _ft_capabilities(model: ModelRecord) -> dict[str, bool]:
    classifier = model.model_type == "classifier"
    return {
        "completion_chat": not classifier,
        "completion_fim": False,
        "function_calling": not classifier,
        "fine_tuning": False,
        "classification": classifier,
    }


def _context(model: ModelRecord) -> int:
    return BASE_MODELS.get(model.root, (_DEFAULT_CONTEXT, frozenset(), {}))[0]


def _ft_card(store: Store, model: ModelRecord) -> dict[str, Any]:
    """``FTModelCard``, as listed by ``/v1/models``."""
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": store.org_id,
        "capabilities": {
            **_ft_capabilities(model),
            "vision": False,
            "ocr": False,
            "moderation": False,
            "audio": False,
            "audio_transcription": False,
        },
        "name": model.name,
        "description": model.description,
        "max_context_length": _context(model),
        "aliases": [],
        "deprecation": None,
        "deprecation_replacement_model": None,
        "default_model_temperature": None,
        "type": "fine-tuned",
        "job": model.job_id,
        "root": model.root,
        "archived": model.archived,
    }


def _ft_model_out(store: Store, model: ModelRecord) -> dict[str, Any]:
    """``CompletionFTModelOut`` / ``ClassifierFTModelOut``."""
    out: dict[str, Any] = {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": store.org_id,
        "workspace_id": str(uuid.UUID(int=int(store.org_id, 16))),
        "root": model.root,
        "root_version": "1",
        "archived": model.archived,
        "name": model.name,
        "description": model.description,
        "capabilities": _ft_capabilities(model),
        "max_context_length": _context(model),
        "aliases": [],
        "job": model.job_id,
        "model_type": model.model_type,
    }
    if model.model_type == "classifier":
        out["classifier_targets"] = model.classifier_targets or []
    return out
