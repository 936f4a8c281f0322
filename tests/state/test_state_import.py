"""``reconciler import`` against a real sandbox server on 127.0.0.1.

Objects made by ``apply`` are forgotten with ``state rm`` (so they exist remotely but not in
the state, as if made by hand), then adopted again with ``import``.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli.app import app
from reconciler.engine.importer import import_object
from reconciler.engine.state_file import FileStateBackend
from reconciler.errors import StateError

KEY_ENV = "RECONCILER_TEST_STATE_SANDBOX_KEY"
KEY = "state-import-test-key"
runner = CliRunner()


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One sandbox server for the module; every test works in its own project and state."""
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.server import EmbeddedSandbox

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(KEY_ENV, KEY)
        data_dir = tmp_path_factory.mktemp("sb")
        sb = EmbeddedSandbox(SandboxConfig(data_dir=data_dir, api_key=KEY, time_scale=50.0))
        sb.start()
        try:
            yield sb
        finally:
            sb.stop()


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory, sandbox: Any) -> Path:
    """A project applied once; tests that must not change it work on copies."""
    project = write_project(
        tmp_path_factory.mktemp("applied") / "p", sandbox.base_url, suffix="errors"
    )
    code, out, err = cli("apply", "--yes", str(project))
    assert code == 0, out + err
    return project


def write_project(
    root: Path, endpoint: str, learning_rate: str = "1.0e-4", suffix: str = "t0"
) -> Path:
    """A Provider, one dataset and one job.

    Tests share the sandbox, so each uses its own suffix: one test's job is then never a
    possible duplicate of another's.
    """
    (root / "data").mkdir(parents=True, exist_ok=True)
    lines = [
        json.dumps(
            {
                "messages": [
                    {"role": "user", "content": f"Question {i}?"},
                    {"role": "assistant", "content": f"Answer {i}."},
                ]
            }
        )
        for i in range(4)
    ]
    (root / "data" / "d0.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (root / "specs.yaml").write_text(
        f"kind: Provider\nname: sb\ntype: sandbox\nendpoint: {endpoint}\n"
        f"api_key: {{env: {KEY_ENV}}}\n"
        "---\nkind: Dataset\nname: d0\npath: data/d0.jsonl\n"
        "---\nkind: FineTuningJob\nname: job0\nmodel: open-mistral-7b\n"
        "training_files: [d0]\nstart: false\n"
        f"suffix: {suffix}\n"
        f"hyperparameters: {{training_steps: 10, learning_rate: {learning_rate}}}\n",
        encoding="utf-8",
    )
    return root


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    assert "Traceback" not in result.stderr
    return result.exit_code, result.stdout, result.stderr


def test_import_adopts_forgotten_objects(tmp_path: Path, sandbox: Any) -> None:
    project = write_project(tmp_path / "p", sandbox.base_url)
    p = str(project)
    code, out, err = cli("apply", "--yes", p)
    assert code == 0, out + err
    backend = FileStateBackend(project / ".reconciler" / "state.json")
    applied = backend.read()
    assert applied is not None
    file_res, job_res = applied.resources["dataset.d0[all]"], applied.resources["job.job0"]

    code, _, err = cli("state", "rm", "dataset.d0[all]", "job.job0", "-p", p)
    assert code == 0, err
    assert backend.read().resources == {}  # type: ignore[union-attr]

    code, out, err = cli("import", "dataset.d0[all]", file_res.remote_id, "-p", p)
    assert code == 0, err
    assert f"Imported dataset.d0[all] = file {file_res.remote_id}." in out
    code, out, err = cli("import", "job.job0", job_res.remote_id, "-p", p, "--lock-timeout", "5s")
    assert code == 0, err
    assert "Warning" not in out

    state = backend.read()
    assert state is not None and state.lineage == applied.lineage
    # same fingerprints as the engine recorded: the next plan has nothing to do
    assert state.resources["dataset.d0[all]"].fingerprint == file_res.fingerprint
    assert state.resources["job.job0"].fingerprint == job_res.fingerprint
    assert state.resources["job.job0"].attributes["identity"] == job_res.attributes["identity"]
    code, out, err = cli("plan", "--detailed-exitcode", p)
    assert code == 0, out + err


def test_import_of_a_different_job_names_the_difference(tmp_path: Path, sandbox: Any) -> None:
    project = write_project(tmp_path / "p", sandbox.base_url, suffix="differs")
    p = str(project)
    assert cli("apply", "--yes", p)[0] == 0
    backend = FileStateBackend(project / ".reconciler" / "state.json")
    job_id = backend.read().resources["job.job0"].remote_id  # type: ignore[union-attr]
    assert cli("state", "rm", "job.job0", "-p", p)[0] == 0
    write_project(project, sandbox.base_url, learning_rate="2.0e-4", suffix="differs")

    code, out, err = cli("import", "job.job0", job_id, "-p", p)
    assert code == 0, err
    assert "differs from the spec in: hyperparameters.learning_rate." in out
    res = backend.read().resources["job.job0"]  # type: ignore[union-attr]
    assert res.remote_id == job_id
    assert res.attributes["identity"]["hyperparameters"]["learning_rate"] == pytest.approx(1e-4)
    code, out, err = cli("plan", "--detailed-exitcode", p)
    assert code == 2, out + err
    assert "hyperparameters.learning_rate" in out


@pytest.mark.parametrize(
    ("address", "remote_id", "message"),
    [
        ("model.x", "abc", "cannot import this address"),
        (
            "job.other",
            "00000000-0000-4000-8000-000000000000",
            "job.other: not declared in the specs",
        ),
        ("job.job0", "{job}", "job.job0: already managed"),
        ("dataset.d0[all]", "{job}", "already managed"),
        ("job.job0", "00000000-0000-4000-8000-000000000000", "there is no job"),
        ("job.job0", "not-a-uuid", "the remote rejects it as malformed"),
    ],
)
def test_import_errors_change_nothing(
    tmp_path: Path, applied: Path, address: str, remote_id: str, message: str
) -> None:
    project = tmp_path / "p"
    shutil.copytree(applied, project, ignore=shutil.ignore_patterns("*.lock"))
    p = str(project)
    state_file = project / ".reconciler" / "state.json"
    state = FileStateBackend(state_file).read()
    assert state is not None
    job_id = state.resources["job.job0"].remote_id
    if "there is no" in message or "malformed" in message:
        assert cli("state", "rm", "job.job0", "-p", p)[0] == 0
    before = state_file.read_bytes()
    code, _, err = cli("import", address, remote_id.replace("{job}", job_id), "-p", p)
    assert code == 1
    assert message in err
    assert state_file.read_bytes() == before


def test_import_checks_the_state_before_preparing_data_or_connecting(
    tmp_path: Path, applied: Path
) -> None:
    project = tmp_path / "p"
    shutil.copytree(applied, project, ignore=shutil.ignore_patterns("*.lock"))
    backend = FileStateBackend(project / ".reconciler" / "state.json")
    state = backend.read()
    assert state is not None
    job_id = state.resources["job.job0"].remote_id
    called: list[str] = []

    def never(what: str) -> Any:
        def build() -> Any:
            called.append(what)
            raise AssertionError(f"{what} built before the state check")

        return build

    with pytest.raises(StateError, match=f"{job_id}: already managed as job.job0"):
        import_object(
            "job.other",
            job_id,
            backend=backend,
            client=never("client"),
            desired=never("desired state"),
            target="the sandbox",
        )
    assert called == []
