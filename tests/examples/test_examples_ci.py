"""The CI recipes: the GitHub Actions workflow and the pre-commit hook definition.

Both are only ever run on users' machines, so these tests check what would otherwise fail
there: the files parse, the workflow has the documented shape, and every ``reconciler``
command they run exists with the flags (and flag values) they pass.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from examples_cli_lines import (
    check_invocation,
    cli_root,
    reconciler_invocations,
    shell_commands,
)

from tests.cli_inprocess import run_cli

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / "examples" / "ci" / "github-actions.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"


def _workflow() -> dict[str, Any]:
    data = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "the workflow must be a YAML mapping"
    return data


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True; GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), "the workflow needs an 'on:' mapping of events"
    return triggers


def _run_blocks(workflow: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(job id, step name, run text) of every `run:` step."""
    out = []
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            if "run" in step:
                out.append((job_id, step.get("name", "?"), step["run"]))
    return out


def _job_invocations(workflow: dict[str, Any], job_id: str) -> list[list[str]]:
    calls: list[list[str]] = []
    for job, _, run in _run_blocks(workflow):
        if job == job_id:
            calls.extend(reconciler_invocations(run))
    return calls


@pytest.fixture(scope="module")
def root() -> Any:
    return cli_root()


# ----------------------------------------------------------------- the checker itself


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (
            "reconciler validate specs/ --format github",
            [["validate", "specs/", "--format", "github"]],
        ),
        ("X=1 reconciler plan a b > plan.md && echo done", [["plan", "a", "b"]]),
        ("set +e\nreconciler apply \\\n  plan.bin --yes", [["apply", "plan.bin", "--yes"]]),
        ("echo reconciler plan  # not a call", []),
        ('cat plan.md >> "$GITHUB_STEP_SUMMARY"; reconciler status', [["status"]]),
    ],
)
def test_invocations_are_found_in_shell_text(script: str, expected: list[list[str]]) -> None:
    assert reconciler_invocations(script) == expected


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["no-such-command"], "has no command 'no-such-command'"),
        (["validate", "--no-such-flag"], "has no option '--no-such-flag'"),
        (["validate", "--format", "yaml"], "does not accept 'yaml'"),
        (["validate", "--format"], "needs a value"),
        ([], "needs a subcommand"),
    ],
)
def test_checker_rejects_what_the_cli_does_not_have(
    root: Any, args: list[str], problem: str
) -> None:
    problems = check_invocation(root, args)
    assert any(problem in p for p in problems), problems


def test_checker_accepts_an_existing_call(root: Any) -> None:
    assert check_invocation(root, ["validate", "specs/", "--format=github"]) == []


# ----------------------------------------------------------------- the workflow


def test_workflow_is_valid_yaml_with_both_triggers() -> None:
    workflow = _workflow()
    triggers = _triggers(workflow)
    assert "pull_request" in triggers
    assert "main" in triggers["push"]["branches"]
    assert set(workflow["jobs"]) >= {"plan", "apply"}
    for job_id, job in workflow["jobs"].items():
        assert job.get("runs-on"), f"job {job_id} needs runs-on"
        for step in job["steps"]:
            assert ("uses" in step) != ("run" in step), f"{job_id}: a step has uses or run"


def test_every_reconciler_command_in_the_workflow_exists(root: Any) -> None:
    calls = []
    for job_id, step, run in _run_blocks(_workflow()):
        for args in reconciler_invocations(run):
            calls.append(args)
            problems = check_invocation(root, args)
            assert not problems, f"job {job_id}, step {step!r}: {problems}"
    commands = {args[0] for args in calls}
    assert {"validate", "plan", "apply"} <= commands


def test_pull_request_job_validates_plans_and_comments() -> None:
    workflow = _workflow()
    calls = _job_invocations(workflow, "plan")
    assert ["validate", "specs/", "--format", "github"] in calls
    plan = next(args for args in calls if args[0] == "plan")
    for flag in ("--out", "--format", "--detailed-exitcode"):
        assert flag in plan
    assert plan[plan.index("--format") + 1] == "markdown"
    job = workflow["jobs"]["plan"]
    assert job["if"] == "github.event_name == 'pull_request'"
    uses = [step.get("uses", "") for step in job["steps"]]
    assert any(u.startswith("actions/github-script@") for u in uses), "posts a PR comment"
    assert any(u.startswith("actions/upload-artifact@") for u in uses), "keeps the plan"
    assert job["permissions"]["pull-requests"] == "write"


