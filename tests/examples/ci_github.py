"""Runs a GitHub Actions workflow of ``examples/ci/github/`` on this machine (for tests).

:class:`GitHubRunner` runs a workflow's jobs for one event as GitHub would: in ``needs`` order,
each in a fresh checkout, with the job's ``if:``, the steps' ``if:``, ``${{ }}`` expressions
(:func:`evaluate`), ``GITHUB_OUTPUT`` / ``GITHUB_ENV`` / ``GITHUB_STEP_SUMMARY`` files, step and
job outputs, repository and environment secrets (an environment's secrets only reach jobs that
name the environment, as on GitHub), repository variables (``vars``) and a token per job that
carries the job's ``permissions:``.

What GitHub itself does is played by :class:`FakeGitHub`: pull requests, their comments,
workflow runs and artifacts, kept in a JSON file. The recipes reach it two ways:

* ``uses:`` steps, replaced by the functions of :data:`ACTION_SHIMS` (the table of
  substitutions; any other action fails the run);
* the ``gh`` command in ``run:`` steps, replaced by ``gh_shim.py`` (its docstring lists the
  commands it answers), which checks the token's permissions like GitHub would and evaluates
  ``--jq`` filters with the real ``jq``.

An environment (``environment:``) is an approval gate: the runner records what the run's summary
showed when the job waited for approval (:attr:`RunResult.gates`) and then approves.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ci_emulation import RecipeError, ShellResult, base_env, run_shell

from tests.cli_relay import Relay
from tests.yaml_text import safe_load

GH_SHIM = Path(__file__).with_name("gh_shim.py")
REPOSITORY = "acme/fine-tuning-specs"
SERVER_URL = "https://github.com"

# ----------------------------------------------------------------------------- expressions

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>\d+(?:\.\d+)?)"
    r"|(?P<op>==|!=|&&|\|\||!|\(|\))"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*))"
)
_FUNCTIONS = ("success", "failure", "always", "cancelled")


def _tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(expr.rstrip()):
        match = _TOKEN.match(expr, pos)
        if not match or match.end() == pos:
            raise RecipeError(f"expression {expr!r}: unsupported syntax at {expr[pos:]!r}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


def _truthy(value: Any) -> bool:
    return value not in (None, False, 0, "")


def _equal(left: Any, right: Any) -> bool:
    # GitHub compares strings without regard to case.
    if isinstance(left, str) and isinstance(right, str):
        return left.lower() == right.lower()
    return bool(left == right)


def evaluate(expr: str, contexts: Mapping[str, Any], status: str = "success") -> Any:
    """The value of a GitHub expression (without ``${{ }}``).

    Supported: context paths (``github.event.pull_request.number``, hyphens allowed), string and
    number literals, ``true``/``false``/``null``, ``== != && || !``, parentheses and the status
    functions ``success() failure() always() cancelled()`` (``status`` is the job's status so
    far). Anything else raises :class:`RecipeError`, so a recipe that outgrows this fails loudly.
    """
    tokens = _tokens(expr)
    pos = 0

    def peek() -> tuple[str, str] | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> tuple[str, str]:
        nonlocal pos
        if pos >= len(tokens):
            raise RecipeError(f"expression {expr!r}: ends too early")
        pos += 1
        return tokens[pos - 1]

    def either() -> Any:
        value = both()
        while peek() == ("op", "||"):
            take()
            right = both()
            value = value if _truthy(value) else right
        return value

    def both() -> Any:
        value = compare()
        while peek() == ("op", "&&"):
            take()
            right = compare()
            value = right if _truthy(value) else value
        return value

    def compare() -> Any:
        value = unary()
        if peek() in (("op", "=="), ("op", "!=")):
            _, op = take()
            right = unary()
            return _equal(value, right) if op == "==" else not _equal(value, right)
        return value

    def unary() -> Any:
        if peek() == ("op", "!"):
            take()
            return not _truthy(unary())
        return primary()

    def primary() -> Any:
        kind, text = take()
        if kind == "str":
            return text[1:-1].replace("''", "'")
        if kind == "num":
            return float(text) if "." in text else int(text)
        if kind == "op" and text == "(":
            value = either()
            if take() != ("op", ")"):
                raise RecipeError(f"expression {expr!r}: unbalanced parentheses")
            return value
        if kind == "name":
            if text in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[text]
            if peek() == ("op", "("):
                take()
                if take() != ("op", ")") or text not in _FUNCTIONS:
                    raise RecipeError(f"expression {expr!r}: unsupported function {text}")
                return {
                    "success": status == "success",
                    "failure": status == "failure",
                    "always": True,
                    "cancelled": False,
                }[text]
            value: Any = contexts
            for part in text.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            return value
        raise RecipeError(f"expression {expr!r}: unexpected {text!r}")

    value = either()
    if pos != len(tokens):
        raise RecipeError(f"expression {expr!r}: unexpected {tokens[pos][1]!r}")
    return value


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def interpolate(text: Any, contexts: Mapping[str, Any]) -> str:
    """``text`` with every ``${{ expression }}`` replaced by its value."""
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: _as_text(evaluate(m.group(1), contexts)), str(text))


def condition(expr: Any, contexts: Mapping[str, Any], status: str) -> bool:
    """An ``if:``: without a status function it means ``success() && (expr)``, as on GitHub."""
    if expr is None:
        return status == "success"
    text = str(expr).strip()
    if text.startswith("${{") and text.endswith("}}"):
        text = text[3:-2]
    if not any(f"{name}()" in text for name in _FUNCTIONS):
        text = f"success() && ({text})"
    return _truthy(evaluate(text, contexts, status))


# ----------------------------------------------------------------------------- GitHub itself


class FakeGitHub:
    """Pull requests, comments, runs and artifacts of one repository, in a JSON file that
    ``gh_shim.py`` shares.

    Attributes:
        root: where the store and the artifacts' files live.
        path: the JSON store.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "github.json"
        root.mkdir(parents=True, exist_ok=True)
        self._save(
            {
                "repository": REPOSITORY,
                "tokens": {},
                "pulls": [],
                "comments": {},
                "artifacts": [],
                "next_id": 1,
                "clock": 0,
            }
        )

    def load(self) -> dict[str, Any]:
        """The whole store."""
        data: dict[str, Any] = json.loads(self.path.read_text(encoding="utf-8"))
        return data

    def _save(self, data: dict[str, Any]) -> None:
        self.path.write_text(json.dumps(data, indent=1), encoding="utf-8")

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Apply ``change`` to the store and save it; what ``change`` returned."""
        data = self.load()
        result = change(data)
        self._save(data)
        return result

    def open_pull(self, number: int, head_sha: str) -> None:
        """A pull request is opened, or pushed to (its head moves)."""

        def change(data: dict[str, Any]) -> None:
            data["pulls"] = [p for p in data["pulls"] if p["number"] != number]
            data["pulls"].append(
                {"number": number, "state": "open", "head": {"sha": head_sha}, "merged_at": None}
            )

        self.update(change)

    def merge_pull(self, number: int, merge_commit_sha: str) -> None:
        """The pull request is merged by ``merge_commit_sha``."""

        def change(data: dict[str, Any]) -> None:
            for pull in data["pulls"]:
                if pull["number"] == number:
                    pull.update(
                        state="closed", merged_at="merged", merge_commit_sha=merge_commit_sha
                    )

        self.update(change)

    def comments(self, number: int) -> list[dict[str, Any]]:
        """The comments on issue or pull request ``number``, oldest first."""
        result: list[dict[str, Any]] = self.load()["comments"].get(str(number), [])
        return result

    def artifacts(self, name: str | None = None) -> list[dict[str, Any]]:
        """Artifacts (optionally only those called ``name``), oldest first."""
        return [a for a in self.load()["artifacts"] if name is None or a["name"] == name]

    def artifact_dir(self, artifact: Mapping[str, Any]) -> Path:
        """Where an artifact's files are."""
        return self.root / "artifacts" / str(artifact["id"])

    def add_artifact(self, name: str, run_id: int, head_sha: str, source: Path) -> None:
        """Store the files under ``source`` as artifact ``name`` of run ``run_id``."""

        def change(data: dict[str, Any]) -> int:
            artifact_id = data["next_id"]
            data["next_id"] += 1
            data["clock"] += 1
            data["artifacts"].append(
                {
                    "id": artifact_id,
                    "name": name,
                    "expired": False,
                    "created_at": f"2026-01-01T00:00:{data['clock']:02d}Z",
                    "workflow_run": {"id": run_id, "head_sha": head_sha},
                }
            )
            return int(artifact_id)

        artifact_id = self.update(change)
        shutil.copytree(source, self.root / "artifacts" / str(artifact_id))

    def grant(self, token: str, permissions: Mapping[str, str]) -> None:
        """Register a job's token with its permissions (``{scope: read|write}``)."""
        self.update(lambda data: data["tokens"].__setitem__(token, dict(permissions)))


