"""``plan``, ``status``, ``output`` and ``validate`` never write: checked on the examples,
through the sandbox's journal of every request it received.

The examples are copied into one spec directory with a Provider pointing at a sandbox on
127.0.0.1, applied once, and each read-only command then runs through the CLI as a user would;
between two marks of the journal there must be no POST, PATCH, PUT or DELETE. The plans cover
the cases where an earlier version asked the remote for a dry-run create to price a job: a
replacement, and a new job, whose files are already uploaded. The openai example, a workspace
of its own, goes the same way against the sandbox's OpenAI dialect.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from reconciler.sandbox.app import SandboxConfig
from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.spec.loader import load_specs
from tests.engine.conftest import SANDBOX_KEY, Cli, cli_env, mutating
from tests.engine.project import OPENAI, SANDBOX_KEY_ENV

REPO = Path(__file__).resolve().parents[2]

NEW_JOB = """\
# yaml-language-server: $schema=../../schemas/reconciler-v1.schema.json
kind: FineTuningJob
name: tone-dumbledore-longer
model: open-mistral-7b
training_files: [tone-dumbledore-chats]
hyperparameters: {training_steps: 30}
suffix: dumbledore-30
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[EmbeddedSandbox]:
    config = SandboxConfig(data_dir=tmp_path / "sandbox", api_key=SANDBOX_KEY, time_scale=50.0)
    with EmbeddedSandbox(config) as sb:
        yield sb


@pytest.fixture
def applied(tmp_path: Path, sandbox: EmbeddedSandbox) -> Cli:
    """All the examples in one spec directory against ``sandbox``, applied once."""
    specs = tmp_path / "specs"
    shutil.copytree(REPO / "specs", specs, ignore=shutil.ignore_patterns(".reconciler"))
    (specs / "provider.yaml").write_text(
        "kind: Provider\nname: sandbox\ntype: sandbox\n"
        f"endpoint: {sandbox.base_url}\napi_key: {{env: {SANDBOX_KEY_ENV}}}\n",
        encoding="utf-8",
    )
    cli = Cli(cwd=specs, env=cli_env())
    proc = cli.run("apply", "--yes", check=0)
    assert "0 failed" in proc.stdout
    return cli


def test_read_only_commands_send_no_write_on_the_examples(
    applied: Cli, sandbox: EmbeddedSandbox
) -> None:
    specs = load_specs([applied.cwd])
    job = sorted(specs.jobs)[0]
    (applied.cwd / "01-tone-dumbledore" / "longer.yaml").write_text(NEW_JOB, encoding="utf-8")
    commands: list[tuple[list[str], set[int]]] = [
        (["validate"], {0}),
        (["plan"], {0}),
        (["plan", "--detailed-exitcode"], {2}),  # the new job
        (["plan", "--replace", f"job.{job}", "--format", "json"], {0}),
        (["plan", "--replace", "job.*", "--format", "markdown"], {0}),
        (["plan", "--out", "saved.plan"], {0}),
        (["status"], {0}),
        (["status", f"job.{job}", "--format", "json"], {0}),
        (["output"], {0}),
        (["output", "--format", "json"], {0}),
    ]
    for args, codes in commands:
        mark = len(sandbox.journal())
        proc = applied.run(*args)
        assert proc.returncode in codes, f"{args}: exit {proc.returncode}\n{proc.stderr}"
        writes: list[dict[str, Any]] = mutating(sandbox.journal()[mark:])
        assert writes == [], f"reconciler {' '.join(args)} wrote: {writes}"
    # The plans priced the new and the replaced jobs all the same, locally.
    plan = applied.run("plan", "--replace", f"job.{job}").stdout
    assert "+ job.tone-dumbledore-longer" in plan and f"-/+ job.{job}" in plan
    assert plan.count("(local)") == 2


def test_read_only_commands_send_no_write_on_the_openai_example(tmp_path: Path) -> None:
    config = SandboxConfig(
        data_dir=tmp_path / "sandbox", api_key=SANDBOX_KEY, time_scale=50.0, dialect="openai"
    )
    with EmbeddedSandbox(config) as sandbox:
        example = tmp_path / "09-openai-tone"
        shutil.copytree(
            REPO / "specs" / example.name, example, ignore=shutil.ignore_patterns(".reconciler")
        )
        spec = example / "openai-tone.yaml"
        spec.write_text(
            spec.read_text(encoding="utf-8").replace(
                "type: openai\n",
                f"type: openai\nendpoint: {OPENAI.endpoint(sandbox.base_url)}\n"
                f"api_key: {{env: {SANDBOX_KEY_ENV}}}\n",
            ),
            encoding="utf-8",
        )
        cli = Cli(cwd=example, env=cli_env(**OPENAI.env(sandbox.base_url)))
        assert "0 failed" in cli.run("apply", "--yes", check=0).stdout
        job = "openai-tone-dpo"  # (job.openai-tone would select it too, as a matrix cell)
        assert job in load_specs([example]).jobs
        for args in (
            ["validate"],
            ["plan", "--detailed-exitcode"],
            ["plan", "--replace", f"job.{job}", "--format", "json"],
            ["plan", "--remote-estimate"],  # openai has none: nothing is asked
            ["status"],
            ["output", "--format", "json"],
        ):
            mark = len(sandbox.journal())
            proc = cli.run(*args)
            assert proc.returncode == 0, f"{args}: exit {proc.returncode}\n{proc.stderr}"
            writes = mutating(sandbox.journal()[mark:])
            assert writes == [], f"reconciler {' '.join(args)} wrote: {writes}"
        plan = cli.run("plan", "--replace", f"job.{job}", "--remote-estimate").stdout
        assert plan.count("(local)") == 1 and "openai gives no cost estimate" in plan
