"""``import --discover`` on jobs that carry our identity tag (OpenAI's job metadata): the tag
decides, exactly (pure: :func:`reconciler.engine.discover.discover`)."""

from __future__ import annotations

import pytest

from reconciler.engine.discover import discover
from reconciler.providers.base import JobTag
from tests.engine.factories import (
    desired,
    desired_file,
    observed,
    remote_file,
    remote_job,
    resolved_job,
)

pytestmark = pytest.mark.state_backend_independent

F = desired_file()
FA, JA = F.address, "job.j"


def test_of_jobs_tagged_for_one_spec_the_newest_generation_is_the_address_s() -> None:
    ds = desired([F], [resolved_job()])
    job = ds.jobs[JA]

    def made(jid: str, generation: int | None) -> dict[str, object]:
        tag = JobTag(JA, job.fingerprint, generation).metadata() if generation is not None else {}
        return remote_job(jid, job, {FA: "f1"}, "SUCCESS", user_metadata=tag)

    # Two runs of the same spec (a --replace of an unchanged spec is a new generation).
    tagged = discover(ds, None, observed([remote_file("f1", F)], [made("j0", 0), made("j1", 1)]))
    assert tagged.records[JA].remote_id == "j1" and not tagged.ambiguous
    # A job tagged for the spec is taken over one made by hand with the same request.
    mixed = discover(ds, None, observed([remote_file("f1", F)], [made("j0", 0), made("h", None)]))
    assert mixed.records[JA].remote_id == "j0"
    # Without tags nothing says which came last: ambiguous, left alone.
    untagged = discover(
        ds, None, observed([remote_file("f1", F)], [made("h1", None), made("h2", None)])
    )
    assert untagged.ambiguous == {JA: ("h1", "h2")} and JA not in untagged.records


def test_a_job_tagged_for_another_address_is_never_taken() -> None:
    ds = desired([F], [resolved_job()])
    job = ds.jobs[JA]
    other = JobTag("job.other", job.fingerprint).metadata()
    found = discover(
        ds,
        None,
        observed([remote_file("f1", F)], [remote_job("j", job, {FA: "f1"}, user_metadata=other)]),
    )
    assert JA in found.unmatched and JA not in found.records
