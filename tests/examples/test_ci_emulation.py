"""The CI emulations themselves: they must fail where GitHub or GitLab would, or a recipe test
could pass by accident. Small synthetic workflows and pipelines, no reconciler run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from ci_emulation import RecipeError, SpecsRepo, check_install_requirement, substitute_shell
from ci_github import (
    GH_SHIM,
    Event,
    FakeGitHub,
    GitHubRunner,
    _read_outputs,
    condition,
    evaluate,
    interpolate,
)
from ci_gitlab import FakeGitLab, GitLabRunner, Variable, _variable_expression

CONTEXTS: dict[str, Any] = {
    "github": {
        "event_name": "pull_request",
        "sha": "abc",
        "event": {"pull_request": {"number": 7, "head": {"sha": "def"}}},
    },
    "needs": {"reviewed-plan": {"outputs": {"has-changes": "true"}}},
}


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("github.event.pull_request.number", 7),
        ("github.event.pull_request.head.sha || github.sha", "def"),
        ("github.event.push.head.sha || github.sha", "abc"),
        ("github.event_name == 'pull_request'", True),
        ("github.event_name == 'PULL_REQUEST'", True),  # strings compare without case
        ("github.event_name != 'pull_request'", False),
        ("needs.reviewed-plan.outputs.has-changes == 'true'", True),
        ("!(github.sha == 'abc') && true", False),
        ("github.missing.deeper", None),
        ("'it''s'", "it's"),
    ],
)
def test_expressions(expr: str, value: Any) -> None:
    assert evaluate(expr, CONTEXTS) == value


@pytest.mark.parametrize("expr", ["fromJSON('x')", "github.sha[0]", "a == ", "contains(a, b)"])
def test_unsupported_expressions_fail_loudly(expr: str) -> None:
    with pytest.raises(RecipeError):
        evaluate(expr, CONTEXTS)


@pytest.mark.parametrize(
    ("expr", "status", "runs"),
    [
        (None, "success", True),
        (None, "failure", False),
        ("github.event_name == 'pull_request'", "failure", False),  # success() is implied
        ("always()", "failure", True),
        ("failure()", "failure", True),
        ("${{ github.event_name == 'push' }}", "success", False),
    ],
)
def test_if_conditions_imply_success(expr: str | None, status: str, runs: bool) -> None:
    assert condition(expr, CONTEXTS, status) is runs


def test_interpolation_and_output_files(tmp_path: Path) -> None:
    assert interpolate("n=${{ github.event.pull_request.number }}${{ github.x }}", CONTEXTS) == (
        "n=7"
    )
    out = tmp_path / "out"
    out.write_text("a=1\nbody<<EOF\nline 1\nline 2\nEOF\nb=x=y\n")
    assert _read_outputs(out) == {"a": "1", "body": "line 1\nline 2", "b": "x=y"}


@pytest.mark.parametrize(
    ("expr", "true"),
    [
        ('$CI_PIPELINE_SOURCE == "push"', True),
        ('$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH', False),
        ('$CI_PIPELINE_SOURCE == "web" || $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH', False),
        ("$CI_MERGE_REQUEST_IID", False),
        ("$CI_COMMIT_BRANCH", True),
        ('($CI_COMMIT_BRANCH != "main")', True),
    ],
)
def test_gitlab_rules_expressions(expr: str, true: bool) -> None:
    variables = {"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BRANCH": "dev", "CI_DEFAULT_BRANCH": "x"}
    assert _variable_expression(expr, variables) is true


@pytest.mark.parametrize(
    ("requirement", "problem"),
    [
        (
            "reconciler[postgres] @ git+https://github.com/<your-fork>/reconciler@<commit>",
            "installs",
        ),
        (
            "finetune-reconciler[nope] @ git+https://github.com/<your-fork>/reconciler@<commit>",
            "extras",
        ),
        ("finetune-reconciler[postgres]", "not a commit-pinned Git URL"),
        ("finetune-reconciler @ git+https://github.com/<your-fork>/reconciler@main", "pinned"),
    ],
)
def test_install_lines_must_name_the_distribution_and_a_commit(
    requirement: str, problem: str
) -> None:
    assert any(problem in p for p in check_install_requirement(requirement))
    with pytest.raises(RecipeError):
        substitute_shell(f"python -m pip install '{requirement}'")


def test_substitutions_replace_only_whole_install_lines() -> None:
    good = "finetune-reconciler[postgres] @ git+https://github.com/<your-fork>/reconciler@<commit>"
    text, used = substitute_shell(f"python -m pip install '{good}'\necho pip install x\n")
    assert text.splitlines()[0].startswith(": ") and text.splitlines()[1] == "echo pip install x"
    assert len(used) == 1


# ----------------------------------------------------------------------------- GitHub runner


@pytest.fixture
def github(tmp_path: Path) -> tuple[GitHubRunner, FakeGitHub, str]:
    repo = SpecsRepo(tmp_path / "repo", tmp_path / "checkouts")
    sha = repo.commit("main", {"specs/a.yaml": "x: 1\n"}, "specs")
    fake = FakeGitHub(tmp_path / "github")
    runner = GitHubRunner(
        fake,
        repo,
        tmp_path / "work",
        secrets={"PLAIN": "repo-secret"},
        environments={"prod": {"WRITE": "env-secret"}},
    )
    return runner, fake, sha


def _workflow(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "workflow.yml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


def test_a_failed_step_fails_its_job_and_skips_the_jobs_that_need_it(
    tmp_path: Path, github: tuple[GitHubRunner, FakeGitHub, str]
) -> None:
    runner, _, sha = github
    workflow = _workflow(
        tmp_path,
        """
        on: {push: {}}
        jobs:
          first:
            runs-on: ubuntu-latest
            steps:
              - run: false | true
              - name: never
                run: echo never
              - name: cleanup
                if: always()
                run: echo cleanup
          second:
            needs: first
            runs-on: ubuntu-latest
            steps:
              - run: echo second
        """,
    )
    run = runner.run(workflow, Event("push", sha, "refs/heads/main"))
    # `false | true` fails under pipefail, as with GitHub's `shell: bash`.
    assert run.jobs["first"].status == "failure"
    assert [s.name for s in run.jobs["first"].steps] == ["Run false | true", "cleanup"]
    assert run.jobs["second"].status == "skipped" and not run.ok


def test_environment_secrets_reach_only_jobs_in_that_environment(
    tmp_path: Path, github: tuple[GitHubRunner, FakeGitHub, str]
) -> None:
    runner, _, sha = github
    workflow = _workflow(
        tmp_path,
        """
        on: {push: {}}
        jobs:
          outside:
            runs-on: ubuntu-latest
            steps:
              - name: show
                env: {A: "${{ secrets.PLAIN }}", B: "${{ secrets.WRITE }}"}
                run: echo "A=$A B=$B"
          inside:
            runs-on: ubuntu-latest
            environment: prod
            steps:
              - name: show
                env: {B: "${{ secrets.WRITE }}"}
                run: echo "B=$B"
        """,
    )
    run = runner.run(workflow, Event("push", sha, "refs/heads/main"))
    assert run.jobs["outside"].step("show").stdout.strip() == "A=repo-secret B="
    assert run.jobs["inside"].step("show").stdout.strip() == "B=env-secret"
    assert [(job, env) for job, env, _ in run.gates] == [("inside", "prod")]


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ("- uses: actions/cache@v4", "no offline stand-in"),
        ("- uses: actions/checkout@v4\n  with: {ref: main}", "not emulated"),
        ("- run: echo ${{ github.sha }}", "script injection"),
        ("- run: reconciler plan --no-such-flag", "has no option '--no-such-flag'"),
    ],
)
def test_what_cannot_be_emulated_faithfully_is_refused(
    tmp_path: Path, github: tuple[GitHubRunner, FakeGitHub, str], step: str, message: str
) -> None:
    runner, _, sha = github
    steps = textwrap.indent(step, " " * 6)
    workflow = _workflow(
        tmp_path, f"on: {{push: {{}}}}\njobs:\n  j:\n    runs-on: x\n    steps:\n{steps}\n"
    )
    with pytest.raises(RecipeError, match=message):
        runner.run(workflow, Event("push", sha, "refs/heads/main"))


def _gh(fake: FakeGitHub, *args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "RECONCILER_FAKE_GITHUB": str(fake.path)}
    if token:
        env["GH_TOKEN"] = token
    return subprocess.run(
        [sys.executable, str(GH_SHIM), *args], env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq")
def test_gh_shim_checks_the_token_and_its_permissions(tmp_path: Path) -> None:
    fake = FakeGitHub(tmp_path)
    fake.grant("reader", {"pull-requests": "read"})
    fake.grant("writer", {"pull-requests": "write"})
    comments = "repos/acme/fine-tuning-specs/issues/3/comments"
    body = tmp_path / "body.md"
    body.write_text("<!-- m -->\nhello")
    assert _gh(fake, "api", comments, token=None).returncode == 4
    refused = _gh(fake, "api", "--method", "POST", comments, "-F", f"body=@{body}", token="reader")
    assert refused.returncode == 1 and "403" in refused.stderr
    assert _gh(fake, "api", "--method", "POST", comments, "-F", f"body=@{body}", token="writer")
    listed = _gh(fake, "api", comments, "--jq", ".[] | .body", token="reader")
    assert listed.stdout == "<!-- m -->\nhello\n"
    assert fake.comments(3)[0]["body"] == "<!-- m -->\nhello"
    unknown = _gh(fake, "pr", "comment", "3", token="writer")
    assert unknown.returncode == 1 and "not emulated" in unknown.stderr


# ----------------------------------------------------------------------------- GitLab runner


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_gitlab_scoping_rules_and_the_manual_gate(tmp_path: Path) -> None:
    repo = SpecsRepo(tmp_path / "repo", tmp_path / "checkouts")
    sha = repo.commit("main", {"specs/a.yaml": "x: 1\n"}, "specs")
    recipe = tmp_path / "gitlab-ci.yml"
    recipe.write_text(
        textwrap.dedent(
            """
            stages: [one, two]
            see:
              stage: one
              environment: {name: read, action: access}
              rules: [{if: $CI_PIPELINE_SOURCE == "push", changes: ["specs/**/*"]}]
              script:
                - echo "key=${KEY:-none} protected=${SECRET:-none}"
                - curl --silent --fail "$CI_API_V4_URL/projects/7/merge_requests/1/notes" || echo refused
              artifacts: {paths: [out.txt]}
            gate:
              stage: two
              rules: [{if: $CI_PIPELINE_SOURCE == "push", when: manual}]
              allow_failure: false
              script: [echo played]
            """
        ),
        encoding="utf-8",
    )
    with FakeGitLab("t") as api:
        runner = GitLabRunner(
            api,
            repo,
            tmp_path / "work",
            [
                Variable("KEY", "read-key", "read"),
                Variable("KEY", "write-key", "write"),
                Variable("SECRET", "s", protected=True),
            ],
        )
        outside = runner.run(recipe, source="push", sha=sha, branch="dev", changed=["README.md"])
        assert list(outside.jobs) == [] and outside.waiting == ["gate"]
        pipeline = runner.run(
            recipe, source="push", sha=sha, branch="dev", changed=["specs/a.yaml"]
        )
        # No token: the API refuses, as GitLab would.
        assert pipeline.jobs["see"].stdout.split("\n")[:2] == [
            "key=read-key protected=none",
            "refused",
        ]
        assert pipeline.status == "manual" and "gate" not in pipeline.jobs
        runner.play(pipeline, "gate")
        assert pipeline.status == "success" and pipeline.jobs["gate"].stdout == "played\n"
        with pytest.raises(RecipeError):
            runner.play(pipeline, "gate")


def test_every_action_the_recipes_use_has_a_documented_stand_in() -> None:
    import yaml
    from ci_emulation import REPO
    from ci_github import ACTION_DOCS, ACTION_INPUTS, ACTION_SHIMS

    used = {
        step["uses"].partition("@")[0]
        for path in (REPO / "examples" / "ci" / "github").glob("*.yml")
        for job in yaml.safe_load(path.read_text(encoding="utf-8"))["jobs"].values()
        for step in job["steps"]
        if "uses" in step
    }
    assert used == set(ACTION_SHIMS) == set(ACTION_DOCS) == set(ACTION_INPUTS)
