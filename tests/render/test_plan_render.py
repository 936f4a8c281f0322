"""Snapshot tests of rendered plans (text, JSON, Markdown) and the PR-comment size limit.

Golden files live in ``tests/render/snapshots``; regenerate them after an intended change with
``RECONCILER_UPDATE_SNAPSHOTS=1 pytest tests/render``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from reconciler.address import Address
from reconciler.engine import costs
from reconciler.engine.desired import DesiredFile, DesiredState
from reconciler.engine.observed import Observed
from reconciler.engine.plan import (
    PLAN_FORMAT_VERSION,
    CostEstimate,
    CostSource,
    Plan,
    RunBudgetLimit,
)
from reconciler.engine.planner import PlanOptions, build_plan
from reconciler.engine.state_model import State
from reconciler.errors import Location
from reconciler.render.plan import GITHUB_COMMENT_LIMIT, render_json, render_markdown, render_text
from reconciler.spec.models import Budget, FineTunedModelSpec, LoraSpec, OnReplace, Provider
from reconciler.spec.resolved import DeclaredImport, DeclaredMove, ResolvedJob, TrainingInput
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
SANDBOX_RATE = costs.estimator_for(None)
MISTRAL_RATES = costs.StepTokenEstimator(costs.MISTRAL_PRICES)


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
    return _Sample([f_new, f_eval], [running, done, validated, new_job], st, obs)


def _planned(
    desired_state: Any,
    st: State | None,
    obs: Observed,
    *,
    estimator: costs.CostEstimator | None = None,
    budget: RunBudgetLimit | None = None,
    target: str = "sandbox http://127.0.0.1:8080",
    **options: Any,
) -> Plan:
    """A plan of the snapshots: a fixed target, paths, digest, time and version; priced by
    ``estimator`` and reviewed against ``budget`` as ``make_plan`` does (no estimator: no
    costs)."""
    fixed = PlanOptions(
        target_description=target, spec_paths=("specs",), spec_digest="d" * 64, **options
    )
    if estimator is None:
        return _fixed(build_plan(desired_state, st, obs, fixed))
    reviewed = reviewed_plan(
        desired_state, estimator, state=st, obs=obs, options=fixed, budget=budget
    )
    return _fixed(reviewed)


def legacy_sample_plan() -> Plan:
    """The sample plan as layouts 1.0 to 1.2 knew it: a dry-run estimate, no local ones."""
    sample = _sample()
    estimate = CostEstimate(amount=1.25, currency="USD", source=CostSource.DRY_RUN)
    plan = _planned(desired(sample.files, sample.jobs), sample.state, sample.observed)
    return costs.with_estimates(plan, {"job.sweep-lr-1e-4": estimate})


def sample_plan() -> Plan:
    """The sample plan priced with Mistral's table, one job of a model it has no price for."""
    sample = _sample(eval_tokens=40_000)
    unpriced = resolved_job(
        "small", dataset="evals", model="mistral-small-latest", hyperparameters={"epochs": 2.0}
    )
    after = desired(sample.files, [*sample.jobs, unpriced])
    return _planned(
        after,
        sample.state,
        sample.observed,
        estimator=MISTRAL_RATES,
        budget=RunBudgetLimit(max_cost=100.0, source="Provider budget"),
        target="mistral https://api.mistral.ai",
    )


