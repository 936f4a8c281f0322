"""``status`` and ``output`` after a waited apply of a matrix, against the embedded sandbox.

One workspace (module scope: the apply is the slow part) with a matrix of two jobs that
succeed, a job held at VALIDATED (``start: false``) and a job whose training and validation
file are the same, which the remote fails at validation.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip(
    "reconciler.sandbox.server", reason="the sandbox server (EmbeddedSandbox) is not available"
)
from typer.testing import CliRunner  # noqa: E402

import reconciler.cli.commands  # noqa: E402, F401 - registers the commands
from reconciler.cli.app import app  # noqa: E402

SPECS = """\
kind: Dataset
name: chat
path: data/chat.jsonl
split:
  validation_fraction: 0.2
  seed: 1
---
kind: Dataset
name: plain
path: data/chat.jsonl
---
kind: FineTuningJob
name: sweep
model: open-mistral-7b
training_files: [chat]
validation_files: [chat]
hyperparameters:
  training_steps: 20
matrix:
  learning_rate: [0.0001, 0.00001]
---
kind: FineTuningJob
name: held
model: open-mistral-7b
training_files: [chat]
hyperparameters:
  training_steps: 10
start: false
---
kind: FineTuningJob
name: overlap
model: open-mistral-7b
training_files: [plain]
validation_files: [plain]
hyperparameters:
  training_steps: 10
