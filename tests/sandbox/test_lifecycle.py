"""The simulated lifecycle as pure functions of time (no server)."""

from __future__ import annotations

import pytest

from reconciler.sandbox.lifecycle import (
    JobPlan,
    Pause,
    checkpoint_steps,
    checkpoints,
    loss_curve,
    status_at,
    steps_done,
    timeline,
)

HAPPY = ["QUEUED", "VALIDATING", "VALIDATED", "STARTED", "RUNNING", "SUCCESS"]


@pytest.mark.parametrize("scale", [1.0, 10.0, 0.5])
def test_timeline_follows_the_scale(scale: float) -> None:
    plan = JobPlan(job_id="j", created=1000.0, steps=10, auto_start=True)
    tl = timeline(plan, None, None, scale)
    assert [t.status for t in tl] == HAPPY
    assert tl[-1].at - tl[0].at == pytest.approx(4.2 / scale)
    assert [t.at for t in tl] == sorted(t.at for t in tl)


@pytest.mark.parametrize(
    ("plan_kw", "started", "cancel", "expected"),
    [
        ({}, None, None, ["QUEUED", "VALIDATING", "VALIDATED"]),
        ({}, 1005.0, None, HAPPY),
        ({"auto_start": True, "fail_step": 3}, None, None, [*HAPPY[:-1], "FAILED"]),
        ({"validation_error": "bad"}, None, None, ["QUEUED", "VALIDATING", "FAILED_VALIDATION"]),
        ({}, None, 1000.1, ["QUEUED", "CANCELLATION_REQUESTED", "CANCELLED"]),
        ({"auto_start": True}, None, 1001.5, [*HAPPY[:-1], "CANCELLATION_REQUESTED", "CANCELLED"]),
    ],
)
def test_timeline_paths(
    plan_kw: dict[str, object], started: float | None, cancel: float | None, expected: list[str]
) -> None:
    kw: dict[str, object] = {"job_id": "j", "created": 1000.0, "steps": 10, "auto_start": False}
    kw.update(plan_kw)
    plan = JobPlan(**kw)  # type: ignore[arg-type]
    assert [t.status for t in timeline(plan, started, cancel, 1.0)] == expected


def test_status_at_and_steps_done() -> None:
    plan = JobPlan(job_id="j", created=0.0, steps=10, auto_start=True)
    tl = timeline(plan, None, None, 1.0)
    assert status_at(tl, 0.0) == "QUEUED"
    assert status_at(tl, 0.5) == "VALIDATING"
    assert status_at(tl, 1.1) == "STARTED"
    assert status_at(tl, 2.0) == "RUNNING"
    assert status_at(tl, 99.0) == "SUCCESS"
    # Running starts at 1.2 s; 0.3 s per step.
    assert [steps_done(plan, None, None, 1.0, t) for t in (1.0, 1.2, 1.55, 2.1, 99.0)] == [
        0,
        0,
        1,
        3,
        10,
    ]
    assert steps_done(plan, None, 1.55, 1.0, 99.0) == 1  # frozen at the cancel


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (1, [1]),
        (5, [1, 2, 3, 4, 5]),
        (10, list(range(1, 11))),
        (20, list(range(2, 21, 2))),
        (1000, list(range(100, 1001, 100))),
    ],
)
def test_checkpoint_every_tenth(steps: int, expected: list[int]) -> None:
    assert checkpoint_steps(steps) == expected


def test_loss_curve_falls_and_is_deterministic_per_job() -> None:
    a = JobPlan(job_id="a", created=0.0, steps=100, auto_start=True, has_validation=True)
    b = JobPlan(job_id="b", created=0.0, steps=100, auto_start=True, has_validation=True)
    curve = loss_curve(a)
    assert curve == loss_curve(a)
    assert curve != loss_curve(b)
    train = [curve[s][0] for s in sorted(curve)]
    valid = [curve[s][1] for s in sorted(curve)]
    acc = [curve[s][2] for s in sorted(curve)]
    assert all(x > y for x, y in zip(train, train[1:], strict=False))
    assert all(x > y for x, y in zip(valid, valid[1:], strict=False))  # type: ignore[operator]
    assert all(x <= y for x, y in zip(acc, acc[1:], strict=False))  # type: ignore[operator]
    assert 0.3 < train[-1] < train[0] < 3
    no_valid = loss_curve(JobPlan(job_id="a", created=0.0, steps=100, auto_start=True))
    assert all(v[1] is None and v[2] is None for v in no_valid.values())


