"""Fine-tuning jobs: lifecycle, metadata, checkpoints, 409, dry_run, start/cancel, filters."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import httpx

from reconciler.sandbox import EmbeddedSandbox, ManualClock, SystemClock
from tests.sandbox.conftest import (
    API_KEY,
    StartSandbox,
    chat_lines,
    job_body,
    upload,
    uploaded_id,
    wait_status,
)


def _statuses(job: dict[str, Any]) -> list[str]:
    """Statuses of the job's events, oldest first."""
    return [e["data"]["status"] for e in reversed(job["events"])]


def test_lifecycle_with_manual_start(api: httpx.Client, clock: ManualClock) -> None:
    fid = uploaded_id(api)
    valid = uploaded_id(api, chat_lines(4, "v"), "valid.jsonl")
    created = api.post(
        "/v1/fine_tuning/jobs", json=job_body(fid, validation_files=[valid], suffix="life")
    )
    assert created.status_code == 200
    job = created.json()
    assert job["status"] == "QUEUED"
    assert job["metadata"] is None and job["fine_tuned_model"] is None
    assert job["training_files"] == [fid] and job["validation_files"] == [valid]

    held = wait_status(api, clock, job["id"], {"VALIDATED"})
    clock.advance(3600)  # stays VALIDATED: auto_start is false
    held = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert held["status"] == "VALIDATED"
    assert _statuses(held) == ["QUEUED", "VALIDATING", "VALIDATED"]
    meta = held["metadata"]
    assert meta["cost"] > 0 and meta["cost_currency"] == "USD"
    assert meta["train_tokens"] == meta["train_tokens_per_step"] * 10
    assert meta["data_tokens"] > 0 and meta["expected_duration_seconds"] >= 1
    assert held["hyperparameters"]["epochs"] > 0
    assert held["hyperparameters"]["training_steps"] == 10
    assert held["checkpoints"] == [] and held["trained_tokens"] is None

    started = api.post(f"/v1/fine_tuning/jobs/{job['id']}/start")
    assert started.status_code == 200
    assert started.json()["status"] in ("STARTED", "RUNNING")
    done = wait_status(api, clock, job["id"], {"SUCCESS"})
    assert _statuses(done) == ["QUEUED", "VALIDATING", "VALIDATED", "STARTED", "RUNNING", "SUCCESS"]
    times = [e["created_at"] for e in done["events"]]
    assert times == sorted(times, reverse=True)  # newest first
    assert done["trained_tokens"] == meta["train_tokens"]
    date = dt.datetime.fromtimestamp(done["modified_at"], dt.UTC).strftime("%Y%m%d")
    assert done["fine_tuned_model"] == f"ft:open-mistral-7b:life:{date}:{job['id'][:8]}"

    cps = done["checkpoints"]
    assert [c["step_number"] for c in cps] == list(range(10, 0, -1))
    train = [c["metrics"]["train_loss"] for c in reversed(cps)]
    assert all(a > b for a, b in zip(train, train[1:], strict=False))  # falls every time
    for c in cps:
        m = c["metrics"]
        assert m["valid_loss"] is not None and 0 < m["valid_mean_token_accuracy"] < 1
    # The curve is a property of the job: reading again gives the same numbers.
    again = api.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert again["checkpoints"] == cps and again["events"] == done["events"]

    models = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
    card = models[done["fine_tuned_model"]]
    assert card["type"] == "fine-tuned" and card["job"] == job["id"]
    assert card["root"] == "open-mistral-7b"


def test_auto_start_runs_through_and_no_valid_metrics_without_validation_files(
    api: httpx.Client, sandbox: EmbeddedSandbox, clock: ManualClock
) -> None:
    fid = uploaded_id(api)
    job = api.post(
        "/v1/fine_tuning/jobs",
        json=job_body(fid, auto_start=True, hyperparameters={"training_steps": 20}),
    ).json()
    done = wait_status(api, clock, job["id"], {"SUCCESS"})
    assert "STARTED" in _statuses(done)
    assert [c["step_number"] for c in done["checkpoints"]][::-1] == list(range(2, 21, 2))
    assert all(c["metrics"]["valid_loss"] is None for c in done["checkpoints"])
    # Without a suffix the model name carries the 8-hex organisation id.
    parts = done["fine_tuned_model"].split(":")
    assert len(parts) == 5 and len(parts[2]) == 8 and int(parts[2], 16) >= 0


