"""Rendering of ``reconcile`` rounds: the summary line, the detail lines and the JSON line."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from reconciler.address import Address
from reconciler.engine.outcome import ApplyResult, Outcome, OutcomeStatus
from reconciler.engine.plan import Action, Drift, DriftKind, Reason
from reconciler.engine.rounds import Pending, RoundResult
from reconciler.render.reconcile import detail_lines, render_json, render_text, summary_line

UPDATED = Outcome("job.a", Action.UPDATE, OutcomeStatus.APPLIED, "updated model name", "ft:a")
DRIFT = Drift(
    address=Address("job.y"),
    remote_id="j-9",
    kind=DriftKind.CANCELLED,
    message="job was cancelled outside reconciler; run it again with --replace job.y",
)


def _round(**fields: object) -> RoundResult:
    return RoundResult(number=3, started_at=0.0, target="sandbox", **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "line", "code"),
    [
        (_round(), "round 3: no changes", 0),
        (
            _round(
                acted=True,
                applied=ApplyResult(
                    outcomes=(UPDATED, replace(UPDATED, address="job.b")),
                ),
                awaiting_review=(Pending("job.x", Action.REPLACE, Reason.SPEC_CHANGED),),
                drift=(DRIFT,),
            ),
            "round 3: 2 model updates applied; 1 replacement awaits review (job.x); 1 drifted",
            2,
        ),
        (
            _round(
                acted=True,
                applied=ApplyResult(
                    outcomes=(
                        Outcome("job.s", Action.START, OutcomeStatus.APPLIED, "queued for start"),
                        Outcome("job.t", Action.START, OutcomeStatus.APPLIED, "queued for start"),
                        Outcome("job.t", Action.START, OutcomeStatus.FAILED, "over budget"),
                    ),
                    started_jobs=("job.s",),
                ),
            ),
            "round 3: 1 job started; 1 failed (job.t)",
            1,
        ),
        (
            _round(
                awaiting_review=tuple(
                    Pending(f"job.n{i}", Action.CREATE, Reason.NOT_IN_STATE) for i in range(5)
                ),
                awaiting_validation=("job.v",),
                not_in_spec=("job.old",),
            ),
            "round 3: 5 creates await review (job.n0, job.n1, job.n2 and 2 more); "
            "1 job awaits validation (job.v); 1 not in spec (job.old)",
            2,
        ),
        (
            _round(
                acted=True, applied=ApplyResult(outcomes=(UPDATED,)), drift=(DRIFT,), stopped=True
            ),
            "round 3: 1 model update applied; 1 drifted; stopped (what is left is done by the "
            "next run)",
            0,
        ),
        (
            RoundResult(number=4, started_at=0.0, error="state is locked by ci@runner\nLock Info:"),
            "round 4: failed: state is locked by ci@runner",
            1,
        ),
    ],
    ids=["in-sync", "brief-example", "start-refused", "review-many", "stopped", "error"],
)
def test_summary_line_and_exit_code(result: RoundResult, line: str, code: int) -> None:
    assert summary_line(result) == line
    assert result.exit_code == code


def test_detail_lines_name_each_thing_to_read() -> None:
    result = _round(
        awaiting_review=(Pending("job.x", Action.REPLACE, Reason.SPEC_CHANGED),),
        drift=(DRIFT,),
        not_in_spec=("job.old",),
    )
    assert detail_lines(result) == [
        "  awaits review: job.x: replace (spec-changed)",
        "  drifted: job.y: cancelled: job was cancelled outside reconciler; run it again with "
        "--replace job.y",
        "  not in spec: job.old (--prune plans its removal)",
        "  review with 'reconciler plan', then apply with 'reconciler apply' (or run reconcile "
        "with --auto-approve)",
    ]


def test_an_error_says_when_the_next_round_is_and_keeps_its_other_lines() -> None:
    result = RoundResult(number=2, started_at=0.0, error="state is locked\nLock Info:\n  ID: 1")
    assert render_text(result, next_round_in=120) == (
        "round 2: failed: state is locked; next round in 2m\n  Lock Info:\n    ID: 1"
    )


def test_json_line() -> None:
    result = _round(acted=True, applied=ApplyResult(outcomes=(UPDATED,), serial=7), drift=(DRIFT,))
    text = render_json(result, next_round_in=600)
    assert "\n" not in text
    data = json.loads(text)
    assert data["round"] == 3 and data["next_round_in"] == 600 and data["exit_code"] == 2
    assert data["summary"] == "round 3: 1 model update applied; 1 drifted"
    assert data["result"]["outcomes"][0]["action"] == "update"
    assert data["drift"][0] == {
        "address": "job.y",
        "remote_id": "j-9",
        "kind": "cancelled",
        "message": DRIFT.message,
    }
