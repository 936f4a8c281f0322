"""Every example end to end through the real CLI on the embedded sandbox (in its OpenAI
dialect for the openai example), and the README's quickstart command as written: the
examples on the Mistral-dialect sandbox as one workspace (``specs/``), then the openai
example, a workspace of its own. (The CI recipes run in test_ci_recipes_run.py.)

Each example directory is copied to a temporary directory and driven through the command
line as a user would: validate → plan (JSON) → apply (following the jobs to the end) → apply
again (nothing to do) → status (JSON). The commands run in this process
(:func:`tests.cli_inprocess.run_cli`: the example's directory as working directory, its own
environment, output captured, nothing left running); the pipelines run once, in one
module-scoped fixture, and the tests then check each one's record. The README's quickstart
runs as written, in a shell calling the installed console script.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from reconciler.spec.loader import load_specs
from tests.cli_inprocess import run_cli

REPO = Path(__file__).resolve().parents[2]
SPECS = REPO / "specs"
RAY_EXAMPLES = ["10-self-hosted-ray"]
"""Examples that train on a Ray cluster with GPUs: applying them trains a 7B model, so they
are validated and planned (tests/examples/test_examples_ray.py), not applied, here."""
EXAMPLES = sorted(
    p.name
    for p in SPECS.iterdir()
    if p.is_dir() and p.name[:2].isdigit() and p.name not in RAY_EXAMPLES
)
WANDB_KEY = "e2e" + "0" * 37  # the API takes exactly 40 characters
assert len(WANDB_KEY) == 40

# (step, arguments after `reconciler`, accepted exit codes)
STEPS: list[tuple[str, list[str], set[int]]] = [
    ("validate", ["validate"], {0}),
    ("plan", ["plan", "--format", "json", "--detailed-exitcode"], {2}),
    # --wait follows the jobs to the end and then names their fine-tuned models, so the
    # next apply has nothing left to do.
    ("apply", ["apply", "--yes", "--wait", "--wait-timeout", "3m"], {0}),
    ("apply-again", ["apply", "--yes", "--format", "json"], {0}),
    ("status", ["status", "--format", "json"], {0}),
]


def cli_env(**extra: str) -> dict[str, str]:
    """The test process's environment without real keys, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MISTRAL_API_KEY", "OPENAI_API_KEY", "WANDB_API_KEY")
    }
    env.update(extra)
    return env


@dataclass
class Pipeline:
    """What one example's run produced.

    Attributes:
        example: the example directory name.
        workdir: the temporary copy the commands ran in.
        results: each step's completed process, in order; stops after a failed step.
    """

    example: str
    workdir: Path
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def step(self, name: str) -> subprocess.CompletedProcess[str]:
        """The record of step ``name``; fails the test with the earlier failure if missing."""
        if name not in self.results:
            last = list(self.results)[-1]
            proc = self.results[last]
            pytest.fail(
                f"{self.example}: step '{last}' exited {proc.returncode}, so '{name}' did not "
                f"run\n{proc.stdout}\n{proc.stderr}"
            )
        return self.results[name]

    def json(self, name: str) -> Any:
        """Step ``name``'s stdout as JSON."""
        return json.loads(self.step(name).stdout)


def _run_pipeline(example: str, workdir: Path) -> Pipeline:
    shutil.copytree(SPECS / example, workdir, ignore=shutil.ignore_patterns(".reconciler"))
    # A faster sandbox clock: a job's whole run (queued, validating, steps) takes
    # milliseconds instead of seconds; what is checked is the sequence, not its pace.
    env = cli_env(WANDB_API_KEY=WANDB_KEY, RECONCILER_SANDBOX_TIME_SCALE="200", COLUMNS="200")
    pipeline = Pipeline(example, workdir)
    for name, args, ok in STEPS:
        # No PATH argument: the current directory is the default.
        proc = run_cli(args, cwd=workdir, env=env)
        pipeline.results[name] = proc
        if proc.returncode not in ok:
            break
    return pipeline


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Pipeline]:
    base = tmp_path_factory.mktemp("examples")
    return {example: _run_pipeline(example, base / example) for example in EXAMPLES}


def _expected_addresses(example: str) -> tuple[set[str], set[str]]:
    """(file addresses, job addresses) the example's specs declare."""
    specs = load_specs([SPECS / example])
    files = {
        f"dataset.{name}[{part}]" for name, ds in specs.datasets.items() for part in ds.doc.parts
    }
    return files, {job.address for job in specs.jobs.values()}


def _all_output(pipeline: Pipeline) -> Iterator[str]:
    for proc in pipeline.results.values():
        yield proc.stdout
        yield proc.stderr


@pytest.mark.parametrize("example", EXAMPLES)
def test_validate_passes(pipelines: dict[str, Pipeline], example: str) -> None:
    proc = pipelines[example].step("validate")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("example", EXAMPLES)
def test_first_plan_creates_every_file_and_job(
    pipelines: dict[str, Pipeline], example: str
) -> None:
    plan = pipelines[example].json("plan")
    assert plan["format_version"].split(".")[0] == "1"
    files, jobs = _expected_addresses(example)
    actions = {c["address"]: c["action"] for c in plan["changes"]}
    assert {a: actions.get(a) for a in files | jobs} == {a: "create" for a in files | jobs}
    assert plan["summary"]["create"] == len(files) + len(jobs)
    assert plan["has_changes"] is True


