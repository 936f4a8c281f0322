"""Every request the OpenAI provider sends conforms to the reference OpenAI OpenAPI document.

As for Mistral (test_contract_requests.py): the requests are recorded at the provider's
boundary, while example 09 goes through the CLI against the embedded sandbox speaking OpenAI's
API, and while a second scenario calls every provider operation once; each is then checked by
:class:`~tests.contract.openapi_check.RequestChecker` against the vendored OpenAI document
(metadata filters as its ``deepObject`` parameter, bodies against ``CreateFineTuningJobRequest``
and the multipart upload form).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler.providers import openai as providers_openai
from reconciler.providers.base import JobLookup, JobTag
from reconciler.sandbox import ManualClock
from reconciler.sandbox.app import SandboxConfig
from reconciler.sandbox.server import EmbeddedSandbox
from tests.client.client_boundary import tap_clients
from tests.contract.openapi_check import RequestChecker, Sent
from tests.contract.test_contract_requests import assert_conform, cli
from tests.sandbox.conftest import chat_lines
from tests.sandbox.contract import openai_contract

pytestmark = pytest.mark.contract

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = "09-openai-tone"


@pytest.fixture(scope="module")
def checker() -> RequestChecker:
    return RequestChecker(openai_contract())


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """The requests of every provider the code under test creates."""
    log: list[Sent] = []
    tap_clients(
        monkeypatch,
        on_request=lambda request, body: log.append(
            Sent.of(
                request.method, request.url.path, request.url.query.decode(), request.headers, body
            )
        ),
    )
    return log


def test_the_openai_example_sends_only_what_the_contract_declares(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sent: list[Sent], checker: RequestChecker
) -> None:
    root = tmp_path / EXAMPLE
    shutil.copytree(REPO / "specs" / EXAMPLE, root, ignore=shutil.ignore_patterns(".reconciler"))
    monkeypatch.setenv("RECONCILER_SANDBOX_TIME_SCALE", "50")
    monkeypatch.setenv("COLUMNS", "200")
    cli("validate", str(root))
    cli("plan", str(root), "--format", "json", "--detailed-exitcode", ok=(2,))
    cli("apply", str(root), "--yes", "--wait", "--wait-timeout", "3m")
    cli("apply", str(root), "--yes")
    cli("status", str(root), "--format", "json")
    cli("status", "job.openai-tone", "-p", str(root))
    exercised = assert_conform(checker, sent)
    assert {
        ("POST", "/files"),
        ("GET", "/files"),
        ("POST", "/fine_tuning/jobs"),
        ("GET", "/fine_tuning/jobs"),
        ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}"),
        ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events"),
        ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"),
        ("GET", "/models"),
    } <= exercised, f"the scenario no longer exercises: {sorted(exercised)}"
    creates = [s for s in sent if (s.method, s.path) == ("POST", "/v1/fine_tuning/jobs")]
    assert len(creates) == 2 and all(b"reconciler_fingerprint" in s.body for s in creates)


def test_every_provider_operation_sends_what_the_contract_declares(
    tmp_path: Path, sent: list[Sent], checker: RequestChecker
) -> None:
    key = "contract-key-" + "k" * 20
    clock = ManualClock()  # jobs move only when the test says: it sees each status it waits for
    config = SandboxConfig(data_dir=tmp_path / "sb", api_key=key, clock=clock, dialect="openai")

    def advance_until(job_id: str, status: str) -> None:
        for _ in range(4000):
            if p.get_job(job_id).status == status:
                return
            clock.advance(0.25)
        raise AssertionError(f"job {job_id} never reached {status}")

    tag = JobTag("job.contract", "c" * 64, 1)
    provider_class = providers_openai.OpenAIProvider  # tapped
    with (
        EmbeddedSandbox(config) as sandbox,
        provider_class(f"{sandbox.base_url}/v1", key, organization="org-1", project="p-1") as p,
    ):
        path = tmp_path / "train-0a1b.jsonl"
        path.write_bytes(chat_lines(20, "t"))
        train = p.upload_file(path, path.name)
        p.list_files()
        assert p.find_file(path.name, size=train.bytes) is not None
        p.get_file(train.id)
        request = {
            "model": "gpt-4o-mini-2024-07-18",
            "training_files": [{"file_id": train.id, "weight": 1.0}],
            "validation_files": [],
            "hyperparameters": {"epochs": 2.0, "batch_size": 4, "learning_rate_multiplier": 1.5},
            "suffix": "contract",
            "seed": 3,
            "integrations": [{"type": "wandb", "project": "p", "name": "n", "tags": ["t"]}],
        }
        job = p.create_job(request, JobLookup(tag=tag))
        assert [j.id for j in p.find_jobs(request, JobLookup(tag=tag))] == [job.id]
        p.find_jobs(request)
        advance_until(job.id, "RUNNING")
        p.pause_job(job.id)
        p.resume_job(job.id)
        advance_until(job.id, "SUCCESS")
        model = p.get_job(job.id).fine_tuned_model
        assert model is not None
        other = p.create_job({**request, "method": "dpo", "hyperparameters": {"beta": 0.2}})
        p.cancel_job(other.id)
        p.list_models()
        p.delete_model(model)
        p.delete_file(train.id)

    exercised = assert_conform(checker, sent)
    wanted = {
        ("POST", "/files"),
        ("GET", "/files"),
        ("GET", "/files/{file_id}"),
        ("DELETE", "/files/{file_id}"),
        ("POST", "/fine_tuning/jobs"),
        ("GET", "/fine_tuning/jobs"),
        ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}"),
        ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/events"),
        ("GET", "/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints"),
        ("POST", "/fine_tuning/jobs/{fine_tuning_job_id}/pause"),
        ("POST", "/fine_tuning/jobs/{fine_tuning_job_id}/resume"),
        ("POST", "/fine_tuning/jobs/{fine_tuning_job_id}/cancel"),
        ("GET", "/models"),
        ("DELETE", "/models/{model}"),
    }
    assert wanted <= exercised, f"operations never exercised: {sorted(wanted - exercised)}"
    assert any("metadata[reconciler_address]" in dict(s.query) for s in sent)
