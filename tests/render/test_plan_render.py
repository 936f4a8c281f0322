"""Snapshot tests of rendered plans (text, JSON, Markdown) and the PR-comment size limit.

Golden files live in ``tests/render/snapshots``; regenerate them after an intended change with
``RECONCILER_UPDATE_SNAPSHOTS=1 pytest tests/render``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine import costs
from reconciler.engine.desired import DesiredFile
from reconciler.engine.observed import Observed
from reconciler.engine.plan import CostEstimate, CostSource, Plan, RunBudgetLimit
from reconciler.engine.planner import PlanOptions, build_plan
from reconciler.engine.state_model import State
from reconciler.render.plan import GITHUB_COMMENT_LIMIT, render_json, render_markdown, render_text
from reconciler.spec.models import Budget, FineTunedModelSpec
from reconciler.spec.resolved import ResolvedJob
from tests.engine.factories import (
    desired,
    desired_file,
    observed,
    remote_file,
    remote_job,
    resolved_job,
    reviewed_plan,
    state_with,
)

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _fixed(plan: Plan) -> Plan:
    return plan.model_copy(update={"created_at": 1_700_000_000.0, "tool_version": "0.0.0"})


@dataclass(frozen=True)
class _Sample:
    """What both sample plans start from: three jobs in the state, a changed dataset."""

    files: list[DesiredFile]
    jobs: list[ResolvedJob]
    state: State
    observed: Observed


def _sample(eval_tokens: int = 25) -> _Sample:
    f_old, f_new = desired_file("chats", sha="a" * 64), desired_file("chats", sha="b" * 64)
    f_eval = desired_file("evals", sha="c" * 64, tokens=eval_tokens)
    running = resolved_job("tone", dataset="chats")
    done = resolved_job(
        "format",
        dataset="evals",
        fine_tuned_model=FineTunedModelSpec(name="fmt-v1", description="JSON out"),
    )
    validated = resolved_job("budgeted", dataset="evals", budget=Budget(max_cost=5))
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
    new_job = resolved_job("sweep-lr-1e-4", dataset="evals")
    return _Sample([f_new, f_eval], [running, done, validated, new_job], st, obs)


def legacy_sample_plan() -> Plan:
    """The sample plan as layouts 1.0 and 1.1 knew it: a dry-run estimate, no local ones."""
    sample = _sample()
    estimate = CostEstimate(amount=1.25, currency="USD", source=CostSource.DRY_RUN)
    options = PlanOptions(
        target_description="sandbox http://127.0.0.1:8080",
        spec_paths=("specs",),
        spec_digest="d" * 64,
        estimates={"job.sweep-lr-1e-4": estimate},
    )
    after = desired(sample.files, sample.jobs)
    return _fixed(build_plan(after, sample.state, sample.observed, options))


def sample_plan() -> Plan:
    """The sample plan priced with Mistral's table, one job of a model it has no price for."""
    sample = _sample(eval_tokens=40_000)
    unpriced = resolved_job(
        "small", dataset="evals", model="mistral-small-latest", hyperparameters={"epochs": 2.0}
    )
    after = desired(sample.files, [*sample.jobs, unpriced])
    options = PlanOptions(
        target_description="mistral https://api.mistral.ai",
        spec_paths=("specs",),
        spec_digest="d" * 64,
    )
    budget = RunBudgetLimit(max_cost=100.0, source="Provider budget")
    mistral = costs.StepTokenEstimator(costs.MISTRAL_PRICES)
    plan = reviewed_plan(
        after, mistral, state=sample.state, obs=sample.observed, options=options, budget=budget
    )
    return _fixed(plan)


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
    assert "Plan: 2 to add, 1 to change, 2 to replace, 1 to start, 0 to destroy" in text
    # Every job the plan creates, replaces or starts has a cost, or says why it has none.
    assert "cost estimate: 2.62 USD (remote-validation)" not in text
    assert "Estimated cost: at least 11.50 USD for 4 job(s); 1 job(s) could not be" in text
    assert "cost estimate: none (no price for model 'mistral-small-latest'" in text


def test_json_plan_snapshot() -> None:
    text = render_json(sample_plan())
    check_snapshot("plan.json", text + "\n")
    data = json.loads(text)
    assert data["format_version"] == "1.2"
    changes = {c["address"]: c for c in data["changes"]}
    assert changes["job.budgeted"]["action"] == "start"
    assert changes["job.budgeted"]["cost"]["source"] == "remote-validation"
    new = changes["job.sweep-lr-1e-4"]["cost"]
    assert new["source"] == "local" and new["amount"] == 4.0  # Mistral's minimum fee
    assert new["basis"]["train_tokens"] == 10 * 131_072 and new["basis"]["steps"] == 10
    assert new["storage_per_month"] == 2.0
    assert data["unestimated"] == {"job.small": data["unestimated"]["job.small"]}
    assert data["costs"] == {"totals": {"USD": 11.5}, "complete": False, "unestimated": 1}
    assert data["errors"] == [] and data["run_budget"]["max_cost"] == 100.0


