"""OpenAI-dialect fine-tuning jobs: lifecycle, pause and resume, hyperparameters, data
validation, refusals, metadata filters, cursors, model names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.sandbox import EmbeddedSandbox, ManualClock
from tests.sandbox.conftest import (
    API_KEY,
    STEP,
    StartSandbox,
    chat_lines,
    client_of,
    oai_file_id,
    preference_lines,
    wait_status,
)

JOBS = "/v1/fine_tuning/jobs"


def _create(api: httpx.Client, **body: Any) -> dict[str, Any]:
    r = api.post(JOBS, json={"model": "gpt-4o-mini", **body})
    assert r.status_code == 200, r.text
    job: dict[str, Any] = r.json()
    return job


def _statuses(api: httpx.Client, clock: ManualClock, job_id: str, until: str) -> list[str]:
    """Every status the job shows, one look per fifth of a clock step until it runs (the
    phases before last 0.2 to 0.7 s), then one per step, until ``until``."""
    seen: list[str] = []
    for _ in range(2000):
        status = api.get(f"{JOBS}/{job_id}").json()["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        if status == until:
            return seen
        clock.advance(STEP if "running" in seen else STEP / 5)
    raise AssertionError(f"never {until}: {seen}")


def _events(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """Every event of a job, oldest first."""
    data: list[dict[str, Any]] = api.get(f"{JOBS}/{job_id}/events", params={"limit": 1000}).json()[
        "data"
    ]
    return data[::-1]


def _checkpoints(api: httpx.Client, job_id: str) -> list[dict[str, Any]]:
    """Every checkpoint of a job, oldest first."""
    params = {"limit": 1000}
    data: list[dict[str, Any]] = api.get(f"{JOBS}/{job_id}/checkpoints", params=params).json()[
        "data"
    ]
    return data[::-1]


def test_a_job_starts_at_once_and_goes_through_openai_statuses(
    oai: httpx.Client, clock: ManualClock
) -> None:
    fid = oai_file_id(oai, chat_lines(30))
    job = _create(oai, training_file=fid, suffix="tone")
    assert job["status"] == "validating_files" and job["fine_tuned_model"] is None
    assert job["id"].startswith("ftjob-") and job["finished_at"] is None
    assert _statuses(oai, clock, job["id"], "succeeded") == [
        "validating_files",
        "queued",
        "running",
        "succeeded",
    ]
    done = oai.get(f"{JOBS}/{job['id']}").json()
    assert re.fullmatch(
        r"ft:gpt-4o-mini-2024-07-18:sandbox:tone:[0-9A-Za-z]{8}", done["fine_tuned_model"]
    )
    assert done["finished_at"] >= done["created_at"] and done["trained_tokens"] > 0
    assert done["estimated_finish"] is None and done["error"] is None
    messages = [e["message"] for e in _events(oai, job["id"])]
    assert messages[:4] == [
        f"Created fine-tuning job: {job['id']}",
        f"Validating training file: {fid}",
        "Files validated, moving job to queued state",
        "Fine-tuning job started",
    ]
    assert messages[-2:] == [
        f"New fine-tuned model created: {done['fine_tuned_model']}",
        "The job has successfully completed",
    ]
    # Between them, one metrics event per checkpoint, in step order.
    metrics = [e for e in _events(oai, job["id"]) if e["type"] == "metrics"]
    steps = [e["data"]["step"] for e in metrics]
    assert steps == [c["step_number"] for c in _checkpoints(oai, job["id"])] and steps == sorted(
        steps
    )
    assert all(e["data"]["total_steps"] == steps[-1] for e in metrics)
    ids = [m["id"] for m in oai.get("/v1/models").json()["data"]]
    assert done["fine_tuned_model"] in ids


def test_auto_hyperparameters_resolve_when_the_files_are_validated(
    oai: httpx.Client, clock: ManualClock
) -> None:
    small = oai_file_id(oai, chat_lines(12, "s"), "small.jsonl")
    large = oai_file_id(oai, chat_lines(40, "l"), "large.jsonl")
    auto = _create(oai, training_file=small)
    assert auto["hyperparameters"] == {
        "batch_size": "auto",
        "learning_rate_multiplier": "auto",
        "n_epochs": "auto",
    }
    chosen = _create(
        oai,
        training_file=large,
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}},
        },
    )
    prefs = oai_file_id(oai, preference_lines(20), "prefs.jsonl")
    dpo = _create(oai, training_file=prefs, method={"type": "dpo"})
    for job in (auto, chosen, dpo):
        wait_status(oai, clock, job["id"], {"queued", "running"})
    # 12 examples: 100 // 12 = 8 epochs (at least 100 examples seen), batch 1.
    auto = oai.get(f"{JOBS}/{auto['id']}").json()
    assert auto["hyperparameters"] == {
        "batch_size": 1,
        "learning_rate_multiplier": 1.0,
        "n_epochs": 8,
    }
    assert auto["method"]["supervised"]["hyperparameters"] == auto["hyperparameters"]
    chosen = oai.get(f"{JOBS}/{chosen['id']}").json()
    assert chosen["hyperparameters"] == {
        "batch_size": 4,
        "learning_rate_multiplier": 1.0,
        "n_epochs": 2,
    }
    dpo = oai.get(f"{JOBS}/{dpo['id']}").json()
    assert dpo["method"]["dpo"]["hyperparameters"]["beta"] == 0.1
    for job, steps in ((auto, 8 * 12), (chosen, 2 * 10)):  # epochs x ceil(examples / batch)
        done = wait_status(oai, clock, job["id"], {"succeeded"})
        metrics = [e for e in _events(oai, done["id"]) if e["type"] == "metrics"]
        assert metrics[-1]["data"]["step"] == metrics[-1]["data"]["total_steps"] == steps


def test_pause_holds_the_run_and_resume_continues_it(oai: httpx.Client, clock: ManualClock) -> None:
    fid = oai_file_id(oai, chat_lines(30))
    valid = oai_file_id(oai, chat_lines(10, "v"), "valid.jsonl")
    job = _create(oai, training_file=fid, validation_file=valid)
    twin = _create(oai, training_file=fid, validation_file=valid, seed=job["seed"])
    wait_status(oai, clock, job["id"], {"running"})
    clock.advance(5)
    paused = oai.post(f"{JOBS}/{job['id']}/pause").json()
    assert paused["status"] == "paused" and paused["estimated_finish"] is None
    before = _checkpoints(oai, job["id"])
    assert before, "the run trained before the pause"
    clock.advance(300)  # far longer than the whole run
    assert oai.get(f"{JOBS}/{job['id']}").json()["status"] == "paused"
    assert _checkpoints(oai, job["id"]) == before
    assert oai.get(f"{JOBS}/{twin['id']}").json()["status"] == "succeeded"

    resumed = oai.post(f"{JOBS}/{job['id']}/resume").json()
    assert resumed["status"] == "queued"
    assert _statuses(oai, clock, job["id"], "succeeded")[:2] == ["queued", "running"]
    after = _checkpoints(oai, job["id"])
    # The run went on where it stopped: the same checkpoints as a run never paused.
    assert after[: len(before)] == before
    assert [c["step_number"] for c in after] == [
        c["step_number"] for c in _checkpoints(oai, twin["id"])
    ]
    assert after[-1]["metrics"]["full_valid_loss"] > 0
    messages = [e["message"] for e in _events(oai, job["id"])]
    assert (
        messages.count("Fine-tuning job paused") == messages.count("Fine-tuning job resumed") == 1
    )
    assert messages.index("Fine-tuning job paused") < messages.index("Fine-tuning job resumed")


@pytest.mark.parametrize("when", ["validating_files", "running", "paused"])
def test_cancel(oai: httpx.Client, clock: ManualClock, when: str) -> None:
    job = _create(oai, training_file=oai_file_id(oai))
    if when != "validating_files":
        wait_status(oai, clock, job["id"], {"running"})
    if when == "paused":
        oai.post(f"{JOBS}/{job['id']}/pause")
    cancelled = oai.post(f"{JOBS}/{job['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"] is not None
    clock.advance(300)
    final = oai.get(f"{JOBS}/{job['id']}").json()
    assert final["status"] == "cancelled" and final["fine_tuned_model"] is None
    assert _events(oai, job["id"])[-1]["message"] == "Fine-tuning job cancelled"


def test_actions_a_status_forbids_are_400(oai: httpx.Client, clock: ManualClock) -> None:
    job = _create(oai, training_file=oai_file_id(oai))
    for action, fragment in (("pause", "only a running job"), ("resume", "only a paused job")):
        r = oai.post(f"{JOBS}/{job['id']}/{action}")
        assert r.status_code == 400
        assert r.json()["error"]["message"] == (
            f"Job {job['id']} is validating_files; {fragment} can be {action}d."
        )
    wait_status(oai, clock, job["id"], {"succeeded"})
    r = oai.post(f"{JOBS}/{job['id']}/cancel")
    assert r.status_code == 400 and "is succeeded" in r.json()["error"]["message"]
    for action in ("cancel", "pause", "resume"):
        r = oai.post(f"{JOBS}/ftjob-missing/{action}")
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "fine_tuning_job_not_found"


def test_data_the_service_cannot_train_on_fails_while_validating(
    oai: httpx.Client, clock: ManualClock
) -> None:
    chat = oai_file_id(oai, chat_lines(20))
    prefs = oai_file_id(oai, preference_lines(20), "prefs.jsonl")
    broken = chat_lines(12).replace(b'"role": "assistant"', b'"role": "robot"', 1)
    broken_id = oai_file_id(oai, broken, "broken.jsonl")
    few = oai_file_id(oai, chat_lines(5), "few.jsonl")
    cases = [
        ({"training_file": prefs}, "training_file", "A supervised job needs the chat format"),
        (
            {"training_file": chat, "method": {"type": "dpo"}},
            "training_file",
            "A dpo job needs the preference format",
        ),
        ({"training_file": broken_id}, "training_file", "line 1: "),
        ({"training_file": few}, "training_file", "has 5 example(s), but must have at least 10"),
        ({"training_file": chat, "validation_file": broken_id}, "validation_file", "line 1: "),
    ]
    jobs = [(_create(oai, **body), param, fragment) for body, param, fragment in cases]
    for job, param, fragment in jobs:
        failed = wait_status(oai, clock, job["id"], {"failed", "queued", "running"})
        assert failed["status"] == "failed", (param, fragment)
        assert failed["error"]["param"] == param and failed["error"]["code"] == f"invalid_{param}"
        assert fragment in failed["error"]["message"]
        assert failed["fine_tuned_model"] is None and failed["finished_at"] is not None
        last = _events(oai, job["id"])[-1]
        assert last["level"] == "error" and fragment in last["message"]


@pytest.mark.parametrize(
    ("body", "param", "code", "fragment"),
    [
        ({"model": "gpt-99"}, "model", "model_not_available", "not available for fine-tuning"),
        (
            {"method": {"type": "dpo"}, "model": "gpt-3.5-turbo"},
            "method.type",
            "invalid_value",
            "dpo",
        ),
        (
            {"method": {"type": "supervised"}, "model": "o4-mini"},
            "method.type",
            "invalid_value",
            "reinforcement",
        ),
        (
            {"training_file": "file-missing"},
            "training_file",
            "invalid_training_file",
            "does not exist",
        ),
        (
            {"validation_file": "file-missing"},
            "validation_file",
            "invalid_validation_file",
            "does not exist",
        ),
        (
            {"training_file": "NOTES"},
            "training_file",
            "invalid_training_file",
            "purpose 'user_data'",
        ),
        ({"suffix": "x" * 65}, "suffix", "string_above_max_length", "maximum length 64"),
        ({"suffix": ""}, "suffix", "string_below_min_length", "minimum length 1"),
        ({"seed": 2**31}, "seed", "integer_above_max_value", "<= 2147483647"),
        ({"seed": "7"}, "seed", "invalid_type", "expected an integer, but got a string"),
        (
            {"metadata": {f"k{i}": "v" for i in range(17)}},
            "metadata",
            "object_above_max_properties",
            "at most 16",
        ),
        ({"metadata": {"k" * 65: "v"}}, "metadata", "string_above_max_length", "at most 64"),
        ({"metadata": {"k": "v" * 513}}, "metadata", "string_above_max_length", "at most 512"),
        ({"metadata": {"k": 1}}, "metadata", "invalid_type", "must be a string"),
        ({"metadata": ["k"]}, "metadata", "invalid_type", "object of string pairs"),
        ({"store": True}, "store", "unknown_parameter", "Unrecognized request argument"),
        (
            {"integrations": [{"type": "wandb", "wandb": {"project": "p", "api_key": "k" * 40}}]},
            "integrations[0].wandb",
            "unknown_parameter",
            "organization's settings",
        ),
        (
            {"integrations": [{"type": "wandb", "wandb": {}}]},
            "integrations[0].wandb.project",
            "missing_required_parameter",
            "Missing required parameter",
        ),
        ({"method": {"type": "rl"}}, "method.type", "invalid_value", "Supported values"),
        (
            {"method": {"type": "supervised", "dpo": {}}},
            "method",
            "invalid_value",
            "no 'dpo' configuration",
        ),
        (
            {"method": {"type": "reinforcement"}, "model": "o4-mini"},
            "method",
            "missing_required_parameter",
            "grader",
        ),
        (
            {
                "method": {"type": "reinforcement", "reinforcement": {"grader": {"type": "vibes"}}},
                "model": "o4-mini",
            },
            "method.reinforcement",
            "invalid_value",
            "grader's type",
        ),
        (
            {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 51}}}},
            "method.supervised.hyperparameters.n_epochs",
            "invalid_value",
            "'auto' or an integer >= 1 and <= 50",
        ),
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0}}}},
            "method.dpo.hyperparameters.beta",
            "invalid_value",
            "> 0",
        ),
        (
            {"hyperparameters": {"batch_size": True}},
            "hyperparameters.batch_size",
            "invalid_value",
            "got True",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": "auto", "n_epochs": 2.5}},
            "hyperparameters.n_epochs",
            "invalid_value",
            "got 2.5",
        ),
        (
            {"hyperparameters": {"n_epochs": 2}, "method": {"type": "dpo"}},
            "hyperparameters",
            "invalid_value",
            "in method, not also",
        ),
    ],
)
def test_refused_creations(
    oai: httpx.Client, body: dict[str, Any], param: str, code: str, fragment: str
) -> None:
    training = oai_file_id(oai)
    notes = oai_file_id(oai, b"notes", "notes.txt", purpose="user_data")
    request: dict[str, Any] = {"model": "gpt-4o-mini", "training_file": training, **body}
    if request["training_file"] == "NOTES":
        request["training_file"] = notes
    r = oai.post(JOBS, json=request)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")
    assert fragment in error["message"], error["message"]
    assert oai.get(JOBS).json()["data"] == []  # nothing was created


def test_unparseable_or_missing_bodies(oai: httpx.Client) -> None:
    r = oai.post(JOBS, content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 400 and "could not parse the JSON body" in r.json()["error"]["message"]
    r = oai.post(JOBS, json={"training_file": "file-x"})
    assert r.status_code == 400
    assert r.json()["error"] == {
        "message": "Missing required parameter: 'model'.",
        "type": "invalid_request_error",
        "param": "model",
        "code": "missing_required_parameter",
    }


def test_metadata_filter_and_cursor(oai: httpx.Client) -> None:
    fid = oai_file_id(oai)
    tagged = [
        _create(oai, training_file=fid, metadata={"team": "tone", "run": f"r&{i} é"})
        for i in range(3)
    ]
    bare = _create(oai, training_file=fid)
    listed = oai.get(JOBS, params={"metadata[team]": "tone", "metadata[run]": "r&1 é"}).json()
    assert [j["id"] for j in listed["data"]] == [tagged[1]["id"]]
    assert [j["id"] for j in oai.get(JOBS, params={"metadata": "null"}).json()["data"]] == [
        bare["id"]
    ]
    assert oai.get(JOBS, params={"metadata[team]": "other"}).json() == {
        "object": "list",
        "data": [],
        "has_more": False,
    }
    page = oai.get(JOBS, params={"limit": 1, "after": tagged[2]["id"]}).json()
    assert [j["id"] for j in page["data"]] == [tagged[1]["id"]] and page["has_more"] is True
    for params, param in (
        ({"after": "ftjob-nope"}, "after"),
        ({"metadata": "team"}, "metadata"),
        ({"limit": 0}, "limit"),
        ({"limit": str(10**30)}, "limit"),
        ({"limit": "many"}, "limit"),
    ):
        r = oai.get(JOBS, params=params)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (params, r.text)


def test_events_and_checkpoints_page_by_cursor(oai: httpx.Client, clock: ManualClock) -> None:
    job = _create(oai, training_file=oai_file_id(oai, chat_lines(30)))
    wait_status(oai, clock, job["id"], {"succeeded"})
    for kind, total in (("events", len(_events(oai, job["id"]))), ("checkpoints", 10)):
        seen: list[str] = []
        after = None
        while True:
            params: dict[str, Any] = {"limit": 4, **({"after": after} if after else {})}
            page = oai.get(f"{JOBS}/{job['id']}/{kind}", params=params).json()
            seen += [item["id"] for item in page["data"]]
            if not page["has_more"]:
                break
            after = page["data"][-1]["id"]
        assert len(seen) == len(set(seen)) == total
        # Ids are stable from one read to the next.
        again = oai.get(f"{JOBS}/{job['id']}/{kind}", params={"limit": 1000}).json()["data"]
        assert [item["id"] for item in again] == seen
        r = oai.get(f"{JOBS}/{job['id']}/{kind}", params={"after": "ftevent-nope"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "after"
        for limit in ("0", str(10**30)):
            r = oai.get(f"{JOBS}/{job['id']}/{kind}", params={"limit": limit})
            assert r.status_code == 400 and r.json()["error"]["param"] == "limit"


def test_seed_integrations_and_retrieve(oai: httpx.Client) -> None:
    fid = oai_file_id(oai)
    integrations = [{"type": "wandb", "wandb": {"project": "p", "name": "run", "tags": ["t"]}}]
    seeded = _create(oai, training_file=fid, seed=42, integrations=integrations)
    assert seeded["seed"] == 42 and seeded["integrations"] == integrations
    drawn = _create(oai, training_file=fid)
    assert 0 <= drawn["seed"] < 2**31 and drawn["integrations"] == []
    assert oai.get(f"{JOBS}/{drawn['id']}").json()["seed"] == drawn["seed"]
    r = oai.get(f"{JOBS}/ftjob-missing")
    assert r.status_code == 404 and r.json()["error"]["param"] == "fine_tuning_job_id"


def test_a_fine_tuned_model_can_be_fine_tuned_again(oai: httpx.Client, clock: ManualClock) -> None:
    fid = oai_file_id(oai)
    first = wait_status(oai, clock, _create(oai, training_file=fid)["id"], {"succeeded"})
    parent = first["fine_tuned_model"]
    assert re.fullmatch(r"ft:gpt-4o-mini-2024-07-18:sandbox::[0-9A-Za-z]{8}", parent)
    second = _create(oai, model=parent, training_file=fid, suffix="again")
    assert second["model"] == parent
    done = wait_status(oai, clock, second["id"], {"succeeded"})
    assert done["fine_tuned_model"].startswith("ft:gpt-4o-mini-2024-07-18:sandbox:again:")
    oai.delete(f"/v1/models/{parent}")
    r = oai.post(JOBS, json={"model": parent, "training_file": fid})
    assert r.status_code == 400 and r.json()["error"]["code"] == "model_not_available"


def test_an_injected_run_failure(start_sandbox: StartSandbox, clock: ManualClock) -> None:
    from reconciler.sandbox import parse_faults

    sandbox = start_sandbox(api_key=API_KEY, dialect="openai", faults=parse_faults("job_failure=1"))
    with client_of(sandbox) as api:
        job = _create(api, training_file=oai_file_id(api))
        failed = wait_status(api, clock, job["id"], {"failed", "succeeded"})
    assert failed["status"] == "failed"
    assert failed["error"] == {
        "code": "training_failed",
        "message": "The training run failed (injected fault). Create the job again.",
        "param": None,
    }


def test_models(oai: httpx.Client, openai_sandbox: EmbeddedSandbox) -> None:
    cards = oai.get("/v1/models").json()["data"]
    names = [c["id"] for c in cards]
    assert {"gpt-4o-mini", "gpt-4o-mini-2024-07-18", "gpt-4.1-nano", "o4-mini"} <= set(names)
    assert all(c["owned_by"] == "system" for c in cards)
    card = oai.get("/v1/models/gpt-4o-mini-2024-07-18").json()
    assert card == {
        "id": "gpt-4o-mini-2024-07-18",
        "object": "model",
        "created": 1721260800,  # 2024-07-18T00:00:00Z
        "owned_by": "system",
    }
    r = oai.delete("/v1/models/gpt-4o-mini")
    assert r.status_code == 403 and "base model" in r.json()["error"]["message"]
    r = oai.get("/v1/models/ft:gpt-4o-mini-2024-07-18:sandbox::nothing1")
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_a_restart_keeps_jobs_pauses_and_file_problems(
    start_sandbox: StartSandbox, clock: ManualClock, tmp_path: Path
) -> None:
    data = tmp_path / "openai"
    first = start_sandbox(api_key=API_KEY, dialect="openai", data_dir=data)
    with client_of(first) as api:
        broken = oai_file_id(api, b"[]\n" + chat_lines(11), "broken.jsonl")
        job = _create(api, training_file=oai_file_id(api), metadata={"k": "v"})
        wait_status(api, clock, job["id"], {"running"})
        api.post(f"{JOBS}/{job['id']}/pause")
        before = api.get(f"{JOBS}/{job['id']}").json()
        events = _events(api, job["id"])
    first.stop()

    second = start_sandbox(api_key=API_KEY, dialect="openai", data_dir=data)
    with client_of(second) as api:
        assert api.get(f"{JOBS}/{job['id']}").json() == before
        assert _events(api, job["id"]) == events
        assert api.get(JOBS, params={"metadata[k]": "v"}).json()["data"] == [before]
        assert api.post(f"{JOBS}/{job['id']}/resume").json()["status"] == "queued"
        assert wait_status(api, clock, job["id"], {"succeeded"})["fine_tuned_model"]
        failing = _create(api, training_file=broken)
        failed = wait_status(api, clock, failing["id"], {"failed"})
        assert "line 1: the line is a JSON array, not an object" in failed["error"]["message"]


def test_assistant_weights_in_chat_data(oai: httpx.Client, clock: ManualClock) -> None:
    def sample(i: int, weight: object) -> dict[str, Any]:
        return {
            "messages": [
                {"role": "user", "content": f"q{i}"},
                {"role": "assistant", "content": f"draft {i}", "weight": 0},
                {"role": "user", "content": "again"},
                {"role": "assistant", "content": f"final {i}", "weight": weight},
            ]
        }

    weighted = "\n".join(json.dumps(sample(i, 1)) for i in range(12)).encode()
    ok = _create(oai, training_file=oai_file_id(oai, weighted, "weighted.jsonl"))
    assert wait_status(oai, clock, ok["id"], {"succeeded", "failed"})["status"] == "succeeded"
    bad = "\n".join(json.dumps(sample(i, 2 if i == 3 else 1)) for i in range(12)).encode()
    job = _create(oai, training_file=oai_file_id(oai, bad, "bad.jsonl"))
    failed = wait_status(oai, clock, job["id"], {"succeeded", "failed"})
    assert failed["status"] == "failed" and "line 4: " in failed["error"]["message"]
    assert "weight must be either 0 or 1" in failed["error"]["message"]
