"""follow_jobs driven by a scripted fetch sequence: plain lines, JSON lines, stop rules."""

from __future__ import annotations

import importlib
import inspect
import io
import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from observe_jobs import T0, curve, job, status_event

from reconciler.errors import ReconcilerError, ServerError, TransportError, ValidationError
from reconciler.observe.progress import failed
from reconciler.observe.watch import (
    DEFAULT_TIMEOUT,
    MAX_FAILED_POLLS,
    MAX_OUTAGE_SECONDS,
    choose_mode,
    follow_jobs,
    stop_at_validated,
)

Jobs = Mapping[str, Mapping[str, Any]]


def script(*polls: Jobs | Exception) -> tuple[Callable[[], Jobs], list[int]]:
    """A fetch() that returns (or raises) the given polls in order, then repeats the last."""
    calls = [0]

    def fetch() -> Jobs:
        index = min(calls[0], len(polls) - 1)
        calls[0] += 1
        item = polls[index]
        if isinstance(item, Exception):
            raise item
        return item

    return fetch, calls


SEQUENCE: list[Jobs] = [
    {"job.a": job("QUEUED"), "job.b": job("QUEUED", job_id="b")},
    {"job.a": job("RUNNING", checkpoints=curve()[7:]), "job.b": job("QUEUED", job_id="b")},
    # Nothing changed for either job: no plain line for this poll.
    {"job.a": job("RUNNING", checkpoints=curve()[7:]), "job.b": job("QUEUED", job_id="b")},
    {
        "job.a": job(
            "SUCCESS", checkpoints=curve(), model="ft:open-mistral-7b:aa:20260101:0f4c9a5e"
        ),
        "job.b": job(
            "FAILED_VALIDATION",
            job_id="b",
            events=[
                status_event("FAILED_VALIDATION", T0 + 5, error="no assistant message on line 2")
            ],
        ),
    },
]


def test_plain_mode_writes_one_line_per_change_and_a_summary() -> None:
    fetch, calls = script(*SEQUENCE)
    sleeps: list[float] = []
    out = io.StringIO()
    result = follow_jobs(fetch, interval=2.5, mode="plain", out=out, sleep=sleeps.append)
    lines = out.getvalue().splitlines()
    assert calls[0] == 4
    assert sleeps == [2.5, 2.5, 2.5]
    assert lines[0] == "job.a QUEUED step 0/100 (0%)"
    assert lines[1] == "job.b QUEUED step 0/100 (0%)"
    assert lines[2].startswith("job.a RUNNING step 30/100 (30%) eta ")
    assert "train_loss 1.1200 valid_loss 1.2300 valid_mean_token_accuracy 0.5600" in lines[2]
    assert lines[3] == (
        "job.a SUCCESS step 100/100 (100%) train_loss 0.8400 valid_loss 0.9850 "
        "valid_mean_token_accuracy 0.7700 model ft:open-mistral-7b:aa:20260101:0f4c9a5e"
    )
    assert lines[4] == "job.b FAILED_VALIDATION reason: no assistant message on line 2"
    assert lines[5] == (
        "1 of 2 job(s) succeeded, 1 ended without a model: job.b (no assistant message on line 2)"
    )
    assert len(lines) == 6
    assert "\x1b" not in out.getvalue()  # no terminal control codes in CI logs
    assert failed(result) == [("job.b", "no assistant message on line 2")]
    assert result["job.a"].fine_tuned_model == "ft:open-mistral-7b:aa:20260101:0f4c9a5e"


def test_json_mode_writes_versioned_lines_for_changes_and_a_summary() -> None:
    fetch, _ = script(*SEQUENCE)
    out = io.StringIO()
    follow_jobs(fetch, interval=1, mode="json", out=out, sleep=lambda s: None)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert all(r["format_version"] == 1 for r in records)
    job_records = [r for r in records if r["type"] == "job"]
    assert [(r["address"], r["status"]) for r in job_records] == [
        ("job.a", "QUEUED"),
        ("job.b", "QUEUED"),
        ("job.a", "RUNNING"),
        ("job.a", "SUCCESS"),
        ("job.b", "FAILED_VALIDATION"),
    ]
    running = job_records[2]
    assert running["step"] == 30 and running["percent"] == 30.0
    assert running["train_loss"] == pytest.approx(1.12)
    assert running["terminal"] is False
    summary = records[-1]
    assert summary["type"] == "summary"
    assert summary["jobs"]["job.a"]["health"] == "succeeded"
    assert summary["failed"] == [{"address": "job.b", "reason": "no assistant message on line 2"}]


def test_rich_mode_renders_a_table_with_the_jobs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    fetch, _ = script(*SEQUENCE)
    out = io.StringIO()
    follow_jobs(fetch, interval=1, mode="rich", out=out, sleep=lambda s: None)
    text = out.getvalue()
    assert "job.a" in text and "job.b" in text
    assert "SUCCESS" in text and "FAILED_VALIDATION" in text
    assert text.splitlines()[-1].startswith("1 of 2 job(s) succeeded")
    last_frame = text.split("┏")[-1]
    assert "━━━━━━━━━━━━━━━━━━━━" in last_frame  # the full progress bar of the finished job
    assert "100/100 (100%)" in last_frame


def test_jobs_held_at_validated_settle_there() -> None:
    fetch, calls = script({"job.hold": job("VALIDATED"), "job.go": job("SUCCESS")})
    result = follow_jobs(
        fetch,
        interval=1,
        mode="plain",
        out=io.StringIO(),
        sleep=lambda s: None,
        until=stop_at_validated({"job.hold"}),
    )
    assert calls[0] == 1
    assert result["job.hold"].status == "VALIDATED"


