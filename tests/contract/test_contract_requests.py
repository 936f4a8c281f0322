"""Every request the client sends conforms to the reference Mistral OpenAPI document.

The client's requests are recorded at its boundary — a transport wrapper under the real
``MistralClient`` — while the example specs (``specs/``) go through the CLI against the
embedded sandbox as a user would drive them (validate, plan, apply and wait, apply again,
status, output, then an archive, a replacement and two prunes), and while a second scenario
calls every public client operation once. Each recorded request is then checked by
:class:`~tests.contract.openapi_check.RequestChecker`: method and path, query parameters and
their types, the JSON body against the operation's ``requestBody`` schema, the multipart
fields. The document is vendored (``tests/reference``): these tests never skip.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import reconciler.cli.commands  # noqa: F401 - registers the commands
from reconciler.cli.app import app
from reconciler.client import api as client_api
from reconciler.client.api import MistralClient
from reconciler.identity import JobLookup
from reconciler.sandbox.app import SandboxConfig
from reconciler.sandbox.server import EmbeddedSandbox
from tests.client.client_boundary import tap_clients
from tests.contract.openapi_check import RequestChecker, Sent, mistral_reference
from tests.sandbox.conftest import chat_lines

pytestmark = pytest.mark.contract

REPO = Path(__file__).resolve().parents[2]
WANDB_KEY = "contract" + "0" * 32  # the API takes exactly 40 characters


@pytest.fixture(scope="module")
def checker() -> RequestChecker:
    return RequestChecker(mistral_reference())


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> list[Sent]:
    """The requests of every MistralClient the code under test creates."""
    log: list[Sent] = []

    def record(request: httpx.Request, body: bytes) -> None:
        log.append(
            Sent.of(
                request.method, request.url.path, request.url.query.decode(), request.headers, body
            )
        )

    tap_clients(monkeypatch, on_request=record)
    return log


def assert_conform(checker: RequestChecker, sent: list[Sent]) -> set[tuple[str, str]]:
    """Fail with every violation; return the (METHOD, path template) pairs exercised."""
    violations = [v for s in sent for v in checker.violations(s)]
    assert not violations, f"{len(violations)} contract violations:\n" + "\n".join(
        dict.fromkeys(violations)
    )
    return {(s.method, checker.contract.template(s.path)) for s in sent}


# -- the examples, through the CLI ------------------------------------------------------------


def cli(*args: str, ok: tuple[int, ...] = (0,)) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code in ok, (
        f"reconciler {' '.join(args)} -> {result.exit_code}\n{result.output}"
    )
    return result.stdout


@pytest.fixture
def examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "specs"
    # The examples that run on Mistral's API (09 has an openai Provider: a workspace of its
    # own, whose requests test_contract_openai_requests.py checks against OpenAI's contract).
    shutil.copytree(
        REPO / "specs", root, ignore=shutil.ignore_patterns(".reconciler", "09-openai-tone")
    )
    monkeypatch.setenv("WANDB_API_KEY", WANDB_KEY)
    monkeypatch.setenv("RECONCILER_SANDBOX_TIME_SCALE", "50")
    monkeypatch.setenv("COLUMNS", "200")
    yield root


def test_the_examples_send_only_what_the_contract_declares(
    examples: Path, sent: list[Sent], checker: RequestChecker
) -> None:
    root = str(examples)
    cli("validate", root)
    cli("plan", root, "--format", "json", "--detailed-exitcode", ok=(2,))
    cli("apply", root, "--yes", "--wait", "--wait-timeout", "3m")
    cli("apply", root, "--yes")
    status = json.loads(cli("status", root, "--format", "json"))
    assert status, "status listed nothing"
    cli("status", "job.tone-dumbledore", "-p", root)
    cli("output", root)

    # Archive a model, drop an example (its files are deleted), replace a job with one held
    # at VALIDATED, and drop that example while the job is still active (it is cancelled).
    dumbledore = examples / "01-tone-dumbledore" / "dumbledore.yaml"
    text = dumbledore.read_text()
    model = "  description: Answers in the tone of Albus Dumbledore (reconciler example 01).\n"
    suffix = "suffix: dumbledore\n"
    assert model in text and suffix in text
    text = text.replace(model, model + "  archived: true\n")
    dumbledore.write_text(text.replace(suffix, suffix + "start: false\n"))
    shutil.rmtree(examples / "03-style-news")
    cli("apply", root, "--yes", "--prune")
    cli("apply", root, "--yes", "--replace", "job.tone-dumbledore")
    shutil.rmtree(examples / "01-tone-dumbledore")
    cli("apply", root, "--yes", "--prune")

    exercised = assert_conform(checker, sent)
    assert {
        ("POST", "/v1/files"),
        ("GET", "/v1/files"),
        ("DELETE", "/v1/files/{file_id}"),
        ("GET", "/v1/fine_tuning/jobs"),
        ("POST", "/v1/fine_tuning/jobs"),
        ("GET", "/v1/fine_tuning/jobs/{job_id}"),
        ("POST", "/v1/fine_tuning/jobs/{job_id}/start"),
        ("POST", "/v1/fine_tuning/jobs/{job_id}/cancel"),
        ("GET", "/v1/models"),
        ("PATCH", "/v1/fine_tuning/models/{model_id}"),
        ("POST", "/v1/fine_tuning/models/{model_id}/archive"),
    } <= exercised, f"the scenario no longer exercises: {sorted(exercised)}"
    # The W&B integration of example 08 went out with its key, checked above like the rest.
    assert any(b"wandb" in s.body for s in sent if s.method == "POST")


# -- every client operation -------------------------------------------------------------------


def chat_file(path: Path, lines: int = 20) -> Path:
    path.write_bytes(chat_lines(lines, path.stem))
    return path


def classifier_file(path: Path, lines: int = 20) -> Path:
    rows = [
        json.dumps({"text": f"sample {i}", "labels": {"mood": "ab"[i % 2]}}) for i in range(lines)
    ]
    path.write_text("\n".join(rows) + "\n")
    return path


def wait_until(client: MistralClient, job_id: str, *statuses: str) -> str:
    import time

    deadline = time.monotonic() + 60
    while True:
        status = client.get_job(job_id).status
        if status in statuses or time.monotonic() > deadline:
            return status
        time.sleep(0.05)


def test_every_client_operation_sends_what_the_contract_declares(
    tmp_path: Path, sent: list[Sent], checker: RequestChecker
) -> None:
    from datetime import UTC, datetime, timedelta

    key = "contract-key-" + "k" * 20
    config = SandboxConfig(data_dir=tmp_path / "sb", api_key=key, time_scale=50)
    with EmbeddedSandbox(config) as sandbox, client_api.MistralClient(sandbox.base_url, key) as c:
        train = c.upload_file(chat_file(tmp_path / "train-0a1b.jsonl"), "train-0a1b.jsonl")
        valid = c.upload_file(chat_file(tmp_path / "valid-0a1b.jsonl", 5), "valid-0a1b.jsonl")
        labels = c.upload_file(classifier_file(tmp_path / "cls-0a1b.jsonl"), "cls-0a1b.jsonl")
        c.list_files(purpose="fine-tune", search="train", sample_type=["instruct"], source="upload")
        assert c.find_file("train-0a1b.jsonl", size=train.bytes) is not None
        c.get_file(train.id)
        c.signed_url(train.id, expiry_hours=2)
        c.download_file(train.id, tmp_path / "copy.jsonl")

        request: dict[str, Any] = {
            "model": "open-mistral-7b",
            "job_type": "completion",
            "training_files": [{"file_id": train.id, "weight": 1.0}],
            "validation_files": [valid.id],
            "hyperparameters": {"training_steps": 10, "learning_rate": 0.0001},
            "suffix": "contract",
            "integrations": [
                {
                    "type": "wandb",
                    "project": "p",
                    "name": "n",
                    "run_name": None,
                    "api_key": WANDB_KEY,
                }
            ],
            "auto_start": False,
            "invalid_sample_skip_percentage": 0.0,
        }
        c.estimate_job(request)
        job = c.create_job(request)
        assert wait_until(c, job.id, "VALIDATED") == "VALIDATED"
        c.start_job(job.id)
        assert wait_until(c, job.id, "SUCCESS") == "SUCCESS"
        model = c.get_job(job.id).fine_tuned_model
        assert model is not None
        c.find_jobs(request, JobLookup(created_after=datetime.now(UTC) - timedelta(hours=1)))
        c.list_jobs(
            model="open-mistral-7b",
            status="SUCCESS",
            suffix="contract",
            created_after=datetime.now(UTC) - timedelta(hours=1),
            created_before=datetime.now(UTC) + timedelta(hours=1),
            created_by_me=True,
            wandb_project="p",
            wandb_name="n",
        )
        classifier = c.create_job(
            {
                "model": "ministral-3b-latest",
                "job_type": "classifier",
                "training_files": [{"file_id": labels.id}],
                "hyperparameters": {"training_steps": 5},
                "classifier_targets": [
                    {"name": "mood", "labels": ["a", "b"], "weight": 1.0, "loss_function": None}
                ],
                "auto_start": True,
            }
        )
        other = c.create_job({**request, "suffix": "contract-b"})
        c.cancel_job(other.id)

        c.list_models()
        c.get_model("open-mistral-7b")
        c.get_model(model)
        c.update_model(model, name="tutor", description="contract test")
        c.archive_model(model)
        c.unarchive_model(model)
        c.delete_model(model)
        c.delete_file(valid.id)
        assert wait_until(c, classifier.id, "SUCCESS", "FAILED", "FAILED_VALIDATION")

    exercised = assert_conform(checker, sent)
    wanted = {
        (method.upper(), template)
        for template, ops in checker.doc["paths"].items()
        if template.startswith(("/v1/files", "/v1/fine_tuning", "/v1/models"))
        for method in ops
        if method in ("get", "post", "patch", "delete")
    }
    assert wanted <= exercised, f"operations never exercised: {sorted(wanted - exercised)}"
