"""Snapshot tests of rendered plans (text, JSON, Markdown) and the PR-comment size limit.

Golden files live in ``tests/render/snapshots``; regenerate them after an intended change with
``RECONCILER_UPDATE_SNAPSHOTS=1 pytest tests/render``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.plan import CostEstimate, CostSource, Plan
from reconciler.engine.planner import PlanOptions, build_plan
from reconciler.render.plan import GITHUB_COMMENT_LIMIT, render_json, render_markdown, render_text
from reconciler.spec.models import Budget, FineTunedModelSpec
from reconciler.spec.resolved import TrainingInput
from tests.engine.factories import (
    desired,
    desired_file,
    observed,
    remote_file,
    remote_job,
    resolved_job,
    state_with,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _fixed(plan: Plan) -> Plan:
    return plan.model_copy(update={"created_at": 1_700_000_000.0, "tool_version": "0.0.0"})


def sample_plan() -> Plan:
    f_old, f_new = desired_file("chats", sha="a" * 64), desired_file("chats", sha="b" * 64)
    f_eval = desired_file("evals", sha="c" * 64)
    running = resolved_job("tone", dataset="chats")
    done = resolved_job(
        "format",
        dataset="evals",
        fine_tuned_model=FineTunedModelSpec(name="fmt-v1", description="JSON out"),
    )
    validated = resolved_job(
        "budgeted", dataset="evals", budget=Budget(max_cost=5), suffix="budget"
    )
    before = desired([f_old, f_eval], [running, done, validated])
    st = state_with(
        before,
        file_ids={f_old.address: "f-1", f_eval.address: "f-2"},
        job_ids={"job.tone": "j-1", "job.format": "j-2", "job.budgeted": "j-3"},
    )
    ids = {f_old.address: "f-1", f_eval.address: "f-2"}
    obs = observed(
        [remote_file("f-1", f_old), remote_file("f-2", f_eval)],
        [
            remote_job("j-1", before.jobs["job.tone"], ids, "RUNNING"),
            remote_job("j-2", before.jobs["job.format"], ids, "SUCCESS", fine_tuned_model="ft:m:2"),
            remote_job(
                "j-3",
                before.jobs["job.budgeted"],
                ids,
                "VALIDATED",
                metadata={"cost": 3.5, "cost_currency": "USD"},
            ),
        ],
        [{"id": "ft:m:2", "name": None, "description": None, "archived": False}],
    )
    new_job = resolved_job("sweep-lr-1e-4", dataset="evals", suffix="sweep")
    after = desired([f_new, f_eval], [running, done, validated, new_job])
    estimate = CostEstimate(amount=1.25, currency="USD", source=CostSource.DRY_RUN)
    return _planned(after, st, obs, estimates={"job.sweep-lr-1e-4": estimate})


def _planned(desired_state: Any, st: Any, obs: Any, **options: Any) -> Plan:
    """The plan of the snapshots: a fixed target, paths, digest, time and version."""
    fixed = PlanOptions(
        target_description="sandbox http://127.0.0.1:8080",
        spec_paths=("specs",),
        spec_digest="d" * 64,
        **options,
    )
    return _fixed(build_plan(desired_state, st, obs, fixed))


def check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("RECONCILER_UPDATE_SNAPSHOTS") or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        if not os.environ.get("RECONCILER_UPDATE_SNAPSHOTS"):
            pytest.fail(f"snapshot {name} was missing and has been written; re-run")
    assert text == path.read_text(encoding="utf-8")


def test_text_plan_snapshot() -> None:
    text = render_text(sample_plan())
    check_snapshot("plan.txt", text)
    assert (
        "-/+ dataset.chats[all]" in text
        and "forces new job: training_files[0].filename, training_files[0].sha256" in text
    )
    assert "Plan: 1 to add, 1 to change, 2 to replace, 1 to start, 0 to destroy" in text


def test_json_plan_snapshot() -> None:
    text = render_json(sample_plan())
    check_snapshot("plan.json", text + "\n")
    data = json.loads(text)
    assert data["format_version"] == "1.2"
    assert {c["address"]: c["action"] for c in data["changes"]}["job.budgeted"] == "start"


def test_markdown_plan_snapshot() -> None:
    check_snapshot("plan.md", render_markdown(sample_plan()))


def test_json_plan_round_trips_through_a_plan_file(tmp_path: Path) -> None:
    plan = sample_plan()
    plan.save(tmp_path / "p.plan")
    assert Plan.load(tmp_path / "p.plan") == plan


def test_plan_files_of_format_1_0_still_load(tmp_path: Path) -> None:
    # The sample plan as format 1.0 wrote it (before force_new existed).
    old = json.loads((SNAPSHOTS / "plan-format-1.0.json").read_text(encoding="utf-8"))
    (tmp_path / "old.plan").write_text(json.dumps({"kind": "reconciler-plan", **old}))
    loaded = Plan.load(tmp_path / "old.plan")
    assert loaded.format_version == "1.0"
    # Keys added since (1.2: labels, location) take their defaults.
    unlabelled = [c.model_copy(update={"location": None}) for c in sample_plan().changes]
    assert list(loaded.changes) == unlabelled
    assert render_text(loaded) == render_text(sample_plan())


@pytest.mark.parametrize(
    ("reason", "force_new"),
    [("deleted-remotely", True), ("replace-by-request", True), ("not-in-state", False)],
)
def test_format_1_0_force_new_comes_from_the_reason(
    tmp_path: Path, reason: str, force_new: bool
) -> None:
    data = sample_plan().to_json_dict()
    data["format_version"] = "1.0"
    for change in data["changes"]:
        del change["force_new"]
    data["changes"][0]["reason"] = reason
    (tmp_path / "old.plan").write_text(json.dumps({"kind": "reconciler-plan", **data}))
    loaded = Plan.load(tmp_path / "old.plan")
    assert [c.force_new for c in loaded.changes] == [force_new] + [False] * 5


def test_markdown_stays_under_github_limit_for_hundreds_of_jobs() -> None:
    files = [desired_file(f"d{i}", sha=f"{i:064x}") for i in range(600)]
    jobs = [resolved_job(f"job-{i}", dataset=f"d{i}", suffix=f"s{i}") for i in range(600)]
    plan = _fixed(
        build_plan(desired(files, jobs), None, observed(), PlanOptions(spec_digest="e" * 64))
    )
    md = render_markdown(plan)
    assert len(md) < GITHUB_COMMENT_LIMIT
    assert md.startswith("### reconciler plan") and "1200 to add" in md
    assert "more section(s) not shown" in md


def review_plan() -> Plan:
    """A plan with everything a reviewer must not miss: an error, warnings, a cancel-first
    replacement, a changed hyperparameter, drift and a leftover."""
    f = desired_file("chats", sha="a" * 64)
    old = desired_file("old", sha="e" * 64)
    tone = resolved_job("tone", dataset="chats")
    heavy = resolved_job("heavy", dataset="chats", suffix="heavy")
    gone = resolved_job("gone", dataset="chats", suffix="gone")
    before = desired([f, old], [tone, heavy, gone])
    ids = {f.address: "f-1", old.address: "f-9"}
    st = state_with(
        before,
        file_ids=ids,
        job_ids={"job.tone": "j-1", "job.heavy": "j-2", "job.gone": "j-3"},
    )
    twin = resolved_job("twin", dataset="chats", suffix="twin")
    obs = observed(
        [remote_file("f-1", f), remote_file("f-9", old)],
        [
            remote_job("j-1", before.jobs["job.tone"], ids, "RUNNING"),
            remote_job("j-2", before.jobs["job.heavy"], ids, "RUNNING"),
            remote_job("j-3", before.jobs["job.gone"], ids, "CANCELLED"),
            remote_job("j-7", desired([f], [twin]).jobs["job.twin"], ids, "SUCCESS"),
        ],
    )
    after = desired(
        [f],
        [
            resolved_job(
                "tone",
                dataset="chats",
                hyperparameters={"training_steps": 12, "learning_rate": 1e-4},
            ),
            resolved_job(
                "heavy",
                suffix="heavy",
                training_files=(TrainingInput(dataset="chats", part="all", weight=2.0),),
            ),
            gone,
            twin,
        ],
    )
    return _planned(after, st, obs, notes=("dataset chats: 2 duplicate samples",))


def test_review_plan_snapshots_list_errors_and_warnings_first() -> None:
    plan = review_plan()
    text = render_text(plan)
    check_snapshot("plan-review.txt", text)
    md = render_markdown(plan)
    check_snapshot("plan-review.md", md)
    for rendered, actions in ((text, "will perform the following actions"), (md, "<details>")):
        error = rendered.index("reconciler import job.twin j-7")
        warning = rendered.index("2 duplicate samples")
        assert error < rendered.index(actions) and warning < rendered.index(actions)
    assert "hyperparameters.training_steps: 10 → 12" in text
    assert "training_files[0].weight: 1.0 → 2.0" in text
    assert "cancel before create: previous job j-2 (RUNNING)" in text
    assert "to forget. Also 1 drifted, 1 not in spec." in text.splitlines()[-1]
    data = json.loads(render_json(plan))
    heavy = next(c for c in data["changes"] if c["address"] == "job.heavy")
    assert heavy["cancel_first"] is True


def test_no_changes_with_drift_or_leftovers_says_so() -> None:
    plan = review_plan()
    quiet = plan.model_copy(update={"changes": ()})
    assert not quiet.has_changes and quiet.differs
    last = render_text(quiet).splitlines()[-1]
    assert last.startswith("No changes to apply; 1 drifted, 1 not in spec.")
    clean = quiet.model_copy(update={"drift": (), "not_in_spec": ()})
    assert not clean.differs
    last = render_text(clean).splitlines()[-1]
    assert last.startswith("No changes. Remote objects match the specs.")


def test_markdown_never_cuts_errors_or_warnings() -> None:
    files = [desired_file(f"d{i}", sha=f"{i:064x}") for i in range(600)]
    jobs = [resolved_job(f"job-{i}", dataset=f"d{i}", suffix=f"s{i}") for i in range(600)]
    notes = tuple(f"warning number {i}" for i in range(60))
    plan = _fixed(
        build_plan(
            desired(files, jobs), None, observed(), PlanOptions(spec_digest="e" * 64, notes=notes)
        )
    )
    md = render_markdown(plan)
    assert len(md) < GITHUB_COMMENT_LIMIT and "more section(s) not shown" in md
    assert all(f"- warning number {i}\n" in md for i in range(60))
