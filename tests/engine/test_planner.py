"""Table-driven tests of the pure planner: (desired, state, observed) → actions and reasons."""

from __future__ import annotations

import dataclasses
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
    FileChange,
    FilePrevious,
    JobChange,
    ModelDisposition,
    Reason,
)
from reconciler.engine.planner import PlanOptions, build_plan, matches
from reconciler.errors import PlanError, StateError
from reconciler.spec.models import FineTunedModelSpec, OnReplace
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


def test_only_the_jobs_the_plan_pays_for_are_priced_and_their_estimates_land_there() -> None:
    st, obs = _in_sync_world("SUCCESS")
    new = resolved_job("new", dataset="d", suffix="n")
    ds = desired([F], [J, new])
    estimate = CostEstimate(amount=1.5, currency="USD", source=CostSource.LOCAL)
    priced: list[str] = []

    def price(job: Any) -> CostEstimate | None:
        priced.append(job.address)
        return estimate if job.address == "job.new" else None

    plan = build_plan(ds, st, obs, PlanOptions(replace=("job.j",), price=price))
    assert sorted(priced) == ["job.j", "job.new"]
    assert [(c.address, c.action, c.cost) for c in plan.changes] == [
        (FA, Action.NOOP, None),
        (JA, Action.REPLACE, None),
        ("job.new", Action.CREATE, estimate),
    ]
    assert not any(c.force_new for c in plan.changes if c.address != JA)
    # A job in sync costs nothing and is not priced; nor is a job the targets leave out.
    priced.clear()
    build_plan(ds, st, obs, PlanOptions(price=price))
    assert priced == ["job.new"]
    priced.clear()
    build_plan(ds, st, obs, PlanOptions(targets=("dataset.d",), price=price))
    assert priced == []


def test_the_plan_is_frozen_and_changed_only_by_copies() -> None:
    plan = build_plan(DS, None, observed(), PlanOptions(notes=("a dataset warning",)))
    assert plan.warnings == ("a dataset warning",)
    with pytest.raises(ValidationError):
        plan.changes[0].reason = Reason.IN_SYNC  # type: ignore[misc]
    with pytest.raises(ValidationError):
        plan.warnings = ()  # type: ignore[misc]
    only_jobs = plan.only({Action.CREATE}).model_copy(update={"warnings": ()})
    assert only_jobs.warnings == () and plan.warnings == ("a dataset warning",)


# -- one identity (issue 13, problem 1) -------------------------------------------------------


@pytest.mark.parametrize(
    ("reported", "blocked"),
    [({}, True), ({"warmup_fraction": 0.05}, True), ({"warmup_fraction": 0.2}, False)],
    ids=["default not reported", "default reported", "another warmup"],
)
def test_a_possible_duplicate_is_compared_with_the_remotes_defaults(
    reported: dict[str, Any], blocked: bool
) -> None:
    # The spec leaves warmup_fraction to the remote (default 0.05): a job trained with 0.2 is
    # not the job it asks for, one reporting the default is.
    st = state_with(DS, file_ids={FA: "f1"}, job_ids={})
    remote = remote_job("j7", DS.jobs[JA], {FA: "f1"}, "SUCCESS")
    remote["hyperparameters"].update(reported)
    plan = build_plan(DS, st, observed([remote_file("f1", F)], [remote]), PlanOptions())
    assert bool(plan.changes[1].blocked) is blocked


@pytest.mark.parametrize(
    ("status", "blocked"),
    [
        ("SUCCESS", True),
        ("RUNNING", True),
        ("FAILED", True),
        ("CANCELLATION_REQUESTED", False),
        ("CANCELLED", False),
    ],
)
def test_a_cancelled_remote_job_is_not_a_possible_duplicate(status: str, blocked: bool) -> None:
    # A job that a proxy made of a dry_run request, which plan --remote-estimate cancelled at
    # once, trained nothing: it must not block the create of the job it was priced for.
    st = state_with(DS, file_ids={FA: "f1"}, job_ids={})
    remote = remote_job("j7", DS.jobs[JA], {FA: "f1"}, status)
    plan = build_plan(DS, st, observed([remote_file("f1", F)], [remote]), PlanOptions())
    assert plan.changes[1].action is Action.CREATE
    assert bool(plan.changes[1].blocked) is blocked