# ----------------------------------------------------------------------------- the runner


@dataclass
class Event:
    """What triggered the run.

    Attributes:
        name: ``pull_request``, ``push``, ``schedule`` or ``workflow_dispatch``.
        sha: ``GITHUB_SHA``: the commit checked out (for pull requests the test merge commit).
        ref: ``GITHUB_REF``.
        payload: ``github.event``.
    """

    name: str
    sha: str
    ref: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class JobResult:
    """One job of a run.

    Attributes:
        id: the job id.
        status: ``success``, ``failure`` or ``skipped``.
        steps: the steps that ran.
        outputs: the job's outputs.
        summary: what its steps wrote to ``GITHUB_STEP_SUMMARY``.
    """

    id: str
    status: str
    steps: list[ShellResult] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""

    def step(self, name: str) -> ShellResult:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"job {self.id} ran no step {name!r}: {[s.name for s in self.steps]}")

    @property
    def log(self) -> str:
        """Every step's output, for failure messages."""
        return "\n".join(f"--- {s.name} (exit {s.returncode})\n{s.output}" for s in self.steps)


@dataclass
class RunResult:
    """One workflow run.

    Attributes:
        run_id: ``GITHUB_RUN_ID``.
        jobs: job id → result, in the order they ran.
        gates: (job id, environment, the run's summary when it waited for approval).
    """

    run_id: int
    jobs: dict[str, JobResult] = field(default_factory=dict)
    gates: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether no job failed."""
        return all(job.status != "failure" for job in self.jobs.values())

    @property
    def log(self) -> str:
        """Every job's output, for failure messages."""
        return "\n".join(f"=== job {j.id}: {j.status}\n{j.log}" for j in self.jobs.values())


