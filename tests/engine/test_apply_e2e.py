"""End-to-end plan/apply through the CLI against a sandbox server on 127.0.0.1.

Named tests of the product's promises: a second apply is a no-op that sends no mutating
request; a stale saved plan is refused (including the first-apply case); secrets never reach
state, plan files or output; spec changes replace jobs naming the fields; budgets at plan time
(per job, per run) and the remote's figure as the gate at apply.
The promises every provider keeps run on each of them (the ``flavour`` fixture: the sandbox
speaking Mistral's API, then OpenAI's behind an ``openai`` Provider); the start gate's are
Mistral's (OpenAI starts jobs when they are created: tests/engine/test_openai_e2e.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from reconciler.providers.mistral import MistralProvider
from tests.engine.conftest import SANDBOX_KEY, Cli, mutating
from tests.engine.project import WANDB_KEY, Flavour, make_project
from tests.engine.proxy import DroppingProxy


def remote(sandbox: Any) -> MistralProvider:
    return MistralProvider(sandbox.base_url, SANDBOX_KEY)


def state_of(cli: Cli) -> dict[str, Any]:
    """The state's resources, read through the CLI (works for every backend)."""
    proc = cli.run("state", "list", "--format", "json", check=0)
    data = json.loads(proc.stdout)
    out: dict[str, Any] = {}
    for entry in data["resources"]:
        shown = cli.run("state", "show", entry["address"], "--format", "json", check=0)
        out[entry["address"]] = json.loads(shown.stdout)["resource"]
    return {"resources": out}


def test_apply_then_second_apply_is_noop_with_zero_mutating_requests(
    provider_cli: Cli, provider_sandbox: Any, flavour: Flavour
) -> None:
    cli, sandbox = provider_cli, provider_sandbox
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=2, n_jobs=3, flavour=flavour)
    first = cli.run("apply", "--yes", check=0)
    # The first line names the target and (deliberately added) the state in use.
    assert first.stdout.splitlines()[0].startswith(f"{flavour.target(sandbox.base_url)}; state: ")
    assert "Apply complete: 5 applied, 0 failed" in first.stdout
    with flavour.client(sandbox.base_url, SANDBOX_KEY) as client:
        assert len(client.list_files()) == 2
        jobs = client.list_jobs()
        assert sorted(flavour.job_key(j) for j in jobs) == ["t0", "t1", "t2"]
        if not flavour.starts_at_create:
            assert all(j.status not in ("QUEUED", "VALIDATING", "VALIDATED") for j in jobs)
    mark = len(sandbox.journal())
    second = cli.run("apply", "--yes", check=0)
    assert "No changes." in second.stdout
    assert mutating(sandbox.journal()[mark:]) == []
    plan = cli.run("plan", "--detailed-exitcode", check=0)
    assert "No changes." in plan.stdout


def test_detailed_exitcode_and_json_plan(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    proc = cli.run("plan", "--format", "json", "--detailed-exitcode", check=2)
    data = json.loads(proc.stdout)
    assert data["format_version"] == "1.6"
    assert [(c["address"], c["action"]) for c in data["changes"]] == [
        ("dataset.d0[all]", "create"),
        ("job.job0", "create"),
    ]
    assert data["summary"]["create"] == 2 and data["has_changes"] is True


def test_saved_plan_applies_exactly_and_stale_plans_are_refused(
    provider_cli: Cli, provider_sandbox: Any, flavour: Flavour
) -> None:
    cli, sandbox = provider_cli, provider_sandbox
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, flavour=flavour)
    cli.run("plan", "--out", "first.plan", check=0)
    cli.run("plan", "--out", "again.plan", check=0)
    applied = cli.run("apply", "first.plan", check=0)
    assert "Apply complete: 2 applied" in applied.stdout
    # Made before any state existed: applying it again would duplicate, so it is refused.
    replay = cli.run("apply", "first.plan", check=1)
    assert "stale" in replay.stderr and "before any state existed" in replay.stderr
    other = cli.run("apply", "again.plan", check=1)
    assert "stale" in other.stderr
    # A plan made on the current state goes stale when the specs change.
    (cli.cwd / "specs.yaml").write_text(
        (cli.cwd / "specs.yaml").read_text().replace(*flavour.change)
    )
    cli.run("plan", "--out", "fresh.plan", check=0)
    (cli.cwd / "data" / "d0.jsonl").write_text(
        (cli.cwd / "data" / "d0.jsonl").read_text().replace("Answer 0", "Better answer 0")
    )
    changed = cli.run("apply", "fresh.plan", check=1)
    assert "specs or their datasets changed" in changed.stderr
    with flavour.client(sandbox.base_url, SANDBOX_KEY) as client:
        assert len(client.list_jobs()) == 1


