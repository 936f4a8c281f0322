"""The planner on providers other than Mistral's API: jobs that start by themselves are never
planned as ``start``, ``paused`` is an in-place update, a remote job's identity tag decides
whether it is a spec's duplicate, and the plan says when jobs start at creation."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.engine.plan import Action, FieldUpdate, Reason
from reconciler.engine.planner import PlanOptions, build_plan
from reconciler.providers.base import JobTag
from reconciler.render.plan import render_text
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
FA, JA = F.address, "job.j"


def _world(status: str, *, paused: bool = False, **extra: Any) -> tuple[Any, Any, Any]:
    ds = desired([F], [resolved_job(paused=paused)])
    st = state_with(ds, file_ids={FA: "f1"}, job_ids={JA: "j1"})
    obs = observed(
        [remote_file("f1", F)], [remote_job("j1", ds.jobs[JA], {FA: "f1"}, status, **extra)]
    )
    return ds, st, obs


def _job_change(plan: Any) -> Any:
    return next(c for c in plan.changes if c.address == JA)


@pytest.mark.parametrize("status", ["QUEUED", "VALIDATING", "VALIDATED"])
def test_a_job_that_starts_by_itself_is_never_planned_as_start(status: str) -> None:
    ds, st, obs = _world(status, auto_start=True)
    change = _job_change(build_plan(ds, st, obs, PlanOptions()))
    assert (change.action, change.reason) == (Action.NOOP, Reason.IN_SYNC)
    # The same job created with auto_start=false waits for a start (the start gate's case).
    ds, st, obs = _world(status, auto_start=False)
    assert _job_change(build_plan(ds, st, obs, PlanOptions())).action is Action.START


# (remote status, spec paused, expected update of 'paused' or None)
PAUSES: list[tuple[str, bool, FieldUpdate | None]] = [
    ("RUNNING", True, FieldUpdate(before=False, after=True)),
    ("PAUSED", False, FieldUpdate(before=True, after=False)),
    ("PAUSED", True, None),
    ("RUNNING", False, None),
    ("SUCCESS", True, None),  # finished: nothing to pause
    ("VALIDATING", True, None),  # not running yet: paused once it runs
]


@pytest.mark.parametrize(("status", "paused", "update"), PAUSES)
def test_paused_is_an_update_in_place(
    status: str, paused: bool, update: FieldUpdate | None
) -> None:
    ds, st, obs = _world(status, paused=paused, auto_start=True)
    change = _job_change(build_plan(ds, st, obs, PlanOptions()))
    if update is None:
        assert change.action is not Action.UPDATE
        return
    assert (change.action, change.reason) == (Action.UPDATE, Reason.PAUSED_CHANGED)
    assert change.update_fields == {"paused": update}
    verb = "pause" if update.after else "resume"
    assert f"{verb} job j1 (in place)" in render_text(build_plan(ds, st, obs, PlanOptions()))


def _unmanaged(metadata: dict[str, str] | None, **differences: Any) -> tuple[Any, Any]:
    """Desired state without any state, and a remote job (not in the state) carrying
    ``metadata``, made from the spec's request except for ``differences``."""
    ds = desired([F], [resolved_job()])
    job = remote_job("j9", ds.jobs[JA], {FA: "f1"}, user_metadata=metadata, **differences)
    return ds, observed([remote_file("f1", F)], [job])


def test_a_remote_job_with_this_specs_tag_is_a_possible_duplicate_whatever_it_shows() -> None:
    ds, _ = _unmanaged(None)
    tag = JobTag(JA, ds.jobs[JA].fingerprint, generation=3).metadata()
    # OpenAI shows no suffix before the job has a model: the request cannot be compared.
    _, obs = _unmanaged(tag, suffix="other", model="gpt-4o-mini")
    change = _job_change(build_plan(ds, None, obs, PlanOptions()))
    assert change.blocked is not None and "remote job j9" in change.blocked


def test_a_remote_job_tagged_for_another_spec_is_not_a_duplicate_even_if_identical() -> None:
    ds, _ = _unmanaged(None)
    other = JobTag("job.other", ds.jobs[JA].fingerprint).metadata()
    _, obs = _unmanaged(other)  # same request, but made for job.other
    assert _job_change(build_plan(ds, None, obs, PlanOptions())).blocked is None
    older = JobTag(JA, "0" * 64).metadata()  # an earlier revision of this spec
    _, obs = _unmanaged(older)
    assert _job_change(build_plan(ds, None, obs, PlanOptions())).blocked is None


def test_an_untagged_remote_job_is_compared_by_its_request() -> None:
    ds, obs = _unmanaged(None)
    assert _job_change(build_plan(ds, None, obs, PlanOptions())).blocked is not None
    ds, obs = _unmanaged(None, suffix="other")
    assert _job_change(build_plan(ds, None, obs, PlanOptions())).blocked is None


def test_the_plan_says_when_jobs_start_at_creation_and_drops_storage_without_a_price() -> None:
    ds = desired([F], [resolved_job()])
    plan = build_plan(
        ds, None, observed(), PlanOptions(starts_at_create=True, storage_cost_per_model=0.0)
    )
    change = _job_change(plan)
    assert change.after is not None and change.after.starts_at_create is True
    assert change.after.model_dump(mode="json")["starts_at_create"] is True
    text = render_text(plan)
    assert "starts as soon as it is created" in text and "storage" not in text
    # Mistral's plans are as they were: no such key in the JSON form.
    mistral = _job_change(build_plan(ds, None, observed(), PlanOptions()))
    assert mistral.after is not None and "starts_at_create" not in mistral.after.model_dump()
