"""End to end through the CLI on the sandbox's OpenAI dialect: what an ``openai`` Provider does
differently from Mistral's start-gated lifecycle.

Jobs start as soon as they are created, so a budget is held against the plan's local estimate
(tokens x epochs x price): over it, or without an estimate, it is a plan error and apply
creates nothing (the plan says so); ``paused`` pauses and resumes a job in place; a job the
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
from tests.engine.project import OPENAI, lose_state, make_project

pytestmark = pytest.mark.provider_behaviour


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


def _one_job(cli: Cli, sandbox: Any, job_fields: str = "", *, steps: int = 10) -> None:
    """Write the project of one dataset and one job (with ``job_fields``) into ``cli.cwd``."""
    make_project(
        cli.cwd,
        endpoint=sandbox.base_url,
        n_datasets=1,
        n_jobs=1,
        steps=steps,
        flavour=OPENAI,
        extra_job_fields=job_fields,
    )


def _budgeted(tmp_path: Path, sandbox: Any, max_cost: float) -> Cli:
    """The CLI in a project of one job with ``budget.max_cost``."""
    cli = _cli(tmp_path, sandbox)
    _one_job(cli, sandbox, f"budget: {{max_cost: {max_cost}}}\n")
    return cli


def _provider(sandbox: Any) -> OpenAIProvider:
    return OpenAIProvider(OPENAI.endpoint(sandbox.base_url), SANDBOX_KEY)


def _wait_for(sandbox: Any, job_id: str, status: JobStatus, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    with _provider(sandbox) as client:
        while JobStatus.of(client.get_job(job_id).status) is not status:
            assert time.monotonic() < deadline, f"{job_id} never reached {status}"
            time.sleep(0.1)


def test_budget_is_held_against_the_local_estimate_at_plan_time(
    tmp_path: Path, sandbox: Any
) -> None:
    cli = _budgeted(tmp_path, sandbox, 0.000001)
    plan = cli.run("plan", check=1)  # a plan error
    assert "starts as soon as it is created (budget 1e-06 held against this plan's" in plan.stdout
    assert "each budget.max_cost is held against this plan's local estimate" in plan.stdout
    assert "job.job0: estimated cost" in plan.stdout and "epochs x" in plan.stdout
    data = json.loads(cli.run("plan", "--format", "json", check=1).stdout)
    (job,) = [c for c in data["changes"] if c["address"] == "job.job0"]
    assert job["cost"]["source"] == "local" and job["cost"]["currency"] == "USD"
    assert job["cost"]["basis"]["epochs_from"] in ("epochs", "default")
    assert job["after"]["starts_at_create"] is True
    assert data["errors"] and data["errors"][0].startswith("job.job0: estimated cost")
    proc = cli.run("apply", "--yes", check=1)
    assert "apply refuses this plan; nothing was done" in proc.stderr
    assert "job.job0" in proc.stderr and "over its budget.max_cost" in proc.stderr
    with _provider(sandbox) as client:
        assert client.list_jobs() == []  # nothing was created, so nothing was spent
    # Within budget: created (and started by the service), nothing left to start.
    _one_job(cli, sandbox)
    cli.run("apply", "--yes", check=0)
    with _provider(sandbox) as client:
        assert len(client.list_jobs()) == 1
    mark = len(sandbox.journal())
    assert "No changes." in cli.run("apply", "--yes", check=0).stdout
    assert mutating(sandbox.journal()[mark:]) == []


def test_paused_pauses_and_resumes_the_job_in_place(tmp_path: Path, slow_sandbox: Any) -> None:
    cli = _cli(tmp_path, slow_sandbox)

    def specs(paused: bool) -> None:
        # 50 epochs: the run is capped at a minute
        _one_job(cli, slow_sandbox, f"paused: {str(paused).lower()}\n", steps=500)

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
    _one_job(cli, sandbox, steps=500)
    cli.run("apply", "--yes", check=0)
    with _provider(sandbox) as client:
        (job,) = client.list_jobs()
    assert job.user_metadata is not None
    assert job.user_metadata["reconciler_address"] == "job.job0"
    lose_state(cli.cwd)  # the state is lost

    plan = cli.run("plan", check=1)  # the blocked create is an error of the plan
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


def test_a_budget_without_an_estimate_creates_nothing(tmp_path: Path, sandbox: Any) -> None:
    cli = _budgeted(tmp_path, sandbox, 100)
    spec = next(cli.cwd.glob("*.yaml"))
    spec.write_text(spec.read_text().replace("gpt-4o-mini", "gpt-unpriced"))
    plan = cli.run("plan", check=1)
    assert "no price for model 'gpt-unpriced-2024-07-18' on openai" in plan.stdout
    assert "job.job0: its budget.max_cost 100 cannot be held" in plan.stdout
    proc = cli.run("apply", "--yes", check=1)
    assert "job.job0: its budget.max_cost 100 cannot be held" in proc.stderr
    with _provider(sandbox) as client:
        assert client.list_jobs() == []


# ----------------------------------------------------------------- adoption on openai


def _sdk(sandbox: Any) -> Any:
    openai = pytest.importorskip("openai", reason="openai SDK not installed")
    return openai.OpenAI(api_key=SANDBOX_KEY, base_url=OPENAI.endpoint(sandbox.base_url))


def _sdk_upload(cli: Cli, sandbox: Any, name: str) -> str:
    """d0's data uploaded by hand under ``name`` (the same content, another name)."""
    with (cli.cwd / "data" / "d0.jsonl").open("rb") as fh:
        return str(_sdk(sandbox).files.create(file=(name, fh), purpose="fine-tune").id)