def _adoption_world() -> tuple[DesiredState, State, Observed]:
    """A plan of everything that records existing remote objects, next to one new job: a job
    renamed by a ``Moved`` document, a job and its file made with the SDK adopted by an
    ``Import`` document, a job reverted to a request that SUCCEEDED before, and a replacement
    that SUCCEEDED under ``previous_model: delete``. The jobs adopted, moved or restored have
    budgets far below any training cost: they pay for nothing, so none is exceeded."""
    chats = desired_file("chats", sha="a" * 64, tokens=40_000)
    sdk = desired_file("sdk", sha="d" * 64)
    tight = Budget(max_cost=0.5)
    steps = {"learning_rate": 1e-4}
    reverted = resolved_job(
        "steps", dataset="chats", suffix="steps", hyperparameters={**steps, "training_steps": 30}
    )
    retired = resolved_job(
        "retired", dataset="chats", suffix="retired", on_replace=OnReplace(previous_model="delete")
    )
    before = desired(
        [chats],
        [
            resolved_job("tone-v1", dataset="chats", budget=tight),
            resolved_job(
                "steps",
                dataset="chats",
                suffix="steps",
                hyperparameters={**steps, "training_steps": 32},
            ),
            retired,
        ],
    )
    after = desired(
        [chats, sdk],
        [
            resolved_job("tone", dataset="chats", budget=tight),
            resolved_job("sdk", dataset="sdk", suffix="sdk", budget=tight),
            replace(reverted, budget=tight),
            retired,
            resolved_job("new", dataset="chats", suffix="new"),
        ],
    )
    after = replace(
        after,
        moves={
            "job.tone": DeclaredMove(
                source=Address("job.tone-v1"),
                address=Address("job.tone"),
                location=Location("specs.yaml", 20, 1),
            )
        },
        imports={
            "job.sdk": DeclaredImport(
                address=Address("job.sdk"),
                remote_id="sdk-j",
                location=Location("specs.yaml", 24, 1),
            )
        },
    )
    st = state_with(
        before,
        file_ids={chats.address: "f-1"},
        job_ids={"job.tone-v1": "j-1", "job.steps": "j-3", "job.retired": "j-5"},
    )
    st.resources["job.steps"].history.append(
        {
            "remote_id": "j-2",
            "fine_tuned_model": "ft:2",
            "fingerprint": after.jobs["job.steps"].fingerprint,
        }
    )
    st.resources["job.retired"].history.append(
        {"remote_id": "j-4", "fine_tuned_model": "ft:4", "model_disposition": "delete"}
    )
    ids = {chats.address: "f-1", sdk.address: "sdk-f"}
    done = "SUCCESS"
    obs = observed(
        [
            remote_file("f-1", chats),
            {"id": "sdk-f", "filename": "sdk-export.jsonl", "bytes": sdk.bytes, "created_at": 1},
        ],
        [
            remote_job("j-1", before.jobs["job.tone-v1"], ids, done, fine_tuned_model="ft:1"),
            remote_job("j-2", after.jobs["job.steps"], ids, done, fine_tuned_model="ft:2"),
            remote_job("j-3", before.jobs["job.steps"], ids, "RUNNING"),
            remote_job("j-4", before.jobs["job.retired"], ids, done, fine_tuned_model="ft:4"),
            remote_job("j-5", before.jobs["job.retired"], ids, done, fine_tuned_model="ft:5"),
            remote_job("sdk-j", after.jobs["job.sdk"], ids, done, fine_tuned_model="ft:sdk"),
        ],
        [
            {"id": m, "name": None, "description": None, "archived": False}
            for m in ("ft:1", "ft:2", "ft:4", "ft:5", "ft:sdk")
        ],
    )
    obs.content["sdk-f"] = sdk.sha256  # what hashing the SDK upload's content found
    return after, st, obs


def adoption_sample_plan(*, priced: bool = True) -> Plan:
    """The plan of :func:`_adoption_world`, priced with Mistral's table under a run cap the
    new job's cost just meets (``priced=False``: as layout 1.3 (adoption) made it, without
    local estimates)."""
    ds, st, obs = _adoption_world()
    if not priced:
        return _planned(ds, st, obs, target="mistral https://api.mistral.ai")
    return _planned(
        ds,
        st,
        obs,
        estimator=MISTRAL_RATES,
        budget=RunBudgetLimit(max_cost=4.0, source="--max-cost"),
        target="mistral https://api.mistral.ai",
    )


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
    assert data["format_version"] == "1.6"
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
    # What the reviewer reads next to the costs: labels, the document's place, cancel_first.
    assert changes["job.sweep-lr-1e-4"]["location"] == "specs.yaml:1"
    assert changes["job.sweep-lr-1e-4"]["labels"] == {}
    assert changes["job.tone"]["cancel_first"] is False
    assert data["options"]["selectors"] == [] and data["options"]["max_cost"] is None


def test_markdown_plan_snapshot() -> None:
    check_snapshot("plan.md", render_markdown(sample_plan()))


def test_json_plan_round_trips_through_a_plan_file(tmp_path: Path) -> None:
    plan = sample_plan()
    plan.save(tmp_path / "p.plan")
    assert Plan.load(tmp_path / "p.plan") == plan


