"""``operations.apply_workspace`` in-process, against a sandbox on 127.0.0.1: the order of
show, confirm and writes, cancellation, saved plans, and the post-wait model sync."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from reconciler.engine.plan import (
    Action,
    CostEstimate,
    CostSource,
    Disposition,
    JobChange,
    JobPrevious,
    Plan,
    Reason,
    approval_differences,
)
from reconciler.errors import PlanError, ReconcilerError, StalePlanError
from reconciler.operations import (
    ApplyRequest,
    PlanRequest,
    apply_workspace,
    plan_workspace,
    sync_models,
)
from reconciler.workspace import open_workspace
from tests.engine.conftest import SANDBOX_KEY, mutating
from tests.engine.project import SANDBOX_KEY_ENV, make_project
from tests.postgres.pg_helpers import DSN_ENV, E2E_DSN_ENV


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the projects' specs refer to (as ``cli_env`` gives the CLI)."""
    monkeypatch.setenv(SANDBOX_KEY_ENV, SANDBOX_KEY)
    if os.environ.get(DSN_ENV):  # the postgres state backend, when the run uses it
        monkeypatch.setenv(E2E_DSN_ENV, os.environ[DSN_ENV])


@pytest.fixture
def project(tmp_path: Path, sandbox: Any) -> Path:
    return make_project(tmp_path / "project", endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)


def test_confirm_comes_after_show_and_before_any_write(project: Path, sandbox: Any) -> None:
    calls: list[str] = []

    def show(plan: Plan) -> None:
        calls.append(f"show {plan.summary()['create']}")

    def refuse(plan: Plan) -> bool:
        calls.append("confirm")
        return False

    with open_workspace([project]) as ws:
        with pytest.raises(ReconcilerError, match="Apply cancelled"):
            apply_workspace(ws, ApplyRequest(), show=show, confirm=refuse)
        assert ws.backend.read() is None
    assert calls == ["show 2", "confirm"]
    assert mutating(sandbox.journal()) == []


def test_apply_then_nothing_to_do_then_saved_plans(project: Path, sandbox: Any) -> None:
    with open_workspace([project]) as ws:
        planned = plan_workspace(ws, PlanRequest(estimate=False))
        saved = planned.plan
        applied = apply_workspace(ws, ApplyRequest(start_timeout=30), confirm=lambda p: True)
        assert applied.result is not None and not applied.result.failures
        assert applied.result.applied == 2
        serial = applied.result.serial

        asked: list[Plan] = []
        again = apply_workspace(ws, ApplyRequest(), confirm=lambda p: asked.append(p) or True)
        assert again.result is None and not again.plan.has_changes and asked == []

        # A plan saved before that apply is stale now, and nothing is written.
        with pytest.raises(StalePlanError, match="before any state existed"):
            apply_workspace(ws, ApplyRequest(saved=saved))
        state = ws.backend.read()
        assert state is not None and state.serial == serial


def test_a_saved_plan_is_applied_without_asking_and_keeps_its_options(
    project: Path, sandbox: Any
) -> None:
    with open_workspace([project]) as ws:
        saved = plan_workspace(ws, PlanRequest(estimate=False)).plan
        with pytest.raises(PlanError, match="cannot change a saved plan"):
            ApplyRequest(plan=PlanRequest(prune=True), saved=saved)
        elsewhere = saved.model_copy(update={"target": "sandbox http://elsewhere"})
        with pytest.raises(PlanError, match="targets sandbox http://elsewhere"):
            apply_workspace(ws, ApplyRequest(saved=elsewhere))

        def never(plan: Plan) -> bool:
            raise AssertionError("a saved plan was reviewed when it was saved")

        applied = apply_workspace(ws, ApplyRequest(saved=saved, start_timeout=30), confirm=never)
        # The plan applied is made anew and does what the saved one approved.
        assert applied.plan is not saved and approval_differences(saved, applied.plan) == []
        assert applied.result is not None and applied.result.applied == 2


