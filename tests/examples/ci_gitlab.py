"""Runs the GitLab CI recipe (``examples/ci/gitlab-ci.yml``) on this machine (for tests).

:class:`GitLabRunner` creates a pipeline for one event as GitLab would: ``workflow:rules``
decide whether there is one, each job's ``rules:`` (``if:`` with ``$VARIABLE`` comparisons,
``changes:`` against the files the event changed, ``when: manual``) whether it joins, stages
order them, ``needs:`` (``optional: true`` included) or earlier stages hand artifacts on,
``default:`` supplies image and ``before_script``. A job's CI/CD variables follow GitLab's
scoping: a protected variable only on the protected branch ``main``, an environment-scoped one
only in jobs whose ``environment:`` has that name. A manual job runs only when the test plays
it (:attr:`PipelineResult.waiting` lists those that wait), which is the approval.

The scripts run for real (``ci_emulation.run_shell``); ``curl`` in them talks to
:class:`FakeGitLab`, a small HTTP server on 127.0.0.1 standing in for the GitLab API
(``CI_API_V4_URL``): merge request notes, the merge requests of a commit, and job artifacts by
ref (the newest successful pipeline of that ref, as GitLab serves them). Its docstring lists
the endpoints; any other request gets 404 and fails the script.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from ci_emulation import RecipeError, ShellResult, base_env, run_shell

from tests.cli_relay import Relay
from tests.local_http import LocalHTTPServer
from tests.yaml_text import safe_load

PROJECT_ID = 7
DEFAULT_BRANCH = "main"
PROTECTED_BRANCHES = {"main"}
JOB_KEYS = {
    "stage",
    "rules",
    "script",
    "before_script",
    "artifacts",
    "environment",
    "needs",
    "allow_failure",
    "resource_group",
    "image",
}
"""Job keywords the emulation understands; a recipe using another one fails the test."""

# ----------------------------------------------------------------------------- the API


class FakeGitLab(LocalHTTPServer):
    """The GitLab API the recipe calls, served on 127.0.0.1 (``with FakeGitLab(...) as api``).

    Endpoints (``PRIVATE-TOKEN`` must be :attr:`token`; ``:id`` is :data:`PROJECT_ID`):

    * ``GET /api/v4/projects/:id/merge_requests/:iid/notes`` (oldest first),
      ``POST`` to it and ``PUT .../notes/:note_id`` with a form-encoded ``body``;
    * ``GET /api/v4/projects/:id/repository/commits/:sha/merge_requests``;
    * ``GET /api/v4/projects/:id/jobs/artifacts/:ref/raw/:path?job=NAME``: the file from job
      NAME of the newest *successful* pipeline of ``:ref`` (e.g. ``refs/merge-requests/1/head``).

    Attributes:
        token: the access token it accepts.
        notes: merge request iid → its notes.
        merge_requests: ``{iid, sha, merge_commit_sha, state}`` records.
        pipelines: ``{id, ref, sha, status, artifacts: {job: dir}}`` records, oldest first.
    """

    def __init__(self, token: str) -> None:
        self.token = token
        self.notes: dict[int, list[dict[str, Any]]] = {}
        self.merge_requests: list[dict[str, Any]] = []
        self.pipelines: list[dict[str, Any]] = []
        self.requests: list[str] = []
        self._lock = threading.Lock()
        super().__init__(self._handler())

    @property
    def url(self) -> str:
        """``CI_API_V4_URL``."""
        return f"{self.base_url}/api/v4"

    def _answer(self, method: str, path: str, query: dict[str, str], form: dict[str, str]) -> Any:
        """(status, JSON value or bytes) for one request."""
        prefix = f"/api/v4/projects/{PROJECT_ID}/"
        if not path.startswith(prefix):
            return 404, {"message": "404 Project Not Found"}
        rest = path[len(prefix) :]
        if m := re.fullmatch(r"merge_requests/(\d+)/notes(?:/(\d+))?", rest):
            notes = self.notes.setdefault(int(m[1]), [])
            if method == "GET" and m[2] is None:
                return 200, notes[: int(query.get("per_page", "20"))]
            if method == "POST" and m[2] is None:
                note = {"id": 100 + sum(map(len, self.notes.values())), "body": form["body"]}
                notes.append(note)
                return 201, note
            if method == "PUT" and m[2] is not None:
                for note in notes:
                    if note["id"] == int(m[2]):
                        note["body"] = form["body"]
                        return 200, note
            return 404, {"message": "404 Not found"}
        if method == "GET" and (
            m := re.fullmatch(r"repository/commits/(\w+)/merge_requests", rest)
        ):
            sha = m[1]
            return 200, [
                mr for mr in self.merge_requests if sha in (mr["sha"], mr.get("merge_commit_sha"))
            ]
        if method == "GET" and (m := re.fullmatch(r"jobs/artifacts/(.+?)/raw/(.+)", rest)):
            ref, file = m[1], m[2]
            for pipeline in reversed(self.pipelines):
                if pipeline["ref"] == ref and pipeline["status"] == "success":
                    job_dir = pipeline["artifacts"].get(query.get("job"))
                    if job_dir is not None and (Path(job_dir) / file).is_file():
                        return 200, (Path(job_dir) / file).read_bytes()
                    break
            return 404, {"message": "404 Not Found"}
        return 404, {"message": f"404 {method} {rest} is not emulated"}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                # Path segments are decoded after splitting, as GitLab does for :ref.
                path = "/".join(urllib.parse.unquote(s) for s in url.path.split("/"))
                query = dict(urllib.parse.parse_qsl(url.query))
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                with api._lock:
                    api.requests.append(f"{self.command} {path}")
                    if self.headers.get("PRIVATE-TOKEN") != api.token:
                        status, value = 401, {"message": "401 Unauthorized"}
                    else:
                        status, value = api._answer(self.command, path, query, form)
                data = value if isinstance(value, bytes) else json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# ----------------------------------------------------------------------------- rules


def _variable_expression(expr: str, variables: Mapping[str, str]) -> bool:
    """A ``rules:if``: ``$A == "x"``, ``$A != $B``, ``$A`` (set and not empty), ``&&``, ``||``,
    parentheses. Anything else raises :class:`RecipeError`."""
    tokens = re.findall(r'\$\w+|"[^"]*"|\'[^\']*\'|==|!=|&&|\|\||\(|\)|\S+', expr)
    pos = 0

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise RecipeError(f"rules:if {expr!r}: ends too early")
        pos += 1
        return tokens[pos - 1]

    def value(token: str) -> str | None:
        if token.startswith("$"):
            return variables.get(token[1:])
        if token[:1] in "\"'" and token[-1:] == token[:1]:
            return token[1:-1]
        raise RecipeError(f"rules:if {expr!r}: unsupported {token!r}")

    def either() -> bool:
        result = both()
        while pos < len(tokens) and tokens[pos] == "||":
            take()
            result = both() or result
        return result

    def both() -> bool:
        result = atom()
        while pos < len(tokens) and tokens[pos] == "&&":
            take()
            result = atom() and result
        return result

    def atom() -> bool:
        token = take()
        if token == "(":
            result = either()
            if take() != ")":
                raise RecipeError(f"rules:if {expr!r}: unbalanced parentheses")
            return result
        left = value(token)
        if pos < len(tokens) and tokens[pos] in ("==", "!="):
            op = take()
            right = value(take())
            return (left == right) if op == "==" else (left != right)
        return bool(left)

    result = either()
    if pos != len(tokens):
        raise RecipeError(f"rules:if {expr!r}: unexpected {tokens[pos]!r}")
    return result


def _glob(pattern: str) -> re.Pattern[str]:
    """A ``rules:changes`` glob as GitLab reads it: ``**/`` is any number of directories
    (none included), ``*`` and ``?`` stay within one path segment."""
    out = ""
    for part in re.split(r"(\*\*/|\*|\?)", pattern):
        out += {"**/": "(?:.*/)?", "*": "[^/]*", "?": "[^/]"}.get(part, re.escape(part))
    return re.compile(out)


def _changes_match(patterns: list[str], changed: list[str] | None) -> bool:
    if changed is None:  # pipelines without a diff (web, schedule): always true, as on GitLab
        return True
    return any(_glob(pattern).fullmatch(path) for pattern in patterns for path in changed)


def _rules(
    rules: list[Mapping[str, Any]] | None, variables: Mapping[str, str], changed: list[str] | None
) -> str | None:
    """The ``when`` of the first matching rule, or None (the job is left out)."""
    if rules is None:
        return "on_success"
    for rule in rules:
        unknown = set(rule) - {"if", "changes", "when"}
        if unknown:
            raise RecipeError(f"rules: {sorted(unknown)} are not emulated")
        if "if" in rule and not _variable_expression(rule["if"], variables):
            continue
        if "changes" in rule and not _changes_match(list(rule["changes"]), changed):
            continue
        return str(rule.get("when", "on_success"))
    return None


# ----------------------------------------------------------------------------- pipelines


@dataclass
class Variable:
    """A project CI/CD variable.

    Attributes:
        key / value: the variable.
        environment_scope: ``*`` or the environment name whose jobs get it.
        protected: only pipelines of protected branches get it.
    """

    key: str
    value: str
    environment_scope: str = "*"
    protected: bool = False


@dataclass
class PipelineResult:
    """One pipeline.

    Attributes:
        id: the pipeline id.
        created: False when ``workflow:rules`` created no pipeline.
        jobs: job name → its script's result (jobs that ran), in order.
        waiting: manual jobs nobody played yet; with ``allow_failure: false`` the pipeline is
            blocked on the first of them (the approval) until :meth:`GitLabRunner.play`.
    """

    id: int
    created: bool = True
    jobs: dict[str, ShellResult] = field(default_factory=dict)
    waiting: list[str] = field(default_factory=list)
    _pending: list[tuple[str, dict[str, Any], str]] = field(default_factory=list, repr=False)
    _context: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def status(self) -> str:
        """``success``, ``failed``, ``manual`` (blocked on an approval) or ``skipped``."""
        if not self.created:
            return "skipped"
        if any(not job.ok for job in self.jobs.values()):
            return "failed"
        return "manual" if self.waiting else "success"

    @property
    def log(self) -> str:
        """Every job's output, for failure messages."""
        return "\n".join(
            f"=== {name} (exit {job.returncode})\n{job.output}" for name, job in self.jobs.items()
        )