def _sdk_job(sandbox: Any, file_id: str) -> str:
    """job0's request made by hand (no identity tag): 1 epoch, suffix t0; returned once it
    has succeeded (OpenAI shows a job's suffix only in its model's name)."""
    job = _sdk(sandbox).fine_tuning.jobs.create(
        model=OPENAI.model,
        training_file=file_id,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1}}},
        suffix="t0",
    )
    _wait_for(sandbox, job.id, JobStatus.SUCCESS)
    return str(job.id)


def test_discover_takes_the_job_tagged_for_the_spec_and_reads_no_content(
    tmp_path: Path, sandbox: Any
) -> None:
    cli = _cli(tmp_path, sandbox)
    _one_job(cli, sandbox)
    cli.run("apply", "--yes", check=0)
    with _provider(sandbox) as client:
        (ours,) = client.list_jobs()
        (uploaded,) = client.list_files()
    # The same request made by hand, on the very file apply uploaded: it matches the request
    # too, but only our job carries the spec's identity tag. And the same data by hand under
    # another name, which only a download could compare.
    by_hand = _sdk_job(sandbox, uploaded.id)
    _sdk_upload(cli, sandbox, "by-hand.jsonl")
    lose_state(cli.cwd)  # the state is lost

    mark = len(sandbox.journal())
    found = cli.run("import", "--discover", check=0)
    assert "Imported 2 object(s)" in found.stdout
    assert f"job.job0        = job {ours.id}" in found.stdout and by_hand not in found.stdout
    assert f"= file {uploaded.id} ({uploaded.filename}" in found.stdout
    journal = sandbox.journal()[mark:]
    assert not [e for e in journal if e["path"].endswith("/content")]  # nothing downloaded
    assert mutating(journal) == []
    assert "No changes." in cli.run("plan", check=0).stdout


def test_files_whose_content_openai_does_not_give_back_are_never_adopted_on_a_guess(
    tmp_path: Path, sandbox: Any
) -> None:
    cli = _cli(tmp_path, sandbox)
    _one_job(cli, sandbox)
    file_id = _sdk_upload(cli, sandbox, "search-queries.jsonl")
    job_id = _sdk_job(sandbox, file_id)

    mark = len(sandbox.journal())
    found = cli.run("import", "--discover", check=0)
    assert "Nothing to import" in found.stdout
    assert "Not verifiable, left alone (openai does not give back the content" in found.stdout
    assert f"  dataset.d0[all]: {file_id}" in found.stdout
    assert f"  job.job0: {job_id}" in found.stdout
    assert "No remote match" not in found.stdout

    one = cli.run("import", "dataset.d0[all]", file_id, check=1)
    assert f"dataset.d0[all]: remote file {file_id} (search-queries.jsonl" in one.stderr
    assert "openai does not give back the content of training files" in one.stderr
    job = cli.run("import", "job.job0", job_id, check=1)
    assert f"job.job0: cannot tell whether job {job_id} was made from the spec's" in job.stderr
    journal = sandbox.journal()[mark:]
    assert not [e for e in journal if e["path"].endswith("/content")]
    assert mutating(journal) == []

    # An Import document of it is a plan error that says why.
    spec = cli.cwd / "specs.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8")
        + f"---\nkind: Import\nname: adopt\nto: dataset.d0[all]\nid: {file_id}\n",
        encoding="utf-8",
    )
    plan = cli.run("plan", check=1)
    assert f"Import dataset.d0[all] = {file_id}: its content cannot be compared" in plan.stderr


def test_import_documents_and_model_retention_work_through_the_openai_provider(
    tmp_path: Path, sandbox: Any
) -> None:
    cli = _cli(tmp_path, sandbox)

    def specs(change: bool = False, extra: str = "") -> None:
        _one_job(cli, sandbox, "on_replace: {previous_model: delete}\n")
        spec = cli.cwd / "specs.yaml"
        text = spec.read_text(encoding="utf-8")
        spec.write_text((text.replace(*OPENAI.change) if change else text) + extra, "utf-8")

    specs()
    cli.run("apply", "--yes", "--wait", "--wait-timeout", "1m", check=0)
    with _provider(sandbox) as client:
        (first,) = client.list_jobs()
    assert first.fine_tuned_model
    # The state is lost; an Import document, reviewed in the plan, adopts the job (and the
    # file it was trained on, by its content-addressed name: nothing is downloaded).
    lose_state(cli.cwd)
    specs(extra=f"---\nkind: Import\nname: adopt\nto: job.job0\nid: {first.id}\n")
    plan = cli.run("plan", check=0).stdout
    assert "<= job.job0  (import: import-declared)" in plan and "Estimated cost" not in plan
    mark = len(sandbox.journal())
    cli.run("apply", "--yes", check=0)
    assert mutating(sandbox.journal()[mark:]) == []
    assert "No changes." in cli.run("plan", check=0).stdout

    # A replacement that succeeds retires the previous model: deleted, never before.
    specs(change=True)
    plan = cli.run("plan", check=0).stdout
    assert "-/+ job.job0" in plan and "Previous models deleted" not in plan
    applied = cli.run("apply", "--yes", "--wait", "--wait-timeout", "1m", check=0).stdout
    assert f"deleted previous model {first.fine_tuned_model}" in applied  # once it succeeded
    with _provider(sandbox) as client:
        models = {m.id for m in client.list_models()}
        (second,) = [j for j in client.list_jobs() if j.id != first.id]
    assert first.fine_tuned_model not in models and second.fine_tuned_model in models
    assert "No changes." in cli.run("plan", check=0).stdout