@pytest.mark.parametrize("example", EXAMPLES)
def test_apply_creates_and_records_everything(pipelines: dict[str, Pipeline], example: str) -> None:
    pipeline = pipelines[example]
    proc = pipeline.step("apply")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Without a Provider the embedded sandbox is used, and the first line says so.
    assert proc.stdout.splitlines()[0].startswith("Target: embedded sandbox")
    files, jobs = _expected_addresses(example)
    assert re.search(rf"Apply complete: {len(files) + len(jobs)} applied, 0 failed", proc.stdout)
    state = json.loads((pipeline.workdir / ".reconciler" / "state.json").read_text())
    assert set(state["resources"]) == files | jobs
    assert state["intents"] == {}


@pytest.mark.parametrize("example", EXAMPLES)
def test_apply_again_changes_nothing(pipelines: dict[str, Pipeline], example: str) -> None:
    again = pipelines[example].json("apply-again")
    assert again["result"] is None, "nothing was applied"
    plan = again["plan"]
    assert plan["has_changes"] is False
    assert {k: v for k, v in plan["summary"].items() if k != "no-op" and v} == {}


@pytest.mark.parametrize("example", EXAMPLES)
def test_status_shows_everything_in_sync_and_healthy(
    pipelines: dict[str, Pipeline], example: str
) -> None:
    status = pipelines[example].json("status")
    files, jobs = _expected_addresses(example)
    rows = {r["address"]: r for r in status["resources"]}
    assert set(rows) == files | jobs
    assert {r["sync"] for r in rows.values()} == {"in sync"}
    for address in jobs:
        # apply --wait followed every job to the end; the sandbox trains nothing but reports
        # a finished job with its fine-tuned model and final metrics.
        assert rows[address]["health"] == "succeeded", rows[address]
        assert rows[address]["fine_tuned_model"], rows[address]
        assert rows[address]["train_loss"] is not None


@pytest.mark.parametrize("example", EXAMPLES)
def test_no_secret_in_output_or_state(pipelines: dict[str, Pipeline], example: str) -> None:
    pipeline = pipelines[example]
    assert all(WANDB_KEY not in text for text in _all_output(pipeline))
    for path in (pipeline.workdir / ".reconciler").rglob("*.json"):
        assert WANDB_KEY not in path.read_text(encoding="utf-8", errors="replace"), path


# ----------------------------------------------------------------- the README's commands


def _quickstart_blocks() -> list[str]:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:bash|sh|shell)?\n(.*?)```", section, flags=re.DOTALL)


def _apply_segments(block: str) -> list[str]:
    """The parts of the install-and-apply command that run reconciler (install steps dropped:
    the package under test is already installed)."""
    command = " ".join(line.strip() for line in block.replace("\\\n", " ").splitlines())
    segments = [s.strip() for s in command.split("&&")]
    install = ("python3 -m venv", "python -m venv", ". ", "source ", "pip ", "python -m pip")
    return [s for s in segments if s and not s.startswith(install)]


def test_readme_quickstart_has_two_commands() -> None:
    blocks = _quickstart_blocks()
    assert len(blocks) == 2, blocks
    # 01-08 are one workspace on the embedded sandbox; 09 (an openai Provider) is one of its
    # own, which `apply specs/` skips: it is applied on its own. 10 (a ray Provider) is one
    # too, and needs a GPU cluster: the quickstart leaves it out.
    applies = [s for s in _apply_segments(blocks[0]) if " apply " in f" {s} "]
    assert [a.split("apply ", 1)[1] for a in applies] == [
        "specs/ --yes",
        "specs/09-openai-tone --yes",
    ]
    # The test command names something that exists in the checkout.
    test_command = blocks[1].strip()
    if test_command.startswith("bash "):
        assert (REPO / test_command.split()[1]).is_file()
    else:
        assert "pytest" in test_command


def test_readme_quickstart_applies_all_examples(tmp_path: Path) -> None:
    segments = _apply_segments(_quickstart_blocks()[0])
    assert segments and all("reconciler" in s for s in segments), segments
    shutil.copytree(SPECS, tmp_path / "specs", ignore=shutil.ignore_patterns(".reconciler"))
    # As written: the console script from the installed package, in a shell, from the
    # directory that holds specs/. No sandbox speed-up: this is what a new user runs.
    env = cli_env(PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    outputs = []
    for segment in segments:
        proc = subprocess.run(
            ["bash", "-c", segment],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert proc.returncode == 0, f"{segment}\n{proc.stdout}\n{proc.stderr}"
        outputs.append(proc.stdout)
    # The examples on the embedded (Mistral-dialect) sandbox share one state in specs/; the
    # openai example has its own, and the first apply says it skipped it.
    assert "specs/09-openai-tone: a workspace of its own; apply it on its own" in outputs[0]
    assert "specs/10-self-hosted-ray: a workspace of its own; apply it on its own" in outputs[0]
    for workspace, output in (("", outputs[0]), ("09-openai-tone", outputs[1])):
        specs = load_specs([SPECS / workspace])
        files = sum(len(ds.doc.parts) for ds in specs.datasets.values())
        assert f"Apply complete: {files + len(specs.jobs)} applied, 0 failed" in output
        for job in specs.jobs.values():
            assert job.address in output
        state_file = tmp_path / "specs" / workspace / ".reconciler" / "state.json"
        state = json.loads(state_file.read_text())
        assert len(state["resources"]) == files + len(specs.jobs), workspace
    assert not (tmp_path / ".reconciler" / "state.json").exists()  # no third state