def test_a_saved_plan_applied_again_after_the_state_was_lost_creates_nothing(
    project: Path, sandbox: Any
) -> None:
    # Before: both sides had no lineage and the saved plan was never checked against the
    # remote, so every job was created twice.
    with open_workspace([project]) as ws:
        saved = plan_workspace(ws, PlanRequest(estimate=False)).plan
        apply_workspace(ws, ApplyRequest(saved=saved, start_timeout=30))
        creates = len(
            [e for e in mutating(sandbox.journal()) if e["path"] == "/v1/fine_tuning/jobs"]
        )
        assert creates == 1
        state_file = project / ".reconciler" / "state.json"
        if state_file.exists():
            state_file.unlink()
        else:  # another backend: forget everything it records
            state = ws.backend.read()
            assert state is not None
            stored = ws.backend.write(state.model_copy(update={"resources": {}}), state.serial)
            saved = saved.model_copy(update={"lineage": stored.lineage, "serial": stored.serial})
        mark = len(sandbox.journal())
        with pytest.raises(StalePlanError) as caught:
            apply_workspace(ws, ApplyRequest(saved=saved, start_timeout=30))
        message = str(caught.value)
        assert "job.job0: blocked: null → " in message and "possible duplicate" in message
        assert "dataset.d0[all]: after.reuse: null → " in message
        assert "Run 'reconciler plan' again" in message
        assert mutating(sandbox.journal()[mark:]) == []


def test_a_hand_edited_saved_plan_is_refused(project: Path, sandbox: Any) -> None:
    with open_workspace([project]) as ws:
        apply_workspace(ws, ApplyRequest(start_timeout=30))
        # A job the state does not manage.
        client = ws.client()
        state = ws.backend.read()
        assert state is not None
        request = {
            "model": "open-mistral-7b",
            "training_files": [{"file_id": state.resources["dataset.d0[all]"].remote_id}],
            "hyperparameters": {"training_steps": 3},
            "suffix": "theirs",
            "auto_start": False,
        }
        theirs = client.create_job(request)
        saved = plan_workspace(ws, PlanRequest(estimate=False)).plan
        assert not saved.has_changes
        # Turn the no-op into a replace that cancels their job.
        noop = next(c for c in saved.changes if c.address == "job.job0")
        assert isinstance(noop, JobChange) and noop.before is not None
        edited_change = noop.model_copy(
            update={
                "action": Action.REPLACE,
                "reason": Reason.REPLACE_BY_REQUEST,
                "force_new": True,
                "previous": JobPrevious(
                    id=theirs.id,
                    status=theirs.status,
                    disposition=Disposition.CANCEL,
                    model_disposition=None,
                ),
            }
        )
        edited = saved.model_copy(
            update={"changes": tuple(edited_change if c is noop else c for c in saved.changes)}
        )
        mark = len(sandbox.journal())
        with pytest.raises(StalePlanError) as caught:
            apply_workspace(ws, ApplyRequest(saved=edited))
        assert 'job.job0: action: "replace" → "no-op"' in str(caught.value)
        assert f'job.job0: previous.id: "{theirs.id}" → null' in str(caught.value)
        assert mutating(sandbox.journal()[mark:]) == []
        assert client.get_job(theirs.id).status != "CANCELLED"


def test_sync_models_applies_the_model_metadata_once_the_job_succeeded(
    tmp_path: Path, sandbox: Any
) -> None:
    project = make_project(
        tmp_path / "project",
        endpoint=sandbox.base_url,
        n_datasets=1,
        n_jobs=1,
        steps=2,
        extra_job_fields="fine_tuned_model: {name: tuned-t0}\n",
    )
    with open_workspace([project]) as ws:
        assert sync_models(ws) is None  # nothing applied yet: no model to update
        apply_workspace(ws, ApplyRequest(start_timeout=30))
        state = ws.backend.read()
        assert state is not None
        client = ws.client()
        job_id = state.resources["job.job0"].remote_id
        deadline = time.monotonic() + 60
        while client.get_job(job_id).status != "SUCCESS" and time.monotonic() < deadline:
            time.sleep(0.05)
        mark = len(sandbox.journal())
        result = sync_models(ws)
        assert result is not None and not result.failures
        assert [(o.address, o.action) for o in result.outcomes] == [("job.job0", Action.UPDATE)]
        writes = mutating(sandbox.journal()[mark:])
        assert [(e["method"], e["path"].split("/")[3]) for e in writes] == [("PATCH", "models")]
        model = client.get_model(str(client.get_job(job_id).fine_tuned_model))
        assert model.model_dump().get("name") == "tuned-t0"
        assert sync_models(ws) is None