def test_defaults_filled_and_secrets_never_returned(api: httpx.Client, clock: ManualClock) -> None:
    fid = uploaded_id(api)
    job = api.post(
        "/v1/fine_tuning/jobs",
        json={
            "model": "open-mistral-7b",
            "training_files": [fid],  # plain id form is accepted
            "hyperparameters": {},
            "integrations": [{"project": "proj", "name": "n", "api_key": "a" * 40}],
            "repositories": [{"name": "r", "owner": "o", "token": "tok-secret"}],
        },
    ).json()
    assert job["training_files"] == [fid]
    hp = job["hyperparameters"]
    assert (hp["learning_rate"], hp["weight_decay"], hp["warmup_fraction"], hp["fim_ratio"]) == (
        0.0001,
        0.1,
        0.05,
        0.9,
    )
    assert job["auto_start"] is False
    text = api.get(f"/v1/fine_tuning/jobs/{job['id']}").text
    assert "a" * 40 not in text and "tok-secret" not in text
    assert job["integrations"] == [
        {"type": "wandb", "project": "proj", "name": "n", "run_name": None, "url": None}
    ]
    assert len(job["repositories"][0]["commit_id"]) == 40
    validated = wait_status(api, clock, job["id"], {"VALIDATED"})
    assert validated["hyperparameters"]["training_steps"] == 10  # server default


def test_epochs_decide_the_steps(api: httpx.Client, clock: ManualClock) -> None:
    fid = uploaded_id(api, chat_lines(2000))
    job = api.post(
        "/v1/fine_tuning/jobs",
        json=job_body(fid, hyperparameters={"epochs": 3, "seq_len": 100}),
    ).json()
    meta_job = wait_status(api, clock, job["id"], {"VALIDATED"})
    steps = meta_job["hyperparameters"]["training_steps"]
    data_tokens = meta_job["metadata"]["data_tokens"]
    assert steps * 400 >= 3 * data_tokens > (steps - 1) * 400  # 4 sequences of 100 per step


def test_similar_active_job_is_409_until_finished(api: httpx.Client, clock: ManualClock) -> None:
    fid = uploaded_id(api)
    body = job_body(fid, suffix="dup")
    first = api.post("/v1/fine_tuning/jobs", json=body)
    assert first.status_code == 200
    second = api.post("/v1/fine_tuning/jobs", json=body)
    assert second.status_code == 409
    assert first.json()["id"] in second.json()["detail"]
    # Different suffix, steps or model: not similar.
    for change in (
        {"suffix": "dup2"},
        {"hyperparameters": {"training_steps": 11}},
        {"model": "mistral-small-latest"},
    ):
        assert api.post("/v1/fine_tuning/jobs", json={**body, **change}).status_code == 200
    # Same request in the plain-id form is the same job.
    plain = {**body, "training_files": [fid]}
    assert api.post("/v1/fine_tuning/jobs", json=plain).status_code == 409
    # Once the first is cancelled (terminal), the same request is fine again.
    api.post(f"/v1/fine_tuning/jobs/{first.json()['id']}/cancel")
    wait_status(api, clock, first.json()["id"], {"CANCELLED"})
    assert api.post("/v1/fine_tuning/jobs", json=body).status_code == 200
    assert api.get("/v1/fine_tuning/jobs").json()["total"] == 5


def test_dry_run_returns_metadata_and_creates_nothing(api: httpx.Client) -> None:
    fid = uploaded_id(api)
    r = api.post("/v1/fine_tuning/jobs", params={"dry_run": "true"}, json=job_body(fid))
    assert r.status_code == 200
    meta = r.json()
    assert meta["object"] == "job.metadata" and meta["deprecated"] is True
    assert meta["details"] and meta["training_steps"] == 10 and meta["cost"] > 0
    assert meta["train_tokens"] == 10 * meta["train_tokens_per_step"]
    assert api.get("/v1/fine_tuning/jobs").json()["total"] == 0
    # dry_run=false creates.
    r = api.post("/v1/fine_tuning/jobs", params={"dry_run": "false"}, json=job_body(fid))
    assert r.json()["object"] == "job"
    assert api.get("/v1/fine_tuning/jobs").json()["total"] == 1


