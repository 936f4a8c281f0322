"""The CI recipes, read statically: the GitHub Actions workflows, the GitLab CI recipe, the
pre-commit hook definition, and the docs that quote them.

They only ever run on a CI service, so these tests check what would otherwise fail there: the
files parse and have the documented shape (triggers, approval gate, concurrency, secrets scoped
to steps, the commit-pinned install line), every ``reconciler`` command they run exists with
the flags and flag values they pass, the exit-code handling of the plan steps, and that the
README quotes the recipes' commands word for word. (test_ci_recipes_run.py runs them.)
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
from ci_emulation import INSTALL_LINE, check_install_requirement
from examples_cli_lines import (
    check_invocation,
    cli_root,
    reconciler_invocations,
    shell_commands,
)

from tests.cli_inprocess import run_cli
from tests.yaml_text import safe_load

REPO = Path(__file__).resolve().parents[2]
CI = REPO / "examples" / "ci"
GITHUB = sorted((CI / "github").glob("*.yml"))
GITLAB = CI / "gitlab-ci.yml"
HOOKS = REPO / ".pre-commit-hooks.yaml"
SECRET = re.compile(r"\$\{\{\s*secrets\.")


def _load(path: Path) -> dict[str, Any]:
    data = safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name} must be a YAML mapping"
    return data


def _workflow(name: str) -> dict[str, Any]:
    return _load(CI / "github" / f"reconciler-{name}.yml")


def _triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    # YAML 1.1 (PyYAML) reads the bare key `on` as the boolean True; GitHub reads it as "on".
    triggers = workflow.get("on", workflow.get(True))
    assert isinstance(triggers, dict), "the workflow needs an 'on:' mapping of events"
    return triggers


def _github_steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(job id, job, step) of every step."""
    return [
        (job_id, job, step)
        for job_id, job in workflow["jobs"].items()
        for step in job.get("steps", [])
    ]


def _gitlab_jobs() -> dict[str, dict[str, Any]]:
    config = _load(GITLAB)
    reserved = {"workflow", "stages", "default", "variables"}
    return {k: v for k, v in config.items() if k not in reserved and not k.startswith(".")}


def _gitlab_script(job: dict[str, Any]) -> str:
    return "\n".join(job["script"])


def _shell_texts() -> list[tuple[str, str]]:
    """(where, shell text) of every step or script of every recipe."""
    out = []
    for path in GITHUB:
        for job_id, _, step in _github_steps(_load(path)):
            if "run" in step:
                out.append((f"{path.name}:{job_id}:{step.get('name')}", step["run"]))
    config = _load(GITLAB)
    out.append(("gitlab-ci.yml:default", "\n".join(config["default"]["before_script"])))
    for name, job in _gitlab_jobs().items():
        out.append((f"gitlab-ci.yml:{name}", _gitlab_script(job)))
    return out


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


# ----------------------------------------------------------------- the distribution name


def test_one_distribution_name_in_the_package_its_hints_and_the_docs() -> None:
    import reconciler
    from reconciler.engine.backends import POSTGRES_INSTALL_HINT

    name = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]
    assert reconciler.DISTRIBUTION == name == "finetune-reconciler"
    assert reconciler.install_command("postgres") in POSTGRES_INSTALL_HINT
    installing = (REPO / "README.md").read_text(encoding="utf-8").split("## Installing\n")[1]
    assert f"pip install '{name}[postgres] @ git+https://github.com/<your-fork>/" in installing
    # No install command names the other project called `reconciler` (the README warns of it).
    for path in [REPO / "README.md", *CI.rglob("*"), *(REPO / "docs").glob("*.md")]:
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"pip install '?reconciler\b(?!` installs an unrelated)", text), (
                path
            )


# ----------------------------------------------------------------- every recipe


def test_recipes_are_valid_yaml_with_their_triggers() -> None:
    assert [p.name for p in GITHUB] == [
        "reconciler-apply.yml",
        "reconciler-drift.yml",
        "reconciler-plan.yml",
    ]
    assert set(_triggers(_workflow("plan"))) == {"pull_request", "workflow_dispatch"}
    apply = _triggers(_workflow("apply"))
    assert set(apply) == {"push", "workflow_dispatch"}
    assert apply["push"]["branches"] == ["main"]
    assert set(_triggers(_workflow("drift"))) == {"schedule", "workflow_dispatch"}
    for path in GITHUB:
        for job_id, job, step in _github_steps(_load(path)):
            assert job.get("runs-on"), f"{path.name}: job {job_id} needs runs-on"
            assert ("uses" in step) != ("run" in step), f"{path.name}: {job_id}: uses or run"
    config = _load(GITLAB)
    for name, job in _gitlab_jobs().items():
        assert job["stage"] in config["stages"], name
        assert job["rules"], f"{name} runs only where its rules say"


