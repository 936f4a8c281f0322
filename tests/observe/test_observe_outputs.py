"""Stable outputs: an address keeps its last model while its replacement has none yet.

``reconciler output`` used to print ``(no model yet: RUNNING)`` as soon as a spec change
replaced a job, so downstream configuration lost its model for the whole run. The previous
jobs of an address are in its state history; refreshed, the newest that succeeded gives the
model, and the replacement is named as ``pending_job``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli.app import app
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import ResourceState, State
from reconciler.observe.outputs import job_ids, outputs, render_outputs_text
from tests.engine.project import make_project

OLD, OLDER = "ft:open-mistral-7b:b6e34a5e:20260101:0000aaaa", "ft:open-mistral-7b:b6:older"


def _state(*history: dict[str, Any], status: str = "RUNNING") -> State:
    job = ResourceState(
        address="job.x",
        type="job",
        remote_id="new-job",
        fingerprint="f" * 64,
        attributes={"status": status},
        history=list(history),
    )
    return State(resources={"job.x": job})


def _remote(job_id: str, status: str, model: str | None = None) -> dict[str, Any]:
    return {"id": job_id, "status": status, "fine_tuned_model": model}


@pytest.mark.parametrize("status", ["QUEUED", "RUNNING", "FAILED", "CANCELLED"])
def test_the_newest_successful_previous_model_stays_while_the_new_job_has_none(
    status: str,
) -> None:
    state = _state(
        {"remote_id": "older-job", "fine_tuned_model": OLDER},
        # Replaced while it was still running: its model is known only from the refresh.
        {"remote_id": "old-job", "fine_tuned_model": None},
        {"remote_id": "cancelled-job", "fine_tuned_model": None},
    )
    remote = {
        "new-job": _remote("new-job", status),
        "old-job": _remote("old-job", "SUCCESS", OLD),
        "cancelled-job": _remote("cancelled-job", "CANCELLED"),
    }
    values = outputs(state, remote)
    assert values == {
        "job.x": {
            "fine_tuned_model": OLD,
            "job_id": "old-job",
            "status": "SUCCESS",
            "pending_job": {"job_id": "new-job", "status": status},
        }
    }
    assert render_outputs_text(values) == f"job.x = {OLD} (previous; job new-job {status})"


def test_the_history_alone_gives_the_model_when_the_old_job_is_not_refreshed() -> None:
    state = _state({"remote_id": "older-job", "fine_tuned_model": OLDER})
    values = outputs(state, {})
    assert values["job.x"]["fine_tuned_model"] == OLDER
    assert values["job.x"]["pending_job"] == {"job_id": "new-job", "status": "RUNNING"}


def test_the_new_model_wins_once_the_replacement_succeeded() -> None:
    state = _state({"remote_id": "old-job", "fine_tuned_model": OLD})
    values = outputs(state, {"new-job": _remote("new-job", "SUCCESS", "ft:new")})
    assert values == {
        "job.x": {"fine_tuned_model": "ft:new", "job_id": "new-job", "status": "SUCCESS"}
    }


def test_without_a_previous_model_there_is_no_model_yet() -> None:
    state = _state({"remote_id": "old-job", "fine_tuned_model": None})
    values = outputs(state, {"old-job": _remote("old-job", "CANCELLED")})
    assert values == {"job.x": {"fine_tuned_model": None, "job_id": "new-job", "status": "RUNNING"}}
    assert render_outputs_text(values) == "job.x = (no model yet: RUNNING)"


def test_output_asks_the_remote_about_previous_jobs_too() -> None:
    state = _state({"remote_id": "old-job"}, {"replaced_at": 1.0})
    assert job_ids(state) == {"new-job", "old-job"}
    assert job_ids(None) == set()


# --------------------------------------------------------------------------- end to end


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_output_during_a_replacement_running_in_the_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("reconciler.sandbox.server")
    # At time scale 2 a 10-step job takes about 2 s; the 1000-step replacement runs for about
    # 30 s (the sandbox caps a run at 60 s of simulated time) once validated in half a second.
    monkeypatch.setenv("RECONCILER_SANDBOX_TIME_SCALE", "2")
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path, endpoint=None, n_datasets=1, n_jobs=1, steps=10)
    code, out, err = _run("apply", "--yes", "--wait")
    assert code == 0, out + err
    code, out, err = _run("output", "--format", "json")
    assert code == 0, err
    first = json.loads(out)["outputs"]["job.job0"]
    assert first["status"] == "SUCCESS" and first["fine_tuned_model"].startswith("ft:")

    make_project(tmp_path, endpoint=None, n_datasets=1, n_jobs=1, steps=1000)
    code, out, err = _run("apply", "--yes")
    assert code == 0, out + err
    state = FileStateBackend(tmp_path / ".reconciler" / "state.json").read()
    assert state is not None
    new_job = state.resources["job.job0"].remote_id
    assert new_job != first["job_id"]

    code, out, err = _run("output", "--format", "json")
    assert code == 0, err
    during = json.loads(out)["outputs"]["job.job0"]
    pending = during.pop("pending_job")
    assert during == first  # the model, and the job that made it, stay the same
    assert pending["job_id"] == new_job
    assert pending["status"] in {"QUEUED", "VALIDATING", "VALIDATED", "STARTED", "RUNNING"}

    code, out, err = _run("output")
    assert code == 0, err
    line = out.splitlines()[1]
    assert line.startswith(f"job.job0 = {first['fine_tuned_model']} (previous; job {new_job} ")
