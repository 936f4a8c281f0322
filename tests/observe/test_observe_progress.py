"""Progress, health, ETA and failure reasons derived from API-shaped job dicts."""

from __future__ import annotations

from typing import Any

import pytest
from observe_jobs import T0, checkpoint, curve, job, status_event

from reconciler.observe.progress import (
    HEALTH_BY_STATUS,
    failed,
    format_duration,
    format_steps,
    job_progress,
    metric_series,
)

ALL_STATUSES = [
    ("QUEUED", "queued", False),
    ("STARTED", "running", False),
    ("VALIDATING", "validating", False),
    ("VALIDATED", "validated", False),
    ("RUNNING", "running", False),
    ("FAILED_VALIDATION", "failed", True),
    ("FAILED", "failed", True),
    ("SUCCESS", "succeeded", True),
    ("CANCELLED", "cancelled", True),
    ("CANCELLATION_REQUESTED", "cancelled", False),
    ("PAUSED", "paused", False),
]


@pytest.mark.parametrize(("status", "health", "terminal"), ALL_STATUSES)
def test_every_api_status_maps_to_a_health(status: str, health: str, terminal: bool) -> None:
    p = job_progress(job(status))
    assert p.status == status
    assert p.health == health
    assert p.terminal is terminal


def test_the_table_covers_exactly_the_api_statuses() -> None:
    assert sorted(HEALTH_BY_STATUS) == sorted(s for s, _, _ in ALL_STATUSES)


def test_unknown_or_missing_status_is_unknown_not_an_error() -> None:
    assert job_progress({"status": "HIBERNATING"}).health == "unknown"
    assert job_progress({}).status == "UNKNOWN"


CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "just created: nothing known",
        job("QUEUED", steps=None),
        {"step": None, "total_steps": None, "percent": None, "eta_seconds": None, "cost": None},
    ),
    (
        "validated with a cost estimate",
        job(
            "VALIDATED",
            metadata={"expected_duration_seconds": 120, "cost": 2.6214, "cost_currency": "USD"},
        ),
        {
            "step": None,
            "percent": 0.0,
            "eta_seconds": None,  # waits for /start: no ETA yet
            "cost": 2.6214,
            "cost_currency": "USD",
        },
    ),
    (
        "started: ETA is the expected duration until checkpoints come",
        job("STARTED", metadata={"expected_duration_seconds": 120}),
        {"health": "running", "percent": 0.0, "eta_seconds": 120.0},
    ),
    (
        "running: latest checkpoint, newest-first input",
        job("RUNNING", checkpoints=curve()[4:]),  # steps 10..60
        {"step": 60, "total_steps": 100, "percent": 60.0, "train_loss": 1.0},
    ),
    (
        "running: ETA from the checkpoint rate (8 s per step, 40 steps left)",
        job("RUNNING", checkpoints=curve()[4:]),
        {"eta_seconds": 320.0},
    ),
    (
        "running: equal timestamps fall back to expected duration",
        job(
            "RUNNING",
            checkpoints=[checkpoint(20, T0, 0.9), checkpoint(10, T0, 1.0)],
            metadata={"expected_duration_seconds": 100},
        ),
        {"step": 20, "percent": 20.0, "eta_seconds": 80.0},
    ),
    (
        "succeeded: 100 %, model id, no ETA, last metrics",
        job("SUCCESS", checkpoints=curve(), model="ft:open-mistral-7b:57d37e6c:20240531:0f4c9a5e"),
        {
            "step": 100,
            "percent": 100.0,
            "eta_seconds": None,
            "fine_tuned_model": "ft:open-mistral-7b:57d37e6c:20240531:0f4c9a5e",
            "valid_loss": 0.985,
            "valid_mean_token_accuracy": 0.77,
        },
    ),
    (
        "training steps only in metadata (epochs-sized job)",
        job(
            "RUNNING",
            steps=None,
            checkpoints=[checkpoint(5, T0, 1.0)],
            metadata={"training_steps": 50},
        ),
        {"total_steps": 50, "percent": 10.0},
    ),
    (
        "W&B link from the integration",
        job(
            "RUNNING",
            integrations=[
                {"type": "wandb", "project": "ft", "name": None, "url": "https://wandb.example/r/1"}
            ],
        ),
        {"wandb_url": "https://wandb.example/r/1"},
    ),
    (
        "null metrics stay unknown (no validation files)",
        job("RUNNING", checkpoints=[checkpoint(10, T0, 0.8, None, None)]),
        {"train_loss": 0.8, "valid_loss": None, "valid_mean_token_accuracy": None},
    ),
]