"""

SWEEP = ("job.sweep-lr-1e-4", "job.sweep-lr-1e-5")


def _write_workspace(root: Path) -> None:
    (root / "data").mkdir(parents=True)
    with (root / "data" / "chat.jsonl").open("w") as f:
        for i in range(60):
            sample = {
                "messages": [
                    {"role": "user", "content": f"Question {i}: what is {i} plus {i}?"},
                    {"role": "assistant", "content": f"The answer is {2 * i}."},
                ]
            }
            f.write(json.dumps(sample) + "\n")
    (root / "specs.yaml").write_text(SPECS)


class Workspace:
    def __init__(self, root: Path, apply_code: int, apply_out: str, apply_err: str) -> None:
        self.root = root
        self.apply_code = apply_code
        self.apply_out = apply_out
        self.apply_err = apply_err

    def run(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(app, list(args))
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    root = tmp_path_factory.mktemp("observe-cli")
    _write_workspace(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("RECONCILER_SANDBOX_TIME_SCALE", "200")
        mp.setenv("COLUMNS", "250")
        result = CliRunner().invoke(app, ["apply", "--yes", "--wait", "."])
        yield Workspace(root, result.exit_code, result.stdout, result.stderr)


def test_the_waited_apply_ran_the_matrix_and_reported_the_failure(ws: Workspace) -> None:
    assert ws.apply_code == 1, ws.apply_out + ws.apply_err
    assert "job.overlap" in ws.apply_err
    # The matrix cells were created and started although a sibling failed.
    code, out, err = ws.run("output", "--format", "json")
    assert code == 0, err
    values = json.loads(out)["outputs"]
    for address in SWEEP:
        assert values[address]["fine_tuned_model"].startswith("ft:open-mistral-7b:")


def test_status_table_shows_sync_and_health(ws: Workspace) -> None:
    # apply --wait stopped at the failure; watch the rest to the end first.
    code, out, err = ws.run("status", "--watch", "--interval", "0.1", "--timeout", "60s")
    assert code == 1, out + err  # the overlap job failed validation
    assert "job.overlap" in err and "training and validation" in err
    code, out, err = ws.run("status")
    assert code == 0, err
    lines = out.splitlines()
    # The first line names the target and the state (deliberately extended with the state).
    assert (
        lines[0] == "Target: embedded sandbox (.reconciler/sandbox); state: .reconciler/state.json"
    )
    table = "\n".join(lines)
    for address in SWEEP:
        row = next(line for line in lines if f" {address} " in line)
        assert "in sync" in row and "succeeded" in row and "20/20 (100%)" in row
        assert "ft:open-mistral-7b:" in row
    held = next(line for line in lines if " job.held " in line)
    assert "validated" in held
    overlap = next(line for line in lines if " job.overlap " in line)
    assert "failed" in overlap
    assert "dataset.chat[train]" in table and "available" in table
    assert any(
        line.startswith("job.overlap: failed validation: ") and "training and validation" in line
        for line in lines
    )


def test_status_json_and_markdown(ws: Workspace) -> None:
    code, out, err = ws.run("status", "--format", "json")
    assert code == 0, err
    assert "Target: embedded sandbox" in err  # stdout stays pure JSON
    document = json.loads(out)
    assert document["format_version"] == 1
    rows = {r["address"]: r for r in document["resources"]}
    assert set(rows) == {
        "dataset.chat[train]",
        "dataset.chat[validation]",
        "dataset.plain[all]",
        "job.held",
        "job.overlap",
        *SWEEP,
    }
    sweep = rows["job.sweep-lr-1e-4"]
    assert (sweep["sync"], sweep["health"], sweep["status"]) == ("in sync", "succeeded", "SUCCESS")
    assert sweep["train_loss"] > 0 and 0 < sweep["valid_mean_token_accuracy"] <= 1
    assert rows["job.held"]["health"] == "validated"
    assert rows["job.overlap"]["health"] == "failed"
    assert rows["dataset.chat[train]"]["bytes"] > 0
    code, out, err = ws.run("status", "--format", "markdown")
    assert code == 0, err
    assert out.startswith("**7 object(s)**")
    assert "| `job.sweep-lr-1e-4` | in sync | succeeded | 20/20 (100%) |" in out


def test_status_address_shows_events_and_checkpoints(ws: Workspace) -> None:
    code, out, err = ws.run("status", "job.sweep-lr-1e-4", "-p", ".")
    assert code == 0, err
    assert "Events (newest first)" in out and "Checkpoints (newest first)" in out
    assert "SUCCESS (succeeded)" in out
    code, out, err = ws.run("status", "job.sweep", "--format", "json")
    assert code == 0, err
    jobs = json.loads(out)["jobs"]
    assert [j["address"] for j in jobs] == list(SWEEP)  # the matrix base name selects its cells
    steps = [c["step_number"] for c in jobs[0]["checkpoints"]]
    assert steps == sorted(steps, reverse=True) and steps[0] == 20
    assert jobs[0]["events"][0]["data"]["status"] == "SUCCESS"


def test_plot_file_of_the_matrix(ws: Workspace) -> None:
    code, out, err = ws.run("status", "job.sweep", "--plot", "sweep.png")
    assert code == 0, err
    picture = ws.root / "sweep.png"
    data = picture.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert struct.unpack(">II", data[16:24]) == (1200, 900)
    code, out, err = ws.run("status", "job.sweep-lr-1e-5", "--plot", "-")
    assert code == 0, err
    assert "job.sweep-lr-1e-5 train" in out and "valid mean token accuracy" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["status", "job.swep"], "Did you mean job.sweep"),
        (["status", "--plot", "x.png"], "--plot needs the job(s) to draw"),
        (["status", "job.sweep", "--plot", "x.pdf"], "must end in .png or .svg"),
        (["status", "dataset.chat[train]"], "is a dataset"),
    ],
)
def test_bad_requests_are_clean_errors(ws: Workspace, args: list[str], message: str) -> None:
    code, out, err = ws.run(*args)
    assert code == 1
    assert message in err
    assert "Traceback" not in out + err


def test_a_job_the_remote_does_not_have_is_a_clean_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.engine.state_file import FileStateBackend
    from reconciler.engine.state_model import ResourceState, State

    _write_workspace(tmp_path)
    ghost = "0f4c9a5e-1111-4222-8333-444455556666"
    FileStateBackend(tmp_path / ".reconciler" / "state.json").write(
        State(
            resources={
                "job.held": ResourceState(
                    address="job.held", type="job", remote_id=ghost, fingerprint="f" * 64
                )
            }
        ),
        None,
    )
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["status", "job.held"])
    assert result.exit_code == 1
    assert f"not found at embedded sandbox (.reconciler/sandbox): job.held ({ghost})" in (
        result.stderr
    )
    result = CliRunner().invoke(app, ["output", "--format", "json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["outputs"]["job.held"] == {
        "fine_tuned_model": None,
        "job_id": ghost,
        "status": None,
    }
