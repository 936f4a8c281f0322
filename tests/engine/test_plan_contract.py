"""Command-line contracts of plans for review and CI, against a sandbox on 127.0.0.1.

One remote job per address (``validate`` refuses jobs the remote cannot tell apart), a
replacement the remote would refuse cancels first, drift and leftovers fail
``--detailed-exitcode``, ``--target`` and ``--selector`` name what they select or say why
nothing matches.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.client.api import MistralClient
from tests.engine.conftest import SANDBOX_KEY, Cli
from tests.engine.project import make_project


def remote(sandbox: Any) -> MistralClient:
    return MistralClient(sandbox.base_url, SANDBOX_KEY)


def _specs(cli: Cli) -> str:
    return (cli.cwd / "specs.yaml").read_text(encoding="utf-8")


def _write(cli: Cli, text: str) -> None:
    (cli.cwd / "specs.yaml").write_text(text, encoding="utf-8")


def test_validate_refuses_two_jobs_the_remote_cannot_tell_apart(cli: Cli, sandbox: Any) -> None:
    # Before: both were "created" with the same job id, and a later change of one cancelled
    # the job the other still owned.
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=2)
    _write(cli, _specs(cli).replace("suffix: t1\n", "suffix: t0\n"))
    for command in (("validate",), ("plan",)):
        proc = cli.run(*command, check=1)
        out = proc.stdout + proc.stderr
        assert "job.job1 (specs.yaml:" in out and "job.job0 (specs.yaml:" in out
        assert "the remote cannot tell their jobs apart" in out
        assert "give one of them a distinct suffix" in out
    # A training-file weight is not readable back: not a difference the remote can see.
    weighted = _specs(cli).replace(
        "training_files: [d0]\nhyperparameters: {training_steps: 10, learning_rate: 1.0e-4}\n"
        "suffix: t0\n",
        "training_files: [{dataset: d0, weight: 2}]\n"
        "hyperparameters: {training_steps: 10, learning_rate: 1.0e-4}\nsuffix: t0\n",
        1,
    )
    assert weighted != _specs(cli)
    _write(cli, weighted)
    assert "indistinguishable-jobs" in cli.run("validate", check=1).stdout
    with remote(sandbox) as client:
        assert client.list_jobs() == []


def test_a_weight_only_change_of_an_active_job_cancels_it_before_creating(
    cli: Cli, sandbox: Any
) -> None:
    # start: false keeps the job VALIDATED, which the remote counts as active (409).
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    _write(cli, _specs(cli) + "start: false\n")
    cli.run("apply", "--yes", check=0)
    with remote(sandbox) as client:
        (old,) = client.list_jobs()
    _write(
        cli,
        _specs(cli).replace("training_files: [d0]", "training_files: [{dataset: d0, weight: 2}]"),
    )
    plan = cli.run("plan", check=0)
    assert "training_files[0].weight: 1.0 → 2.0" in plan.stdout
    assert f"cancel before create: previous job {old.id}" in plan.stdout
    data = json.loads(cli.run("plan", "--format", "json", check=0).stdout)
    job = next(c for c in data["changes"] if c["address"] == "job.job0")
    assert job["cancel_first"] is True and job["previous"]["disposition"] == "cancel"
    cli.run("apply", "--yes", check=0)
    with remote(sandbox) as client:
        jobs = {j.id: j.status for j in client.list_jobs()}
    assert len(jobs) == 2 and jobs[old.id] == "CANCELLED"
    (new_status,) = [s for i, s in jobs.items() if i != old.id]
    assert new_status in ("QUEUED", "VALIDATING", "VALIDATED")
    assert "No changes." in cli.run("plan", "--detailed-exitcode", check=0).stdout


def test_drift_and_leftovers_exit_2_with_detailed_exitcode(cli: Cli, sandbox: Any) -> None:
    # Before: "No changes" and exit 0 — a scheduled drift check never failed.
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=2)
    _write(cli, _specs(cli) + "start: false\n")  # keeps job1 VALIDATED: cancellable
    cli.run("apply", "--yes", check=0)
    assert "No changes." in cli.run("plan", "--detailed-exitcode", check=0).stdout
    state = json.loads(cli.run("state", "show", "job.job1", "--format", "json", check=0).stdout)
    with remote(sandbox) as client:
        client.cancel_job(state["resource"]["remote_id"])
    drifted = cli.run("plan", "--detailed-exitcode", check=2)
    assert "No changes to apply; 1 drifted." in drifted.stdout
    # job1 leaves the specs: it is drifted no more, but it is a leftover.
    _write(cli, _specs(cli).split("---\nkind: FineTuningJob\nname: job1")[0])
    left = cli.run("plan", "--detailed-exitcode", check=2)
    assert "No changes to apply; 1 not in spec." in left.stdout
    markdown = cli.run("plan", "--format", "markdown", "--detailed-exitcode", check=2)
    assert "No changes to apply; 1 not in spec." in markdown.stdout


def test_targets_and_selectors(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=2, n_jobs=2)
    _write(
        cli,
        _specs(cli)
        .replace("name: job0\n", "name: job0\nlabels: {team: search}\n")
        .replace("name: job1\n", "name: job1\nlabels: {team: tone}\n"),
    )
    typo = cli.run("plan", "--target", "job.jb0", check=1)
    assert "--target job.jb0 matches no address" in typo.stderr
    assert "did you mean job.job0" in typo.stderr
    glob = cli.run("plan", "--target", "dataset.*[all]", check=0)
    assert "dataset.d0[all]" in glob.stdout and "job.job0" not in glob.stdout
    selected = json.loads(
        cli.run("plan", "--format", "json", "--selector", "team=tone", check=0).stdout
    )
    changes = {c["address"]: c for c in selected["changes"]}
    assert sorted(changes) == ["dataset.d1[all]", "job.job1"]
    assert changes["job.job1"]["labels"] == {"team": "tone"}
    assert changes["job.job1"]["location"].startswith("specs.yaml:")
    wrong = cli.run("plan", "--selector", "team=tones", check=1)
    assert "did you mean team=tone?" in wrong.stderr
    cli.run("apply", "--yes", "--selector", "team=search", check=0)
    status = json.loads(
        cli.run("status", "--format", "json", "--selector", "team=search", check=0).stdout
    )
    assert [r["address"] for r in status["resources"]] == ["job.job0"]
    output = json.loads(
        cli.run("output", "--format", "json", "--selector", "team=search", check=0).stdout
    )
    assert list(output["outputs"]) == ["job.job0"]
    cli.run("output", "--selector", "team=nobody", check=1)