def _unpriced_adoption_plan() -> Plan:
    return adoption_sample_plan(priced=False)


OLDER_FORMATS: list[tuple[str, Any, bool, bool]] = [
    # (sample file, the plan it holds as this version makes it, whether the layout had
    # labels and locations, whether it had the cost keys of 1.3 (costs))
    # Format 1.0, before force_new existed; 1.1, before labels and locations, local
    # estimates, errors and the run budget existed: the sample with a dry-run estimate.
    ("1.0", legacy_sample_plan, False, False),
    ("1.1", legacy_sample_plan, False, False),
    # 1.2 with labels and locations.
    ("1.2", legacy_sample_plan, True, False),
    # A 1.2 file that already carries the cost keys of 1.3 (costs), without locations.
    ("1.2-costs", sample_plan, False, True),
    # The two layouts both called 1.3: with the cost keys (the sample priced with Mistral's
    # table), and with the adoption keys (import, move, restore, delete_models; no local
    # estimates then).
    ("1.3-costs", sample_plan, True, True),
    ("1.3-adoption", _unpriced_adoption_plan, True, False),
    # 1.4: both sets of 1.3 in one layout (the sample priced with Mistral's table).
    ("1.4", sample_plan, True, True),
    # 1.5: providers other than Mistral's API, without and with its keys (OpenAI: jobs that
    # start at creation, method and seed, paused updates, estimates by passes over the data).
    ("1.5", sample_plan, True, True),
    ("1.5-openai", lambda: openai_sample_plan(), True, True),
]


@pytest.mark.parametrize(
    ("version", "made_now", "located", "priced"), OLDER_FORMATS, ids=[f[0] for f in OLDER_FORMATS]
)
def test_plan_files_of_older_formats_still_load(
    tmp_path: Path, version: str, made_now: Any, located: bool, priced: bool
) -> None:
    old = json.loads((SNAPSHOTS / f"plan-format-{version}.json").read_text(encoding="utf-8"))
    (tmp_path / "old.plan").write_text(json.dumps({"kind": "reconciler-plan", **old}))
    loaded = Plan.load(tmp_path / "old.plan")
    assert loaded.format_version == version.split("-")[0]
    expected = made_now()
    if not located:
        # Keys a layout did not have take their defaults (labels, location: 1.2).
        unlocated = tuple(c.model_copy(update={"location": None}) for c in expected.changes)
        expected = expected.model_copy(update={"changes": unlocated})
    assert loaded.changes == expected.changes
    # Apart from its version, the file holds the plan this version makes of the same world.
    assert loaded.model_copy(update={"format_version": PLAN_FORMAT_VERSION}) == expected
    if not priced:
        # The cost keys take their defaults: no errors, nothing unestimated, no run budget.
        assert not loaded.errors and not loaded.unestimated and loaded.run_budget is None
    assert render_text(loaded) == render_text(expected)


def test_the_adoption_sample_of_format_1_3_holds_every_adoption_key() -> None:
    # The sample must exercise what it stands for: each action and key of 1.3 (adoption).
    data = json.loads((SNAPSHOTS / "plan-format-1.3-adoption.json").read_text(encoding="utf-8"))
    assert data["format_version"] == "1.3" and "errors" not in data and "costs" not in data
    keys = {k for c in data["changes"] for k in c}
    assert {"moved_from", "import_id", "restores", "delete_models"} <= keys
    assert {"import", "move", "restore"} <= {c["action"] for c in data["changes"]}