def test_checkpoints_stop_at_failure_and_cancel() -> None:
    failing = JobPlan(job_id="f", created=0.0, steps=10, auto_start=True, fail_step=4)
    assert [c.step for c in checkpoints(failing, None, None, 1.0)] == [1, 2, 3]
    ok = JobPlan(job_id="f", created=0.0, steps=10, auto_start=True)
    # Step k ends at 1.2 + 0.3 k; cancel at 2.0 keeps steps 1 and 2.
    assert [c.step for c in checkpoints(ok, None, 2.0, 1.0)] == [1, 2]
    assert (
        checkpoints(JobPlan(job_id="f", created=0.0, steps=10, auto_start=False), None, None, 1.0)
        == []
    )


def test_a_pause_shifts_the_rest_of_the_run() -> None:
    # Runs from 1.2 s, 0.3 s per step: paused at 2.1 (3 steps done) for 10 s, resumed at
    # 12.1, queued 0.2 s, running again from 12.3; the 7 steps left end at 14.4.
    plan = JobPlan(job_id="p", created=0.0, steps=10, auto_start=True)
    pauses = [Pause(2.1, 12.1)]
    tl = timeline(plan, None, None, 1.0, pauses)
    assert [(t.status, round(t.at, 6)) for t in tl] == [
        ("QUEUED", 0.0),
        ("VALIDATING", 0.3),
        ("VALIDATED", 1.0),
        ("STARTED", 1.0),
        ("RUNNING", 1.2),
        ("PAUSED", 2.1),
        ("STARTED", 12.1),
        ("RUNNING", 12.3),
        ("SUCCESS", 14.4),
    ]
    assert [steps_done(plan, None, None, 1.0, t, pauses) for t in (2.1, 12.2, 12.6, 99)] == [
        3,
        3,
        4,
        10,
    ]
    with_pause = checkpoints(plan, None, None, 1.0, pauses)
    without = checkpoints(plan, None, None, 1.0)
    # The same checkpoints with the same metrics; those after the pause come 10.2 s later.
    assert [c.step for c in with_pause] == [c.step for c in without]
    assert [c.train_loss for c in with_pause] == [c.train_loss for c in without]
    assert [round(b.at - a.at, 6) for a, b in zip(without, with_pause, strict=True)] == [
        0.0
    ] * 3 + [10.2] * 7


def test_a_job_paused_for_good_never_finishes() -> None:
    plan = JobPlan(job_id="p", created=0.0, steps=10, auto_start=True)
    pauses = [Pause(2.1)]
    assert [t.status for t in timeline(plan, None, None, 1.0, pauses)][-1] == "PAUSED"
    assert [c.step for c in checkpoints(plan, None, None, 1.0, pauses)] == [1, 2, 3]
    assert steps_done(plan, None, None, 1.0, 1e9, pauses) == 3
    # Cancelled while paused: cancelled, with what it trained.
    tl = timeline(plan, None, 50.0, 1.0, pauses)
    assert [t.status for t in tl][-3:] == ["PAUSED", "CANCELLATION_REQUESTED", "CANCELLED"]


def test_two_pauses() -> None:
    plan = JobPlan(job_id="p", created=0.0, steps=10, auto_start=True, fail_step=9)
    pauses = [Pause(1.5, 3.0), Pause(4.0, 5.0)]
    tl = timeline(plan, None, None, 1.0, pauses)
    assert [t.status for t in tl] == [
        "QUEUED",
        "VALIDATING",
        "VALIDATED",
        "STARTED",
        "RUNNING",
        "PAUSED",
        "STARTED",
        "RUNNING",
        "PAUSED",
        "STARTED",
        "RUNNING",
        "FAILED",
    ]
    # 0.3 s trained before the first pause, 0.8 s before the second, 1.6 s after: 2.7 s.
    assert tl[-1].at == pytest.approx(5.2 + 1.6)
    assert [c.step for c in checkpoints(plan, None, None, 1.0, pauses)] == list(range(1, 9))
