"""Table-driven tests of the pure planner: (desired, state, observed) → actions and reasons."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from reconciler.address import Address
from reconciler.engine.adoption import remote_files_to_hash
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
from reconciler.errors import Location, PlanError, StateError
from reconciler.render.plan import describe_change, summary_line
from reconciler.spec.models import FineTunedModelSpec, OnReplace
from reconciler.spec.resolved import DeclaredImport, DeclaredMove, TrainingInput
from tests.engine.factories import (
    desired,
    desired_file,
    observed,
    remote_file,
    remote_job,
    resolved_job,
    state_with,
)

pytestmark = pytest.mark.state_backend_independent

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
    fa = desired_file("a").model_copy(update={"filename": F.filename, "fingerprint": F.fingerprint})
    fb = desired_file("b").model_copy(update={"filename": F.filename, "fingerprint": F.fingerprint})
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


# -- adoption, moves, reverts, retention (issue 14) -------------------------------------------

NEW = "job.new"
RENAMED = desired([F], [resolved_job("new")])  # job.j's exact request under another name
SDK_FILE = {"id": "sdk-f", "filename": "search-queries.jsonl", "bytes": F.bytes, "created_at": 1}
SDK_HASHED = {"sdk-f": F.sha256}  # what hashing the remote content found


class _Pricer:
    """A price function for :class:`PlanOptions` that records the jobs it was asked to price
    (every one gets the same local estimate)."""

    ESTIMATE = CostEstimate(amount=1.5, currency="USD", source=CostSource.LOCAL)

    def __init__(self) -> None:
        self.priced: list[str] = []

    def __call__(self, job: Any) -> CostEstimate:
        self.priced.append(job.address)
        return self.ESTIMATE


def _moved(ds: Any, source: str = JA, to: str = NEW) -> Any:
    return dataclasses.replace(
        ds,
        moves={
            to: DeclaredMove(
                source=Address(source), address=Address(to), location=Location("specs.yaml", 9, 1)
            )
        },
    )


def _imported(ds: Any, remote_id: str, to: str = JA) -> Any:
    return dataclasses.replace(
        ds,
        imports={
            to: DeclaredImport(
                address=Address(to), remote_id=remote_id, location=Location("specs.yaml", 12, 1)
            )
        },
    )


MOVE_CASES: list[tuple[str, Any, dict[str, str], list[tuple[str, str, str]], Any]] = [
    # (name, desired, recorded jobs, expected actions, expected moved_from of job.new)
    (
        "a renamed job is moved, not trained again",
        _moved(RENAMED),
        {JA: "j1"},
        [(FA, "no-op", "in-sync"), (NEW, "move", "moved")],
        JA,
    ),
    (
        "left in the specs once applied: nothing to do",
        _moved(RENAMED),
        {NEW: "j1"},
        [(FA, "no-op", "in-sync"), (NEW, "no-op", "in-sync")],
        None,
    ),
    (
        "nothing recorded under either address: the job is created",
        _moved(RENAMED),
        {},
        [(FA, "no-op", "in-sync"), (NEW, "create", "not-in-state")],
        None,
    ),
    (
        "renamed and changed: one replacement of the moved record",
        _moved(desired([F], [resolved_job("new", suffix="v2")])),
        {JA: "j1"},
        [(FA, "no-op", "in-sync"), (NEW, "replace", "spec-changed")],
        JA,
    ),
]


@pytest.mark.parametrize(
    ("name", "ds", "jobs", "expected", "moved_from"), MOVE_CASES, ids=[c[0] for c in MOVE_CASES]
)
def test_moved_documents(
    name: str, ds: Any, jobs: dict[str, str], expected: list[Any], moved_from: Any
) -> None:
    st = state_with(DS, file_ids={FA: "f1"}, job_ids={})
    for address, job_id in jobs.items():
        st.resources[address] = state_with(DS, file_ids={}, job_ids={JA: job_id}).resources[JA]
        st.resources[address].address = address
    obs = observed([remote_file("f1", F)], [remote_job("j1", DS.jobs[JA], {FA: "f1"})])
    pricer = _Pricer()
    plan = build_plan(ds, st, obs, PlanOptions(price=pricer))
    assert _actions(plan) == expected
    change = plan.changes[1]
    assert change.moved_from == moved_from
    # A move costs nothing and is not priced; a job the move's record does not spare is.
    pays = change.action.makes_new
    assert change.cost == (_Pricer.ESTIMATE if pays else None)
    assert pricer.priced == ([NEW] if pays else [])
    assert plan.cost_totals() == ({"USD": 1.5} if pays else {})
    assert plan.not_in_spec == ()  # the old address is not left over
    assert JA in st.resources or not jobs.get(JA)  # planning never changes the state given


def test_a_moved_whose_both_addresses_are_recorded_is_a_plan_error() -> None:
    st = state_with(DS, file_ids={FA: "f1"}, job_ids={JA: "j1"})
    st.resources[NEW] = st.resources[JA].model_copy(update={"address": NEW, "remote_id": "j2"})
    with pytest.raises(PlanError) as caught:
        build_plan(_moved(RENAMED), st, observed(), PlanOptions())
    assert "specs.yaml:9: Moved job.j -> job.new: both are recorded (remote j1 and j2)" in str(
        caught.value
    )


def _sdk_job(status: str = "SUCCESS", **extra: Any) -> dict[str, Any]:
    return remote_job("sdk-j", DS.jobs[JA], {FA: "sdk-f"}, status, **extra)


IMPORT_CASES: list[tuple[str, dict[str, Any], list[tuple[str, str, str]], dict[str, str]]] = [
    # (name, the job's remote fields, expected actions, import ids)
    (
        "an SDK job and its file, adopted by request and content",
        {},
        [(FA, "import", "import-declared"), (JA, "import", "import-declared")],
        {FA: "sdk-f", JA: "sdk-j"},
    ),
    (
        "created without starting: imported, then started",
        {"status": "VALIDATED"},
        [(FA, "import", "import-declared"), (JA, "start", "validated-not-started")],
        {FA: "sdk-f", JA: "sdk-j"},
    ),
    (
        "created with auto_start: it starts itself",
        {"status": "QUEUED", "auto_start": True},
        [(FA, "import", "import-declared"), (JA, "import", "import-declared")],
        {FA: "sdk-f", JA: "sdk-j"},
    ),
]


@pytest.mark.parametrize(
    ("name", "fields", "expected", "ids"), IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES]
)
def test_import_documents(
    name: str, fields: dict[str, Any], expected: list[Any], ids: dict[str, str]
) -> None:
    obs = observed([SDK_FILE], [{**_sdk_job(), **fields}])
    obs.content.update(SDK_HASHED)
    pricer = _Pricer()
    plan = build_plan(_imported(DS, "sdk-j"), None, obs, PlanOptions(price=pricer))
    assert _actions(plan) == expected
    assert {c.address: c.import_id for c in plan.changes} == ids
    assert not any(c.action.makes_new for c in plan.changes)
    # An import costs nothing and is not priced; starting the imported job is paid for.
    starts = [c.address for c in plan.changes if c.action is Action.START]
    assert pricer.priced == starts
    assert [c.address for c in plan.changes if c.cost is not None] == starts
    assert plan.cost_totals() == ({"USD": 1.5} if starts else {})


def test_the_files_an_import_compares_by_content_are_hashed_before_planning() -> None:
    obs = observed([SDK_FILE, remote_file("ours", F)], [_sdk_job()])
    assert remote_files_to_hash(_imported(DS, "sdk-j"), None, obs) == {"sdk-f"}
    assert remote_files_to_hash(_imported(DS, "sdk-f", to=FA), None, obs) == {"sdk-f"}
    # Under the part's own content-addressed name, or once recorded: no download.
    assert remote_files_to_hash(_imported(DS, "ours", to=FA), None, obs) == set()
    st = state_with(DS, file_ids={}, job_ids={JA: "sdk-j"})
    assert remote_files_to_hash(_imported(DS, "sdk-j"), st, obs) == set()


def test_an_import_applied_before_is_harmless_left_in_the_specs() -> None:
    st = state_with(DS, file_ids={FA: "sdk-f"}, job_ids={JA: "j2"})
    st.resources[JA].history.append({"remote_id": "sdk-j"})  # replaced since the import
    obs = observed([SDK_FILE], [_sdk_job(), remote_job("j2", DS.jobs[JA], {FA: "sdk-f"})])
    plan = build_plan(_imported(DS, "sdk-j"), st, obs, PlanOptions())
    assert _actions(plan) == [(FA, "no-op", "in-sync"), (JA, "no-op", "in-sync")]
    assert all(c.import_id is None for c in plan.changes)


IMPORT_ERRORS: list[tuple[str, Any, str]] = [
    # (name, change to the world, message)
    ("request differs", {"lr": 5e-5}, "request differs from the spec in: "),
    ("content differs", {"hash": "0" * 64}, "the job's files are not the spec's datasets"),
    # Not hashed: the remote does not give the content back (openai), so it cannot be told.
    ("content not hashed", {"hash": None}, "cannot be compared with the spec's datasets"),
    ("no such job", {"id": "nope"}, "the remote has no such job"),
    ("held by another address", {"held": True}, "is managed as job.k"),
]


@pytest.mark.parametrize(
    ("name", "world", "message"), IMPORT_ERRORS, ids=[c[0] for c in IMPORT_ERRORS]
)
def test_an_import_that_is_not_the_specs_object_is_a_plan_error(
    name: str, world: dict[str, Any], message: str
) -> None:
    job = _sdk_job()
    if "lr" in world:
        job["hyperparameters"]["learning_rate"] = world["lr"]
    obs = observed([SDK_FILE], [job])
    if world.get("hash", F.sha256):
        obs.content["sdk-f"] = world.get("hash", F.sha256)
    ds = _imported(desired([F], [J, resolved_job("k", suffix="k")]), world.get("id", "sdk-j"))
    st = state_with(ds, file_ids={}, job_ids={"job.k": "sdk-j"} if world.get("held") else {})
    with pytest.raises(PlanError) as caught:
        build_plan(ds, st, obs, PlanOptions())
    text = str(caught.value)
    assert f"specs.yaml:12: Import job.j = {world.get('id', 'sdk-j')}: " in text
    assert message in text


def test_a_file_import_needs_the_prepared_content() -> None:
    obs = observed([SDK_FILE])
    obs.content["sdk-f"] = F.sha256
    plan = build_plan(_imported(desired([F], []), "sdk-f", to=FA), None, obs, PlanOptions())
    assert _actions(plan) == [(FA, "import", "import-declared")]
    before = plan.changes[0].before
    assert before is not None and before.filename == "search-queries.jsonl"
    obs.content["sdk-f"] = "0" * 64
    with pytest.raises(PlanError, match="its content is not the prepared part's"):
        build_plan(_imported(desired([F], []), "sdk-f", to=FA), None, obs, PlanOptions())


def _reverted_world(
    first_status: str = "SUCCESS", model_exists: bool = True, fingerprint: bool = True
) -> tuple[Any, Any, Any]:
    """job.j ran with 30 steps (j1), then 32 (j2, current); the spec is back at 30."""
    at_30 = desired([F], [resolved_job(hyperparameters={"training_steps": 30})])
    at_32 = desired([F], [resolved_job(hyperparameters={"training_steps": 32})])
    st = state_with(at_32, file_ids={FA: "f1"}, job_ids={JA: "j2"})
    entry: dict[str, Any] = {"remote_id": "j1", "fine_tuned_model": "ft:1"}
    if fingerprint:
        entry["fingerprint"] = at_30.jobs[JA].fingerprint
    st.resources[JA].history.append(entry)
    obs = observed(
        [remote_file("f1", F)],
        [
            remote_job("j1", at_30.jobs[JA], {FA: "f1"}, first_status, fine_tuned_model="ft:1"),
            remote_job("j2", at_32.jobs[JA], {FA: "f1"}, "RUNNING"),
        ],
        [{"id": "ft:1", "archived": False}] if model_exists else [],
    )
    return at_30, st, obs


REVERT_CASES: list[tuple[str, dict[str, Any], tuple[str, ...], str, str | None]] = [
    # (name, world, --replace, expected action, restored job)
    ("back to a request that succeeded: restore", {}, (), "restore", "j1"),
    ("--replace still trains again", {}, ("job.j",), "replace", None),
    ("its model was deleted", {"model_exists": False}, (), "replace", None),
    ("that job failed", {"first_status": "FAILED"}, (), "replace", None),
    ("recorded before requests were fingerprinted", {"fingerprint": False}, (), "replace", None),
]


@pytest.mark.parametrize(
    ("name", "world", "replace_", "action", "restores"),
    REVERT_CASES,
    ids=[c[0] for c in REVERT_CASES],
)
def test_a_revert_points_back_at_the_job_that_made_the_request(
    name: str, world: dict[str, Any], replace_: tuple[str, ...], action: str, restores: Any
) -> None:
    ds, st, obs = _reverted_world(**world)
    pricer = _Pricer()
    plan = build_plan(ds, st, obs, PlanOptions(replace=replace_, price=pricer))
    change = plan.changes[1]
    assert isinstance(change, JobChange)
    assert (change.action.value, change.restores) == (action, restores)
    # A restore trains nothing: it is not priced; training again is.
    assert pricer.priced == ([] if restores else [JA])
    assert change.cost == (None if restores else _Pricer.ESTIMATE)
    if restores:
        assert change.reason == Reason.PREVIOUS_JOB_SAME_REQUEST and change.cost is None
        assert change.previous is not None and change.previous.id == "j2"
        assert change.previous.disposition is Disposition.CANCEL  # the running 32-step job


def test_rerun_is_part_of_the_request_fingerprint_and_never_sent() -> None:
    plain = desired([F], [J]).jobs[JA]
    token = desired([F], [resolved_job(rerun="2026-02-01")]).jobs[JA]
    assert "rerun" not in plain.identity  # unset: every earlier fingerprint stays valid
    assert token.fingerprint != plain.fingerprint
    assert "rerun" not in token.build_request({FA: "f1"}, lambda _: "")
    st, obs = _in_sync_world("SUCCESS")
    plan = build_plan(desired([F], [resolved_job(rerun="2026-02-01")]), st, obs, PlanOptions())
    change = plan.changes[1]
    assert (change.action, change.replace_paths) == (Action.REPLACE, ("rerun",))
    assert isinstance(change, JobChange) and change.after is not None
    assert change.after.request.rerun == "2026-02-01"
    assert (
        "rerun"
        not in build_plan(DS, st, obs, PlanOptions()).to_json_dict()["changes"][1]["after"][
            "request"
        ]
    )


def _replaced_world(current: str) -> tuple[Any, Any, Any]:
    """job.j replaced j1 (model ft:1) under previous_model: delete; j2 is now ``current``."""
    policy = OnReplace(previous_model="delete")
    ds = desired([F], [resolved_job(on_replace=policy)])
    st = state_with(ds, file_ids={FA: "f1"}, job_ids={JA: "j2"})
    st.resources[JA].history.append(
        {"remote_id": "j1", "fine_tuned_model": "ft:1", "model_disposition": "delete"}
    )
    obs = observed(
        [remote_file("f1", F)],
        [
            remote_job("j1", ds.jobs[JA], {FA: "f1"}, "SUCCESS", fine_tuned_model="ft:1"),
            remote_job(
                "j2",
                ds.jobs[JA],
                {FA: "f1"},
                current,
                fine_tuned_model="ft:2" if current == "SUCCESS" else None,
            ),
        ],
        [{"id": "ft:1", "archived": False}, {"id": "ft:2", "archived": False}],
    )
    return ds, st, obs


@pytest.mark.parametrize(
    ("current", "deleted"),
    [("SUCCESS", ("ft:1",)), ("RUNNING", ()), ("FAILED", ())],
    ids=["replacement succeeded", "still running", "replacement failed"],
)
def test_a_previous_model_is_deleted_only_once_its_replacement_succeeded(
    current: str, deleted: tuple[str, ...]
) -> None:
    ds, st, obs = _replaced_world(current)
    plan = build_plan(ds, st, obs, PlanOptions())
    change = plan.changes[1]
    assert isinstance(change, JobChange) and change.delete_models == deleted
    assert change.action is (Action.UPDATE if deleted else Action.NOOP)
    assert plan.models_deleted == len(deleted)
    assert plan.models_kept == (1 if deleted else 1 + (current == "SUCCESS"))
    if deleted:
        assert change.reason == Reason.REPLACEMENT_SUCCEEDED
        assert "Previous models deleted: 1 (saves ~$2.00/month of storage)." in summary_line(plan)


def test_a_replacement_under_the_delete_policy_keeps_the_model_until_it_succeeds() -> None:
    st, obs = _in_sync_world("SUCCESS", fine_tuned_model="ft:1")
    obs.models["ft:1"] = {"id": "ft:1", "archived": False}
    changed = desired(
        [F], [resolved_job(suffix="v2", on_replace=OnReplace(previous_model="delete"))]
    )
    change = build_plan(changed, st, obs, PlanOptions()).changes[1]
    assert change.action is Action.REPLACE and change.previous is not None
    assert change.previous.model_disposition is ModelDisposition.DELETE
    assert isinstance(change, JobChange) and change.delete_models == ()
    assert "delete once the new job has SUCCEEDED (not before)" in "\n".join(
        describe_change(change)
    )