def test_adoptions_cost_nothing_next_to_a_priced_job() -> None:
    plan = adoption_sample_plan()
    text, md, data = render_text(plan), render_markdown(plan), json.loads(render_json(plan))
    check_snapshot("plan-adoption.txt", text)
    check_snapshot("plan-adoption.md", md)
    assert data["format_version"] == "1.6"
    actions = {c["address"]: c["action"] for c in data["changes"]}
    assert actions == {
        "dataset.chats[all]": "no-op",
        "dataset.sdk[all]": "import",
        "job.new": "create",
        "job.retired": "update",
        "job.sdk": "import",
        "job.steps": "restore",
        "job.tone": "move",
    }
    # Only the new job is priced, counted and checked against the budgets: the jobs
    # imported, moved or restored carry no cost, and their tight budgets are not exceeded.
    assert [c["address"] for c in data["changes"] if c["cost"] is not None] == ["job.new"]
    assert data["costs"] == {"totals": {"USD": 4.0}, "complete": True, "unestimated": 0}
    assert data["errors"] == [] and data["unestimated"] == {}
    assert data["run_budget"] == {"max_cost": 4.0, "source": "--max-cost"}
    summary = data["summary"]
    assert (summary["import"], summary["move"], summary["restore"]) == (2, 1, 1)
    # One headline: what apply does, the adoptions (no cost), the cost of what it pays for,
    # the storage kept and the storage the model deletion saves.
    headline = (
        "Plan: 1 to add, 1 to change, 0 to replace, 0 to start, 0 to destroy, 0 to forget; "
        "2 to import, 1 to move, 1 to restore (no cost). Estimated cost: 4.00 USD for 1 job(s). "
        "Run budget: 4.00 USD (--max-cost). Fine-tuned models kept: 5 (storage ~$10.00/month "
        "at $2.00 each). Previous models deleted: 1 (saves ~$2.00/month of storage)."
    )
    assert text.splitlines()[-1] == headline
    assert f"**{headline}**" in md
    assert "cost estimate: 4.00 USD (local) + storage 2.00 USD/month" in text
    assert text.count("cost estimate") == 1


def test_a_run_cap_counts_only_what_costs_money() -> None:
    ds, st, obs = _adoption_world()
    capped = _planned(
        ds,
        st,
        obs,
        estimator=MISTRAL_RATES,
        budget=RunBudgetLimit(max_cost=3.0, source="--max-cost"),
    )
    (error,) = capped.errors
    assert "1 job(s)" in error and "4.00 USD" in error


OPENAI = costs.estimator_for(Provider(name="o", type="openai"))


def openai_sample_plan() -> Plan:
    """A plan on a provider that starts jobs as it creates them (OpenAI): a supervised job with
    a seed, a DPO job, one of a model without a price under a budget (an error: nothing can
    hold it), and a running job the spec now holds paused (an update in place)."""
    chats = desired_file("chats", sha="a" * 64, tokens=2_399, samples=19)
    prefs = desired_file("prefs", sha="e" * 64, tokens=1_176, samples=12)
    model = {"model": "gpt-4o-mini-2024-07-18"}
    running = resolved_job("held", dataset="chats", hyperparameters={"epochs": 3}, **model)
    before = desired([chats], [running])
    st = state_with(before, file_ids={chats.address: "f-1"}, job_ids={"job.held": "j-1"})
    obs = observed(
        [remote_file("f-1", chats)],
        [remote_job("j-1", before.jobs["job.held"], {chats.address: "f-1"}, "RUNNING")],
    )
    jobs = [
        replace(running, paused=True),
        resolved_job(
            "tone", dataset="chats", hyperparameters={"epochs": 2}, seed=42, suffix="t", **model
        ),
        resolved_job(
            "tone-dpo",
            dataset="prefs",
            hyperparameters={"beta": 0.1},
            method="dpo",
            suffix="dpo",
            budget=Budget(max_cost=5),
            **model,
        ),
        resolved_job(
            "reasoner",
            dataset="chats",
            model="o4-mini",
            hyperparameters={},
            suffix="r",
            budget=Budget(max_cost=5),
        ),
    ]
    fixed = PlanOptions(
        target_description="openai https://api.openai.com/v1",
        spec_paths=("specs",),
        spec_digest="d" * 64,
        starts_at_create=True,
        storage_cost_per_model=OPENAI.storage_per_month,
    )
    plan = reviewed_plan(
        desired([chats, prefs], jobs), OPENAI, state=st, obs=obs, options=fixed, start_gate=False
    )
    return _fixed(plan)