@pytest.mark.parametrize(("case", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_progress_derivation(case: str, data: dict[str, Any], expected: dict[str, Any]) -> None:
    p = job_progress(data)
    for name, value in expected.items():
        actual = getattr(p, name)
        if isinstance(value, float):
            assert actual == pytest.approx(value), (case, name, actual)
        else:
            assert actual == value, (case, name, actual)


def test_eta_subtracts_the_time_since_the_last_checkpoint_when_now_is_given() -> None:
    data = job("RUNNING", checkpoints=curve()[4:])  # last checkpoint at T0+10+480
    assert job_progress(data, now=T0 + 10 + 480 + 100).eta_seconds == pytest.approx(220.0)
    assert job_progress(data, now=T0 + 10 + 480 + 10_000).eta_seconds == 0.0


FAILURES = [
    (
        "message in the failing event",
        job(
            "FAILED_VALIDATION",
            events=[
                status_event("VALIDATING", T0 + 1),
                status_event("FAILED_VALIDATION", T0 + 2, error="line 3: no assistant message"),
            ],
        ),
        "line 3: no assistant message",
    ),
    (
        "newest event wins although listed last",
        job(
            "FAILED",
            events=[
                status_event("RUNNING", T0 + 1, message="old"),
                status_event("FAILED", T0 + 9, message="GPU node lost"),
            ],
        ),
        "GPU node lost",
    ),
    (
        "no message at all",
        job("FAILED_VALIDATION", events=[status_event("FAILED_VALIDATION", T0)]),
        "validation failed (the remote gave no reason; see the job's events)",
    ),
    ("cancelled", job("CANCELLED"), "cancelled"),
]


@pytest.mark.parametrize(("case", "data", "reason"), FAILURES, ids=[f[0] for f in FAILURES])
def test_failure_reason(case: str, data: dict[str, Any], reason: str) -> None:
    assert job_progress(data).failure_reason == reason


def test_no_failure_reason_for_healthy_jobs() -> None:
    assert (
        job_progress(
            job("SUCCESS", events=[status_event("SUCCESS", T0, message="x")])
        ).failure_reason
        is None
    )


def test_failed_lists_jobs_without_a_model_in_address_order() -> None:
    progress = {
        "job.c": job_progress(job("SUCCESS")),
        "job.b": job_progress(job("CANCELLED")),
        "job.a": job_progress(
            job("FAILED", events=[status_event("FAILED", T0, error="out of memory")])
        ),
        "job.d": job_progress(job("RUNNING")),
    }
    assert failed(progress) == [("job.a", "out of memory"), ("job.b", "cancelled")]


def test_metric_series_is_in_step_order_and_skips_nulls() -> None:
    data = job(
        "RUNNING",
        checkpoints=[checkpoint(20, T0 + 2, 0.7, None), checkpoint(10, T0 + 1, 0.9, 1.1)],
    )
    series = metric_series(data)
    assert series["train_loss"] == [(10, 0.9), (20, 0.7)]
    assert series["valid_loss"] == [(10, 1.1)]
    assert series["valid_mean_token_accuracy"] == []


@pytest.mark.parametrize(
    ("seconds", "text"), [(None, "-"), (0, "0s"), (59.6, "1m00s"), (245, "4m05s"), (3720, "1h02m")]
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_steps() -> None:
    assert format_steps(job_progress(job("RUNNING", checkpoints=curve()[7:]))) == "30/100 (30%)"
    assert format_steps(job_progress(job("QUEUED", steps=None))) == "-"
    assert format_steps(job_progress(job("VALIDATED"))) == "0/100 (0%)"
