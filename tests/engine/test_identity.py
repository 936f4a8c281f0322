"""The one job identity: which remote job a create request would make (table-driven)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.identity import (
    TAG_ADDRESS_KEY,
    TAG_FINGERPRINT_KEY,
    RequestIdentity,
    differences,
    exact_tag,
    matches,
    remote_tag,
    similar,
    unobservable_differences,
)
from tests.client.client_fakes import REQUEST, TRAIN, TRAIN2, FakeApi

pytestmark = pytest.mark.state_backend_independent

_DROP = object()


def _variant(**changes: Any) -> dict[str, Any]:
    req = copy.deepcopy(REQUEST)
    for key, value in changes.items():
        if value is _DROP:
            req.pop(key, None)
        else:
            req[key] = value
    return req


def _remote(request: dict[str, Any] = REQUEST, **hyperparameters: Any) -> dict[str, Any]:
    """The job the remote reports for ``request`` (the fake fills ``epochs`` in)."""
    job = FakeApi()._store_job(copy.deepcopy(request))
    job["hyperparameters"].update(hyperparameters)
    return job


MATCH_TABLE: list[tuple[str, dict[str, Any], bool]] = [
    ("identical", {}, True),
    (
        "files reordered, weights differ (not readable)",
        {"training_files": [{"file_id": TRAIN2, "weight": 3}, {"file_id": TRAIN}]},
        True,
    ),
    ("legacy plain-id training files", {"training_files": [TRAIN, TRAIN2]}, True),
    ("write-only skip percentage differs", {"invalid_sample_skip_percentage": 0.3}, True),
    (
        "W&B key differs (write-only)",
        {"integrations": [{"type": "wandb", "project": "p", "name": "n", "api_key": "x" * 40}]},
        True,
    ),
    ("auto_start differs (decides when, not what)", {"auto_start": True}, True),
    (
        "default written out equals default left out",
        {
            "hyperparameters": {
                "training_steps": 10,
                "learning_rate": 0.0001,
                "warmup_fraction": 0.05,
            }
        },
        True,
    ),
    (
        "learning rate echoed with float noise",
        {"hyperparameters": {"training_steps": 10, "learning_rate": 0.00010000000000000002}},
        True,
    ),
    ("other model", {"model": "mistral-small-latest"}, False),
    ("a training file fewer", {"training_files": [{"file_id": TRAIN}]}, False),
    ("no validation file", {"validation_files": _DROP}, False),
    (
        "other learning rate",
        {"hyperparameters": {"training_steps": 10, "learning_rate": 0.00011}},
        False,
    ),
    (
        "epochs requested, server filled other",
        {"hyperparameters": {"training_steps": 10, "learning_rate": 0.0001, "epochs": 2}},
        False,
    ),
    (
        "a default set to another value",
        {"hyperparameters": {"training_steps": 10, "learning_rate": 0.0001, "weight_decay": 0.2}},
        False,
    ),
    ("other suffix", {"suffix": "dumbledore-ffff"}, False),
    (
        "other W&B project",
        {"integrations": [{"type": "wandb", "project": "q", "name": "n"}]},
        False,
    ),
    ("no integration", {"integrations": _DROP}, False),
    ("classifier", {"job_type": "classifier"}, False),
]


@pytest.mark.parametrize(
    ("case", "changes", "expected"), MATCH_TABLE, ids=[c[0] for c in MATCH_TABLE]
)
def test_a_remote_job_matches_the_requests_that_would_make_it(
    case: str, changes: dict[str, Any], expected: bool
) -> None:
    job = _remote()
    assert job["hyperparameters"]["epochs"] == 0.25  # server-filled extra is ignored
    assert matches(RequestIdentity.of_request(_variant(**changes)), job) is expected


@pytest.mark.parametrize(
    ("reported", "expected"),
    [({}, True), ({"warmup_fraction": 0.05}, True), ({"warmup_fraction": 0.2}, False)],
    ids=["not reported", "reports the default", "reports another value"],
)
def test_a_request_without_a_defaulted_field_is_the_request_with_the_default(
    reported: dict[str, Any], expected: bool
) -> None:
    # The old matchers compared only the fields a request set: a job trained with
    # warmup_fraction 0.2 was taken for one that asks for the default 0.05.
    identity = RequestIdentity.of_request(REQUEST)
    assert "warmup_fraction" not in REQUEST["hyperparameters"]
    assert identity.hyperparameter("warmup_fraction") == 0.05
    assert matches(identity, _remote(**reported)) is expected
    if not expected:
        assert differences(identity, _remote(**reported)) == ["hyperparameters.warmup_fraction"]


def test_classifier_defaults_have_no_fim_ratio_and_targets_come_from_the_detailed_job() -> None:
    req = _variant(
        job_type="classifier",
        hyperparameters={"learning_rate": 0.0001},
        classifier_targets=[{"name": "mood", "labels": ["happy", "sad"], "weight": 1.0}],
    )
    identity = RequestIdentity.of_request(req)
    assert identity.hyperparameter("fim_ratio") is None
    listed = _remote(req)
    assert matches(identity, listed)  # the list form has no targets: not compared
    detailed = {
        **listed,
        "classifier_targets": [
            {"name": "mood", "labels": ["sad", "happy"], "weight": 1.0, "loss_function": "x"}
        ],
    }
    assert matches(identity, detailed)
    other = {**detailed, "classifier_targets": [{"name": "mood", "labels": ["happy"]}]}
    assert differences(identity, other) == ["classifier_targets"]


def test_an_exact_tag_decides_when_the_remote_job_carries_one() -> None:
    identity = RequestIdentity.of_request(REQUEST)
    tagged = {**_remote(), "user_metadata": {TAG_ADDRESS_KEY: "job.a", TAG_FINGERPRINT_KEY: "fp1"}}
    assert remote_tag(tagged) == exact_tag("job.a", "fp1")
    assert matches(identity, tagged, exact_tag=exact_tag("job.a", "fp1"))
    assert not matches(identity, tagged, exact_tag=exact_tag("job.b", "fp1"))
    # An untagged job (made elsewhere) is still recognised by its request.
    assert matches(identity, _remote(), exact_tag=exact_tag("job.a", "fp1"))


SIMILAR_TABLE: list[tuple[str, dict[str, Any], bool]] = [
    ("identical (--replace)", {}, True),
    (
        "only a training-file weight",
        {"training_files": [{"file_id": TRAIN, "weight": 2.0}, {"file_id": TRAIN2, "weight": 0.5}]},
        True,
    ),
    ("only the skip percentage", {"invalid_sample_skip_percentage": 0.2}, True),
    ("only the W&B project", {"integrations": [{"project": "q"}]}, True),
    (
        "steps left to the remote",
        {"hyperparameters": {"learning_rate": 0.0001}},
        True,
    ),
    ("other suffix", {"suffix": "v2"}, False),
    ("other steps", {"hyperparameters": {"training_steps": 11, "learning_rate": 0.0001}}, False),
    ("other data", {"training_files": [{"file_id": TRAIN}]}, False),
]


@pytest.mark.parametrize(
    ("case", "changes", "expected"), SIMILAR_TABLE, ids=[c[0] for c in SIMILAR_TABLE]
)
def test_similar_follows_the_remotes_409_rule(
    case: str, changes: dict[str, Any], expected: bool
) -> None:
    a, b = RequestIdentity.of_request(REQUEST), RequestIdentity.of_request(_variant(**changes))
    assert similar(a, b) is expected and similar(b, a) is expected


def test_unobservable_fields_differ_only_between_records_of_requests() -> None:
    heavier = _variant(
        training_files=[{"file_id": TRAIN, "weight": 2.0}, {"file_id": TRAIN2, "weight": 0.5}],
        invalid_sample_skip_percentage=0.1,
    )
    a, b = RequestIdentity.of_request(REQUEST), RequestIdentity.of_request(heavier)
    assert a.observable == b.observable  # the remote cannot tell them apart...
    assert unobservable_differences(a, b) == [  # ...only their records can
        "training_files[].weight",
        "invalid_sample_skip_percentage",
    ]


def test_content_form_names_files_by_id_or_by_content() -> None:
    content = {
        **REQUEST,
        "training_files": [
            {"file": "dataset.d[all]", "filename": "d-aaa.jsonl", "sha256": "a", "weight": 1.0}
        ],
        "validation_files": [],
    }
    by_id = RequestIdentity.of_content(content, {"dataset.d[all]": TRAIN})
    assert by_id is not None and by_id.training_files == ((TRAIN, 1.0),)
    assert RequestIdentity.of_content(content, {}) is None  # not uploaded: no remote job has it
    by_content = RequestIdentity.of_content(content)
    assert by_content is not None and by_content.training_files == (("d-aaa.jsonl:a", 1.0),)