def test_an_openai_plan_holds_the_keys_of_format_1_5() -> None:
    plan = openai_sample_plan()
    text, data = render_text(plan), json.loads(render_json(plan))
    check_snapshot("plan-openai.txt", text)
    check_snapshot("plan-openai.json", render_json(plan) + "\n")
    assert data["format_version"] == PLAN_FORMAT_VERSION
    changes = {c["address"]: c for c in data["changes"]}
    assert changes["job.held"]["update_fields"] == {"paused": {"before": False, "after": True}}
    assert changes["job.held"]["reason"] == "paused-changed"
    assert "pause job j-1 (in place)" in text
    tone, dpo = changes["job.tone"], changes["job.tone-dpo"]
    assert tone["after"]["starts_at_create"] is True and tone["after"]["request"]["seed"] == 42
    assert "method" not in tone["after"]["request"]  # supervised: as before the key existed
    assert dpo["after"]["request"]["method"] == "dpo"
    # Billed by passes over the data: epochs, not steps; no storage, no minimum.
    basis = tone["cost"]["basis"]
    assert (basis["epochs"], basis["epochs_from"], basis["train_tokens"]) == (2, "epochs", 4_798)
    assert {"steps", "steps_from", "tokens_per_step"}.isdisjoint(basis)
    assert dpo["cost"]["basis"]["epochs_from"] == "default"  # 12 examples: 8 epochs
    assert dpo["cost"]["basis"]["epochs"] == 8 and "storage_per_month" not in dpo["cost"]
    # No start gate: a budget with no estimate is an error; the plan says how budgets hold.
    assert data["errors"] == [
        "job.reasoner: its budget.max_cost 5 cannot be held: the job starts as soon as it is "
        "created and the plan has no estimate of it (no price for model 'o4-mini' on openai: "
        "add it to the Provider's prices, e.g. prices: {o4-mini: {train_per_million_tokens: "
        "...}}); price the model in the Provider's prices, or remove the budget in reasoner"
    ]
    assert data["warnings"][0].startswith("openai starts a job as soon as it is created")
    assert "starts as soon as it is created (budget 5.0 held against this plan's" in text
    assert "Fine-tuned models kept: 3." in text and "storage" not in text.split("Plan: ")[1]


def test_an_openai_plan_round_trips_through_a_plan_file(tmp_path: Path) -> None:
    plan = openai_sample_plan()
    plan.save(tmp_path / "p.plan")
    assert Plan.load(tmp_path / "p.plan") == plan


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
        "Errors (apply will refuse this plan):\n"
        "   x  job.cell-0: estimated cost 2.62 USD (local: 10 steps x 131,072 tokens x 2 USD/M) "
        "is over its budget.max_cost 2; raise budget.max_cost in cell-0 or train less"
    )
    assert "OVER BUDGET: 2.62 USD > budget.max_cost 2" in text
    assert md.index(":x: **3 error(s): apply will refuse this plan.**") < md.index("| action |")
    assert json.loads(render_json(plan))["errors"] == list(plan.errors)


