"""End to end through the CLI on the sandbox's OpenAI dialect: what an ``openai`` Provider does
differently from Mistral's start-gated lifecycle.

Jobs start as soon as they are created, so a budget is held against the plan's local estimate
before the create (the plan says so); ``paused`` pauses and resumes a job in place; a job the
state lost is recognised by the identity tag in its metadata and adopted with ``import``.
(The promises both providers keep run on each in test_apply_e2e.py and test_reliability.py.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.client.types import JobStatus
from reconciler.providers.base import JobTag
from reconciler.providers.openai import OpenAIProvider
from tests.engine.conftest import SANDBOX_KEY, Cli, cli_env, mutating
from tests.engine.project import OPENAI, make_project


def _openai_sandbox(data_dir: Path, time_scale: float) -> Any:
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.server import EmbeddedSandbox

    return EmbeddedSandbox(
        SandboxConfig(
            data_dir=data_dir, api_key=SANDBOX_KEY, time_scale=time_scale, dialect="openai"
        )
    )


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    """The OpenAI dialect, fast."""
    with _openai_sandbox(tmp_path / "sandbox", 50.0) as sb:
        yield sb


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> Iterator[Any]:
    """The OpenAI dialect at real-time scale: a 50-epoch run takes a minute (jobs can be
    caught running)."""
    with _openai_sandbox(tmp_path / "slow", 1.0) as sb:
        yield sb


def _cli(tmp_path: Path, sandbox: Any) -> Cli:
    (tmp_path / "project").mkdir(exist_ok=True)
    return Cli(cwd=tmp_path / "project", env=cli_env(**OPENAI.env(sandbox.base_url)))


def _budgeted(tmp_path: Path, sandbox: Any, max_cost: float) -> Cli:
    """The CLI in a project of one job with ``budget.max_cost``."""
    cli = _cli(tmp_path, sandbox)
    make_project(
        cli.cwd,
        endpoint=sandbox.base_url,
        n_datasets=1,
        n_jobs=1,
        flavour=OPENAI,
        extra_job_fields=f"budget: {{max_cost: {max_cost}}}\n",
    )
    return cli


def _provider(sandbox: Any) -> OpenAIProvider:
    return OpenAIProvider(OPENAI.endpoint(sandbox.base_url), SANDBOX_KEY)


def _wait_for(sandbox: Any, job_id: str, status: JobStatus, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with _provider(sandbox) as client:
        while JobStatus.of(client.get_job(job_id).status) is not status:
            assert time.monotonic() < deadline, f"{job_id} never reached {status}"
            time.sleep(0.1)


def test_budget_is_held_against_the_local_estimate_before_the_create(
    tmp_path: Path, sandbox: Any
) -> None:
    cli = _budgeted(tmp_path, sandbox, 0.000001)
    plan = cli.run("plan", check=0)
    assert "starts as soon as it is created; created only if the estimate is within" in plan.stdout
    assert "checked against this plan's local cost estimate" in plan.stdout
    data = json.loads(cli.run("plan", "--format", "json", check=0).stdout)
    (job,) = [c for c in data["changes"] if c["address"] == "job.job0"]
    assert job["cost"]["source"] == "local" and job["cost"]["currency"] == "USD"
    assert job["after"]["starts_at_create"] is True
    proc = cli.run("apply", "--yes", check=1)
    assert "job.job0" in proc.stderr and "over budget.max_cost" in proc.stderr
    assert "not created" in proc.stderr
    with _provider(sandbox) as client:
        assert client.list_jobs() == []  # nothing was created, so nothing was spent
    # Within budget: created (and started by the service), nothing left to start.
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, flavour=OPENAI)
    cli.run("apply", "--yes", check=0)
    with _provider(sandbox) as client:
        assert len(client.list_jobs()) == 1
    mark = len(sandbox.journal())
    assert "No changes." in cli.run("apply", "--yes", check=0).stdout
    assert mutating(sandbox.journal()[mark:]) == []


def test_paused_pauses_and_resumes_the_job_in_place(tmp_path: Path, slow_sandbox: Any) -> None:
    cli = _cli(tmp_path, slow_sandbox)

    def specs(paused: bool) -> None:
        make_project(
            cli.cwd,
            endpoint=slow_sandbox.base_url,
            n_datasets=1,
            n_jobs=1,
            steps=500,  # 50 epochs: the run is capped at a minute
            flavour=OPENAI,
            extra_job_fields=f"paused: {str(paused).lower()}\n",
        )

    specs(False)
    cli.run("apply", "--yes", check=0)
    job_id = json.loads(cli.run("output", "--format", "json", check=0).stdout)["outputs"][
        "job.job0"
    ]["job_id"]
    _wait_for(slow_sandbox, job_id, JobStatus.RUNNING)

    specs(True)
    plan = cli.run("plan", check=0)
    assert "~ job.job0" in plan.stdout and f"pause job {job_id} (in place)" in plan.stdout
    cli.run("apply", "--yes", check=0)
    with _provider(slow_sandbox) as client:
        assert client.get_job(job_id).status == "PAUSED"
        assert len(client.list_jobs()) == 1  # the same job, not a new one
    rows = json.loads(cli.run("status", "--format", "json", check=0).stdout)["resources"]
    assert {r["address"]: r["health"] for r in rows}["job.job0"] == "paused"
    assert "No changes." in cli.run("plan", check=0).stdout

    specs(False)
    assert f"resume job {job_id} (in place)" in cli.run("plan", check=0).stdout
    cli.run("apply", "--yes", check=0)
    with _provider(slow_sandbox) as client:
        assert client.get_job(job_id).status in ("QUEUED", "RUNNING")
        client.cancel_job(job_id)  # done with it


def test_a_job_the_state_lost_is_found_by_its_tag_and_imported(
    tmp_path: Path, slow_sandbox: Any
) -> None:
    # Still running: OpenAI shows a job's suffix only in its model's name, once it has one,
    # so its request cannot be compared yet — its tag says whose it is.
    sandbox = slow_sandbox
    cli = _cli(tmp_path, sandbox)
    make_project(
        cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, steps=500, flavour=OPENAI
    )
    cli.run("apply", "--yes", check=0)
    with _provider(sandbox) as client:
        (job,) = client.list_jobs()
    assert job.user_metadata is not None
    assert job.user_metadata["reconciler_address"] == "job.job0"
    (cli.cwd / ".reconciler" / "state.json").unlink()  # the state is lost

    plan = cli.run("plan", check=0)
    assert f"possible duplicate: remote job {job.id}" in plan.stdout
    assert f"reconciler import job.job0 {job.id}" in plan.stdout
    cli.run("import", "dataset.d0[all]", _file_id(sandbox), check=0)
    cli.run("import", "job.job0", job.id, check=0)
    # Recognised by its tag, exactly: the spec's job, nothing to replace or create.
    assert "No changes." in cli.run("plan", check=0).stdout
    with _provider(sandbox) as client:
        (still,) = client.list_jobs()
        assert still.suffix is None  # not finished: recognised by its tag alone
        client.cancel_job(still.id)  # done with it


def _file_id(sandbox: Any) -> str:
    with _provider(sandbox) as client:
        (uploaded,) = client.list_files()
    return str(uploaded.id)


def test_an_interrupted_create_is_recovered_by_its_tag(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job created whose answer the process never recorded (it died after the create): the
    state holds only the intent, with the job's tag; the next apply finds the job by it."""
    from reconciler.engine.intents import job_intent
    from reconciler.engine.state_file import FileStateBackend
    from reconciler.operations import prepare
    from reconciler.workspace import open_workspace

    cli = _cli(tmp_path, sandbox)
    make_project(
        cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, flavour=OPENAI, state_yaml=""
    )
    cli.run("apply", "--yes", check=0)
    backend = FileStateBackend(cli.cwd / ".reconciler" / "state.json")
    state = backend.read()
    assert state is not None
    made = state.resources.pop("job.job0")
    with _provider(sandbox) as client:
        (job,) = client.list_jobs()
    tag = JobTag.from_metadata(job.user_metadata)
    assert tag is not None and tag.address == "job.job0" and tag.fingerprint == made.fingerprint
    for name, value in OPENAI.env(sandbox.base_url).items():
        monkeypatch.setenv(name, value)
    with open_workspace([cli.cwd]) as ws:
        desired = prepare(ws).desired
    request = {"model": "changed-so-only-the-tag-can-find-it"}  # the request lookup would fail
    intent = job_intent(desired.jobs["job.job0"], request, tag)
    state.intents[intent.id] = intent
    backend.write(state, state.serial)

    mark = len(sandbox.journal())
    applied = cli.run("apply", "--yes", check=0)
    assert f"recovered interrupted create: {job.id}" in applied.stdout
    requests = sandbox.journal()[mark:]
    assert mutating(requests) == []  # found, not created again
    assert any("metadata" in (e["query"] or "") for e in requests)
    state = backend.read()
    assert state is not None and state.intents == {}
    assert state.resources["job.job0"].remote_id == job.id


def test_a_budget_without_an_estimate_creates_nothing(
    tmp_path: Path, sandbox: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.providers import openai_costs

    monkeypatch.setattr(openai_costs, "OPENAI_TRAINING_PRICES", {})  # no model has a price
    cli = _budgeted(tmp_path, sandbox, 100)
    plan = cli.run("plan", check=0)
    assert "no cost estimate: openai has no price for model" in plan.stdout
    proc = cli.run("apply", "--yes", check=1)
    assert "job.job0" in proc.stderr and "no cost estimate" in proc.stderr
    with _provider(sandbox) as client:
        assert client.list_jobs() == []
