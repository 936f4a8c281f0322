"""One workspace, one state: from the repository's top, a spec directory or a subdirectory.

Without a Provider the state used to sit beside whatever PATH was given: from the top of a
repository whose state was in ``specs/``, ``reconciler status job.x`` said "never applied"
and ``reconciler plan`` proposed to create everything again in a new ``.reconciler/``. Now
commands find the workspace like git finds a repository, name the state on their first
line, and never create a second state silently.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli.app import app
from tests.engine.project import make_project, write_dataset


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose specs (one dataset, one held job) were applied from its top."""
    pytest.importorskip("reconciler.sandbox.server")
    monkeypatch.setenv("RECONCILER_SANDBOX_TIME_SCALE", "50")
    repo = tmp_path / "repo"
    make_project(
        repo / "specs" / "01-tone",
        endpoint=None,
        n_datasets=1,
        n_jobs=1,
        extra_job_fields="start: false\n",
    )
    monkeypatch.chdir(repo)
    code, out, err = _run("apply", "specs", "--yes")
    assert code == 0, out + err
    assert out.splitlines()[0] == (
        "Target: embedded sandbox (specs/.reconciler/sandbox); "
        "state: specs/.reconciler/state.json (new)"
    )
    assert (repo / "specs" / ".reconciler" / "state.json").is_file()
    return repo


@pytest.mark.parametrize(
    ("cwd", "paths", "shown"),
    [
        (".", [], "specs/.reconciler"),
        (".", ["specs"], "specs/.reconciler"),
        (".", ["specs/01-tone"], "specs/.reconciler"),
        (".", ["specs/01-tone/specs.yaml"], "specs/.reconciler"),
        ("specs", [], ".reconciler"),
        ("specs/01-tone", [], "../.reconciler"),
    ],
)
def test_every_way_in_finds_the_one_state(
    repo: Path, monkeypatch: pytest.MonkeyPatch, cwd: str, paths: list[str], shown: str
) -> None:
    monkeypatch.chdir(repo / cwd)
    code, out, err = _run("plan", "--detailed-exitcode", *paths)
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0] == (f"Target: embedded sandbox ({shown}/sandbox); state: {shown}/state.json")
    assert "No changes" in out
    assert not (repo / ".reconciler").exists()
    assert not (repo / "specs" / "01-tone" / ".reconciler").exists()


def test_status_of_an_address_from_the_top_finds_the_state(repo: Path) -> None:
    code, out, err = _run("status", "job.job0")
    assert code == 0, out + err
    assert out.splitlines()[0].endswith("; state: specs/.reconciler/state.json")
    assert "never applied" not in out + err
    code, out, err = _run("output")
    assert code == 0, out + err
    assert out.splitlines()[1].startswith("job.job0 = (no model yet: ")


def test_specs_outside_the_workspace_are_refused_instead_of_a_second_state(repo: Path) -> None:
    write_dataset(repo / "notes.jsonl", "notes")
    (repo / "notes.yaml").write_text("kind: Dataset\nname: notes\npath: notes.jsonl\n")
    for command in (["plan"], ["apply", "--yes"], ["status", "job.job0"]):
        code, out, err = _run(*command)
        assert code == 1, (command, out, err)
        assert "A second state is never created silently" in err
        assert "specs/.reconciler" in err and "reconciler plan specs" in err
    assert not (repo / ".reconciler" / "state.json").exists()


def test_paths_of_two_workspaces_are_refused(repo: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    (other / ".reconciler").mkdir(parents=True)
    write_dataset(other / "notes.jsonl", "notes")
    (other / "notes.yaml").write_text("kind: Dataset\nname: notes\npath: notes.jsonl\n")
    (other / ".reconciler" / "state.json").write_text('{"format_version": 1}')
    code, out, err = _run("plan", "specs", str(other))
    assert code == 1, out + err
    assert "the PATHs belong to different workspaces" in err