_LEVEL = {"none": 0, "read": 1, "write": 2}


def _permissions(spec: Any) -> dict[str, str]:
    if spec is None:
        return {}
    if not isinstance(spec, Mapping):
        raise RecipeError(f"permissions: use a mapping of scopes, not {spec!r}")
    for scope, level in spec.items():
        if level not in _LEVEL:
            raise RecipeError(f"permissions: {scope}: {level!r}")
    return {str(k): str(v) for k, v in spec.items()}


class GitHubRunner:
    """Runs workflows of one repository for simulated events.

    Attributes:
        github: the fake GitHub the runs talk to.
        repo: the repository of specs.
        secrets: repository secrets.
        environments: environment name → its secrets.
        variables: repository variables (the ``vars`` context).
        relay: where the steps' ``reconciler`` calls run (see :func:`ci_emulation.run_shell`).
    """

    def __init__(
        self,
        github: FakeGitHub,
        repo: Any,
        work: Path,
        *,
        secrets: Mapping[str, str],
        environments: Mapping[str, Mapping[str, str]],
        variables: Mapping[str, str] | None = None,
        relay: Relay | None = None,
    ) -> None:
        self.github = github
        self.relay = relay
        self.repo = repo
        self.work = work
        self.secrets = dict(secrets)
        self.environments = {k: dict(v) for k, v in environments.items()}
        self.variables = dict(variables or {})
        self.bin_dir = work / "bin"
        self.bin_dir.mkdir(parents=True)
        gh = self.bin_dir / "gh"
        gh.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{GH_SHIM}" "$@"\n', encoding="utf-8")
        gh.chmod(0o755)
        self._runs = 0

    def run(self, workflow_path: Path, event: Event) -> RunResult:
        """Run every job of the workflow that ``event`` triggers."""
        workflow = safe_load(workflow_path.read_text(encoding="utf-8"))
        triggers = workflow.get("on", workflow.get(True))
        if event.name not in triggers:
            raise RecipeError(f"{workflow_path.name} does not run on {event.name}")
        self._runs += 1
        result = RunResult(run_id=1000 + self._runs)
        run_dir = self.work / f"run-{result.run_id}"
        event_path = run_dir / "event.json"
        run_dir.mkdir()
        event_path.write_text(json.dumps(event.payload), encoding="utf-8")
        github_ctx = {
            "event_name": event.name,
            "event": event.payload,
            "sha": event.sha,
            "ref": event.ref,
            "repository": REPOSITORY,
            "run_id": str(result.run_id),
            "server_url": SERVER_URL,
            "workspace": "",
            "token": "",
        }
        base = {
            **base_env(run_dir / "home", self.bin_dir),
            "GITHUB_ACTIONS": "true",
            "GITHUB_EVENT_NAME": event.name,
            "GITHUB_EVENT_PATH": str(event_path),
            "GITHUB_SHA": event.sha,
            "GITHUB_REF": event.ref,
            "GITHUB_REPOSITORY": REPOSITORY,
            "GITHUB_RUN_ID": str(result.run_id),
            "GITHUB_SERVER_URL": SERVER_URL,
            "GITHUB_API_URL": "https://api.github.com",
            "RECONCILER_FAKE_GITHUB": str(self.github.path),
            "RUNNER_TEMP": str(run_dir / "tmp"),
        }
        (run_dir / "tmp").mkdir()
        base.update(
            {k: interpolate(v, {"github": github_ctx}) for k, v in workflow.get("env", {}).items()}
        )
        for job_id in self._order(workflow["jobs"]):
            job = workflow["jobs"][job_id]
            result.jobs[job_id] = self._job(
                workflow, job_id, job, event, result, run_dir, base, github_ctx
            )
        return result

    @staticmethod
    def _order(jobs: Mapping[str, Any]) -> list[str]:
        order: list[str] = []
        while len(order) < len(jobs):
            ready = [
                j
                for j, job in jobs.items()
                if j not in order and all(n in order for n in _needs(job))
            ]
            if not ready:
                raise RecipeError(f"jobs' needs form a cycle or name a missing job: {list(jobs)}")
            order.extend(ready)
        return order

    def _job(
        self,
        workflow: Mapping[str, Any],
        job_id: str,
        job: Mapping[str, Any],
        event: Event,
        run: RunResult,
        run_dir: Path,
        base: Mapping[str, str],
        github_ctx: dict[str, Any],
    ) -> JobResult:
        needs = {
            n: {"result": run.jobs[n].status, "outputs": run.jobs[n].outputs} for n in _needs(job)
        }
        status = "success" if all(n["result"] == "success" for n in needs.values()) else "failure"
        contexts: dict[str, Any] = {"github": github_ctx, "needs": needs, "vars": self.variables}
        if not condition(job.get("if"), contexts, status):
            return JobResult(job_id, "skipped")
        environment = job.get("environment")
        if isinstance(environment, Mapping):
            environment = environment.get("name")
        if environment is not None and environment not in self.environments:
            raise RecipeError(f"job {job_id}: environment {environment!r} is not set up")
        if environment is not None:
            summary = "\n".join(j.summary for j in run.jobs.values())
            run.gates.append((job_id, str(environment), summary))
        secrets = {**self.secrets, **self.environments.get(str(environment), {})}
        token = f"ghs_{run.run_id}_{job_id}"
        permissions = _permissions(job.get("permissions", workflow.get("permissions")))
        self.github.grant(token, permissions)
        job_dir = run_dir / job_id
        workspace = job_dir / "workspace"
        workspace.mkdir(parents=True)
        github_ctx = {**github_ctx, "token": token, "workspace": str(workspace), "job": job_id}
        contexts = {**contexts, "github": github_ctx, "secrets": secrets, "steps": {}}
        env = {
            **base,
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_JOB": job_id,
            **{k: interpolate(v, contexts) for k, v in job.get("env", {}).items()},
        }
        result = JobResult(job_id, "success")
        for index, step in enumerate(job.get("steps", [])):
            # Unnamed steps are called as on GitHub: the action, or "Run <first line>".
            name = step.get("name") or step.get("uses") or f"Run {str(step['run']).splitlines()[0]}"
            if not condition(step.get("if"), contexts, result.status):
                continue
            files = {
                key: job_dir / f"{key.lower()}-{index}"
                for key in ("GITHUB_OUTPUT", "GITHUB_ENV", "GITHUB_STEP_SUMMARY")
            }
            for path in files.values():
                path.write_text("", encoding="utf-8")
            step_env = {
                **env,
                **{k: str(p) for k, p in files.items()},
                **{k: interpolate(v, contexts) for k, v in step.get("env", {}).items()},
            }
            if "uses" in step:
                with_ = {k: interpolate(v, contexts) for k, v in step.get("with", {}).items()}
                done = self._action(str(step["uses"]), with_, name, workspace, event, run)
            else:
                text = str(step["run"])
                if "${{" in text:
                    raise RecipeError(
                        f"job {job_id}, step {name!r}: pass values to run: through env:, "
                        "not ${{ }} in the script (script injection)"
                    )
                done = run_shell(name, text, workspace, step_env, job_dir / "scripts", self.relay)
            result.steps.append(done)
            outputs = _read_outputs(files["GITHUB_OUTPUT"])
            env.update(_read_outputs(files["GITHUB_ENV"]))
            result.summary += files["GITHUB_STEP_SUMMARY"].read_text(encoding="utf-8")
            if "id" in step:
                contexts["steps"][step["id"]] = {"outputs": outputs}
            if not done.ok:
                result.status = "failure"
        if result.status == "success":
            result.outputs = {
                k: interpolate(v, contexts) for k, v in job.get("outputs", {}).items()
            }
        return result

    def _action(
        self,
        uses: str,
        with_: Mapping[str, str],
        name: str,
        workspace: Path,
        event: Event,
        run: RunResult,
    ) -> ShellResult:
        action, _, version = uses.partition("@")
        shim = ACTION_SHIMS.get(action)
        if shim is None or not version:
            raise RecipeError(f"no offline stand-in for {uses!r} (see ACTION_SHIMS)")
        allowed = ACTION_INPUTS[action]
        unknown = set(with_) - allowed
        if unknown:
            raise RecipeError(f"{uses}: inputs {sorted(unknown)} are not emulated")
        try:
            message = shim(self, with_, workspace, event, run)
        except ActionFailed as exc:
            return ShellResult(name, 1, "", str(exc))
        return ShellResult(name, 0, message, "", [f"{uses}: {ACTION_DOCS[action]}"])