def test_every_reconciler_command_in_the_recipes_exists(root: Any) -> None:
    commands = set()
    for where, text in _shell_texts():
        for args in reconciler_invocations(text):
            commands.add(args[0])
            assert check_invocation(root, args) == [], f"{where}: reconciler {' '.join(args)}"
    assert {"validate", "plan", "apply", "status"} <= commands


def test_every_job_installs_the_distribution_from_a_pinned_commit() -> None:
    installs = []
    for path in GITHUB:
        for job_id, job in _load(path)["jobs"].items():
            texts = [s.get("run", "") for s in job["steps"]]
            if any(reconciler_invocations(t) for t in texts):
                lines = [m for t in texts for m in map(INSTALL_LINE.match, t.splitlines()) if m]
                assert lines, f"{path.name}: job {job_id} runs reconciler without installing it"
                installs += [m["requirement"] for m in lines]
    before = _load(GITLAB)["default"]["before_script"]
    installs += [m["requirement"] for m in map(INSTALL_LINE.match, before) if m]
    assert len(installs) == 4  # the plan, apply and drift jobs; GitLab's before_script
    assert len(set(installs)) == 1, "the same pinned requirement everywhere"
    assert check_install_requirement(installs[0]) == []
    assert "[postgres]" in installs[0], "the recipes recommend the PostgreSQL backend"


def test_no_expression_is_expanded_inside_a_github_script() -> None:
    # Values reach run: through env:, so a branch name or title cannot inject shell code.
    for path in GITHUB:
        for job_id, _, step in _github_steps(_load(path)):
            assert "${{" not in step.get("run", ""), f"{path.name}: {job_id}: {step.get('name')}"


# ----------------------------------------------------------------- secrets


def test_github_secrets_reach_only_the_steps_that_need_them() -> None:
    for path in GITHUB:
        workflow = _load(path)
        assert not SECRET.search(yaml.safe_dump(workflow.get("env", {}))), path.name
        for job_id, job, step in _github_steps(workflow):
            assert not SECRET.search(yaml.safe_dump(job.get("env", {}))), f"{path.name}:{job_id}"
            if "uses" in step:
                assert not SECRET.search(yaml.safe_dump(step.get("with", {}))), step["uses"]
    text = "\n".join(p.read_text(encoding="utf-8") for p in GITHUB)
    # No secret is written literally anywhere in the recipes.
    for match in re.finditer(r"(API_KEY|DSN|TOKEN)\s*:\s*(.+)", text):
        value = match.group(2).strip()
        assert value.startswith("${{ secrets.") or value == "${{ github.token }}", match.group(0)


def _secrets_of(workflow: dict[str, Any]) -> dict[str, set[str]]:
    """Job id → the secrets its steps reference."""
    out: dict[str, set[str]] = {}
    for job_id, _, step in _github_steps(workflow):
        found = re.findall(r"secrets\.(\w+)", yaml.safe_dump(step.get("env", {})))
        out.setdefault(job_id, set()).update(found)
    return out


def test_the_keys_that_create_jobs_reach_only_the_approved_apply_job() -> None:
    write_keys = {"MISTRAL_API_KEY", "WANDB_API_KEY"}
    for job_id, used in _secrets_of(_workflow("plan")).items():
        assert not used & write_keys, f"plan:{job_id} holds a key that can create jobs"
        assert used <= {"MISTRAL_PLAN_API_KEY", "RECONCILER_PG_DSN"}, used
    apply = _workflow("apply")
    for job_id, used in _secrets_of(apply).items():
        if used & write_keys:
            assert apply["jobs"][job_id]["environment"] == "fine-tuning", job_id
    jobs = _gitlab_jobs()
    assert jobs["plan"]["environment"] == {"name": "fine-tuning-read", "action": "access"}
    assert jobs["apply"]["environment"] == {"name": "fine-tuning"}
    for name in ("validate", "reviewed-plan"):
        assert "environment" not in jobs[name], f"{name} needs no provider key"


def test_the_schedule_holds_a_key_of_its_own_and_never_approves() -> None:
    # The scheduled reconcile starts validated jobs and updates models, so it needs a key that
    # can; an environment of its own gives it one (never the W&B key), and without
    # --auto-approve it creates, replaces and deletes nothing.
    drift = _workflow("drift")
    for job_id, used in _secrets_of(drift).items():
        assert used <= {"MISTRAL_API_KEY", "RECONCILER_PG_DSN"}, used
        if "MISTRAL_API_KEY" in used:
            assert drift["jobs"][job_id]["environment"] == "fine-tuning-reconcile", job_id
    gitlab = _gitlab_jobs()["drift"]
    assert gitlab["environment"] == {"name": "fine-tuning-reconcile", "action": "access"}
    texts = [s.get("run", "") for _, _, s in _github_steps(drift)] + [_gitlab_script(gitlab)]
    calls = [args for text in texts for args in reconciler_invocations(text)]
    assert len(calls) == 2
    for args in calls:
        assert args[0] == "reconcile" and "--once" in args and "--auto-approve" not in args


