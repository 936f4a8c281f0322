"""Models: base catalogue, fine-tuned cards, update, archive/unarchive, delete."""

from __future__ import annotations

import httpx

from reconciler.sandbox import ManualClock
from tests.sandbox.conftest import job_body, uploaded_id, wait_status


def _fine_tuned(api: httpx.Client, clock: ManualClock) -> str:
    fid = uploaded_id(api)
    job = api.post("/v1/fine_tuning/jobs", json=job_body(fid, auto_start=True)).json()
    return str(wait_status(api, clock, job["id"], {"SUCCESS"})["fine_tuned_model"])


def test_base_models_listed_and_retrievable(api: httpx.Client) -> None:
    listed = api.get("/v1/models").json()
    assert listed["object"] == "list"
    ids = {m["id"]: m for m in listed["data"]}
    for base in (
        "open-mistral-7b",
        "mistral-small-latest",
        "ministral-3b-latest",
        "open-mistral-nemo",
        "codestral-latest",
    ):
        assert ids[base]["type"] == "base"
        assert api.get(f"/v1/models/{base}").json()["id"] == base
    assert all(m["type"] == "base" for m in listed["data"])  # no fine-tuned model yet
    assert [
        m["id"] for m in api.get("/v1/models", params={"model": "codestral-latest"}).json()["data"]
    ] == ["codestral-latest"]


def test_fine_tuned_model_update_archive_delete(api: httpx.Client, clock: ManualClock) -> None:
    model_id = _fine_tuned(api, clock)
    card = api.get(f"/v1/models/{model_id}").json()
    assert card["type"] == "fine-tuned" and card["archived"] is False and card["name"] is None

    updated = api.patch(
        f"/v1/fine_tuning/models/{model_id}", json={"name": "Support bot", "description": "v1"}
    ).json()
    assert (updated["name"], updated["description"]) == ("Support bot", "v1")
    assert updated["model_type"] == "completion" and updated["job"] == card["job"]
    # A partial update leaves the other field alone; an explicit null clears it.
    assert (
        api.patch(f"/v1/fine_tuning/models/{model_id}", json={"description": None}).json()["name"]
        == "Support bot"
    )
    card = api.get(f"/v1/models/{model_id}").json()
    assert (card["name"], card["description"]) == ("Support bot", None)

    assert api.post(f"/v1/fine_tuning/models/{model_id}/archive").json() == {
        "id": model_id,
        "object": "model",
        "archived": True,
    }
    assert api.get(f"/v1/models/{model_id}").json()["archived"] is True
    assert api.delete(f"/v1/fine_tuning/models/{model_id}/archive").json()["archived"] is False
    assert api.get(f"/v1/models/{model_id}").json()["archived"] is False

    assert api.delete(f"/v1/models/{model_id}").json() == {
        "id": model_id,
        "object": "model",
        "deleted": True,
    }
    assert api.get(f"/v1/models/{model_id}").status_code == 404
    assert model_id not in {m["id"] for m in api.get("/v1/models").json()["data"]}
    assert api.delete(f"/v1/models/{model_id}").status_code == 404
    # The job still names its model: deleting a model does not rewrite history.
    jobs = api.get("/v1/fine_tuning/jobs").json()["data"]
    assert jobs[0]["fine_tuned_model"] == model_id