def _needs(job: Mapping[str, Any]) -> list[str]:
    needs = job.get("needs", [])
    return [needs] if isinstance(needs, str) else list(needs)


def _read_outputs(path: Path) -> dict[str, str]:
    """``name=value`` lines and ``name<<DELIMITER`` blocks, as GitHub reads these files."""
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delimiter = line.split("<<", 1)
            value = []
            while index < len(lines) and lines[index] != delimiter:
                value.append(lines[index])
                index += 1
            index += 1
            out[key] = "\n".join(value)
        elif "=" in line:
            key, value_text = line.split("=", 1)
            out[key] = value_text
    return out


# ----------------------------------------------------------------------------- actions


class ActionFailed(Exception):
    """An action's stand-in failed the way the action would (e.g. no files to upload)."""


def _checkout(
    runner: GitHubRunner, with_: Mapping[str, str], ws: Path, event: Event, run: RunResult
) -> str:
    ws.rmdir()
    checkout = runner.repo.checkout(event.sha, f"{run.run_id}-{ws.parent.name}")
    # The job's workspace is the checkout (the runner's GITHUB_WORKSPACE).
    ws.symlink_to(checkout, target_is_directory=True)
    return f"checked out {event.sha}"


def _setup_python(
    runner: GitHubRunner, with_: Mapping[str, str], ws: Path, event: Event, run: RunResult
) -> str:
    if with_.get("python-version") != f"{sys.version_info.major}.{sys.version_info.minor}":
        return f"python {with_.get('python-version')} asked; the tests' interpreter is used"
    return "the tests' interpreter is used"