def test_jobs_that_reach_the_remote_set_the_operators_trust_settings() -> None:
    # SECURITY.md: the endpoint allowlist defaults to the official endpoint (a repository or
    # project variable can widen it, a spec cannot), and specs may name only the secrets the
    # recipes hand out: one list for every job, since plan resolves a W&B reference too (for
    # cost estimates) and must not refuse specs that apply accepts.
    default = "${{ vars.RECONCILER_ALLOWED_ENDPOINTS || 'https://api.mistral.ai' }}"
    handed_out = {"MISTRAL_API_KEY", "WANDB_API_KEY", "RECONCILER_PG_DSN"}
    checked = 0
    for path in GITHUB:
        for job_id, job in _load(path)["jobs"].items():
            steps = job.get("steps", [])
            calls = [a for s in steps for a in reconciler_invocations(s.get("run", ""))]
            if not any(call[0] != "validate" for call in calls):
                continue
            checked += 1
            env = job.get("env", {})
            assert env.get("RECONCILER_ALLOWED_ENDPOINTS") == default, f"{path.name}:{job_id}"
            given = {
                name
                for step in steps
                for name, value in step.get("env", {}).items()
                if SECRET.search(str(value))
            }
            allowed = set(env.get("RECONCILER_ALLOWED_SECRETS", "").split(","))
            assert given <= allowed == handed_out, f"{path.name}:{job_id}: {allowed}"
    assert checked == 3  # plan, apply, drift
    variables = _load(GITLAB)["variables"]
    assert variables["RECONCILER_ALLOWED_ENDPOINTS"] == "https://api.mistral.ai"
    assert set(variables["RECONCILER_ALLOWED_SECRETS"].split(",")) == handed_out


# ----------------------------------------------------------------- the flow's shape


def test_the_apply_waits_for_an_approval_and_never_overlaps() -> None:
    apply = _workflow("apply")["jobs"]["apply"]
    assert apply["needs"] == "reviewed-plan"
    assert apply["environment"] == "fine-tuning"
    assert apply["concurrency"] == {"group": "reconciler-apply", "cancel-in-progress": False}
    job = _gitlab_jobs()["apply"]
    assert {rule.get("when") for rule in job["rules"]} == {"manual"}
    assert job["allow_failure"] is False, "a manual job that blocks the pipeline: the approval"
    assert job["resource_group"] == "reconciler-apply"