def test_spec_change_replaces_job_naming_the_fields(
    provider_cli: Cli, provider_sandbox: Any, flavour: Flavour
) -> None:
    cli, sandbox = provider_cli, provider_sandbox
    make_project(
        cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, steps=200, flavour=flavour
    )
    cli.run("apply", "--yes", check=0)
    old_id = state_of(cli)["resources"]["job.job0"]["remote_id"]
    (cli.cwd / "specs.yaml").write_text(
        (cli.cwd / "specs.yaml").read_text().replace(*flavour.change)
    )
    plan = cli.run("plan", check=0)
    assert "-/+ job.job0" in plan.stdout
    assert f"forces new job: {flavour.changed_field}" in plan.stdout
    assert f"previous job {old_id}" in plan.stdout
    cli.run("apply", "--yes", check=0)
    res = state_of(cli)["resources"]["job.job0"]
    assert res["remote_id"] != old_id
    assert res["history"][0]["remote_id"] == old_id
    with flavour.client(sandbox.base_url, SANDBOX_KEY) as client:
        old = client.get_job(old_id)
        assert old.status in ("CANCELLED", "CANCELLATION_REQUESTED", "SUCCESS")
    assert "No changes." in cli.run("plan", check=0).stdout


def test_a_job_over_its_budget_is_a_plan_error_and_apply_refuses_it_before_anything(
    cli: Cli, sandbox: Any
) -> None:
    make_project(
        cli.cwd,
        endpoint=sandbox.base_url,
        n_datasets=1,
        n_jobs=1,
        extra_job_fields="budget: {max_cost: 0.0001}\n",
    )
    mark = len(sandbox.journal())
    for args in (["plan"], ["plan", "--detailed-exitcode"], ["plan", "--format", "json"]):
        proc = cli.run(*args, check=1)
        assert "the plan has 1 error(s), listed first; apply would refuse it" in proc.stderr
    text = cli.run("plan", check=1).stdout.splitlines()
    assert text[3] == "Errors (apply will refuse this plan):"
    assert text[4].startswith("   x  job.job0: estimated cost 2.62 USD (local: 10 steps")
    assert "over its budget.max_cost 0.0001" in text[4]
    applied = cli.run("apply", "--yes", check=1)
    assert "apply refuses this plan; nothing was done" in applied.stderr
    assert mutating(sandbox.journal()[mark:]) == []
    assert json.loads(cli.run("state", "list", "--format", "json").stdout)["resources"] == []
    # The same for the whole run: --max-cost on plan and apply, budget on the Provider.
    (cli.cwd / "specs.yaml").write_text(
        (cli.cwd / "specs.yaml").read_text().replace("budget: {max_cost: 0.0001}\n", "")
    )
    cli.run("plan", "--detailed-exitcode", check=2)
    over = cli.run("plan", "--max-cost", "2", check=1)
    assert "over the run's cap of 2.00 USD (--max-cost)" in over.stdout
    assert "over the run's cap" in cli.run("apply", "--yes", "--max-cost", "2", check=1).stderr
    assert mutating(sandbox.journal()[mark:]) == []


def test_the_provider_budget_caps_the_run(tmp_path: Path, sandbox: Any) -> None:
    from tests.engine.conftest import cli_env

    cli = Cli(cwd=tmp_path / "capped", env=cli_env())
    make_project(
        cli.cwd,
        endpoint=sandbox.base_url,
        n_datasets=1,
        n_jobs=2,
        provider_fields="budget: {max_cost: 5}\n",
    )
    proc = cli.run("plan", "--format", "markdown", check=1)
    assert ":x: **1 error(s): apply will refuse this plan.**" in proc.stdout
    assert "5.24 USD for 2 job(s), is over the run's cap of 5.00 USD (Provider budget)" in (
        proc.stdout
    )


