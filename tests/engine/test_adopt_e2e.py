"""Adopting existing work through the CLI, against a sandbox server on 127.0.0.1.

Remote objects made with the official SDK (``mistralai``) — a file under a name of its own
and a job trained on it — are adopted by ``import --discover`` and the next plan has nothing
to do; renames with ``Moved`` and ``state mv`` and reverts train nothing again; ``gc`` lists and
deletes only what nothing uses.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from reconciler.client.api import MistralClient
from tests.engine.conftest import SANDBOX_KEY, Cli, mutating
from tests.engine.project import make_project


def _sdk(sandbox: Any) -> Any:
    """The official SDK on the sandbox (imported here, by the test that uses it: importing it
    costs every process that collects this module most of a second)."""
    mistral_client = pytest.importorskip("mistralai.client", reason="mistralai SDK not installed")
    return mistral_client.Mistral(api_key=SANDBOX_KEY, server_url=sandbox.base_url)


def _wait_for(sdk: Any, job_id: str, status: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        job = sdk.fine_tuning.jobs.get(job_id=job_id)
        if job.status == status:
            return job
        assert time.monotonic() < deadline, f"job {job_id} is {job.status}, not {status}"
        time.sleep(0.1)


def _sdk_job(
    sdk: Any, file_id: str, *, auto_start: bool, steps: int = 10, suffix: str = "t0"
) -> Any:
    """A job made with the SDK; with the defaults, job0's exact request (see make_project)."""
    return sdk.fine_tuning.jobs.create(
        model="open-mistral-7b",
        training_files=[{"file_id": file_id, "weight": 1}],
        hyperparameters={"training_steps": steps, "learning_rate": 0.0001},
        suffix=suffix,
        auto_start=auto_start,
    )


def _last_journal_id(sandbox: Any) -> int:
    journal = sandbox.journal()
    return int(journal[-1]["id"]) if journal else 0


def _state(cli: Cli) -> dict[str, Any]:
    listed = json.loads(cli.run("state", "list", "--format", "json", check=0).stdout)
    return {r["address"]: r for r in listed["resources"]}


def test_sdk_made_objects_are_adopted_by_discover_without_one_upload_or_create(
    cli: Cli, sandbox: Any
) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=2, n_jobs=2)
    sdk = _sdk(sandbox)
    # The SDK script of a team that fine-tuned before adopting the tool: its own file names.
    with (cli.cwd / "data" / "d0.jsonl").open("rb") as fh:
        uploaded = sdk.files.upload(
            file={"file_name": "search-queries.jsonl", "content": fh}, purpose="fine-tune"
        )
    job = _sdk_job(sdk, uploaded.id, auto_start=True)
    done = _wait_for(sdk, job.id, "SUCCESS")
    # A second SDK job with another request is not adopted by job.job1 (suffix t1).
    other = _sdk_job(sdk, uploaded.id, auto_start=False, steps=20, suffix="t1")
    mark = _last_journal_id(sandbox)

    found = cli.run("import", "--discover", "--dry-run", check=0)
    assert "Would import 2 object(s)" in found.stdout
    assert _state(cli) == {}  # a dry run records nothing

    adopted = cli.run("import", "--discover", check=0)
    assert "Imported 2 object(s)" in adopted.stdout
    assert f"dataset.d0[all] = file {uploaded.id} (search-queries.jsonl, same content)" in (
        adopted.stdout
    )
    assert f"job.job0        = job {job.id} (SUCCESS, same request)" in adopted.stdout
    assert "No remote match (the next plan creates them): dataset.d1[all], job.job1" in (
        adopted.stdout
    )
    state = _state(cli)
    assert state["dataset.d0[all]"]["remote_id"] == uploaded.id
    assert state["job.job0"]["remote_id"] == job.id
    assert other.id not in {r["remote_id"] for r in state.values()}

    # Only what the specs still lack is left to make: no re-upload of d0, no new job0.
    plan = json.loads(cli.run("plan", "--format", "json", check=0).stdout)
    acting = {c["address"]: c["action"] for c in plan["changes"] if c["action"] != "no-op"}
    assert acting == {"dataset.d1[all]": "create", "job.job1": "create"}

    # With only what the SDK made in the specs, the plan is "No changes" and apply sends nothing.
    specs = cli.cwd / "specs.yaml"
    docs = specs.read_text(encoding="utf-8").split("---\n")
    specs.write_text(
        "---\n".join(d for d in docs if "name: d1\n" not in d and "name: job1\n" not in d),
        encoding="utf-8",
    )
    assert "No changes." in cli.run("plan", "--detailed-exitcode", check=0).stdout
    assert "No changes." in cli.run("apply", "--yes", check=0).stdout
    sent = mutating(sandbox.journal(mark))
    assert sent == [], sent  # no upload, no create, no start: only reads (and one download)
    downloads = [e for e in sandbox.journal(mark) if e["path"].endswith("/content")]
    assert len(downloads) == 2  # the dry run and the import each hashed the file once
    assert "ft:open-mistral-7b" in str(done.fine_tuned_model)
    output = cli.run("output", "--format", "json", check=0)
    assert done.fine_tuned_model in output.stdout