class GitLabRunner:
    """Creates and runs pipelines of one project.

    Attributes:
        api: the fake GitLab API.
        repo: the repository of specs.
        variables: the project's CI/CD variables.
        relay: where the scripts' ``reconciler`` calls run (see :func:`ci_emulation.run_shell`).
    """

    def __init__(
        self,
        api: FakeGitLab,
        repo: Any,
        work: Path,
        variables: list[Variable],
        relay: Relay | None = None,
    ) -> None:
        self.api = api
        self.relay = relay
        self.repo = repo
        self.work = work
        self.variables = variables
        self.bin_dir = work / "bin"
        self.bin_dir.mkdir(parents=True)

    def run(
        self,
        recipe: Path,
        *,
        source: str,
        sha: str,
        branch: str,
        changed: list[str] | None = None,
        merge_request_iid: int | None = None,
    ) -> PipelineResult:
        """Create and run one pipeline for ``source`` (``merge_request_event``, ``push``,
        ``web``, ``schedule``) at ``sha``, up to the first manual job that blocks it;
        ``changed`` (None: no diff) feeds ``rules:changes``."""
        config = safe_load(recipe.read_text(encoding="utf-8"))
        if "include" in config:
            raise RecipeError("include: is not emulated")
        pipeline_id = 500 + len(self.api.pipelines) + 1
        result = PipelineResult(pipeline_id)
        predefined = {
            "CI": "true",
            "GITLAB_CI": "true",
            "CI_PIPELINE_SOURCE": source,
            "CI_PIPELINE_ID": str(pipeline_id),
            "CI_COMMIT_SHA": sha,
            "CI_COMMIT_REF_NAME": branch,
            "CI_DEFAULT_BRANCH": DEFAULT_BRANCH,
            "CI_PROJECT_ID": str(PROJECT_ID),
            "CI_API_V4_URL": self.api.url,
            "CI_JOB_TOKEN": "job-token-not-for-the-api",
        }
        if merge_request_iid is None:
            predefined["CI_COMMIT_BRANCH"] = branch
        else:
            predefined["CI_MERGE_REQUEST_IID"] = str(merge_request_iid)
        if not _rules(config.get("workflow", {}).get("rules"), predefined, changed):
            result.created = False
            return result
        stages = list(config.get("stages", ["build", "test", "deploy"]))
        globals_ = {str(k): str(v) for k, v in config.get("variables", {}).items()}
        jobs = {
            name: job
            for name, job in config.items()
            if isinstance(job, Mapping)
            and not name.startswith(".")
            and name not in ("workflow", "default", "variables", "stages")
        }
        for name, job in jobs.items():
            unknown = set(job) - JOB_KEYS
            if unknown:
                raise RecipeError(f"job {name}: {sorted(unknown)} are not emulated")
            if job.get("stage", "test") not in stages:
                raise RecipeError(f"job {name}: stage {job.get('stage')!r} is not in stages:")
        # The jobs the rules let in, in stage order, with their `when`.
        for stage in stages:
            for name, job in jobs.items():
                if job.get("stage", "test") == stage:
                    when = _rules(job.get("rules"), {**predefined, **globals_}, changed)
                    if when is not None:
                        result._pending.append((name, job, when))
        ref = f"refs/merge-requests/{merge_request_iid}/head" if merge_request_iid else branch
        record = {"id": pipeline_id, "ref": ref, "sha": sha, "status": "running", "artifacts": {}}
        self.api.pipelines.append(record)
        result._context = {
            "record": record,
            "stages": stages,
            "jobs": jobs,
            "default": config.get("default", {}),
            "globals": globals_,
            "predefined": predefined,
            "branch": branch,
            "artifacts": {},
            "workspaces": {},
        }
        self._advance(result)
        return result

    def play(self, pipeline: PipelineResult, name: str) -> PipelineResult:
        """Someone starts the manual job ``name`` (the approval); the pipeline goes on."""
        if name not in pipeline.waiting or all(n != name for n, _, _ in pipeline._pending):
            raise RecipeError(f"job {name} is not blocking the pipeline: {pipeline.waiting}")
        pipeline.waiting.remove(name)
        pipeline._pending = [
            (n, job, "on_success" if n == name else when) for n, job, when in pipeline._pending
        ]
        self._advance(pipeline)
        return pipeline

    def _advance(self, pipeline: PipelineResult) -> None:
        ctx = pipeline._context
        while pipeline._pending:
            name, job, when = pipeline._pending[0]
            if any(not r.ok for r in pipeline.jobs.values()):
                break  # a failed job stops the later ones
            if when == "manual":
                if name not in pipeline.waiting:
                    pipeline.waiting.append(name)
                if job.get("allow_failure") is False:
                    break  # blocked until someone plays it
                pipeline._pending.pop(0)
                continue
            pipeline._pending.pop(0)
            done = self._job(name, job, ctx)
            pipeline.jobs[name] = done
            if done.ok or job.get("artifacts", {}).get("when") == "always":
                ctx["artifacts"][name] = self._collect(name, job, ctx)
                ctx["record"]["artifacts"][name] = str(ctx["artifacts"][name])
        ctx["record"]["status"] = pipeline.status

    def _job(self, name: str, job: Mapping[str, Any], ctx: dict[str, Any]) -> ShellResult:
        predefined = ctx["predefined"]
        environment = job.get("environment")
        env_name = environment.get("name") if isinstance(environment, Mapping) else environment
        variables = {
            v.key: v.value
            for v in self.variables
            if (not v.protected or ctx["branch"] in PROTECTED_BRANCHES)
            and v.environment_scope in ("*", env_name)
        }
        workspace = self.repo.checkout(
            predefined["CI_COMMIT_SHA"], f"p{predefined['CI_PIPELINE_ID']}-{name}"
        )
        ctx["workspaces"][name] = workspace
        for source in self._artifact_sources(name, job, ctx):
            shutil.copytree(source, workspace, dirs_exist_ok=True)
        env = {
            **base_env(self.work / "home", self.bin_dir),
            **predefined,
            **ctx["globals"],
            **variables,
            "CI_JOB_NAME": name,
            "CI_JOB_URL": f"https://gitlab.example.com/jobs/{name}",
            "CI_PROJECT_DIR": str(workspace),
        }
        if env_name:
            env["CI_ENVIRONMENT_NAME"] = env_name
        lines = list(job.get("before_script", ctx["default"].get("before_script", [])))
        lines += list(job["script"])
        return run_shell(
            name, "\n".join(lines), workspace, env, self.work / "scripts" / name, self.relay
        )

    @staticmethod
    def _artifact_sources(name: str, job: Mapping[str, Any], ctx: dict[str, Any]) -> list[Path]:
        """The artifacts a job gets: from the jobs in ``needs`` (an optional one may be
        absent), else from every job of an earlier stage."""
        artifacts, jobs, stages = ctx["artifacts"], ctx["jobs"], ctx["stages"]
        if "needs" not in job:
            stage = stages.index(job.get("stage", "test"))
            return [
                path
                for other, path in artifacts.items()
                if stages.index(jobs[other].get("stage", "test")) < stage
            ]
        sources = []
        for need in job["needs"]:
            need_name = need["job"] if isinstance(need, Mapping) else need
            optional = isinstance(need, Mapping) and need.get("optional", False)
            if need_name not in jobs:
                raise RecipeError(f"job {name} needs {need_name}, which does not exist")
            if need_name in artifacts:
                sources.append(artifacts[need_name])
            elif not optional:
                raise RecipeError(f"job {name} needs {need_name}, which did not run")
        return sources

    def _collect(self, name: str, job: Mapping[str, Any], ctx: dict[str, Any]) -> Path:
        store = self.work / "artifacts" / f"{ctx['predefined']['CI_PIPELINE_ID']}-{name}"
        store.mkdir(parents=True)
        workspace = ctx["workspaces"][name]
        for pattern in job.get("artifacts", {}).get("paths", []):
            for path in workspace.glob(pattern):
                target = store / path.relative_to(workspace)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, target)
        return store