def test_plan_step_accepts_exit_codes_0_and_2_only(tmp_path: Path) -> None:
    run = next(
        run
        for job, _, run in _run_blocks(_workflow())
        if job == "plan" and "--detailed-exitcode" in run
    )
    # Run the step's exit-code handling with a stub `reconciler` returning each code.
    for code, ok in ((0, True), (2, True), (1, False)):
        script = f"reconciler() {{ echo '# plan'; return {code}; }}\n{run}"
        result = subprocess.run(
            ["bash", "-e", "-c", script],
            env={
                "PATH": "/usr/bin:/bin",
                "GITHUB_OUTPUT": "/dev/null",
                "GITHUB_STEP_SUMMARY": "/dev/null",
            },
            cwd=tmp_path,
            capture_output=True,
            text=True,
            check=False,
        )
        assert (result.returncode == 0) is ok, (code, result.stdout, result.stderr)


def test_merge_job_applies_a_saved_plan_with_secrets_from_the_environment() -> None:
    workflow = _workflow()
    calls = _job_invocations(workflow, "apply")
    plan = next(args for args in calls if args[0] == "plan")
    saved = plan[plan.index("--out") + 1]
    assert ["apply", saved, "--yes"] in calls
    assert workflow["env"]["MISTRAL_API_KEY"] == "${{ secrets.MISTRAL_API_KEY }}"
    assert workflow["jobs"]["apply"]["if"].startswith("github.event_name == 'push'")
    # No secret is written literally anywhere in the recipe.
    text = WORKFLOW.read_text(encoding="utf-8")
    for match in re.finditer(r"(API_KEY|DSN)\s*:\s*(.+)", text):
        assert match.group(2).strip().startswith("${{ secrets."), match.group(0)


# ----------------------------------------------------------------- pre-commit hook


def _hook() -> dict[str, Any]:
    hooks = yaml.safe_load(HOOKS.read_text(encoding="utf-8"))
    assert isinstance(hooks, list)
    by_id = {h["id"]: h for h in hooks}
    assert "reconciler-validate" in by_id
    hook: dict[str, Any] = by_id["reconciler-validate"]
    return hook


def test_pre_commit_hook_definition(root: Any) -> None:
    hook = _hook()
    assert hook["language"] == "python"
    assert hook["pass_filenames"] is False
    for key in ("name", "entry", "files"):
        assert isinstance(hook[key], str) and hook[key]
    entry = hook["entry"].split()
    # The entry's program is the console script this package installs.
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert entry[0] in scripts
    assert check_invocation(root, entry[1:] + list(hook.get("args", []))) == []


@pytest.mark.parametrize(
    ("path", "matches"),
    [
        ("specs/01-tone-dumbledore/dumbledore.yaml", True),
        ("specs/x.yml", True),
        ("specs/08-ultrachat-end-to-end/data/ultrachat_chunk.jsonl", True),
        ("specs/02-format-medical-notes/data/medical_knowledge_from_extracts.csv", True),
        ("specs/04-coding-text-to-sql/data/sql_create_context.json", True),
        ("README.md", False),
        ("reconciler/cli/app.py", False),
    ],
)
def test_pre_commit_hook_runs_on_spec_and_data_files(path: str, matches: bool) -> None:
    assert bool(re.search(_hook()["files"], path)) is matches


def test_pre_commit_hook_command_passes_on_this_repository(tmp_path: Path) -> None:
    # pre-commit runs the entry at the repository root; a copy keeps the check's cache out
    # of the checkout.
    shutil.copytree(
        REPO / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns(".reconciler")
    )
    hook = _hook()
    args = hook["entry"].split()[1:] + list(hook.get("args", []))
    result = run_cli(args, cwd=tmp_path, env=os.environ)
    assert result.returncode == 0, result.stdout + result.stderr


def test_shell_splitting_keeps_quoted_arguments_whole() -> None:
    [cmd] = list(shell_commands('reconciler plan "my specs/" --format json'))
    assert cmd == ["reconciler", "plan", "my specs/", "--format", "json"]


DOCS = [
    REPO / "README.md",
    REPO / "examples" / "ci" / "README.md",
    *sorted((REPO / "specs").glob("*/README.md")),
]


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_commands_in_the_docs_exist(root: Any, doc: Path) -> None:
    text = doc.read_text(encoding="utf-8")
    blocks = re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.DOTALL)
    for block in blocks:
        for args in reconciler_invocations(block):
            assert check_invocation(root, args) == [], f"{doc.name}: reconciler {' '.join(args)}"