def test_a_plan_over_budget_is_shown_then_refused_before_anything_is_written(
    project: Path, sandbox: Any
) -> None:
    shown: list[Plan] = []

    def never(plan: Plan) -> bool:
        raise AssertionError("a plan with errors is refused before confirmation")

    with open_workspace([project]) as ws:
        capped = ApplyRequest(plan=PlanRequest(max_cost=1.0))
        with pytest.raises(PlanError, match="apply refuses this plan; nothing was done"):
            apply_workspace(ws, capped, show=shown.append, confirm=never)
        assert len(shown) == 1 and shown[0].errors
        # A saved plan within no cap, applied with one it exceeds (the job costs 2.62 USD).
        saved = plan_workspace(ws, PlanRequest()).plan
        assert saved.errors == () and saved.cost_totals() == {"USD": 2.6214}
        with pytest.raises(PlanError, match=r"over the run's cap of 1\.00 USD \(--max-cost\)"):
            apply_workspace(ws, ApplyRequest(plan=PlanRequest(max_cost=1.0), saved=saved))
        assert ws.backend.read() is None
    assert mutating(sandbox.journal()) == []


def _costing(plan: Plan, amount: float, source: CostSource) -> Plan:
    """The saved plan with its one new job's estimate changed (as a remote or a hand would)."""
    changes = tuple(
        c.model_copy(update={"cost": CostEstimate(amount=amount, currency="USD", source=source)})
        if c.address == "job.job0"
        else c
        for c in plan.changes
    )
    return plan.model_copy(update={"changes": changes})


def test_a_saved_plan_s_budgets_are_checked_on_the_plan_made_now(
    project: Path, sandbox: Any
) -> None:
    with open_workspace([project]) as ws:
        saved = plan_workspace(ws, PlanRequest(max_cost=3.0)).plan
        assert saved.errors == () and saved.options.max_cost == 3.0
        # Edited to cost less than apply computes now (2.62 USD): the local figure counts.
        cheap = _costing(saved, 0.01, CostSource.LOCAL)
        with pytest.raises(
            PlanError, match=r"2\.62 USD for 1 job\(s\), is over the run's cap of 1"
        ):
            apply_workspace(ws, ApplyRequest(plan=PlanRequest(max_cost=1.0), saved=cheap))
        # A higher figure the reviewer saw (the remote's dry run) counts, against the saved
        # plan's own cap: the plan was over it when reviewed, and still is.
        dear = _costing(saved, 3.5, CostSource.DRY_RUN)
        shown: list[Plan] = []
        with pytest.raises(
            PlanError, match=r"3\.50 USD for 1 job\(s\), is over the run's cap of 3"
        ):
            apply_workspace(ws, ApplyRequest(saved=dear), show=shown.append)
        (job,) = shown[0].costly
        assert job.cost is not None and job.cost.source is CostSource.DRY_RUN
        assert ws.backend.read() is None
    assert mutating(sandbox.journal()) == []


def test_exact_tokens_count_the_data_with_mistral_s_tokenizer(project: Path) -> None:
    pytest.importorskip("mistral_common", reason="the 'tokens' extra is not installed")
    with open_workspace([project]) as ws:
        plans = {
            exact: plan_workspace(ws, PlanRequest(exact_tokens=exact)).plan
            for exact in (False, True)
        }
    bases = {}
    for exact, plan in plans.items():
        (job,) = plan.costly
        assert job.cost is not None and job.cost.basis is not None
        bases[exact] = job.cost.basis
    assert (bases[False].token_count, bases[True].token_count) == ("approx", "exact")
    # Four short chat samples: a few dozen tokens either way, counted differently.
    assert 0 < bases[True].data_tokens != bases[False].data_tokens > 0