def test_a_job_an_address_held_before_is_not_a_duplicate_but_one_an_orphan_holds_is() -> None:
    other = resolved_job("other", dataset="d", suffix="o")
    ds = desired([F], [J, other])
    st = state_with(ds, file_ids={FA: "f1"}, job_ids={"job.other": "j2"})
    # job.other replaced j1 (made from job.j's request) earlier: j1 is its history.
    st.resources["job.other"].history.append({"remote_id": "j1"})
    obs = observed(
        [remote_file("f1", F)],
        [
            remote_job("j1", ds.jobs[JA], {FA: "f1"}, "SUCCESS"),
            remote_job("j2", ds.jobs["job.other"], {FA: "f1"}, "RUNNING"),
        ],
    )
    assert build_plan(ds, st, obs, PlanOptions()).changes[1].blocked is None
    # job.other leaves the specs while job.j asks for its exact request: the create is
    # blocked with the way to move the job, and the prune does not cancel it.
    renamed = desired([F], [resolved_job("j", dataset="d", suffix="o")])
    plan = build_plan(renamed, st, obs, PlanOptions(prune=True))
    create, forget = plan.changes[1], plan.changes[2]
    assert create.blocked is not None
    assert "managed as job.other, which the specs no longer name" in create.blocked
    assert "'reconciler state rm job.other' then 'reconciler import job.j j2'" in create.blocked
    assert (forget.address, forget.action) == ("job.other", Action.FORGET)
    assert forget.previous is not None and forget.previous.disposition is Disposition.KEEP


def test_a_state_binding_one_job_to_two_addresses_is_refused() -> None:
    two = desired([F], [J, resolved_job("k", dataset="d", suffix="k")])
    st = state_with(two, file_ids={FA: "f1"}, job_ids={JA: "j1", "job.k": "j1"})
    with pytest.raises(StateError) as caught:
        build_plan(two, st, observed(), PlanOptions())
    message = str(caught.value)
    assert "remote job j1: held by job.j and job.k" in message
    assert "reconciler state rm job.k" in message


# -- replacement and 409 (problem 6) ----------------------------------------------------------

_WEIGHT = (TrainingInput(dataset="d", part="all", weight=2.0),)

CANCEL_FIRST_CASES: list[tuple[str, dict[str, Any], tuple[str, ...], str, bool, bool]] = [
    # (name, spec change, --replace, remote status, cancel_first, blocked)
    ("--replace of a running job", {}, ("job.j",), "RUNNING", True, False),
    ("only a training-file weight", {"training_files": _WEIGHT}, (), "RUNNING", True, False),
    (
        "only the skip percentage",
        {"invalid_sample_skip_percentage": 0.2},
        (),
        "VALIDATED",
        True,
        False,
    ),
    (
        "other steps: not similar",
        {"hyperparameters": {"training_steps": 20, "learning_rate": 1e-4}},
        (),
        "RUNNING",
        False,
        False,
    ),
    ("a finished job does not block", {"training_files": _WEIGHT}, (), "SUCCESS", False, False),
    (
        "keep policy: cannot be created while it runs",
        {"training_files": _WEIGHT, "on_replace": OnReplace(active_job="keep")},
        (),
        "RUNNING",
        False,
        True,
    ),
]


@pytest.mark.parametrize(
    ("name", "spec", "replace", "status", "cancel_first", "blocked"),
    CANCEL_FIRST_CASES,
    ids=[c[0] for c in CANCEL_FIRST_CASES],
)
def test_a_replacement_the_remote_would_refuse_cancels_first(
    name: str,
    spec: dict[str, Any],
    replace: tuple[str, ...],
    status: str,
    cancel_first: bool,
    blocked: bool,
) -> None:
    st, obs = _in_sync_world(status)
    plan = build_plan(desired([F], [resolved_job(**spec)]), st, obs, PlanOptions(replace=replace))
    change = plan.changes[1]
    assert change.action is Action.REPLACE
    assert isinstance(change, JobChange) and change.cancel_first is cancel_first
    assert bool(change.blocked) is blocked
    if blocked:
        assert "on_replace.active_job" in str(change.blocked)


# -- shared files (problem 8) -----------------------------------------------------------------


