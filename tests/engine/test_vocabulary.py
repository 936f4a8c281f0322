"""The shared vocabulary: addresses and job statuses."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from reconciler.address import Address, ResourceType
from reconciler.client.types import JobStatus

pytestmark = pytest.mark.state_backend_independent


@pytest.mark.parametrize(
    ("text", "kind", "name", "part", "base"),
    [
        ("job.dumbledore-v1", ResourceType.JOB, "dumbledore-v1", None, "job.dumbledore-v1"),
        ("job.sweep-lr-1e-4", ResourceType.JOB, "sweep-lr-1e-4", None, "job.sweep-lr-1e-4"),
        ("dataset.chats[train]", ResourceType.FILE, "chats", "train", "dataset.chats"),
        ("dataset.a.b[all]", ResourceType.FILE, "a.b", "all", "dataset.a.b"),
    ],
)
def test_address_parts(
    text: str, kind: ResourceType, name: str, part: str | None, base: str
) -> None:
    address = Address(text)
    assert (address.kind, address.name, address.part, address.base) == (kind, name, part, base)
    assert address == text and hash(address) == hash(text) and {text: 1}[address] == 1


def test_address_builders_round_trip() -> None:
    assert Address.job("x") == "job.x" and Address.job("x").kind is ResourceType.JOB
    built = Address.dataset("d", "validation")
    assert built == "dataset.d[validation]" and Address(built) is built


@pytest.mark.parametrize(
    "text", ["", "job.", "job", "jobs.x", "dataset.d", "dataset.d[]", "dataset.[all]", "job.a b"]
)
def test_malformed_addresses_are_refused(text: str) -> None:
    assert not Address.is_valid(text)
    with pytest.raises(ValueError, match="not an address"):
        Address(text)


def test_address_fields_validate_and_serialize_as_strings() -> None:
    class Holder(BaseModel):
        address: Address

    held = Holder.model_validate({"address": "job.x"})
    assert isinstance(held.address, Address) and held.address.name == "x"
    assert held.model_dump(mode="json") == {"address": "job.x"}
    with pytest.raises(ValueError):
        Holder.model_validate({"address": "x"})


# (status, active, terminal, failed, cancelled, awaits start, has started, running)
STATUSES = [
    ("QUEUED", True, False, False, False, True, False, False),
    ("VALIDATING", True, False, False, False, True, False, False),
    ("VALIDATED", True, False, False, False, True, False, False),
    ("STARTED", True, False, False, False, False, True, True),
    ("RUNNING", True, False, False, False, False, True, True),
    ("SUCCESS", False, True, False, False, False, True, False),
    ("FAILED", False, True, True, False, False, True, False),
    ("FAILED_VALIDATION", False, True, True, False, False, False, False),
    ("CANCELLATION_REQUESTED", True, False, False, True, False, True, False),
    ("CANCELLED", False, True, False, True, False, True, False),
    ("PAUSED", True, False, False, False, False, True, False),
]


@pytest.mark.parametrize("row", STATUSES, ids=[r[0] for r in STATUSES])
def test_job_status_predicates(row: tuple[str, bool, bool, bool, bool, bool, bool, bool]) -> None:
    status = JobStatus.of(row[0])
    assert status is not None and status == row[0]
    assert (
        status.is_active,
        status.is_terminal,
        status.is_failed,
        status.is_cancelled,
        status.awaits_start,
        status.has_started,
        status.is_running,
    ) == row[1:]


def test_every_status_is_in_the_table_and_unknown_ones_are_none() -> None:
    assert sorted(JobStatus) == sorted(r[0] for r in STATUSES)
    assert JobStatus.of("running") is JobStatus.RUNNING
    assert JobStatus.of("HIBERNATING") is None and JobStatus.of(None) is None


def test_only_a_started_unfinished_job_can_be_paused() -> None:
    pausable = {s.value for s in JobStatus if s.can_pause}
    assert pausable == {"STARTED", "RUNNING"}
    assert [s.value for s in JobStatus if s.is_paused] == ["PAUSED"]