def test_start_and_cancel_rules(start_sandbox: StartSandbox, clock: ManualClock) -> None:
    sb = start_sandbox()
    api = httpx.Client(base_url=sb.base_url)
    fid = uploaded_id(api)
    job = api.post("/v1/fine_tuning/jobs", json=job_body(fid)).json()
    # Start before validation finished: 409 with the reason.
    early = api.post(f"/v1/fine_tuning/jobs/{job['id']}/start")
    assert early.status_code == 409 and "VALIDATED" in early.json()["detail"]
    wait_status(api, clock, job["id"], {"VALIDATED"})
    assert api.post(f"/v1/fine_tuning/jobs/{job['id']}/start").status_code == 200
    again = api.post(f"/v1/fine_tuning/jobs/{job['id']}/start")
    assert again.status_code == 409  # already started / running / done
    wait_status(api, clock, job["id"], {"SUCCESS"})
    finished = api.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    assert finished.status_code == 409 and "SUCCESS" in finished.json()["detail"]

    # Cancel a running job: CANCELLATION_REQUESTED then CANCELLED; its checkpoints stay.
    long = api.post(
        "/v1/fine_tuning/jobs",
        json=job_body(fid, auto_start=True, hyperparameters={"training_steps": 200}),
    ).json()
    wait_status(api, clock, long["id"], {"RUNNING"})
    clock.advance(13.0)  # two checkpoints into the run (one every 20 steps, 6 s)
    cancelled = api.post(f"/v1/fine_tuning/jobs/{long['id']}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "CANCELLATION_REQUESTED"
    end = wait_status(api, clock, long["id"], {"CANCELLED"})
    assert _statuses(end)[-2:] == ["CANCELLATION_REQUESTED", "CANCELLED"]
    assert end["fine_tuned_model"] is None
    assert end["trained_tokens"] is not None and end["trained_tokens"] < 200 * 131072
    steps_before = len(end["checkpoints"])
    assert steps_before == 2
    clock.advance(3600)
    assert len(api.get(f"/v1/fine_tuning/jobs/{long['id']}").json()["checkpoints"]) == steps_before
    assert api.post(f"/v1/fine_tuning/jobs/{long['id']}/cancel").status_code == 409
    assert api.post(f"/v1/fine_tuning/jobs/{long['id']}/start").status_code == 409
    api.close()


def test_failed_validation_for_invalid_samples(api: httpx.Client, clock: ManualClock) -> None:
    data = chat_lines(9) + b'{"messages": []}\n'  # 10% invalid
    fid = upload(api, data, "tenth-bad.jsonl").json()["id"]
    strict = api.post("/v1/fine_tuning/jobs", json=job_body(fid, auto_start=True)).json()
    failed = wait_status(api, clock, strict["id"], {"FAILED_VALIDATION", "SUCCESS"})
    assert failed["status"] == "FAILED_VALIDATION"
    assert failed["events"][0]["data"]["status"] == "FAILED_VALIDATION"
    assert "invalid" in failed["events"][0]["data"]["error"]
    assert failed["metadata"] is None
    lenient = api.post(
        "/v1/fine_tuning/jobs",
        json=job_body(fid, auto_start=True, invalid_sample_skip_percentage=0.2, suffix="ok"),
    ).json()
    assert (
        wait_status(api, clock, lenient["id"], {"FAILED_VALIDATION", "SUCCESS"})["status"]
        == "SUCCESS"
    )


def test_classifier_job(api: httpx.Client, clock: ManualClock) -> None:
    fid = uploaded_id(api)
    body = job_body(
        fid,
        model="ministral-3b-latest",
        job_type="classifier",
        auto_start=True,
        hyperparameters={"training_steps": 4},
        classifier_targets=[{"name": "topic", "labels": ["a", "b"], "weight": 1}],
    )
    job = api.post("/v1/fine_tuning/jobs", json=body).json()
    assert job["job_type"] == "classifier" and "repositories" not in job
    assert "fim_ratio" not in job["hyperparameters"]
    done = wait_status(api, clock, job["id"], {"SUCCESS"})
    assert done["classifier_targets"] == [
        {"name": "topic", "labels": ["a", "b"], "weight": 1.0, "loss_function": "single_class"}
    ]
    assert done["fine_tuned_model"].startswith("ft:classifier:ministral-3b-latest:")
    model = api.patch(f"/v1/fine_tuning/models/{done['fine_tuned_model']}", json={}).json()
    assert model["model_type"] == "classifier" and model["classifier_targets"]


def test_list_filters_and_pagination(api: httpx.Client, clock: ManualClock) -> None:
    fid = uploaded_id(api)
    wandb = [{"project": "proj-a", "name": "run-a", "api_key": "k" * 40}]
    a = api.post(
        "/v1/fine_tuning/jobs",
        json=job_body(fid, suffix="alpha", integrations=wandb, auto_start=True),
    ).json()
    b = api.post(
        "/v1/fine_tuning/jobs", json=job_body(fid, model="mistral-small-latest", suffix="beta")
    ).json()
    c = api.post("/v1/fine_tuning/jobs", json=job_body(fid, suffix="gamma")).json()
    wait_status(api, clock, a["id"], {"SUCCESS"})
    wait_status(api, clock, b["id"], {"VALIDATED"})
    wait_status(api, clock, c["id"], {"VALIDATED"})
    now = dt.datetime.fromtimestamp(clock.now(), dt.UTC)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, [c["id"], b["id"], a["id"]]),
        ({"model": "mistral-small-latest"}, [b["id"]]),
        ({"suffix": "alpha"}, [a["id"]]),
        ({"status": "SUCCESS"}, [a["id"]]),
        ({"status": "VALIDATED"}, [c["id"], b["id"]]),
        ({"wandb_project": "proj-a"}, [a["id"]]),
        ({"wandb_name": "run-a"}, [a["id"]]),
        ({"wandb_project": "nope"}, []),
        ({"created_by_me": "true"}, [c["id"], b["id"], a["id"]]),
        (
            {"created_after": (now - dt.timedelta(minutes=1)).isoformat()},
            [c["id"], b["id"], a["id"]],
        ),
        ({"created_before": (now - dt.timedelta(minutes=1)).isoformat()}, []),
        (
            {
                "created_after": "2020-01-01T00:00:00Z",
                "model": "open-mistral-7b",
                "status": "VALIDATED",
            },
            [c["id"]],
        ),
    ]
    for params, expected in cases:
        got = api.get("/v1/fine_tuning/jobs", params=params).json()
        assert [j["id"] for j in got["data"]] == expected, params
        assert got["total"] == len(expected) and got["object"] == "list"
    page1 = api.get("/v1/fine_tuning/jobs", params={"page": 1, "page_size": 2}).json()
    assert [j["id"] for j in page1["data"]] == [a["id"]] and page1["total"] == 3
    assert "events" not in page1["data"][0]