def _upload_artifact(
    runner: GitHubRunner, with_: Mapping[str, str], ws: Path, event: Event, run: RunResult
) -> str:
    paths = [ws / p.strip() for p in with_["path"].splitlines() if p.strip()]
    missing = [p for p in paths if not p.exists()]
    if missing:
        if with_.get("if-no-files-found", "warn") == "error":
            raise ActionFailed(f"no files found: {[str(p.relative_to(ws)) for p in missing]}")
        paths = [p for p in paths if p.exists()]
    # The artifact's root is the paths' least common ancestor (a single directory: itself).
    root = paths[0] if len(paths) == 1 and paths[0].is_dir() else _common_parent(paths)
    staging = ws.parent / f"upload-{with_['name']}"
    for path in paths:
        target = staging / path.relative_to(root) if path != root else staging
        if path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    runner.github.add_artifact(with_["name"], run.run_id, event.sha, staging)
    return f"uploaded {with_['name']}"


def _common_parent(paths: list[Path]) -> Path:
    parents = [p.parent for p in paths]
    common = parents[0]
    while not all(p == common or common in p.parents for p in parents):
        common = common.parent
    return common


def _download_artifact(
    runner: GitHubRunner, with_: Mapping[str, str], ws: Path, event: Event, run: RunResult
) -> str:
    found = [
        a for a in runner.github.artifacts(with_["name"]) if a["workflow_run"]["id"] == run.run_id
    ]
    if not found:
        raise ActionFailed(f"Unable to find an artifact with the name: {with_['name']}")
    dest = ws / with_.get("path", ".")
    shutil.copytree(runner.github.artifact_dir(found[-1]), dest, dirs_exist_ok=True)
    return f"downloaded {with_['name']}"


Shim = Callable[[GitHubRunner, Mapping[str, str], Path, Event, RunResult], str]

ACTION_SHIMS: dict[str, Shim] = {
    "actions/checkout": _checkout,
    "actions/setup-python": _setup_python,
    "actions/upload-artifact": _upload_artifact,
    "actions/download-artifact": _download_artifact,
}
"""The substitution table for ``uses:`` steps: action → local stand-in."""

ACTION_DOCS = {
    "actions/checkout": "a fresh worktree of the throwaway repository at GITHUB_SHA",
    "actions/setup-python": "nothing: the interpreter running the tests (3.11+) is on PATH",
    "actions/upload-artifact": "the files copied into the fake GitHub's artifact store, "
    "rooted at the paths' common directory",
    "actions/download-artifact": "the artifact of the same run copied from that store",
}

ACTION_INPUTS = {
    "actions/checkout": set(),
    "actions/setup-python": {"python-version"},
    "actions/upload-artifact": {"name", "path", "retention-days", "if-no-files-found"},
    "actions/download-artifact": {"name", "path"},
}
"""The inputs each stand-in understands; a recipe using another one fails the test."""
