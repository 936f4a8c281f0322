"""The OpenAI models resource: list, retrieve, delete (fine-tuned models only).

The base catalogue (:mod:`.catalogue`, snapshots and aliases, owned by ``system``) comes
first, then the fine-tuned models the sandbox's jobs produced, oldest first.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from reconciler.sandbox.openai import catalogue
from reconciler.sandbox.openai.errors import APIError
from reconciler.sandbox.openai.render import base_card, model_card
from reconciler.sandbox.routes.common import StoreDep

router = APIRouter()


def _not_found(model_id: str) -> APIError:
    return APIError(
        404, f"The model '{model_id}' does not exist", param="model", code="model_not_found"
    )


@router.get("/v1/models")
def list_models(store: StoreDep) -> Any:
    cards = [base_card(name) for name in catalogue.model_names()]
    cards += [model_card(store, m) for m in store.models()]
    return {"object": "list", "data": cards}


@router.get("/v1/models/{model_id}")
def retrieve_model(store: StoreDep, model_id: str) -> Any:
    if catalogue.base_model(model_id) is not None:
        return base_card(model_id)
    found = store.model(model_id)
    if found is None:
        raise _not_found(model_id)
    return model_card(store, found)


@router.delete("/v1/models/{model_id}")
def delete_model(store: StoreDep, model_id: str) -> Any:
    if catalogue.base_model(model_id) is not None:
        raise APIError(
            403,
            f"Model '{model_id}' is a base model; only your fine-tuned models can be deleted.",
            param="model",
        )
    if store.update_model(model_id, {"deleted": 1}) is None:
        raise _not_found(model_id)
    return {"id": model_id, "object": "model", "deleted": True}