def review_plan() -> Plan:
    """A plan with everything a reviewer must not miss: errors of both kinds (a job over its
    budget, a possible duplicate), warnings, a job without a cost estimate, a cancel-first
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
                budget=Budget(max_cost=1),
            ),
            resolved_job(
                "heavy",
                suffix="heavy",
                training_files=(TrainingInput(dataset="chats", part="all", weight=2.0),),
            ),
            gone,
            twin,
            resolved_job("small", dataset="chats", model="mistral-small-latest", suffix="small"),
        ],
    )
    return _planned(
        after,
        st,
        obs,
        estimator=MISTRAL_RATES,
        target="mistral https://api.mistral.ai",
        notes=("dataset chats: 2 duplicate samples",),
    )


def test_review_plan_snapshots_list_errors_and_warnings_first() -> None:
    plan = review_plan()
    text = render_text(plan)
    check_snapshot("plan-review.txt", text)
    md = render_markdown(plan)
    check_snapshot("plan-review.md", md)
    # Both kinds of errors in one list, the plan's own (a budget) first, then the warnings,
    # all before any action.
    (twin,) = [c for c in plan.changes if c.blocked]
    assert len(plan.errors) == 1 and twin.address == "job.twin"
    assert plan.all_errors == [*plan.errors, f"job.twin: {twin.blocked}"]
    for rendered, actions in ((text, "will perform the following actions"), (md, "<details>")):
        budget = rendered.index("job.tone: estimated cost 4.00 USD")
        error = rendered.index("reconciler import job.twin j-7")
        warning = rendered.index("2 duplicate samples")
        assert budget < error < warning < rendered.index(actions)
    assert text.startswith("Errors (apply will refuse this plan):\n   x  job.tone: estimated")
    assert ":x: **2 error(s): apply will refuse this plan.**" in md
    assert "hyperparameters.training_steps: 10 → 12" in text
    assert "training_files[0].weight: 1.0 → 2.0" in text
    assert "cancel before create: previous job j-2 (RUNNING)" in text
    # The headline: what apply does, what else differs, and the cost as a lower bound.
    headline = (
        "to forget. Also 1 drifted, 1 not in spec. Estimated cost: at least 12.00 USD for "
        "4 job(s); 1 job(s) could not be estimated."
    )
    assert headline in text.splitlines()[-1]
    assert headline in md
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


RAY = costs.estimator_for(
    Provider(
        name="r",
        type="ray",
        address="http://127.0.0.1:8265",
        storage="s",
        resources={"gpus": 2},
        price_per_gpu_hour=2.5,
        tokens_per_gpu_second=1_000,
    )
)


def ray_sample_plan() -> Plan:
    """A plan on a Ray cluster of one's own: a LoRA job sized in steps, one in epochs on two
    GPUs' worth of processes, priced in GPU-hours; jobs start at creation, and keeping an
    adapter costs nothing."""
    chats = desired_file("chats", sha="a" * 64, tokens=2_400, samples=24)
    model = {"model": "mistralai/Mistral-7B-v0.3"}
    jobs = [
        resolved_job(
            "tone",
            dataset="chats",
            hyperparameters={"training_steps": 100, "seq_len": 2048},
            lora=LoraSpec(rank=16),
            budget=Budget(max_cost=1),
            **model,
        ),
        resolved_job("tone-epochs", dataset="chats", hyperparameters={"epochs": 3}, **model),
    ]
    fixed = PlanOptions(
        target_description="ray http://127.0.0.1:8265 (storage /data/ft)",
        spec_paths=("specs",),
        spec_digest="d" * 64,
        starts_at_create=True,
        storage_cost_per_model=RAY.storage_per_month,
    )
    plan = reviewed_plan(desired([chats], jobs), RAY, options=fixed, start_gate=False)
    return _fixed(plan)


def test_a_ray_plan_holds_the_keys_of_format_1_6() -> None:
    plan = ray_sample_plan()
    text, data = render_text(plan), json.loads(render_json(plan))
    check_snapshot("plan-ray.txt", text)
    check_snapshot("plan-ray.json", render_json(plan) + "\n")
    assert data["format_version"] == PLAN_FORMAT_VERSION == "1.6"
    changes = {c["address"]: c for c in data["changes"]}
    tone, epochs = changes["job.tone"], changes["job.tone-epochs"]
    assert tone["after"]["request"]["lora"] == {"rank": 16}
    assert "lora" not in epochs["after"]["request"]  # unset: as before the key existed
    assert tone["after"]["starts_at_create"] is True
    # 100 steps x 1 sample x 2 processes x 100 tokens (the files' mean) = 20,000 tokens;
    # at 1,000 tokens per GPU-second: 20 GPU-seconds; x 2.5 USD per GPU-hour.
    basis = tone["cost"]["basis"]
    assert (basis["steps"], basis["steps_from"], basis["tokens_per_step"]) == (
        100,
        "training_steps",
        200,
    )
    assert basis["gpu_hours"] == round(20_000 / 1_000 / 3600, 6)
    assert (basis["price_per_gpu_hour"], basis["tokens_per_gpu_second"]) == (2.5, 1_000)
    assert tone["cost"]["amount"] == round(20_000 / 1_000 / 3600 * 2.5, 4)
    assert "storage_per_month" not in tone["cost"]
    # 3 epochs of 24 samples, 2 per step: 36 steps.
    assert (epochs["cost"]["basis"]["steps"], epochs["cost"]["basis"]["steps_from"]) == (
        36,
        "epochs",
    )
    assert "LoRA rank 16" in text
    assert "GPU-hours at 2.5 USD/GPU-hour" in text
    assert "starts as soon as it is created (budget 1.0 held against this plan's" in text
    # Adapters are in one's own storage: no storage line.
    assert "storage ~" not in text and data["errors"] == []
