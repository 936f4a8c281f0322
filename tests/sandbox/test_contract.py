"""Every response of every sandbox endpoint validates against the reference OpenAPI schemas.

One scenario drives every operation of the contract (files, jobs in each variant, models);
an httpx response hook records every response, and each 200 JSON body is validated against
its operation's schema, each list-shaped 422 against ``HTTPValidationError``.
The reference document is vendored under ``tests/reference``: these tests never skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from reconciler.sandbox import EmbeddedSandbox, ManualClock
from tests.sandbox.conftest import (
    chat_lines,
    client_of,
    job_body,
    pretrain_lines,
    upload,
    uploaded_id,
    wait_status,
)
from tests.sandbox.contract import Contract, Recorder, mistral_contract

pytestmark = pytest.mark.contract


@pytest.fixture(scope="module")
def contract() -> Contract:
    return mistral_contract()


@pytest.fixture
def recorded(sandbox: EmbeddedSandbox) -> Iterator[tuple[httpx.Client, list[httpx.Response]]]:
    recorder = Recorder()
    with client_of(sandbox, event_hooks={"response": [recorder]}) as client:
        yield client, recorder.seen


def _scenario(api: httpx.Client, clock: ManualClock) -> None:
    train = uploaded_id(api, chat_lines(30, "t"), "train.jsonl")
    valid = uploaded_id(api, chat_lines(5, "v"), "valid.jsonl")
    uploaded_id(api, pretrain_lines(5), "pretrain.jsonl")
    upload(api, b"not json\n", "bad.jsonl")  # 422, string detail
    api.get("/v1/files")
    api.get("/v1/files", params={"page_size": 1, "include_total": "false"})
    api.get(
        "/v1/files",
        params=[
            ("sample_type", "instruct"),
            ("sample_type", "pretrain"),
            ("source", "upload"),
            ("search", "train"),
            ("purpose", "fine-tune"),
            ("mimetypes", "application/jsonl"),
        ],
    )
    api.get(f"/v1/files/{train}")
    api.get(f"/v1/files/{train}/url", params={"expiry": 2})
    api.get("/v1/files", params={"page_size": -1})  # 422 list detail

    # A completion job with everything: validation files, W&B, held at VALIDATED.
    body = job_body(
        train,
        validation_files=[valid],
        suffix="contract",
        integrations=[{"type": "wandb", "project": "p", "name": "run", "api_key": "k" * 40}],
        repositories=[{"name": "repo", "owner": "me", "token": "secret-token"}],
    )
    api.post("/v1/fine_tuning/jobs", params={"dry_run": "true"}, json=body)
    job = api.post("/v1/fine_tuning/jobs", json=body).json()
    wait_status(api, clock, job["id"], {"VALIDATED"})
    api.post(f"/v1/fine_tuning/jobs/{job['id']}/start")
    done = wait_status(api, clock, job["id"], {"SUCCESS"})
    api.post("/v1/fine_tuning/jobs", json={**body, "store": True})  # 422 extra_forbidden

    # A classifier job, and a completion job cancelled mid-way.
    classifier = api.post(
        "/v1/fine_tuning/jobs",
        json=job_body(
            train,
            model="ministral-3b-latest",
            job_type="classifier",
            auto_start=True,
            hyperparameters={"training_steps": 5},
            classifier_targets=[{"name": "mood", "labels": ["a", "b"]}],
        ),
    ).json()
    wait_status(api, clock, classifier["id"], {"SUCCESS"})
    other = api.post("/v1/fine_tuning/jobs", json=job_body(train, suffix="cancel")).json()
    api.post(f"/v1/fine_tuning/jobs/{other['id']}/cancel")
    wait_status(api, clock, other["id"], {"CANCELLED"})
    api.get("/v1/fine_tuning/jobs")
    api.get(
        "/v1/fine_tuning/jobs",
        params={
            "status": "SUCCESS",
            "model": "open-mistral-7b",
            "wandb_project": "p",
            "suffix": "contract",
        },
    )

    model_id = done["fine_tuned_model"]
    classifier_model = api.get(f"/v1/fine_tuning/jobs/{classifier['id']}").json()[
        "fine_tuned_model"
    ]
    api.get("/v1/models")
    api.get("/v1/models/open-mistral-7b")
    api.get(f"/v1/models/{model_id}")
    api.patch(f"/v1/fine_tuning/models/{model_id}", json={"name": "n", "description": "d"})
    api.patch(f"/v1/fine_tuning/models/{classifier_model}", json={"name": "c"})
    api.post(f"/v1/fine_tuning/models/{model_id}/archive")
    api.delete(f"/v1/fine_tuning/models/{model_id}/archive")
    api.delete(f"/v1/models/{classifier_model}")
    api.delete(f"/v1/files/{valid}")


def test_every_response_matches_the_contract(
    contract: Contract, recorded: tuple[httpx.Client, list[httpx.Response]], clock: ManualClock
) -> None:
    api, seen = recorded
    _scenario(api, clock)
    checked: set[tuple[str, str]] = set()
    for response in seen:
        method, path = response.request.method, response.request.url.path
        if (
            response.status_code == 200
            and path.startswith("/v1/")
            and not path.endswith("/content")
        ):
            contract.validate(method, path, response.json())
            checked.add((method, contract.template(path)))
        elif response.status_code == 422 and isinstance(response.json()["detail"], list):
            contract.validate_schema("HTTPValidationError", response.json())
    wanted = contract.operations("/v1/files", "/v1/fine_tuning", "/v1/models") - {
        ("GET", "/v1/files/{file_id}/content")
    }
    assert wanted <= checked, f"operations never exercised: {sorted(wanted - checked)}"


def test_download_is_octet_stream(contract: Contract, api: httpx.Client) -> None:
    data = chat_lines(3)
    fid = uploaded_id(api, data)
    op = contract.doc["paths"]["/v1/files/{file_id}/content"]["get"]
    declared = set(op["responses"]["200"]["content"])
    r = api.get(f"/v1/files/{fid}/content")
    assert r.headers["content-type"].split(";")[0] in declared
    assert r.content == data


def test_contract_check_catches_a_wrong_shape(contract: Contract) -> None:
    # The checker itself must be able to fail: a file object without "bytes" is not a file.
    bad: dict[str, Any] = {
        "id": "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "object": "file",
        "created_at": 1,
        "filename": "x",
        "purpose": "fine-tune",
        "sample_type": "instruct",
        "source": "upload",
        "deleted": False,
    }
    with pytest.raises(AssertionError, match="bytes"):
        contract.validate("GET", "/v1/files/3fa85f64-5717-4562-b3fc-2c963f66afa6", bad)
    with pytest.raises(AssertionError, match="not in the contract"):
        contract.validate(
            "GET",
            "/v1/files/3fa85f64-5717-4562-b3fc-2c963f66afa6",
            {**bad, "bytes": 3, "surprise": 1},
        )
