"""Table-driven tests of the pure planner: (desired, state, observed) → actions and reasons."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.engine.plan import (
    Action,
    CostEstimate,
    CostSource,
    Disposition,
    FieldUpdate,
    FileAfter,
    FilePrevious,
    ModelDisposition,
    Reason,
)
from reconciler.engine.planner import PlanOptions, build_plan, jobs_to_create, matches
from reconciler.spec.models import FineTunedModelSpec, OnReplace
from tests.engine.factories import (
    desired,
    desired_file,
    observed,
    remote_file,
    remote_job,
    resolved_job,
    state_with,
)

F = desired_file()
J = resolved_job()
DS = desired([F], [J])
FA, JA = F.address, "job.j"


def _actions(plan: Any) -> list[tuple[str, str, str]]:
    return [(c.address, c.action.value, c.reason) for c in plan.changes]


def test_first_plan_creates_file_then_job() -> None:
    plan = build_plan(DS, None, observed(), PlanOptions())
    assert _actions(plan) == [(FA, "create", "not-in-state"), (JA, "create", "not-in-state")]
    assert plan.changes[1].depends_on == (FA,)
    assert plan.lineage is None and plan.serial is None


def _in_sync_world(status: str = "RUNNING", **job_extra: Any) -> tuple[Any, Any]:
    st = state_with(DS, file_ids={FA: "f1"}, job_ids={JA: "j1"})
    obs = observed(
        [remote_file("f1", F)], [remote_job("j1", DS.jobs[JA], {FA: "f1"}, status, **job_extra)]
    )
    return st, obs


CASES: list[tuple[str, str, list[tuple[str, str, str]], list[str]]] = [
    # (name, remote job status, expected actions, expected drift kinds)
    ("running job is in sync", "RUNNING", [(FA, "no-op", "in-sync"), (JA, "no-op", "in-sync")], []),
    (
        "job still validating after an interrupted apply is started once validated",
        "VALIDATING",
        [(FA, "no-op", "in-sync"), (JA, "start", "awaiting-validation")],
        [],
    ),
    (
        "validated job is started",
        "VALIDATED",
        [(FA, "no-op", "in-sync"), (JA, "start", "validated-not-started")],
        [],
    ),
    (
        "failed job is drift, not retried",
        "FAILED",
        [(FA, "no-op", "in-sync"), (JA, "no-op", "in-sync")],
        ["failed"],
    ),
    (
        "cancelled outside is drift",
        "CANCELLED",
        [(FA, "no-op", "in-sync"), (JA, "no-op", "in-sync")],
        ["cancelled"],
    ),
    (
        "bad data is drift",
        "FAILED_VALIDATION",
        [(FA, "no-op", "in-sync"), (JA, "no-op", "in-sync")],
        ["failed-validation"],
    ),
]


@pytest.mark.parametrize(("name", "status", "expected", "drift"), CASES, ids=[c[0] for c in CASES])
def test_job_status_table(name: str, status: str, expected: list[Any], drift: list[str]) -> None:
    st, obs = _in_sync_world(status)
    plan = build_plan(DS, st, obs, PlanOptions())
    assert _actions(plan) == expected
    assert [d.kind for d in plan.drift] == drift
    assert plan.lineage == "L" and plan.serial == 3


def test_changed_hyperparameter_forces_replace_and_names_field() -> None:
    st, obs = _in_sync_world("RUNNING")
    changed = desired(
        [F], [resolved_job(hyperparameters={"training_steps": 20, "learning_rate": 1e-4})]
    )
    plan = build_plan(changed, st, obs, PlanOptions())
    change = plan.changes[1]
    assert (change.action, change.reason) == (Action.REPLACE, "spec-changed")
    assert change.replace_paths == ("hyperparameters.training_steps",)
    assert change.previous is not None and change.previous.model_dump(mode="json") == {
        "id": "j1",
        "status": "RUNNING",
        "disposition": "cancel",
        "fine_tuned_model": None,
        "model_disposition": None,
    }


def test_replace_keeps_finished_job_and_honours_keep_policy() -> None:
    st, obs = _in_sync_world("SUCCESS", fine_tuned_model="ft:open-mistral-7b:x:20260101:j1")
    changed = desired(
        [F],
        [
            resolved_job(
                suffix="v2", on_replace=OnReplace(active_job="keep", previous_model="archive")
            )
        ],
    )
    plan = build_plan(changed, st, obs, PlanOptions())
    change = plan.changes[1]
    assert change.action is Action.REPLACE and change.replace_paths == ("suffix",)
    assert change.previous is not None
    assert change.previous.disposition is Disposition.KEEP
    assert change.previous.model_disposition is ModelDisposition.ARCHIVE


def test_changed_data_uploads_new_file_and_replaces_job() -> None:
    st, obs = _in_sync_world("SUCCESS")
    f2 = desired_file(sha="b" * 64)
    plan = build_plan(desired([f2], [J]), st, obs, PlanOptions())
    assert [(c.action.value, c.reason) for c in plan.changes] == [
        ("replace", "content-changed"),
        ("replace", "spec-changed"),
    ]
    assert plan.changes[0].previous == FilePrevious(id="f1", disposition=Disposition.KEEP)
    assert "training_files[0].sha256" in plan.changes[1].replace_paths


def test_file_deleted_remotely_is_drift_and_reuploaded() -> None:
    st, obs = _in_sync_world("RUNNING")
    obs.files.clear()
    plan = build_plan(DS, st, obs, PlanOptions())
    assert plan.changes[0].action is Action.CREATE and plan.changes[0].reason == "deleted-remotely"
    assert plan.changes[0].force_new  # apply must not take the record as already made
    assert [d.kind for d in plan.drift] == ["deleted"]


def test_identical_remote_file_is_reused_not_reuploaded() -> None:
    obs = observed([remote_file("f9", F)])
    plan = build_plan(DS, None, obs, PlanOptions())
    assert plan.changes[0].reason == "exists-remotely-identical"
    after = plan.changes[0].after
    assert isinstance(after, FileAfter) and after.reuse == "f9"


def test_unmanaged_matching_job_is_blocked_as_possible_duplicate() -> None:
    st = state_with(DS, file_ids={FA: "f1"}, job_ids={})
    obs = observed([remote_file("f1", F)], [remote_job("j7", DS.jobs[JA], {FA: "f1"}, "SUCCESS")])
    plan = build_plan(DS, st, obs, PlanOptions())
    change = plan.changes[1]
    assert change.action is Action.CREATE
    assert change.blocked and "reconciler import job.j j7" in change.blocked


def test_unrelated_remote_job_is_not_a_duplicate() -> None:
    st = state_with(DS, file_ids={FA: "f1"}, job_ids={})
    other = remote_job("j7", DS.jobs[JA], {FA: "f1"}, "SUCCESS")
    other["hyperparameters"]["learning_rate"] = 5e-5
    plan = build_plan(DS, st, observed([remote_file("f1", F)], [other]), PlanOptions())
    assert plan.changes[1].blocked is None


def test_model_metadata_updates_in_place() -> None:
    spec = FineTunedModelSpec(name="dumbledore", description="wise", archived=True)
    ds = desired([F], [resolved_job(fine_tuned_model=spec)])
    st = state_with(ds, file_ids={FA: "f1"}, job_ids={JA: "j1"})
    obs = observed(
        [remote_file("f1", F)],
        [remote_job("j1", ds.jobs[JA], {FA: "f1"}, "SUCCESS", fine_tuned_model="ft:m")],
        [{"id": "ft:m", "name": None, "description": "wise", "archived": False}],
    )
    plan = build_plan(ds, st, obs, PlanOptions())
    change = plan.changes[1]
    assert (change.action, change.reason) == (Action.UPDATE, "model-metadata-changed")
    assert change.update_fields == {
        "name": FieldUpdate(before=None, after="dumbledore"),
        "archived": FieldUpdate(before=False, after=True),
    }
    assert plan.models_kept == 1


def test_removed_from_specs_needs_prune() -> None:
    st, obs = _in_sync_world("RUNNING")
    empty = desired([], [])
    plan = build_plan(empty, st, obs, PlanOptions())
    assert plan.changes == () and plan.not_in_spec == (FA, JA)
    pruned = build_plan(empty, st, obs, PlanOptions(prune=True))
    assert [(c.address, c.action.value) for c in pruned.changes] == [(JA, "forget"), (FA, "delete")]
    previous = pruned.changes[0].previous
    assert previous is not None and previous.disposition is Disposition.CANCEL


def test_replace_by_request_and_targets() -> None:
    st, obs = _in_sync_world("SUCCESS")
    plan = build_plan(DS, st, obs, PlanOptions(replace=("job.j",)))
    assert plan.changes[1].reason == "replace-by-request" and plan.changes[1].force_new
    other = resolved_job("k", dataset="e")
    fe = desired_file("e", sha="c" * 64)
    both = desired([F, fe], [J, other])
    targeted = build_plan(both, None, observed(), PlanOptions(targets=("job.k",)))
    assert [c.address for c in targeted.changes] == ["dataset.e[all]", "job.k"]
    assert any("--target" in w for w in targeted.warnings)


@pytest.mark.parametrize(
    ("address", "pattern", "expected"),
    [
        ("job.sweep-lr-1e-4", "job.sweep", True),
        ("job.sweeper", "job.sweep", False),
        ("dataset.d[train]", "dataset.d", True),
        ("dataset.d[train]", "dataset.d[train]", True),
        ("job.a", "job.*", True),
        ("job.a", "dataset.*", False),
    ],
)
def test_address_patterns(address: str, pattern: str, expected: bool) -> None:
    assert matches(address, [pattern]) is expected


def test_second_plan_after_apply_is_noop_and_serializes() -> None:
    st, obs = _in_sync_world("SUCCESS")
    plan = build_plan(DS, st, obs, PlanOptions(spec_digest="d"))
    assert not plan.has_changes
    data = plan.to_json_dict()
    assert data["summary"]["no-op"] == 2 and data["has_changes"] is False


def test_jobs_to_create_names_what_build_plan_creates_and_estimates_land_there() -> None:
    st, obs = _in_sync_world("SUCCESS")
    new = resolved_job("new", dataset="d", suffix="n")
    ds = desired([F], [J, new])
    options = PlanOptions(replace=("job.j",))
    assert jobs_to_create(ds, st, obs, options) == ["job.j", "job.new"]
    estimate = CostEstimate(amount=1.5, currency="USD", source=CostSource.DRY_RUN)
    plan = build_plan(ds, st, obs, replace(options, estimates={"job.new": estimate}))
    assert [(c.address, c.action, c.cost) for c in plan.changes] == [
        (FA, Action.NOOP, None),
        (JA, Action.REPLACE, None),
        ("job.new", Action.CREATE, estimate),
    ]
    assert not any(c.force_new for c in plan.changes if c.address != JA)
    assert jobs_to_create(ds, st, obs, PlanOptions(targets=("dataset.d",))) == []


def test_the_plan_is_frozen_and_changed_only_by_copies() -> None:
    plan = build_plan(DS, None, observed(), PlanOptions(notes=("a dataset warning",)))
    assert plan.warnings == ("a dataset warning",)
    with pytest.raises(ValidationError):
        plan.changes[0].reason = Reason.IN_SYNC  # type: ignore[misc]
    with pytest.raises(ValidationError):
        plan.warnings = ()  # type: ignore[misc]
    only_jobs = plan.only({Action.CREATE}).model_copy(update={"warnings": ()})
    assert only_jobs.warnings == () and plan.warnings == ("a dataset warning",)