def test_validated_job_that_should_start_keeps_being_watched() -> None:
    fetch, calls = script({"job.go": job("VALIDATED")}, {"job.go": job("SUCCESS")})
    follow_jobs(
        fetch,
        interval=1,
        mode="plain",
        out=io.StringIO(),
        sleep=lambda s: None,
        until=stop_at_validated({"job.other"}),
    )
    assert calls[0] == 2


def test_timeout_names_the_unfinished_jobs() -> None:
    fetch, _ = script(
        {"job.slow": job("RUNNING", checkpoints=curve()[7:]), "job.ok": job("SUCCESS")}
    )
    ticks = iter(range(0, 1000, 10))
    with pytest.raises(ReconcilerError) as info:
        follow_jobs(
            fetch,
            interval=10,
            mode="plain",
            out=io.StringIO(),
            timeout=30,
            sleep=lambda s: None,
            clock=lambda: float(next(ticks)),
        )
    message = str(info.value)
    assert "after 30s" in message and "job.slow (RUNNING, 30/100 (30%))" in message
    assert "job.ok" not in message
    assert "reconciler status --watch" in message


def test_retryable_api_errors_are_noticed_and_polling_goes_on() -> None:
    fetch, calls = script(
        ServerError("bad gateway", method="GET", path="/v1/fine_tuning/jobs", status=502),
        {"job.a": job("SUCCESS")},
    )
    out = io.StringIO()
    follow_jobs(fetch, interval=1, mode="plain", out=out, sleep=lambda s: None)
    assert calls[0] == 2
    assert "polling failed, retrying in 1s: GET /v1/fine_tuning/jobs -> HTTP 502" in out.getvalue()


def test_non_retryable_api_errors_propagate() -> None:
    fetch, _ = script(
        ValidationError("bad id", method="GET", path="/v1/fine_tuning/jobs/x", status=422)
    )
    with pytest.raises(ValidationError):
        follow_jobs(fetch, interval=1, mode="plain", out=io.StringIO(), sleep=lambda s: None)


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("fmt", "stream", "mode"),
    [("json", _Tty(), "json"), ("text", _Tty(), "rich"), ("text", io.StringIO(), "plain")],
)
def test_choose_mode(fmt: str, stream: io.StringIO, mode: str) -> None:
    assert choose_mode(fmt, stream) == mode


def _refused() -> TransportError:
    return TransportError("connection refused", method="GET", path="/v1/fine_tuning/jobs/a")


class _Clock:
    """A clock that moves only when the watcher sleeps; it refuses to sleep forever."""

    def __init__(self, limit: int = 1000) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.limit = limit

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        if self.sleeps > self.limit:
            raise AssertionError("the watch went on retrying a dead endpoint")
        self.now += seconds


def test_a_dead_endpoint_ends_the_watch_with_a_clean_error() -> None:
    fetch, calls = script(_refused())
    clock = _Clock()
    out = io.StringIO()
    with pytest.raises(ReconcilerError) as info:
        follow_jobs(fetch, interval=5, mode="plain", out=out, sleep=clock.sleep, clock=clock)
    message = str(info.value)
    # Both bounds hold: at least MAX_FAILED_POLLS polls, and MAX_OUTAGE_SECONDS without answer.
    assert calls[0] == 1 + int(MAX_OUTAGE_SECONDS // 5) and calls[0] >= MAX_FAILED_POLLS
    assert message.startswith("gave up watching: the remote has not answered for 2m00s (")
    assert "polls in a row failed; the last: GET /v1/fine_tuning/jobs/a" in message
    assert "The jobs keep running remotely" in message and "status --watch" in message
    assert out.getvalue().count("polling failed, retrying in 5s") == calls[0] - 1


def test_slow_failures_still_need_several_polls_before_giving_up() -> None:
    # Each poll takes longer than the whole outage allowance: the count decides.
    fetch, calls = script(_refused())
    clock = _Clock()
    with pytest.raises(ReconcilerError, match="gave up watching"):
        follow_jobs(
            fetch, interval=600, mode="plain", out=io.StringIO(), sleep=clock.sleep, clock=clock
        )
    assert calls[0] == MAX_FAILED_POLLS


def test_an_outage_shorter_than_the_bounds_is_ridden_out() -> None:
    # Failures in a row are counted from the last answer: each answer starts the count again.
    outage = [_refused()] * (MAX_FAILED_POLLS + 3)
    running = {"job.a": job("RUNNING", checkpoints=curve()[7:])}
    fetch, calls = script(*outage, running, *outage, running, {"job.a": job("SUCCESS")})
    clock = _Clock()
    result = follow_jobs(
        fetch, interval=10, mode="plain", out=io.StringIO(), sleep=clock.sleep, clock=clock
    )
    assert result["job.a"].status == "SUCCESS" and calls[0] == 2 * len(outage) + 3


@pytest.mark.parametrize(
    ("command", "option"),
    [("cmd_status.status", "watch_timeout"), ("cmd_plan.apply", "wait_timeout")],
)
def test_following_jobs_has_a_finite_default_timeout(command: str, option: str) -> None:
    # status --watch --timeout and apply --wait --wait-timeout: forever only when asked (0).
    module, function = command.split(".")
    func = getattr(importlib.import_module(f"reconciler.cli.{module}"), function)
    declared = inspect.signature(func).parameters[option].default
    assert declared.default == DEFAULT_TIMEOUT
    assert declared.parser(declared.default) == 24 * 3600
    assert f"default {DEFAULT_TIMEOUT}; 0: never" in declared.help