def test_unknown_job_ids(api: httpx.Client) -> None:
    missing = "00000000-0000-4000-8000-000000000000"
    for method, suffix in [("GET", ""), ("POST", "/start"), ("POST", "/cancel")]:
        r = api.request(method, f"/v1/fine_tuning/jobs/{missing}{suffix}")
        assert r.status_code == 404 and missing in r.json()["detail"]


def test_progress_survives_restart(start_sandbox: StartSandbox, clock: ManualClock) -> None:
    sb = start_sandbox()
    client = httpx.Client(base_url=sb.base_url)
    fid = uploaded_id(client)
    job = client.post(
        "/v1/fine_tuning/jobs", json=job_body(fid, auto_start=True, suffix="slow")
    ).json()
    client.close()
    sb.stop()
    # Nothing runs while the server is down; on restart the store catches up from timestamps.
    clock.advance(4.2)  # exactly the whole 10-step job at scale 1
    sb2 = start_sandbox()
    with httpx.Client(base_url=sb2.base_url) as client2:
        done = client2.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert done["status"] == "SUCCESS"
    assert len(done["checkpoints"]) == 10 and done["fine_tuned_model"]
    assert job["created_at"] < done["modified_at"] <= clock.now()


def test_real_clock_follows_the_time_scale(start_sandbox: StartSandbox) -> None:
    # The one test on the real clock: at scale 1000 a 10-step job takes 4.2 ms of real time.
    sb = start_sandbox(time_scale=1000)
    assert isinstance(sb.config.clock, SystemClock) and sb.config.clock.scale == 1000
    with httpx.Client(base_url=sb.base_url) as client:
        fid = uploaded_id(client)
        job = client.post("/v1/fine_tuning/jobs", json=job_body(fid, auto_start=True)).json()
        # QUEUED lasts 0.3 ms of real time here: on a busy machine the answer may already be
        # computed later in the lifecycle (validation, start, run), but never outside it.
        lifecycle = {"QUEUED", "VALIDATING", "VALIDATED", "STARTED", "RUNNING", "SUCCESS"}
        assert job["status"] in lifecycle, job["status"]
        polls = 0
        while job["status"] != "SUCCESS":
            polls += 1
            assert polls < 10_000, f"stuck in {job['status']} on the real clock"
            job = client.get(f"/v1/fine_tuning/jobs/{job['id']}").json()
    assert job["metadata"]["expected_duration_seconds"] == 1  # 3.2 ms, rounded up
    assert len(job["checkpoints"]) == 10
    assert job["created_at"] <= job["modified_at"] <= time.time()


def test_auth_on_jobs(sandbox: EmbeddedSandbox) -> None:
    with httpx.Client(base_url=sandbox.base_url) as anon:
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": API_KEY},
            {"Authorization": f"Basic {API_KEY}"},
            {"Authorization": "Bearer"},
        ):
            r = anon.get("/v1/fine_tuning/jobs", headers=headers)
            assert r.status_code == 401 and r.json() == {"detail": "Unauthorized"}, headers
        ok = anon.get("/v1/fine_tuning/jobs", headers={"Authorization": f"Bearer {API_KEY}"})
        assert ok.status_code == 200