def test_markdown_plan_snapshot() -> None:
    check_snapshot("plan.md", render_markdown(sample_plan()))


def test_json_plan_round_trips_through_a_plan_file(tmp_path: Path) -> None:
    plan = sample_plan()
    plan.save(tmp_path / "p.plan")
    assert Plan.load(tmp_path / "p.plan") == plan


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_plan_files_of_older_formats_still_load(tmp_path: Path, version: str) -> None:
    # The sample plan as format 1.0 wrote it (before force_new existed), and as 1.1 wrote it
    # (before local estimates, errors and the run budget existed).
    old = json.loads((SNAPSHOTS / f"plan-format-{version}.json").read_text(encoding="utf-8"))
    (tmp_path / "old.plan").write_text(json.dumps({"kind": "reconciler-plan", **old}))
    loaded = Plan.load(tmp_path / "old.plan")
    assert loaded.format_version == version
    assert loaded.changes == legacy_sample_plan().changes
    assert not loaded.errors and not loaded.unestimated and loaded.run_budget is None
    assert render_text(loaded) == render_text(legacy_sample_plan())


@pytest.mark.parametrize(
    ("reason", "force_new"),
    [("deleted-remotely", True), ("replace-by-request", True), ("not-in-state", False)],
)
def test_format_1_0_force_new_comes_from_the_reason(
    tmp_path: Path, reason: str, force_new: bool
) -> None:
    data = legacy_sample_plan().to_json_dict()
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


SANDBOX_RATE = costs.estimator_for(None)
MISTRAL_RATES = costs.StepTokenEstimator(costs.MISTRAL_PRICES)


def _cells(n_jobs: int, **job: Any) -> list[ResolvedJob]:
    return [resolved_job(f"cell-{i}", dataset="d", suffix=f"c{i}", **job) for i in range(n_jobs)]


def _reviewed_plan(jobs: list[ResolvedJob], estimator: costs.CostEstimator = SANDBOX_RATE) -> Plan:
    """A first plan of ``jobs`` (on one dataset of 30,000 tokens), estimated and reviewed."""
    ds = desired([desired_file("d", tokens=30_000)], jobs)
    options = PlanOptions(target_description="sandbox http://127.0.0.1:8080", spec_digest="f" * 64)
    return _fixed(reviewed_plan(ds, estimator, options=options))


def test_every_new_job_has_a_cost_in_text_json_and_markdown_however_many() -> None:
    # 200 jobs: once only 50 were estimated while the headline read as complete.
    plan = _reviewed_plan(_cells(200, hyperparameters={"training_steps": 20}))
    text, data, md = render_text(plan), json.loads(render_json(plan)), render_markdown(plan)
    jobs = [c for c in data["changes"] if c["type"] == "job"]
    assert len(jobs) == 200 and all(c["cost"]["source"] == "local" for c in jobs)
    # The sandbox's rate: 20 steps x 131,072 tokens x 2 USD per million = 5.24 USD a job.
    assert text.count("cost estimate: 5.24 USD (local)") == 200
    headline = "Estimated cost: 1,048.58 USD for 200 job(s)."
    assert headline in text and headline in md and "at least" not in text + md
    assert data["costs"] == {"totals": {"USD": 1048.58}, "complete": True, "unestimated": 0}


def test_jobs_without_an_estimate_make_the_total_a_lower_bound_everywhere() -> None:
    # Mistral's table has no price for mistral-small-latest; open-mistral-7b costs the minimum.
    jobs = [*_cells(1000, model="mistral-small-latest"), resolved_job("priced", dataset="d")]
    plan = _reviewed_plan(jobs, MISTRAL_RATES)
    text, md, data = render_text(plan), render_markdown(plan), json.loads(render_json(plan))
    summary = "Estimated cost: at least 4.00 USD for 1001 job(s); 1000 job(s) could not be"
    assert summary in text and summary in md
    assert text.count("cost estimate: none (no price for model 'mistral-small-latest'") == 1000
    assert data["costs"] == {"totals": {"USD": 4.0}, "complete": False, "unestimated": 1000}
    # The comment keeps the warning, one line per reason, and stays under GitHub's limit.
    assert len(md) < GITHUB_COMMENT_LIMIT
    assert ":warning: 1000 job(s) have no cost estimate, so the estimated cost is a lower" in md
    assert "`job.cell-101` and 995 more: no price for model 'mistral-small-latest'" in md


def test_budget_errors_come_first_in_text_and_markdown() -> None:
    plan = _reviewed_plan(_cells(3, budget=Budget(max_cost=2.0)))
    assert len(plan.errors) == 3
    text, md = render_text(plan), render_markdown(plan)
    assert text.startswith(
        "Error: job.cell-0: estimated cost 2.62 USD (local: 10 steps x 131,072 tokens x 2 USD/M) "
        "is over its budget.max_cost 2; raise budget.max_cost in cell-0 or train less"
    )
    assert "OVER BUDGET: 2.62 USD > budget.max_cost 2" in text
    assert md.index(":x: **3 error(s): apply will refuse this plan.**") < md.index("| action |")
    assert json.loads(render_json(plan))["errors"] == list(plan.errors)