def test_the_apply_runs_the_saved_plan_it_was_handed() -> None:
    workflow = _workflow("apply")
    steps = workflow["jobs"]["apply"]["steps"]
    download = next(s for s in steps if s.get("uses", "").startswith("actions/download-artifact@"))
    upload = next(
        s
        for s in workflow["jobs"]["reviewed-plan"]["steps"]
        if s.get("uses", "").startswith("actions/upload-artifact@")
    )
    assert download["with"]["name"] == upload["with"]["name"]
    calls = [a for s in steps for a in reconciler_invocations(s.get("run", ""))]
    assert ["apply", f"{download['with']['path']}/plan.json", "--yes"] in calls
    # The pull request's plan is saved under the name the apply job looks for.
    plan_steps = _workflow("plan")["jobs"]["plan"]["steps"]
    saved = next(s for s in plan_steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert saved["with"]["name"].startswith("reconciler-plan-")
    assert "reconciler-plan-$sha" in workflow["jobs"]["reviewed-plan"]["steps"][0]["run"]
    assert "reconciler apply plan.json --yes" in _gitlab_script(_gitlab_jobs()["apply"])


def test_pull_request_plans_post_one_comment_found_by_a_marker() -> None:
    job = _workflow("plan")["jobs"]["plan"]
    assert job["permissions"] == {"contents": "read", "pull-requests": "write"}
    comment = next(s for s in job["steps"] if "gh api" in s.get("run", ""))
    marker = "<!-- reconciler-plan -->"
    assert comment["run"].count(marker) == 2, "written as the first line, then searched for"
    assert "--method PATCH" in comment["run"] and "--method POST" in comment["run"]
    gitlab = _gitlab_script(_gitlab_jobs()["plan"])
    assert gitlab.count(marker) == 2 and "--request PUT" in gitlab


def _step_with(workflow: str, flag: str) -> str:
    return next(
        s["run"] for _, _, s in _github_steps(_workflow(workflow)) if flag in s.get("run", "")
    )


@pytest.mark.parametrize(
    ("where", "accepted"),
    [
        (("plan", "--out"), {0: True, 2: True, 1: False, 3: False}),
        (("drift", "--once"), {0: True, 2: False, 1: False}),
    ],
    ids=["pull-request plan", "drift check"],
)
def test_plan_steps_handle_the_detailed_exit_codes(
    tmp_path: Path, where: tuple[str, str], accepted: dict[int, bool]
) -> None:
    scripts = [_step_with(*where)]
    gitlab_job = "plan" if where[0] == "plan" else "drift"
    scripts.append(_gitlab_jobs()[gitlab_job]["script"][0])
    for run in scripts:
        # Run the step's exit-code handling with a stand-in `reconciler` returning each code.
        for code, ok in accepted.items():
            script = f"reconciler() {{ echo '# plan'; return {code}; }}\n{run}"
            result = subprocess.run(
                ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
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
            if not ok:
                assert result.returncode == code


# ----------------------------------------------------------------- the docs quote the recipes


def _recipe_command_lines() -> set[str]:
    """Every line of the recipes that runs reconciler or installs it, as written."""
    lines = set()
    for _, text in _shell_texts():
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("reconciler ") or INSTALL_LINE.match(line):
                lines.add(line)
    return lines


def _ci_section(doc: Path) -> str:
    text = doc.read_text(encoding="utf-8")
    if doc.name == "README.md" and doc.parent == REPO:
        return text.split("## CI recipes\n", 1)[1].split("\n## ", 1)[0]
    return text


@pytest.mark.parametrize("doc", [REPO / "README.md", CI / "README.md"], ids=["README", "ci"])
def test_the_docs_quote_every_recipe_command_word_for_word(doc: Path) -> None:
    section = _ci_section(doc)
    spans = set(re.findall(r"`([^`\n]+)`", section))
    lines = {line.strip() for line in section.splitlines()}  # code blocks
    for line in _recipe_command_lines():
        assert line in spans | lines, f"{doc.relative_to(REPO)} does not quote: {line}"
    # And what they quote as a reconciler command is what a recipe runs.
    recipe = _recipe_command_lines()
    for code in spans:
        if code.startswith("reconciler ") and code.split()[1] in ("plan", "apply", "validate"):
            assert code in recipe, f"{doc.relative_to(REPO)} quotes {code!r}, which no recipe runs"


# ----------------------------------------------------------------- pre-commit hook


def _hook() -> dict[str, Any]:
    hooks = safe_load(HOOKS.read_text(encoding="utf-8"))
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


def _documented_configs() -> list[tuple[str, str]]:
    """(where, YAML) of every .pre-commit-config.yaml example the repository shows."""
    out = []
    for doc in (REPO / "README.md", CI / "README.md"):
        for block in re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            if "repos:" in block:
                out.append((doc.relative_to(REPO).as_posix(), block))
    header = [
        line[2:]
        for line in HOOKS.read_text(encoding="utf-8").splitlines()
        if line.startswith("#   ") or line == "#"
    ]
    out.append((".pre-commit-hooks.yaml", "\n".join(header)))
    return out


@pytest.mark.parametrize("where", [w for w, _ in _documented_configs()])
def test_documented_pre_commit_configs_pin_a_commit_and_run_validate_only(
    root: Any, where: str
) -> None:
    text = dict(_documented_configs())[where]
    config = safe_load(text[text.index("repos:") :])
    [repo] = config["repos"]
    assert repo["repo"] == "https://github.com/<your-fork>/reconciler"
    # A commit, not a tag or branch: the hook's code cannot change under the team.
    assert repo["rev"] == "<commit>"
    assert "full commit SHA" in text and "autoupdate --freeze" in text
    [hook] = repo["hooks"]
    assert hook["id"] == _hook()["id"]
    assert _hook()["entry"] == "reconciler validate"
    assert check_invocation(root, ["validate", *hook["args"]]) == []


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
    # of the checkout. The hook's args (specs/) check every example but the workspaces of
    # their own below it (a reconciler.yaml root marker: 09 and 10, with an openai and a ray
    # Provider), which it names in a note; each of those takes a hook entry of its own, as the hook file says.
    shutil.copytree(
        REPO / "specs", tmp_path / "specs", ignore=shutil.ignore_patterns(".reconciler")
    )
    hook = _hook()
    assert hook.get("args") == ["specs/"]
    entry = hook["entry"].split()[1:]
    result = run_cli([*entry, *hook["args"]], cwd=tmp_path, env=os.environ)
    assert result.returncode == 0, result.stdout + result.stderr
    own = sorted(p.parent.name for p in (REPO / "specs").glob("*/reconciler.yaml"))
    assert own == ["09-openai-tone", "10-self-hosted-ray"]
    for workspace in own:
        assert f"specs/{workspace}: warning: a workspace of its own" in result.stdout
        alone = run_cli([*entry, f"specs/{workspace}/"], cwd=tmp_path, env=os.environ)
        assert alone.returncode == 0, alone.stdout + alone.stderr


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
