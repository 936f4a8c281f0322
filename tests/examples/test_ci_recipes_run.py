"""The CI recipes, run as shipped: pull request → merge → approved apply → scheduled drift check.

Each platform's flow runs once per module (one after the other, in a fixture) in a throwaway
Git repository of specs (one example directory and a Provider) against a sandbox on
127.0.0.1, every ``run:`` / ``script:`` step executed for real by the emulations in
``ci_github.py`` and ``ci_gitlab.py`` (their module docstrings and ``SHELL_SUBSTITUTIONS`` /
``ACTION_SHIMS`` list what stands in for what cannot run offline). The steps' ``reconciler``
calls are relayed to the test process (:class:`tests.cli_relay.Relay`: the real command line,
in-process, with the step's working directory, environment and exit code); the shell, git,
curl, jq and the ``gh`` stand-in around them run as processes. The tests then check what each
stage left behind.

The state is a file outside every checkout, shared by all jobs: it stands in for the
PostgreSQL backend the recipes recommend (same role: one state and one lock for every runner).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from ci_emulation import REPO, SpecsRepo, copy_tree_files
from ci_github import Event, FakeGitHub, GitHubRunner, RunResult
from ci_gitlab import FakeGitLab, GitLabRunner, PipelineResult, Variable

from reconciler.operations import ApplyRequest, apply_workspace
from reconciler.sandbox import EmbeddedSandbox, ManualClock, SandboxConfig
from reconciler.sandbox.clock import SystemClock
from reconciler.workspace import open_workspace
from tests.cli_relay import Relay

pytestmark = pytest.mark.skipif(
    not all(shutil.which(tool) for tool in ("git", "jq", "curl")),
    reason="the recipes' steps need git, jq and curl on PATH",
)

GITHUB = REPO / "examples" / "ci" / "github"
GITLAB = REPO / "examples" / "ci" / "gitlab-ci.yml"
EXAMPLE = "07-function-calling-agent"
JOB_FILE = f"specs/{EXAMPLE}/anagram-agent.yaml"
KEY = "ci-recipes-sandbox-key"
WANDB_KEY = "ci" + "0" * 38
STALE = "Run 'reconciler plan' again"
FIRST_STEPS, REVIEWED_STEPS = 150, 200
"""training_steps of the job in the pull request's first and second push. At 200 steps the
sandbox's job runs 60 s on the real clock: still running when the flow cancels it, however
loaded the machine (the example's budget is raised to match)."""
GITHUB_ENVIRONMENTS = {
    "fine-tuning": {"MISTRAL_API_KEY": KEY, "WANDB_API_KEY": WANDB_KEY},
    "fine-tuning-reconcile": {"MISTRAL_API_KEY": KEY},
}
"""The environments' secrets, as the recipes' set-up notes ask for them."""


@dataclass
class World:
    """The repository of specs, the sandbox behind the Provider and the shared state.

    Attributes:
        repo: the throwaway repository.
        sandbox: the running sandbox.
        state: the shared state file.
        work: scratch space of the emulation.
        relay: where the steps' ``reconciler`` calls run.
    """

    repo: SpecsRepo
    sandbox: EmbeddedSandbox
    state: Path
    work: Path
    relay: Relay

    def api(self) -> httpx.Client:
        """A client of the sandbox's API."""
        return httpx.Client(
            base_url=self.sandbox.base_url,
            headers={"Authorization": f"Bearer {KEY}"},
            timeout=30,
        )

    def remote_jobs(self) -> list[dict[str, Any]]:
        """Every job the sandbox has."""
        with self.api() as api:
            jobs: list[dict[str, Any]] = api.get("/v1/fine_tuning/jobs").json()["data"]
        return jobs

    def cancel_behind_the_tools_back(self) -> str:
        """Cancel the applied job through the sandbox API and wait until it is CANCELLED (the
        sandbox takes half a second from the request); its id."""
        state = json.loads(self.state.read_text(encoding="utf-8"))
        job_id: str = state["resources"]["job.agent-anagram"]["remote_id"]
        with self.api() as api:
            response = api.post(f"/v1/fine_tuning/jobs/{job_id}/cancel")
            # Not assertions: a broken set-up must not read as a failed drift check.
            if response.status_code != 200:
                raise RuntimeError(
                    f"cannot cancel {job_id}: {response.status_code} {response.text}"
                )
            deadline = time.monotonic() + 30
            while (status := api.get(f"/v1/fine_tuning/jobs/{job_id}").json()["status"]) != (
                "CANCELLED"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{job_id} is still {status} 30 s after its cancel")
                time.sleep(0.05)
        return job_id


@pytest.fixture(scope="module")
def world_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    sandboxes: list[EmbeddedSandbox] = []
    relay = Relay()

    def make(name: str, clock: ManualClock | None = None) -> World:
        base = tmp_path_factory.mktemp(name)
        # By default the real clock: the applied job runs 60 s (REVIEWED_STEPS).
        sandbox = EmbeddedSandbox(
            SandboxConfig(data_dir=base / "sandbox", api_key=KEY, clock=clock or SystemClock())
        ).start()
        sandboxes.append(sandbox)
        state = base / "shared-state" / "state.json"
        repo = SpecsRepo(base / "repo", base / "checkouts")
        provider = (
            "kind: Provider\n"
            "name: sandbox\n"
            "type: sandbox\n"
            f"endpoint: {sandbox.base_url}\n"
            "api_key: {env: MISTRAL_API_KEY}\n"
            f"state: {{path: {state}}}\n"
        )
        repo.commit(
            "main",
            {"README.md": "Fine-tuning specs.\n", "specs/provider.yaml": provider},
            "Provider",
        )
        return World(repo, sandbox, state, base / "emulation", relay)

    yield make
    for sandbox in sandboxes:
        sandbox.stop()
    relay.close()


def _job_spec(steps: int) -> str:
    text = (REPO / JOB_FILE).read_text(encoding="utf-8")
    assert "training_steps: 10\n" in text and "max_cost: 50\n" in text
    text = text.replace("max_cost: 50\n", "max_cost: 500\n")
    return text.replace("training_steps: 10\n", f"training_steps: {steps}\n")


def _first_push() -> dict[str, str | bytes | None]:
    files: dict[str, str | bytes | None] = dict(
        copy_tree_files(REPO / "specs" / EXAMPLE, f"specs/{EXAMPLE}")
    )
    files[JOB_FILE] = _job_spec(FIRST_STEPS)
    return files


@pytest.fixture(scope="module")
def flows(world_factory: Any) -> dict[str, Any]:
    """Both platforms' flows, one after the other (each has its own sandbox, repository and
    state; the relayed commands run in this process, one at a time)."""
    worlds = {name: world_factory(name) for name in ("github", "gitlab")}
    return {
        "github": _run_github_flow(worlds["github"]),
        "gitlab": _run_gitlab_flow(worlds["gitlab"]),
    }


@pytest.fixture
def github_flow(flows: dict[str, Any]) -> GitHubFlow:
    flow: GitHubFlow = flows["github"]
    return flow


@pytest.fixture
def gitlab_flow(flows: dict[str, Any]) -> GitLabFlow:
    flow: GitLabFlow = flows["gitlab"]
    return flow


# ----------------------------------------------------------------------------- GitHub


@dataclass
class GitHubFlow:
    """What each stage of the GitHub flow produced."""

    world: World
    github: FakeGitHub
    heads: list[str] = field(default_factory=list)
    merge_sha: str = ""
    pr_runs: list[RunResult] = field(default_factory=list)
    comments_after: list[list[dict[str, Any]]] = field(default_factory=list)
    apply: RunResult | None = None
    jobs_after_apply: list[dict[str, Any]] = field(default_factory=list)
    drift_clean: RunResult | None = None
    cancelled: str = ""
    drift_after_cancel: RunResult | None = None
    stale_apply: RunResult | None = None
    jobs_after_stale: list[dict[str, Any]] = field(default_factory=list)
    replan: RunResult | None = None
    reapply: RunResult | None = None


def _github_runner(world: World, github: FakeGitHub) -> GitHubRunner:
    """A runner with the repository's secrets, environments and variables set as the
    recipes' set-up notes ask."""
    return GitHubRunner(
        github,
        world.repo,
        world.work,
        secrets={"MISTRAL_PLAN_API_KEY": KEY, "RECONCILER_PG_DSN": "unused-by-the-file-state"},
        environments=GITHUB_ENVIRONMENTS,
        # The operator allows the sandbox the Provider points at (the recipes allow only the
        # official endpoint by default).
        variables={"RECONCILER_ALLOWED_ENDPOINTS": world.sandbox.base_url},
        relay=world.relay,
    )


def _run_github_flow(world: World) -> GitHubFlow:
    github = FakeGitHub(world.work / "github")
    runner = _github_runner(world, github)
    flow = GitHubFlow(world, github)
    repo = world.repo
    plan_wf, apply_wf, drift_wf = (
        GITHUB / f"reconciler-{name}.yml" for name in ("plan", "apply", "drift")
    )

    # A pull request, then a second push to it: each push plans on the test merge commit.
    for files in (_first_push(), {JOB_FILE: _job_spec(REVIEWED_STEPS)}):
        head = repo.commit("add-agent", files, "Add the function-calling agent")
        flow.heads.append(head)
        github.open_pull(1, head)
        test_merge = repo.merge("add-agent", ref="refs/pull/1/merge")
        payload = {"number": 1, "pull_request": {"number": 1, "head": {"sha": head}}}
        run = runner.run(plan_wf, Event("pull_request", test_merge, "refs/pull/1/merge", payload))
        flow.pr_runs.append(run)
        flow.comments_after.append(github.comments(1))
        if not run.ok:
            return flow

    # The merge: apply the reviewed plan behind the approval.
    flow.merge_sha = repo.merge("add-agent")
    github.merge_pull(1, flow.merge_sha)
    push = Event("push", flow.merge_sha, "refs/heads/main", {"after": flow.merge_sha})
    flow.apply = runner.run(apply_wf, push)
    flow.jobs_after_apply = world.remote_jobs()
    if not flow.apply.ok:
        return flow

    # The daily drift check, then again after a job was cancelled outside reconciler.
    schedule = Event("schedule", flow.merge_sha, "refs/heads/main", {"schedule": "17 6 * * *"})
    flow.drift_clean = runner.run(drift_wf, schedule)
    flow.cancelled = world.cancel_behind_the_tools_back()
    flow.drift_after_cancel = runner.run(drift_wf, schedule)

    # Re-running the merge's apply: the reviewed plan is stale now (the state moved on).
    flow.stale_apply = runner.run(apply_wf, push)
    flow.jobs_after_stale = world.remote_jobs()

    # The documented way out: plan on main by hand, then run the apply workflow by hand.
    dispatch = Event("workflow_dispatch", flow.merge_sha, "refs/heads/main", {})
    flow.replan = runner.run(plan_wf, dispatch)
    flow.reapply = runner.run(apply_wf, dispatch)
    return flow


def test_github_pull_request_validates_plans_and_keeps_one_comment(
    github_flow: GitHubFlow,
) -> None:
    flow = github_flow
    assert len(flow.pr_runs) == 2, flow.pr_runs[-1].log
    for run, head in zip(flow.pr_runs, flow.heads, strict=True):
        assert run.ok, run.log
        job = run.jobs["plan"]
        assert "Valid." in job.step("Validate specs and datasets (no network)").stdout
        assert "job.agent-anagram" in job.summary
        # Saved under the head commit's name, the plan file JSON (not what --format printed).
        [artifact] = flow.github.artifacts(f"reconciler-plan-{head}")
        saved = flow.github.artifact_dir(artifact)
        assert json.loads((saved / "plan.json").read_text())["kind"] == "reconciler-plan"
        assert (saved / "plan.md").read_text().startswith("### reconciler plan")
    # One comment, edited on the second push: it shows the latest plan only.
    assert [len(c) for c in flow.comments_after] == [1, 1]
    first, second = (c[0] for c in flow.comments_after)
    assert first["id"] == second["id"]
    assert second["body"].startswith("<!-- reconciler-plan -->\nPlan for " + flow.heads[1])
    assert f"training_steps={FIRST_STEPS}" in first["body"]
    assert f"training_steps={REVIEWED_STEPS}" in second["body"]
    assert f"training_steps={FIRST_STEPS}" not in second["body"]


def test_github_merge_applies_exactly_the_reviewed_plan_after_approval(
    github_flow: GitHubFlow,
) -> None:
    flow = github_flow
    assert flow.apply is not None and flow.apply.ok, flow.apply and flow.apply.log
    # The approval gate came after the plan was on the run's page.
    [(job, environment, page)] = flow.apply.gates
    assert (job, environment) == ("apply", "fine-tuning")
    assert f"reconciler-plan-{flow.heads[1]}" in page and "job.agent-anagram" in page
    # The applied plan is byte for byte the one saved by the pull request's last run.
    [reviewed] = flow.github.artifacts(f"reconciler-plan-{flow.heads[1]}")
    [handed_on] = [
        a
        for a in flow.github.artifacts("reviewed-plan")
        if a["workflow_run"]["id"] == flow.apply.run_id
    ]
    for name in ("plan.json", "plan.md"):
        assert (flow.github.artifact_dir(handed_on) / name).read_bytes() == (
            flow.github.artifact_dir(reviewed) / name
        ).read_bytes()
    applied = flow.apply.jobs["apply"].step("Apply the reviewed plan")
    assert "Apply complete: 2 applied, 0 failed" in applied.stdout
    [remote] = flow.jobs_after_apply
    assert remote["hyperparameters"]["training_steps"] == REVIEWED_STEPS


def test_github_scheduled_drift_check_passes_when_nothing_drifted(github_flow: GitHubFlow) -> None:
    run = github_flow.drift_clean
    assert run is not None and run.ok, run and run.log
    assert "round 1: no changes" in run.jobs["drift"].summary


def test_github_scheduled_drift_check_fails_after_a_job_was_cancelled(
    github_flow: GitHubFlow,
) -> None:
    run = github_flow.drift_after_cancel
    if run is None:
        raise RuntimeError("the flow stopped before the drift check")
    step = run.jobs["drift"].step("Reconcile and report drift")
    assert step.returncode == 2, run.log
    assert "::error::the remote differs from the specs on main" in step.stdout
    assert "job.agent-anagram" in run.jobs["drift"].summary


def test_github_a_stale_reviewed_plan_is_refused_with_the_replan_instruction(
    github_flow: GitHubFlow,
) -> None:
    flow = github_flow
    run = flow.stale_apply
    assert run is not None and not run.ok
    step = run.jobs["apply"].step("Apply the reviewed plan")
    assert step.returncode == 1 and STALE in step.stderr, run.log
    assert len(flow.jobs_after_stale) == 1  # nothing was created


def test_github_planning_on_main_by_hand_takes_precedence(github_flow: GitHubFlow) -> None:
    flow = github_flow
    assert flow.replan is not None and flow.replan.ok, flow.replan and flow.replan.log
    assert flow.github.artifacts(f"reconciler-plan-{flow.merge_sha}")
    assert flow.reapply is not None and flow.reapply.ok, flow.reapply and flow.reapply.log
    assert f"reconciler-plan-{flow.merge_sha}" in flow.reapply.jobs["reviewed-plan"].summary


# ----------------------------------------------------------------------------- GitLab


@dataclass
class GitLabFlow:
    """What each stage of the GitLab flow produced."""

    world: World
    api: FakeGitLab
    heads: list[str] = field(default_factory=list)
    merge_sha: str = ""
    mr_pipelines: list[PipelineResult] = field(default_factory=list)
    notes_after: list[list[dict[str, Any]]] = field(default_factory=list)
    before_approval: list[str] = field(default_factory=list)
    merge_pipeline: PipelineResult | None = None
    jobs_after_apply: list[dict[str, Any]] = field(default_factory=list)
    drift_clean: PipelineResult | None = None
    drift_after_cancel: PipelineResult | None = None
    stale: PipelineResult | None = None
    jobs_after_stale: list[dict[str, Any]] = field(default_factory=list)
    by_hand: PipelineResult | None = None


def _gitlab_variables(world: World, api: FakeGitLab) -> list[Variable]:
    return [
        Variable("MISTRAL_API_KEY", KEY, "fine-tuning", protected=True),
        Variable("MISTRAL_API_KEY", KEY, "fine-tuning-read"),
        Variable("MISTRAL_API_KEY", KEY, "fine-tuning-reconcile", protected=True),
        Variable("WANDB_API_KEY", WANDB_KEY, "fine-tuning", protected=True),
        Variable("RECONCILER_PG_DSN", "unused-by-the-file-state"),
        # The operator allows the sandbox (overrides the recipe's default).
        Variable("RECONCILER_ALLOWED_ENDPOINTS", world.sandbox.base_url),
        Variable("GITLAB_API_TOKEN", api.token),
    ]


def _run_gitlab_flow(world: World) -> GitLabFlow:
    with FakeGitLab(token="glpat-recipe-test") as api:
        runner = GitLabRunner(
            api, world.repo, world.work, _gitlab_variables(world, api), relay=world.relay
        )
        return _gitlab_flow(GitLabFlow(world, api), runner)


def _gitlab_flow(flow: GitLabFlow, runner: GitLabRunner) -> GitLabFlow:
    repo, api, world = flow.world.repo, flow.api, flow.world
    main_before = repo.git("rev-parse", "main")
    for files in (_first_push(), {JOB_FILE: _job_spec(REVIEWED_STEPS)}):
        head = repo.commit("add-agent", files, "Add the function-calling agent")
        flow.heads.append(head)
        api.merge_requests[:] = [{"iid": 1, "sha": head, "state": "opened"}]
        pipeline = runner.run(
            GITLAB,
            source="merge_request_event",
            sha=head,
            branch="add-agent",
            changed=repo.changed_files(main_before, head),
            merge_request_iid=1,
        )
        flow.mr_pipelines.append(pipeline)
        flow.notes_after.append([dict(n) for n in api.notes.get(1, [])])
        if pipeline.status != "success":
            return flow

    flow.merge_sha = repo.merge("add-agent")
    api.merge_requests[0].update(state="merged", merge_commit_sha=flow.merge_sha)
    push = {
        "source": "push",
        "sha": flow.merge_sha,
        "branch": "main",
        "changed": repo.changed_files(main_before, flow.merge_sha),
    }
    pipeline = runner.run(GITLAB, **push)
    flow.merge_pipeline = pipeline
    flow.before_approval = list(pipeline.waiting)
    if pipeline.status != "manual":
        return flow
    runner.play(pipeline, "apply")
    flow.jobs_after_apply = world.remote_jobs()
    if pipeline.status != "success":
        return flow

    schedule = {"source": "schedule", "sha": flow.merge_sha, "branch": "main"}
    flow.drift_clean = runner.run(GITLAB, **schedule)
    world.cancel_behind_the_tools_back()
    flow.drift_after_cancel = runner.run(GITLAB, **schedule)

    flow.stale = runner.run(GITLAB, **push)
    if flow.stale.status == "manual":
        runner.play(flow.stale, "apply")
    flow.jobs_after_stale = world.remote_jobs()

    flow.by_hand = runner.run(GITLAB, source="web", sha=flow.merge_sha, branch="main")
    if flow.by_hand.status == "manual":
        runner.play(flow.by_hand, "apply")
    return flow


def test_gitlab_merge_request_validates_plans_and_keeps_one_note(gitlab_flow: GitLabFlow) -> None:
    flow = gitlab_flow
    assert len(flow.mr_pipelines) == 2, flow.mr_pipelines[-1].log
    for pipeline in flow.mr_pipelines:
        assert pipeline.status == "success", pipeline.log
        assert list(pipeline.jobs) == ["validate", "plan"]
        assert "Valid." in pipeline.jobs["validate"].stdout
    assert [len(n) for n in flow.notes_after] == [1, 1]
    first, second = (n[0] for n in flow.notes_after)
    assert first["id"] == second["id"]
    assert second["body"].startswith("<!-- reconciler-plan -->\nPlan for " + flow.heads[1])
    assert f"training_steps={REVIEWED_STEPS}" in second["body"]
    assert f"training_steps={FIRST_STEPS}" not in second["body"]


def test_gitlab_merge_applies_the_reviewed_plan_after_the_manual_approval(
    gitlab_flow: GitLabFlow,
) -> None:
    flow = gitlab_flow
    pipeline = flow.merge_pipeline
    assert pipeline is not None, flow.mr_pipelines[-1].log
    assert flow.before_approval == ["apply"], pipeline.log
    assert pipeline.status == "success", pipeline.log
    # The approver read the merge request's last plan in the log of reviewed-plan.
    shown = pipeline.jobs["reviewed-plan"].stdout
    assert "merge request !1" in shown and f"training_steps={REVIEWED_STEPS}" in shown
    assert "Apply complete: 2 applied, 0 failed" in pipeline.jobs["apply"].stdout
    [remote] = flow.jobs_after_apply
    assert remote["hyperparameters"]["training_steps"] == REVIEWED_STEPS


def test_gitlab_scheduled_drift_check_passes_when_nothing_drifted(gitlab_flow: GitLabFlow) -> None:
    pipeline = gitlab_flow.drift_clean
    assert pipeline is not None and pipeline.status == "success", pipeline and pipeline.log
    assert list(pipeline.jobs) == ["drift"]
    assert "round 1: no changes" in pipeline.jobs["drift"].stdout


def test_gitlab_scheduled_drift_check_fails_after_a_job_was_cancelled(
    gitlab_flow: GitLabFlow,
) -> None:
    pipeline = gitlab_flow.drift_after_cancel
    if pipeline is None:
        raise RuntimeError("the flow stopped before the drift check")
    assert pipeline.jobs["drift"].returncode == 2, pipeline.log
    assert "the remote differs from the specs on main" in pipeline.jobs["drift"].stdout


def test_gitlab_a_stale_reviewed_plan_is_refused_and_running_by_hand_recovers(
    gitlab_flow: GitLabFlow,
) -> None:
    flow = gitlab_flow
    assert flow.stale is not None and flow.stale.status == "failed"
    assert STALE in flow.stale.jobs["apply"].stderr, flow.stale.log
    assert len(flow.jobs_after_stale) == 1
    assert flow.by_hand is not None and flow.by_hand.status == "success", flow.by_hand.log
    assert list(flow.by_hand.jobs) == ["validate", "plan", "apply"]


# ----------------------------------------------------------------------------- the schedule


def _schedule_world(world_factory: Any, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A world on a manual clock whose main holds a job that an apply created but could not
    start yet (not validated), and whose model the specs name; (world, clock, main's sha)."""
    clock = ManualClock()
    world: World = world_factory(name, clock)
    files = _first_push()
    files[JOB_FILE] = _job_spec(FIRST_STEPS) + "fine_tuned_model:\n  name: anagram-agent-v1\n"
    sha = world.repo.commit("main", files, "Add the function-calling agent")
    monkeypatch.setenv("MISTRAL_API_KEY", KEY)
    with open_workspace([world.repo.checkout(sha, f"{name}-setup") / "specs"]) as ws:
        applied = apply_workspace(ws, ApplyRequest(start_timeout=0))
    assert applied.result is not None and applied.result.started_jobs == ()
    return world, clock, sha


def _model_name(world: World) -> str | None:
    state = json.loads(world.state.read_text(encoding="utf-8"))
    job_id = state["resources"]["job.agent-anagram"]["remote_id"]
    with world.api() as api:
        model = api.get(f"/v1/fine_tuning/jobs/{job_id}").json()["fine_tuned_model"]
        name: str | None = api.get(f"/v1/models/{model}").json().get("name")
    return name


def test_github_schedule_starts_validated_jobs_and_names_models_without_review(
    world_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, clock, sha = _schedule_world(world_factory, "github-schedule", monkeypatch)
    runner = _github_runner(world, FakeGitHub(world.work / "github"))
    schedule = Event("schedule", sha, "refs/heads/main", {"schedule": "17 6 * * *"})
    drift = GITHUB / "reconciler-drift.yml"
    clock.advance(2)  # validated
    started = runner.run(drift, schedule)
    assert started.ok, started.log
    assert "round 1: 1 job started" in started.jobs["drift"].summary
    clock.advance(120)  # succeeded
    named = runner.run(drift, schedule)
    assert named.ok, named.log
    assert "round 1: 1 model update applied" in named.jobs["drift"].summary
    assert _model_name(world) == "anagram-agent-v1"


def test_gitlab_schedule_starts_validated_jobs_and_names_models_without_review(
    world_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world, clock, sha = _schedule_world(world_factory, "gitlab-schedule", monkeypatch)
    with FakeGitLab(token="glpat-recipe-test") as api:
        runner = GitLabRunner(
            api, world.repo, world.work, _gitlab_variables(world, api), relay=world.relay
        )
        schedule = {"source": "schedule", "sha": sha, "branch": "main"}
        clock.advance(2)
        started = runner.run(GITLAB, **schedule)
        clock.advance(120)
        named = runner.run(GITLAB, **schedule)
    assert started.status == "success", started.log
    assert "round 1: 1 job started" in started.jobs["drift"].stdout
    assert named.status == "success", named.log
    assert "round 1: 1 model update applied" in named.jobs["drift"].stdout
    assert _model_name(world) == "anagram-agent-v1"
