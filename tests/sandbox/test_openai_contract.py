"""Every answer of the OpenAI dialect validates against the reference document.

One scenario drives every operation of the files, fine-tuning jobs and models paths in each
variant the sandbox has (each method, validation files, integrations, failed validation,
pause and cancel, empty lists, cursor pages) and many refusals; an httpx response hook
records every response. Each 200 JSON body is validated against its operation's schema, with
no property the schema does not name; each error against the service's error shape.
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
    oai_file_id,
    preference_lines,
    upload,
    wait_status,
)
from tests.sandbox.contract import (
    OPENAI_ERROR,
    Recorder,
    check_openai_answers,
    openai_contract,
    openai_json_operations,
)

pytestmark = pytest.mark.contract

#: A complete grader of the reinforcement method (the sandbox grades nothing).
GRADER = {
    "type": "string_check",
    "name": "exact",
    "input": "{{sample.output_text}}",
    "reference": "{{item.answer}}",
    "operation": "eq",
}


@pytest.fixture
def recorded(openai_sandbox: EmbeddedSandbox) -> Iterator[tuple[httpx.Client, Recorder]]:
    recorder = Recorder()
    with client_of(openai_sandbox, event_hooks={"response": [recorder]}) as client:
        yield client, recorder


def _create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    r = api.post("/v1/fine_tuning/jobs", json={"model": "gpt-4o-mini", **body})
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def _scenario(api: httpx.Client, clock: ManualClock) -> None:
    api.get("/v1/files")  # empty
    train = oai_file_id(api, chat_lines(30, "t"))
    valid = oai_file_id(api, chat_lines(10, "v"), "valid.jsonl")
    prefs = oai_file_id(api, preference_lines(12), "prefs.jsonl")
    few = oai_file_id(api, chat_lines(4, "f"), "few.jsonl")
    notes = oai_file_id(api, b"just notes", "notes.txt", purpose="user_data")
    upload(api, chat_lines(3), "train.csv", purpose="fine-tune")  # 400: not .jsonl
    upload(api, chat_lines(3), "train.jsonl")  # 400: no purpose
    api.post(
        "/v1/files",
        files={"file": ("e.jsonl", chat_lines(12))},
        data={
            "purpose": "fine-tune",
            "expires_after[anchor]": "created_at",
            "expires_after[seconds]": "7200",
        },
    )
    api.get("/v1/files", params={"purpose": "fine-tune", "limit": 2})
    api.get("/v1/files", params={"order": "asc", "limit": 2, "after": train})
    api.get("/v1/files", params={"after": "file-nope"})  # 400
    api.get("/v1/files", params={"limit": str(10**30)})  # 400
    api.get(f"/v1/files/{train}")
    api.get(f"/v1/files/{notes}/content")
    api.get(f"/v1/files/{train}/content")  # 400: fine-tune files are not downloaded
    api.delete(f"/v1/files/{notes}")
    api.get(f"/v1/files/{notes}")  # 404

    # Each method, with everything a job can carry.
    supervised = _create(
        api,
        training_file=train,
        validation_file=valid,
        suffix="contract",
        seed=7,
        metadata={"scenario": "contract"},
        integrations=[
            {"type": "wandb", "wandb": {"project": "p", "entity": "team", "tags": ["a"]}}
        ],
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2}}},
    )
    dpo = _create(
        api,
        training_file=prefs,
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "batch_size": 2}}},
    )
    reinforcement = _create(
        api,
        model="o4-mini",
        training_file=train,
        method={"type": "reinforcement", "reinforcement": {"grader": GRADER}},
    )
    legacy = _create(api, training_file=train, hyperparameters={"learning_rate_multiplier": 0.5})
    wrong_format = _create(api, training_file=prefs)  # fails while validating files
    too_few = _create(api, training_file=few)  # fails while validating files
    for job in (supervised, dpo, reinforcement, legacy, wrong_format, too_few):
        wait_status(api, clock, job["id"], {"running", "failed"})
    api.post(f"/v1/fine_tuning/jobs/{dpo['id']}/pause")
    api.post(f"/v1/fine_tuning/jobs/{dpo['id']}/pause")  # 400: already paused
    api.post(f"/v1/fine_tuning/jobs/{dpo['id']}/cancel")
    api.post(f"/v1/fine_tuning/jobs/{legacy['id']}/resume")  # 400: not paused
    api.post(f"/v1/fine_tuning/jobs/{legacy['id']}/pause")
    api.post(f"/v1/fine_tuning/jobs/{legacy['id']}/resume")
    for job in (supervised, reinforcement, legacy):
        wait_status(api, clock, job["id"], {"succeeded"})
    for job in (supervised, dpo, wrong_format):
        api.get(f"/v1/fine_tuning/jobs/{job['id']}")
        events = api.get(f"/v1/fine_tuning/jobs/{job['id']}/events", params={"limit": 3}).json()
        api.get(
            f"/v1/fine_tuning/jobs/{job['id']}/events",
            params={"limit": 3, "after": events["data"][-1]["id"]},
        )
        cps = api.get(f"/v1/fine_tuning/jobs/{job['id']}/checkpoints", params={"limit": 2})
        if cps.json()["data"]:
            api.get(
                f"/v1/fine_tuning/jobs/{job['id']}/checkpoints",
                params={"after": cps.json()["data"][-1]["id"]},
            )
    api.get("/v1/fine_tuning/jobs")
    api.get("/v1/fine_tuning/jobs", params={"limit": 2, "after": dpo["id"]})
    api.get("/v1/fine_tuning/jobs", params={"metadata[scenario]": "contract"})
    api.get("/v1/fine_tuning/jobs", params={"metadata": "null", "limit": 1})
    api.get("/v1/fine_tuning/jobs", params={"after": "ftjob-nope"})  # 400
    api.get("/v1/fine_tuning/jobs/ftjob-nope")  # 404
    api.get("/v1/fine_tuning/jobs/ftjob-nope/events")  # 404
    api.post("/v1/fine_tuning/jobs/ftjob-nope/cancel")  # 404

    # Refused creations, each a 400 in the service's error shape.
    for bad in (
        {"training_file": train, "model": "gpt-5-huge"},
        {"training_file": train, "model": "gpt-3.5-turbo", "method": {"type": "dpo"}},
        {"training_file": "file-nope"},
        {"training_file": train, "suffix": "x" * 65},
        {"training_file": train, "metadata": {f"k{i}": "v" for i in range(17)}},
        {"training_file": train, "metadata": {"k": "v" * 513}},
        {"training_file": train, "seed": -1},
        {"training_file": train, "store": True},
        {
            "training_file": train,
            "integrations": [{"type": "wandb", "wandb": {"project": "p", "api_key": "k"}}],
        },
        {"training_file": train, "method": {"type": "supervised", "dpo": {}}},
        {
            "training_file": train,
            "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}},
        },
        {"training_file": train, "hyperparameters": {"batch_size": "big"}},
    ):
        r = api.post("/v1/fine_tuning/jobs", json={"model": "gpt-4o-mini", **bad})
        assert r.status_code == 400, (bad, r.text)
    api.post(
        "/v1/fine_tuning/jobs",
        content=b"{not json",
        headers={"content-type": "application/json"},
    )
    api.post("/v1/fine_tuning/jobs", json={"training_file": train})  # missing model

    model = api.get(f"/v1/fine_tuning/jobs/{supervised['id']}").json()["fine_tuned_model"]
    api.get("/v1/models")
    api.get("/v1/models/gpt-4o-mini")
    api.get("/v1/models/gpt-4o-mini-2024-07-18")
    api.get(f"/v1/models/{model}")
    api.delete("/v1/models/gpt-4o-mini")  # 403
    api.delete(f"/v1/models/{model}")
    api.get(f"/v1/models/{model}")  # 404
    api.delete(f"/v1/models/{model}")  # 404
    api.get("/v1/nowhere")  # 404 Invalid URL
    api.put("/v1/files")  # 405 Invalid URL


def test_every_openai_answer_matches_the_contract(
    recorded: tuple[httpx.Client, Recorder], clock: ManualClock
) -> None:
    api, recorder = recorded
    _scenario(api, clock)
    checked, statuses = check_openai_answers(recorder.seen)
    assert set(statuses) == {200, 400, 403, 404, 405}
    wanted = openai_json_operations()
    assert wanted <= checked, f"operations never exercised: {sorted(wanted - checked)}"


def test_contract_check_catches_a_wrong_shape() -> None:
    # The checker itself must be able to fail: a job without "seed", a file with a property
    # the contract does not name, an error without "param".
    contract = openai_contract()
    job = {
        "object": "fine_tuning.job",
        "id": "ftjob-x",
        "model": "gpt-4o-mini-2024-07-18",
        "created_at": 1,
        "finished_at": None,
        "fine_tuned_model": None,
        "organization_id": "org-x",
        "result_files": [],
        "status": "queued",
        "validation_file": None,
        "training_file": "file-x",
        "hyperparameters": {"n_epochs": "auto"},
        "trained_tokens": None,
        "error": None,
    }
    with pytest.raises(AssertionError, match="seed"):
        contract.validate("GET", "/v1/fine_tuning/jobs/ftjob-x", job)
    contract.validate("GET", "/v1/fine_tuning/jobs/ftjob-x", {**job, "seed": 1})
    with pytest.raises(AssertionError, match="is not one of"):
        contract.validate(
            "GET", "/v1/fine_tuning/jobs/ftjob-x", {**job, "seed": 1, "status": "done"}
        )
    file = {
        "id": "file-x",
        "object": "file",
        "bytes": 1,
        "created_at": 1,
        "filename": "x",
        "purpose": "fine-tune",
        "status": "processed",
    }
    with pytest.raises(AssertionError, match="not in the contract"):
        contract.validate("GET", "/v1/files/file-x", {**file, "sample_type": "instruct"})
    with pytest.raises(Exception, match="param"):
        contract.validate_against(
            OPENAI_ERROR, {"error": {"message": "m", "type": "t", "code": None}}
        )