def test_the_remote_s_figure_stays_the_gate_at_apply(cli: Cli, sandbox: Any) -> None:
    # Prices that make the local estimate free: within the budget at plan time, while the
    # sandbox's own figure at VALIDATED (2.62 USD) is over it, so the job is not started.
    make_project(
        cli.cwd,
        endpoint=sandbox.base_url,
        n_datasets=1,
        n_jobs=1,
        extra_job_fields="budget: {max_cost: 1}\n",
        provider_fields="prices: {open-mistral-7b: {train_per_million_tokens: 0, "
        "minimum_fee: 0}}\n",
    )
    assert "cost estimate: 0.00 USD (local)" in cli.run("plan", check=0).stdout
    proc = cli.run("apply", "--yes", check=1)
    assert "over the budget" in proc.stderr and "job.job0" in proc.stderr
    with remote(sandbox) as client:
        (job,) = client.list_jobs()
        assert job.status == "VALIDATED"
    # Now the remote's figure is known: the plan to start the job is over budget.
    plan = cli.run("plan", check=1)
    assert "> job.job0" in plan.stdout and "validated-not-started" in plan.stdout
    assert "job.job0: estimated cost 2.62 USD (remote-validation) is over its budget" in (
        plan.stdout
    )


def test_start_false_leaves_job_validated(cli: Cli, sandbox: Any) -> None:
    make_project(
        cli.cwd,
        endpoint=sandbox.base_url,
        n_datasets=1,
        n_jobs=1,
        extra_job_fields="start: false\n",
    )
    cli.run("apply", "--yes", check=0)
    with remote(sandbox) as client:
        (job,) = client.list_jobs()
        assert job.status in ("QUEUED", "VALIDATING", "VALIDATED")
    assert "No changes." in cli.run("plan", check=0).stdout


def test_secrets_absent_from_state_plan_files_and_output(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, wandb=True)
    outputs = [
        cli.run("validate", check=0),
        cli.run("plan", "--format", "json", check=0),
        cli.run("plan", "--format", "markdown", "--out", "saved.plan", check=0),
        cli.run("apply", "saved.plan", check=0),
        cli.run("apply", "--yes", "--format", "json", check=0),
        cli.run("state", "list"),
        cli.run("output", "--format", "json"),
    ]
    texts = [p.stdout + p.stderr for p in outputs]
    texts.append((cli.cwd / "saved.plan").read_text())
    for path in (cli.cwd / ".reconciler").rglob("*.json"):
        texts.append(path.read_text(errors="replace"))
    for secret in (WANDB_KEY, SANDBOX_KEY):
        assert not [t for t in texts if secret in t]
    # The reference is what shows.
    assert "WANDB_API_KEY" in (cli.cwd / "saved.plan").read_text()


def test_missing_secret_is_reported_at_apply_not_validate(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, wandb=True)
    env = {k: v for k, v in cli.env.items() if k != "WANDB_API_KEY"}
    quiet = Cli(cwd=cli.cwd, env=env)
    quiet.run("validate", check=0)
    proc = quiet.run("apply", "--yes", check=1)
    assert "WANDB_API_KEY" in proc.stderr


def test_prune_cancels_and_forgets(tmp_path: Path, flavour: Flavour) -> None:
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.server import EmbeddedSandbox
    from tests.engine.conftest import cli_env

    # Real-time scale: the sandbox caps a run at 60 s, so the job is still running at prune.
    with EmbeddedSandbox(
        SandboxConfig(
            data_dir=tmp_path / "slow",
            api_key=SANDBOX_KEY,
            time_scale=1.0,
            dialect=flavour.dialect,
        )
    ) as sandbox:
        (tmp_path / "project").mkdir()
        cli = Cli(cwd=tmp_path / "project", env=cli_env(**flavour.env(sandbox.base_url)))

        def specs(n_jobs: int) -> None:
            make_project(
                cli.cwd, endpoint=sandbox.base_url, n_jobs=n_jobs, steps=2000, flavour=flavour
            )

        specs(2)
        cli.run("apply", "--yes", check=0)
        specs(1)  # job1 is no longer named
        plan = cli.run("plan", check=0)
        assert "job.job1" in plan.stdout and "--prune" in plan.stdout
        pruned = cli.run("plan", "--prune", check=0)
        assert "cancel active job" in pruned.stdout
        cli.run("apply", "--yes", "--prune", check=0)
        assert "job.job1" not in state_of(cli)["resources"]
        with flavour.client(sandbox.base_url, SANDBOX_KEY) as client:
            statuses = {flavour.job_key(j): j.status for j in client.list_jobs()}
        assert statuses["t1"] in ("CANCELLED", "CANCELLATION_REQUESTED")
        assert statuses["t0"] not in ("CANCELLED", "CANCELLATION_REQUESTED")