def test_import_adopts_a_file_by_content_and_a_job_with_its_files(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    sdk = _sdk(sandbox)
    content = (cli.cwd / "data" / "d0.jsonl").read_bytes()
    uploaded = sdk.files.upload(file={"file_name": "hand-made.jsonl", "content": content})
    job = _sdk_job(sdk, uploaded.id, auto_start=False)
    imported = cli.run("import", "job.job0", job.id, check=0)
    assert f"Imported job.job0 = job {job.id}." in imported.stdout
    assert f"Imported dataset.d0[all] = file {uploaded.id} (the job's file" in imported.stdout
    assert "Warning" not in imported.stdout
    plan = json.loads(cli.run("plan", "--format", "json", check=0).stdout)
    actions = {c["address"]: (c["action"], c["reason"]) for c in plan["changes"]}
    # Created without starting: the plan starts it, and uploads and creates nothing.
    assert actions == {
        "dataset.d0[all]": ("no-op", "in-sync"),
        "job.job0": ("start", "awaiting-validation"),
    } or actions == {
        "dataset.d0[all]": ("no-op", "in-sync"),
        "job.job0": ("start", "validated-not-started"),
    }

    # A file whose content differs (same size, other bytes) is recorded as what it is:
    # the plan uploads the spec's content.
    cli.run("state", "rm", "dataset.d0[all]", "job.job0", check=0)
    twisted = content.replace(b"Question 0", b"Question 9")
    assert len(twisted) == len(content)
    imposter = sdk.files.upload(file={"file_name": "other.jsonl", "content": twisted})
    differs = cli.run("import", "dataset.d0[all]", imposter.id, check=0)
    assert "differs from the spec in: sha256" in differs.stdout
    again = json.loads(cli.run("plan", "--format", "json", check=0).stdout)
    file_change = next(c for c in again["changes"] if c["address"] == "dataset.d0[all]")
    assert (file_change["action"], file_change["reason"]) == ("replace", "content-changed")


def test_declared_import_and_moved_are_planned_applied_and_harmless_left_in(
    cli: Cli, sandbox: Any
) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    cli.run("apply", "--yes", check=0)
    job_id = _state(cli)["job.job0"]["remote_id"]
    specs = cli.cwd / "specs.yaml"
    text = specs.read_text(encoding="utf-8")
    # Rename job0 -> tone, reviewed in the plan as a move.
    specs.write_text(
        text.replace("name: job0", "name: tone")
        + "---\nkind: Moved\nname: rename-job0\nfrom: job.job0\nto: job.tone\n",
        encoding="utf-8",
    )
    mark = _last_journal_id(sandbox)
    planned = cli.run("plan", "--detailed-exitcode", check=2)
    assert "-> job.tone  (move: moved)" in planned.stdout
    assert "moved from job.job0 (a Moved document): state only, no cost" in planned.stdout
    assert "0 to add" in planned.stdout and "1 to move (no cost)" in planned.stdout
    applied = cli.run("apply", "--yes", check=0)
    assert "Apply complete: 1 applied, 0 failed" in applied.stdout
    assert _state(cli)["job.tone"]["remote_id"] == job_id
    assert "job.job0" not in _state(cli)
    # Left in the spec, it is harmless: nothing to do, nothing sent.
    assert "No changes." in cli.run("plan", "--detailed-exitcode", check=0).stdout
    assert mutating(sandbox.journal(mark)) == []

    # An Import document of an object another address holds is a plan error naming it.
    with specs.open("a", encoding="utf-8") as fh:
        fh.write(f"---\nkind: Import\nname: wrong\nto: dataset.d0[all]\nid: {job_id}\n")
    refused = cli.run("plan", check=1)
    assert "specs.yaml:" in refused.stderr and f"Import dataset.d0[all] = {job_id}" in (
        refused.stderr
    )


def test_declared_import_of_an_sdk_job_is_reviewed_then_recorded(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    sdk = _sdk(sandbox)
    content = (cli.cwd / "data" / "d0.jsonl").read_bytes()
    uploaded = sdk.files.upload(file={"file_name": "from-a-notebook.jsonl", "content": content})
    job = _sdk_job(sdk, uploaded.id, auto_start=True)
    specs = cli.cwd / "specs.yaml"
    with specs.open("a", encoding="utf-8") as fh:
        fh.write(f"---\nkind: Import\nname: adopt-job0\nto: job.job0\nid: {job.id}\n")
    mark = _last_journal_id(sandbox)
    plan = json.loads(cli.run("plan", "--format", "json", check=0).stdout)
    actions = {c["address"]: (c["action"], c.get("import_id")) for c in plan["changes"]}
    assert actions == {
        "dataset.d0[all]": ("import", uploaded.id),
        "job.job0": ("import", job.id),
    }
    assert all(c.get("cost") is None for c in plan["changes"])
    cli.run("apply", "--yes", check=0)
    state = _state(cli)
    assert (state["job.job0"]["remote_id"], state["dataset.d0[all]"]["remote_id"]) == (
        job.id,
        uploaded.id,
    )
    again = cli.run("plan", "--detailed-exitcode", check=0)
    assert "No changes." in again.stdout
    assert mutating(sandbox.journal(mark)) == []


def test_state_mv_renames_without_touching_the_remote(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    cli.run("apply", "--yes", check=0)
    job_id = _state(cli)["job.job0"]["remote_id"]
    specs = cli.cwd / "specs.yaml"
    specs.write_text(specs.read_text(encoding="utf-8").replace("name: job0", "name: tone"))
    mark = _last_journal_id(sandbox)
    moved = cli.run("state", "mv", "job.job0", "job.tone", check=0)
    assert f"Moved job.job0 to job.tone (remote {job_id} is untouched)." in moved.stdout
    assert "No changes." in cli.run("plan", "--detailed-exitcode", check=0).stdout
    refused = cli.run("state", "mv", "job.tone", "dataset.d0[all]", check=1)
    assert "already recorded" in refused.stderr
    missing = cli.run("state", "mv", "job.nope", "job.other", check=1)
    assert "job.nope: no such address in the state" in missing.stderr
    assert mutating(sandbox.journal(mark)) == []


def test_gc_lists_and_deletes_only_earlier_uploads_no_job_used(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=2, n_jobs=1)
    cli.run("apply", "--yes", check=0)
    first = _state(cli)
    # Both datasets change. d1 is used by no job: its earlier upload is garbage. d0's
    # earlier upload is kept: the job it replaced (now in history) trained on it.
    data = cli.cwd / "data"
    for name in ("d0", "d1"):
        source = data / f"{name}.jsonl"
        source.write_text(source.read_text() + source.read_text().replace("Q", "Another q"))
    cli.run("apply", "--yes", check=0)
    old_d1 = first["dataset.d1[all]"]["remote_id"]
    assert _state(cli)["dataset.d0[all]"]["remote_id"] != first["dataset.d0[all]"]["remote_id"]
    with MistralClient(sandbox.base_url, SANDBOX_KEY) as client:
        outsider = client.upload_file(data / "d0.jsonl", "someone-elses.jsonl").id
    listed = json.loads(cli.run("gc", "--format", "json", check=0).stdout)
    assert [f["id"] for f in listed["files"]] == [old_d1]
    assert listed["files"][0]["replaced_by"] == "dataset.d1[all]"
    wide = json.loads(cli.run("gc", "--all", "--format", "json", check=0).stdout)
    assert {f["id"] for f in wide["files"]} == {old_d1, outsider}
    mark = _last_journal_id(sandbox)
    deleted = cli.run("gc", "--yes", check=0)
    assert "Deleted 1 remote file(s)." in deleted.stdout
    sent = mutating(sandbox.journal(mark))
    assert [(e["method"], e["path"]) for e in sent] == [("DELETE", f"/v1/files/{old_d1}")]
    assert "No changes." in cli.run("plan", "--detailed-exitcode", check=0).stdout


def test_a_revert_restores_the_job_that_succeeded_with_that_request(cli: Cli, sandbox: Any) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1, steps=30)
    cli.run("apply", "--yes", check=0)
    first = _state(cli)["job.job0"]["remote_id"]
    _wait_for(_sdk(sandbox), first, "SUCCESS")
    specs = cli.cwd / "specs.yaml"
    at_30 = specs.read_text(encoding="utf-8")
    specs.write_text(at_30.replace("training_steps: 30", "training_steps: 32"), encoding="utf-8")
    cli.run("apply", "--yes", check=0)
    second = _state(cli)["job.job0"]["remote_id"]
    assert second != first

    specs.write_text(at_30, encoding="utf-8")  # the revert
    mark = _last_journal_id(sandbox)
    planned = cli.run("plan", check=0)
    assert "<- job.job0  (restore: previous-job-same-request)" in planned.stdout
    assert f"restore: previous job {first} had this exact request and SUCCEEDED" in (planned.stdout)
    assert "Estimated cost" not in planned.stdout and "1 to restore (no cost)" in planned.stdout
    cli.run("apply", "--yes", check=0)
    assert _state(cli)["job.job0"]["remote_id"] == first
    sent = [(e["method"], e["path"]) for e in mutating(sandbox.journal(mark))]
    # No upload, no create: at most the cancel of the 32-step job if it was still running.
    assert sent in ([], [("POST", f"/v1/fine_tuning/jobs/{second}/cancel")]), sent
    assert "No changes." in cli.run("plan", "--detailed-exitcode", check=0).stdout
    # --replace still asks for a new run.
    again = json.loads(cli.run("plan", "--replace", "job.job0", "--format", "json").stdout)
    assert [c["action"] for c in again["changes"] if c["address"] == "job.job0"] == ["replace"]


def test_imports_cost_nothing_and_a_new_job_on_an_imported_file_is_priced(
    cli: Cli, sandbox: Any
) -> None:
    make_project(cli.cwd, endpoint=sandbox.base_url, n_datasets=1, n_jobs=1)
    sdk = _sdk(sandbox)
    content = (cli.cwd / "data" / "d0.jsonl").read_bytes()
    uploaded = sdk.files.upload(file={"file_name": "from-a-notebook.jsonl", "content": content})
    specs = cli.cwd / "specs.yaml"
    with specs.open("a", encoding="utf-8") as fh:
        fh.write(f"---\nkind: Import\nname: adopt-d0\nto: dataset.d0[all]\nid: {uploaded.id}\n")
    # The file is imported (no cost), the job on it is to pay for, locally estimated...
    planned = cli.run("plan", "--detailed-exitcode", check=2)
    assert "<= dataset.d0[all]  (import: import-declared)" in planned.stdout
    assert "1 to import (no cost). Estimated cost: 2.62 USD for 1 job(s)." in planned.stdout
    # ... and, on request, by the remote: it has the imported file already.
    mark = _last_journal_id(sandbox)
    asked = json.loads(cli.run("plan", "--remote-estimate", "--format", "json", check=0).stdout)
    costs = {c["address"]: c["cost"] for c in asked["changes"]}
    assert costs["dataset.d0[all]"] is None
    assert costs["job.job0"]["source"] == "dry_run" and costs["job.job0"]["amount"] == 2.6214
    assert [(e["method"], e["query"]) for e in mutating(sandbox.journal(mark))] == [
        ("POST", "dry_run=true")
    ]
    assert not any("no estimate" in w for w in asked["warnings"])
    # A run cap counts only what costs money: over it with the job, within it without.
    refused = cli.run("apply", "--yes", "--max-cost", "0.01", check=1)
    assert "over the run's cap of 0.01 USD (--max-cost)" in refused.stderr
    assert _state(cli) == {}
    cli.run("apply", "--yes", "--max-cost", "0.01", "--target", "dataset.*", check=0)
    assert _state(cli)["dataset.d0[all]"]["remote_id"] == uploaded.id