def test_a_file_another_address_or_a_job_still_uses_is_forgotten_not_deleted() -> None:
    # dataset.a and dataset.b resolve to one remote file (same content and filename).
    fa = dataclasses.replace(desired_file("a"), filename=F.filename, fingerprint=F.fingerprint)
    fb = dataclasses.replace(desired_file("b"), filename=F.filename, fingerprint=F.fingerprint)
    on_b = resolved_job("j", dataset="b")
    before = desired([fa, fb], [on_b])
    st = state_with(before, file_ids={fa.address: "f1", fb.address: "f1"}, job_ids={JA: "j1"})
    obs = observed([remote_file("f1", fb)], [remote_job("j1", before.jobs[JA], {fb.address: "f1"})])
    plan = build_plan(desired([fb], [on_b]), st, obs, PlanOptions(prune=True))
    prune = plan.changes[-1]
    assert isinstance(prune, FileChange)
    assert (prune.address, prune.action) == (fa.address, Action.FORGET)
    assert prune.used_by == (fb.address, JA)
    # Only a job in history still uses it: kept too.
    moved = desired([F], [J])
    st2 = state_with(moved, file_ids={FA: "f2"}, job_ids={JA: "j2"})
    st2.resources[fa.address] = st.resources[fa.address]
    st2.resources[JA].history.append({"remote_id": "j1"})
    obs2 = observed(
        [remote_file("f1", fb), remote_file("f2", F)],
        [
            remote_job("j1", before.jobs[JA], {fb.address: "f1"}, "SUCCESS"),
            remote_job("j2", moved.jobs[JA], {FA: "f2"}, "SUCCESS"),
        ],
    )
    prune = build_plan(moved, st2, obs2, PlanOptions(prune=True)).changes[-1]
    assert isinstance(prune, FileChange) and prune.action is Action.FORGET
    assert prune.used_by == (JA,)
    # Nothing uses it any more: deleted.
    del st2.resources[JA].history[0]
    prune = build_plan(moved, st2, obs2, PlanOptions(prune=True)).changes[-1]
    assert isinstance(prune, FileChange) and prune.action is Action.DELETE


# -- selectors (problem 10) -------------------------------------------------------------------


def _labelled() -> Any:
    fe = desired_file("e", sha="c" * 64)
    search = resolved_job("search", dataset="e", labels={"team": "search"})
    tone = resolved_job("tone", dataset="d", labels={"team": "tone"}, suffix="t")
    return desired([F, fe], [search, tone])


@pytest.mark.parametrize(
    ("targets", "selectors", "expected"),
    [
        (("job.search",), (), ["dataset.e[all]", "job.search"]),
        (("job.*",), (), ["dataset.d[all]", "dataset.e[all]", "job.search", "job.tone"]),
        (("dataset.*[all]",), (), ["dataset.d[all]", "dataset.e[all]"]),
        ((), (("team", "tone"),), ["dataset.d[all]", "job.tone"]),
        (("job.*",), (("team", "search"),), ["dataset.e[all]", "job.search"]),
    ],
    ids=["address", "glob", "glob with a literal part", "selector", "glob and selector"],
)
def test_targets_and_selectors_choose_addresses(
    targets: tuple[str, ...], selectors: tuple[tuple[str, str], ...], expected: list[str]
) -> None:
    plan = build_plan(
        _labelled(), None, observed(), PlanOptions(targets=targets, selectors=selectors)
    )
    assert [c.address for c in plan.changes] == expected


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (PlanOptions(targets=("job.serch",)), "--target job.serch matches no address"),
        (PlanOptions(targets=("job.serch",)), "did you mean job.search?"),
        (PlanOptions(selectors=(("team", "serch"),)), "did you mean team=search?"),
        (PlanOptions(selectors=(("owner", "x"),)), "no object has the label 'owner'"),
    ],
    ids=["target", "target hint", "selector value", "selector key"],
)
def test_a_target_or_selector_that_matches_nothing_is_an_error(
    options: PlanOptions, message: str
) -> None:
    with pytest.raises(PlanError) as caught:
        build_plan(_labelled(), None, observed(), options)
    assert message in str(caught.value)


def test_each_change_carries_its_labels_and_source_location() -> None:
    plan = build_plan(_labelled(), None, observed(), PlanOptions())
    data = {c["address"]: c for c in plan.to_json_dict()["changes"]}
    assert data["job.tone"]["labels"] == {"team": "tone"}
    assert data["job.tone"]["location"] == "specs.yaml:1"