def test_embedded_sandbox_is_the_default_and_says_so(tmp_path: Path) -> None:
    from tests.engine.conftest import cli_env

    project = make_project(tmp_path / "p", endpoint=None, n_datasets=1, n_jobs=1)
    cli = Cli(cwd=project, env=cli_env())
    first = cli.run("apply", "--yes", check=0)
    assert first.stdout.splitlines()[0].startswith("Target: embedded sandbox (")
    assert (project / ".reconciler" / "sandbox").is_dir()
    assert "No changes." in cli.run("apply", "--yes", check=0).stdout


def test_apply_wait_exits_nonzero_naming_the_failed_job(tmp_path: Path, flavour: Flavour) -> None:
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.config import FaultSpec
    from reconciler.sandbox.server import EmbeddedSandbox
    from tests.engine.conftest import cli_env

    failing = SandboxConfig(
        data_dir=tmp_path / "failing",
        api_key=SANDBOX_KEY,
        time_scale=50.0,
        faults=FaultSpec(job_failure=1.0),
        dialect=flavour.dialect,
    )
    with EmbeddedSandbox(failing) as sandbox:
        (tmp_path / "project").mkdir()
        cli = Cli(cwd=tmp_path / "project", env=cli_env(**flavour.env(sandbox.base_url)))
        make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, flavour=flavour)
        proc = cli.run("apply", "--yes", "--wait", check=1)
        assert "job.job0" in proc.stderr and "did not succeed" in proc.stderr
        assert "FAILED" in proc.stdout + proc.stderr
        # Failed once, not retried: the next plan reports drift, not a new create.
        plan = cli.run("plan", check=0)
        assert "drift" in plan.stdout and "--replace job.job0" in plan.stdout


def test_remote_estimate_is_opt_in_and_a_job_answered_instead_is_cancelled(
    cli: Cli, sandbox: Any
) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    cli.run("apply", "--yes", "--target", "dataset.*", check=0)  # the file, not the job
    mark = len(sandbox.journal())
    assert "cost estimate: 2.62 USD (local)" in cli.run("plan", check=0).stdout
    assert mutating(sandbox.journal()[mark:]) == []
    asked = cli.run("plan", "--remote-estimate", "--format", "json", check=0)
    (job,) = [c for c in json.loads(asked.stdout)["changes"] if c["type"] == "job"]
    assert job["cost"]["source"] == "dry_run" and job["cost"]["amount"] == 2.6214
    posts = mutating(sandbox.journal()[mark:])
    assert [(e["method"], e["query"]) for e in posts] == [("POST", "dry_run=true")]
    with remote(sandbox) as client:
        assert client.list_jobs() == []
    # Through a proxy that drops the query parameter, the "dry run" creates a real job.
    specs = cli.cwd / "specs.yaml"
    with DroppingProxy(sandbox.base_url, frozenset({"dry_run"})) as proxy:
        specs.write_text(specs.read_text().replace(sandbox.base_url, proxy.base_url))
        # The state is bound to the sandbox's address: --rebind plans through the proxy.
        failed = cli.run("plan", "--remote-estimate", "--rebind", check=1)
        assert proxy.dropped == 1, failed.stderr
    assert (
        "the remote answered POST /v1/fine_tuning/jobs?dry_run=true with a job instead of an "
        "estimate" in failed.stderr
    )
    with remote(sandbox) as client:
        (made,) = client.list_jobs()
    assert f"job.job0: job {made.id} cancelled" in failed.stderr
    assert made.status in ("CANCELLED", "CANCELLATION_REQUESTED")
    # That cancelled job trained nothing: it is no possible duplicate of the job to create.
    specs.write_text(specs.read_text().replace(proxy.base_url, sandbox.base_url))
    again = cli.run("plan", "--detailed-exitcode", check=2)
    assert "+ job.job0" in again.stdout and "possible duplicate" not in again.stdout
