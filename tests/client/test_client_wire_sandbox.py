"""Files without a size, end to end: the embedded sandbox's file objects reach the client as
``bytes: null`` (as in the contract's own examples), and nothing that matches files by name and
size loses them — not the planner after a lost state, not ``import``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_boundary import tap_clients
from typer.testing import CliRunner

import reconciler.cli.commands  # noqa: F401 - registers the commands
from reconciler.cli.app import app
from reconciler.engine.state_file import FileStateBackend
from tests.engine.project import write_dataset

SPECS = """\
kind: Dataset
name: d0
path: data/d0.jsonl
---
kind: FineTuningJob
name: job0
model: open-mistral-7b
training_files: [d0]
start: false
suffix: sizeless
hyperparameters: {training_steps: 10}
"""


def without_sizes(request: httpx.Request, answer: Any) -> Any:
    if request.url.path.startswith("/v1/files") and isinstance(answer, dict):
        for item in answer.get("data") or [answer]:
            if isinstance(item, dict) and "bytes" in item:
                item["bytes"] = None
    return answer


def cli(*args: str, ok: int = 0) -> str:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == ok, f"{' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.stdout


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "p"
    (root / "data").mkdir(parents=True)
    write_dataset(root / "data" / "d0.jsonl", "sizes", samples=8)
    (root / "specs.yaml").write_text(SPECS)
    monkeypatch.setenv("RECONCILER_SANDBOX_TIME_SCALE", "50")
    tap_clients(monkeypatch, edit=without_sizes)
    return root


def test_sizeless_files_are_found_by_name_after_a_lost_state(project: Path) -> None:
    p = str(project)
    cli("apply", "--yes", p)
    state_path = project / ".reconciler" / "state.json"
    applied = FileStateBackend(state_path).read()
    assert applied is not None
    file_res, job_res = applied.resources["dataset.d0[all]"], applied.resources["job.job0"]
    state_path.unlink()

    # The remote file is recognised by its name: reused, and the job made from it is seen
    # as a possible duplicate instead of being created a second time (a plan error: exit 1).
    planned = json.loads(cli("plan", "--format", "json", p, ok=1))
    changes = {c["address"]: c for c in planned["changes"]}
    upload = changes["dataset.d0[all]"]
    assert upload["reason"] == "exists-remotely-identical"
    assert upload["after"]["reuse"] == file_res.remote_id
    assert job_res.remote_id in (changes["job.job0"]["blocked"] or "")

    # Import adopts the file as the spec's content, so the next plan has nothing to do.
    cli("import", "dataset.d0[all]", file_res.remote_id, "-p", p)
    cli("import", "job.job0", job_res.remote_id, "-p", p)
    imported = FileStateBackend(state_path).read()
    assert imported is not None
    assert imported.resources["dataset.d0[all]"].fingerprint == file_res.fingerprint
    cli("plan", "--detailed-exitcode", p)
