"""``reconcile``: rounds in-process against a sandbox on 127.0.0.1, the command's exit codes,
and clean stops on SIGTERM/SIGINT of the real command in a subprocess.

The sandbox runs on the test's :class:`ManualClock`: a job moves from QUEUED to VALIDATED to
SUCCESS only when the test advances the clock, so every round sees the status the test set up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from reconciler.address import Address
from reconciler.engine.outcome import ApplyResult, Outcome, OutcomeStatus
from reconciler.engine.plan import Action, DriftKind, FileChange, JobBefore, JobChange, Reason
from reconciler.engine.rounds import (
    Pending,
    RoundResult,
    count_failed,
    needs_no_review,
    retry_delay,
)
from reconciler.errors import SpecError
from reconciler.operations import ApplyRequest, apply_workspace
from reconciler.reconcile import ReconcileRequest, run_round
from reconciler.sandbox import EmbeddedSandbox, ManualClock, SandboxConfig
from reconciler.workspace import open_workspace
from tests.cli_inprocess import run_cli
from tests.cli_processes import CliProcess, CliProcesses
from tests.engine.conftest import SANDBOX_KEY, cli_env, mutating
from tests.engine.project import SANDBOX_KEY_ENV, make_project
from tests.postgres.pg_helpers import DSN_ENV, E2E_DSN_ENV

MODEL_FIELDS = "fine_tuned_model: {name: tuned-a}\n"
SUCCEEDED = 120.0
"""Simulated seconds after which a started two-step job has succeeded."""


@pytest.fixture(autouse=True)
def environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The variables the projects' specs refer to (as ``cli_env`` gives the CLI)."""
    monkeypatch.setenv(SANDBOX_KEY_ENV, SANDBOX_KEY)
    if os.environ.get(DSN_ENV):  # the postgres state backend, when the run uses it
        monkeypatch.setenv(E2E_DSN_ENV, os.environ[DSN_ENV])


@dataclass
class World:
    """A sandbox on the test's clock and a project of specs pointing at it."""

    clock: ManualClock
    sandbox: EmbeddedSandbox
    project: Path

    def specs(self, n_jobs: int = 1, model: str = MODEL_FIELDS) -> None:
        """(Re)write the specs: ``n_jobs`` two-step jobs on one dataset."""
        make_project(
            self.project,
            endpoint=self.sandbox.base_url,
            n_datasets=1,
            n_jobs=n_jobs,
            steps=2,
            extra_job_fields=model,
        )

    def round(self, number: int = 1, **request: Any) -> RoundResult:
        """One round of ``reconcile`` on the project."""
        return run_round(number, ReconcileRequest(spec_paths=(str(self.project),), **request))

    def create_unstarted(self) -> None:
        """Apply the specs, giving up on starting the jobs at once (not validated yet)."""
        with open_workspace([self.project]) as ws:
            applied = apply_workspace(ws, ApplyRequest(start_timeout=0))
        assert applied.result is not None
        assert [o.message for o in applied.result.failures] == [
            "not validated within 0s; it stays unstarted and the next apply starts it"
        ] * len(applied.result.failures)

    def remote_job(self, address: str) -> dict[str, Any]:
        """The remote job the state records for ``address``."""
        with open_workspace([self.project]) as ws:
            state = ws.backend.read()
            assert state is not None
            return ws.client().get_job(state.resources[address].remote_id).model_dump()

    def remote_jobs(self) -> list[dict[str, Any]]:
        """Every job the sandbox has."""
        with open_workspace([self.project]) as ws:
            return [j.model_dump() for j in ws.client().list_jobs()]

    def model_name(self, address: str) -> str | None:
        """The name of the fine-tuned model of ``address``'s job."""
        model = self.remote_job(address)["fine_tuned_model"]
        with open_workspace([self.project]) as ws:
            name: str | None = ws.client().get_model(str(model)).model_dump().get("name")
            return name

    @contextmanager
    def ticking(self) -> Iterator[None]:
        """Simulated time passes (fast) while inside: jobs validate and run."""
        done = threading.Event()

        def tick() -> None:
            while not done.wait(0.02):
                self.clock.advance(1.0)

        thread = threading.Thread(target=tick, daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = ManualClock()
    sandbox = EmbeddedSandbox(
        SandboxConfig(data_dir=tmp_path / "sandbox", api_key=SANDBOX_KEY, clock=clock)
    ).start()
    try:
        w = World(clock, sandbox, tmp_path / "project")
        w.specs()
        yield w
    finally:
        sandbox.stop()


# ----------------------------------------------------------------------------- the policy


def _job_change(action: Action, status: str | None) -> JobChange:
    before = JobBefore(id="j-1", status=status, fine_tuned_model=None) if status else None
    return JobChange(address=Address("job.a"), action=action, reason=Reason.IN_SYNC, before=before)


@pytest.mark.parametrize(
    ("change", "applied"),
    [
        (_job_change(Action.UPDATE, "SUCCESS"), True),
        (_job_change(Action.START, "VALIDATED"), True),
        (_job_change(Action.START, "VALIDATING"), False),  # a later round: no waiting
        (_job_change(Action.CREATE, None), False),
        (_job_change(Action.REPLACE, "RUNNING"), False),
        (_job_change(Action.FORGET, "SUCCESS"), False),
        (
            FileChange(
                address=Address("dataset.d[all]"), action=Action.DELETE, reason=Reason.NOT_IN_SPEC
            ),
            False,
        ),
        (
            _job_change(Action.UPDATE, "SUCCESS").model_copy(update={"delete_models": ("ft:1",)}),
            False,
        ),
        (
            _job_change(Action.START, "VALIDATED").model_copy(update={"import_id": "j-1"}),
            False,
        ),
        (
            _job_change(Action.UPDATE, "SUCCESS").model_copy(
                update={"moved_from": Address("job.old")}
            ),
            False,
        ),
        (_job_change(Action.MOVE, "SUCCESS"), False),
        (_job_change(Action.RESTORE, "SUCCESS"), False),
    ],
    ids=[
        "update",
        "start-validated",
        "start-validating",
        "create",
        "replace",
        "forget",
        "file",
        "update deleting previous models",
        "start of an imported job",
        "update of a moved job",
        "move",
        "restore",
    ],
)
def test_what_needs_no_review(change: FileChange | JobChange, applied: bool) -> None:
    assert needs_no_review(change) is applied


@pytest.mark.parametrize(
    ("interval", "failed", "delay"),
    [
        (600, 0, 600),
        (600, 1, 600),
        (600, 2, 1200),
        (600, 3, 2400),
        (600, 9, 3600),
        (10, 3, 40),
        (7200, 4, 7200),
    ],
)
def test_failed_rounds_back_off_up_to_a_cap(interval: float, failed: int, delay: float) -> None:
    assert retry_delay(interval, failed) == delay


def test_only_rounds_that_could_not_run_count_as_failed() -> None:
    refused = Outcome("job.a", Action.START, OutcomeStatus.FAILED, "over budget")
    assert count_failed(2, RoundResult(number=3, started_at=0, error="remote down")) == 3
    assert count_failed(2, RoundResult(number=3, started_at=0)) == 0
    partly = RoundResult(number=3, started_at=0, applied=ApplyResult(outcomes=(refused,)))
    assert count_failed(2, partly) == 0 and partly.exit_code == 1


# ----------------------------------------------------------------------------- rounds


def test_a_round_starts_validated_jobs_without_approval(world: World) -> None:
    world.create_unstarted()
    # Still being validated: nothing to do yet, and nothing that needs review.
    waiting = world.round()
    assert not waiting.acted and waiting.awaiting_validation == ("job.job0",)
    assert waiting.exit_code == 0
    world.clock.advance(2)
    mark = len(world.sandbox.journal())
    result = world.round()
    assert result.acted and result.applied is not None
    assert result.applied.started_jobs == ("job.job0",) and not result.failures
    assert result.awaiting_review == () and result.exit_code == 0
    assert world.remote_job("job.job0")["status"] in ("STARTED", "RUNNING")
    writes = mutating(world.sandbox.journal()[mark:])
    assert [(e["method"], e["path"].rsplit("/", 1)[-1]) for e in writes] == [("POST", "start")]


def test_a_round_applies_model_names_once_jobs_succeeded_and_renames(world: World) -> None:
    world.create_unstarted()
    world.clock.advance(2)
    world.round()  # starts the job
    world.clock.advance(SUCCEEDED)
    named = world.round()
    assert [(o.address, o.action) for o in named.applied.outcomes] == [  # type: ignore[union-attr]
        ("job.job0", Action.UPDATE)
    ]
    assert world.model_name("job.job0") == "tuned-a"

    world.specs(model="fine_tuned_model: {name: tuned-b, archived: true}\n")
    mark = len(world.sandbox.journal())
    renamed = world.round()
    assert renamed.exit_code == 0 and not renamed.failures
    assert world.model_name("job.job0") == "tuned-b"
    writes = mutating(world.sandbox.journal()[mark:])
    assert {(e["method"], e["path"].split("/")[3]) for e in writes} == {
        ("PATCH", "models"),
        ("POST", "models"),  # .../archive
    }
    assert world.round().acted is False  # in line now


def test_new_jobs_await_review_and_are_created_only_with_auto_approve(world: World) -> None:
    world.create_unstarted()
    world.specs(n_jobs=2)
    mark = len(world.sandbox.journal())
    result = world.round()
    assert result.awaiting_review == (Pending("job.job1", Action.CREATE, Reason.NOT_IN_STATE),)
    assert result.exit_code == 2 and not result.acted
    assert mutating(world.sandbox.journal()[mark:]) == []
    assert len(world.remote_jobs()) == 1

    with world.ticking():
        approved = world.round(auto_approve=True, start_timeout=60)
    assert approved.applied is not None and not approved.failures
    assert set(approved.applied.started_jobs) == {"job.job0", "job.job1"}
    assert approved.awaiting_review == () and approved.exit_code == 0
    assert len(world.remote_jobs()) == 2


def test_auto_approve_refuses_a_plan_over_a_budget_as_apply_does(world: World) -> None:
    world.specs(model=MODEL_FIELDS + "budget: {max_cost: 0.0001}\n")
    mark = len(world.sandbox.journal())
    refused = world.round(auto_approve=True)
    assert refused.error is not None and not refused.acted
    assert "reconcile --auto-approve refuses this plan; nothing was done" in refused.error
    assert "job.job0: estimated cost 1.00 USD" in refused.error
    assert "over its budget.max_cost 0.0001" in refused.error
    assert mutating(world.sandbox.journal()[mark:]) == []
    # Without auto_approve the job awaits review, as any create does.
    waiting = world.round()
    assert waiting.error is None
    assert waiting.awaiting_review[-1] == Pending("job.job0", Action.CREATE, Reason.NOT_IN_STATE)


def test_drift_is_reported_every_round(world: World) -> None:
    world.create_unstarted()
    world.clock.advance(2)
    world.round()
    job_id = world.remote_job("job.job0")["id"]
    with open_workspace([world.project]) as ws:
        ws.client().cancel_job(job_id)  # behind the tool's back
    world.clock.advance(5)
    for number in (1, 2):
        result = world.round(number)
        assert [(d.address, d.kind) for d in result.drift] == [("job.job0", DriftKind.CANCELLED)]
        assert result.exit_code == 2 and not result.acted


def test_objects_removed_from_the_specs_are_reported_once(world: World) -> None:
    world.create_unstarted()
    world.specs(n_jobs=0)
    kept = world.round()
    assert kept.not_in_spec == ("job.job0",) and kept.awaiting_review == ()
    pruned = world.round(prune=True)
    assert pruned.awaiting_review == (Pending("job.job0", Action.FORGET, Reason.NOT_IN_SPEC),)
    assert pruned.not_in_spec == ()
    assert kept.exit_code == pruned.exit_code == 2 and not pruned.acted


def test_the_lock_is_taken_only_to_act(world: World) -> None:
    world.create_unstarted()
    with open_workspace([world.project]) as ws, ws.backend.lock("apply"):
        # Nothing to do: the round never asks for the lock.
        assert world.round().error is None
        world.clock.advance(2)
        blocked = world.round(2)
        assert blocked.error is not None and "state is locked" in blocked.error
        assert blocked.exit_code == 1
    assert world.round(3).applied is not None  # the next round does it


def test_bad_specs_end_the_first_round_but_not_a_later_one(world: World) -> None:
    (world.project / "broken.yaml").write_text("kind: FineTuningJob\nname: x\n", "utf-8")
    with pytest.raises(SpecError):
        world.round(1)
    later = world.round(2)
    assert later.error is not None and later.target is None and later.exit_code == 1


# ----------------------------------------------------------------------------- the command


def _invoke(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    """``reconciler reconcile ARGS`` in the project directory (in this process)."""
    return run_cli(["reconcile", *args], cwd=world.project, env=cli_env())


def test_once_exit_codes_and_json_lines(world: World) -> None:
    world.create_unstarted()
    world.clock.advance(2)
    started = _invoke(world, ".", "--once")
    assert started.returncode == 0, started.stderr
    assert "round 1: 1 job started" in started.stdout

    world.specs(n_jobs=2)
    review = _invoke(world, ".", "--once", "--format", "json")
    assert review.returncode == 2, review.stderr
    [line] = review.stdout.splitlines()  # the target line goes to stderr
    data = json.loads(line)
    assert data["awaiting_review"] == [
        {"address": "job.job1", "action": "create", "reason": "not-in-state"}
    ]
    assert data["summary"] == "round 1: 1 create awaits review (job.job1)"
    assert data["exit_code"] == 2 and data["acted"] is False

    (world.project / "broken.yaml").write_text("kind: FineTuningJob\nname: x\n", "utf-8")
    broken = _invoke(world, ".", "--once")
    assert broken.returncode == 1 and "broken.yaml" in broken.stderr


def _plan_exit_code(world: World, *args: str) -> int:
    """``plan --detailed-exitcode``'s exit code for the project as it is now."""
    return run_cli(
        ["plan", ".", "--detailed-exitcode", *args], cwd=world.project, env=cli_env()
    ).returncode


def test_once_exits_2_exactly_when_plan_detailed_exitcode_would_after_the_round(
    world: World,
) -> None:
    # One rule: drift and objects no longer in the specs count for both, as changes do.
    world.create_unstarted()
    world.clock.advance(2)
    assert _invoke(world, ".", "--once").returncode == 0  # starts the job
    assert _plan_exit_code(world) == 0

    job_id = world.remote_job("job.job0")["id"]
    world.specs(n_jobs=0)
    for prune in ([], ["--prune"]):  # not in spec: reported, or its removal awaits review
        assert _invoke(world, ".", "--once", *prune).returncode == 2
        assert _plan_exit_code(world, *prune) == 2

    world.specs()
    with open_workspace([world.project]) as ws:
        ws.client().cancel_job(job_id)  # behind the tool's back
    world.clock.advance(5)
    assert _invoke(world, ".", "--once").returncode == 2
    assert _plan_exit_code(world) == 2


@pytest.mark.parametrize("interval", ["0s", "500ms"])
def test_the_interval_is_at_least_a_second(world: World, interval: str) -> None:
    # A bad duration is the usage error every command gives (tests/cli/test_cli_commands.py).
    result = _invoke(world, ".", "--interval", interval)
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert (
        f"Invalid value for '--interval': invalid duration '{interval}': it must be at "
        "least 1s" in message
    )


# ----------------------------------------------------------------------------- signals


class Running:
    """``reconciler reconcile`` as a real process (forked by the test run's process helper),
    its output read line by line as it is written."""

    def __init__(self, processes: CliProcesses, cwd: Path, *args: str) -> None:
        self.proc: CliProcess = processes.start(["reconcile", *args], cwd=cwd, env=cli_env())
        self.seen: list[str] = []

    def _lines(self) -> list[str]:
        """The complete lines written to stdout so far."""
        text = self.proc.stdout_so_far()
        return text[: text.rfind("\n") + 1].splitlines()

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """The first line (from the last one returned) containing ``text``."""
        deadline = time.monotonic() + timeout
        while True:
            ended = self.proc.poll() is not None
            for line in self._lines()[len(self.seen) :]:
                self.seen.append(line)
                if text in line:
                    return line
            if ended or time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"no line with {text!r}; saw {self.seen}")
            time.sleep(0.02)

    def signal(self, sig: int) -> tuple[int, str]:
        """Send ``sig``; the exit code and stderr once the process ended."""
        os.kill(self.proc.pid, sig)
        _, stderr = self.proc.communicate(timeout=30)
        assert self.proc.returncode is not None
        return self.proc.returncode, stderr

    def stop(self) -> None:
        """Kill it if it still runs, and reap it."""
        self.proc.kill()
        self.proc.communicate(timeout=30)


@pytest.fixture
def running(world: World, cli_processes: CliProcesses) -> Iterator[Callable[..., Running]]:
    """Starts ``reconciler reconcile ARGS`` in the project; stops what still runs after."""
    started: list[Running] = []

    def start(*args: str) -> Running:
        started.append(Running(cli_processes, world.project, *args))
        return started[-1]

    yield start
    for r in started:
        r.stop()


def test_sigterm_between_rounds_exits_at_once_and_the_lock_is_free_meanwhile(
    world: World, running: Callable[..., Running]
) -> None:
    world.create_unstarted()
    world.clock.advance(2)
    with open_workspace([world.project]) as ws:
        with ws.backend.lock("apply"):
            loop = running(".", "--interval", "1s")
            # A round with work meets the lock: reported, and the loop goes on.
            failed = loop.wait_for("round 1:")
            assert "failed: state is locked" in failed and "next round in 1s" in failed
        assert "round 2: 1 job started" in loop.wait_for("round 2:")
        # Between rounds the lock is free: another process can take it.
        with ws.backend.lock("apply", 0.0):
            pass
    code, stderr = loop.signal(signal.SIGTERM)
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_sigterm_during_an_apply_records_what_was_done_and_releases_the_lock(
    world: World, running: Callable[..., Running]
) -> None:
    # --auto-approve creates the job, then waits for its validation (the clock stands still).
    loop = running(".", "--auto-approve", "--interval", "1h")
    loop.wait_for("job.job0: created")
    code, stderr = loop.signal(signal.SIGTERM)
    assert code == 0, stderr
    summary = loop.wait_for("round 1:")
    assert summary.startswith("round 1: 2 creates applied") and "stopped" in summary

    with open_workspace([world.project]) as ws:
        with ws.backend.lock("apply", 0.0):  # released
            state = ws.backend.read()
    assert state is not None and state.intents == {}
    assert set(state.resources) == {"dataset.d0[all]", "job.job0"}
    [job] = world.remote_jobs()
    assert job["id"] == state.resources["job.job0"].remote_id
    assert job["status"] == "QUEUED"  # created, never started

    # The next run carries on: once validated, the job is started without approval.
    world.clock.advance(2)
    result = world.round()
    assert result.applied is not None and result.applied.started_jobs == ("job.job0",)


def test_sigint_while_waiting_stops_with_exit_0(
    world: World, running: Callable[..., Running]
) -> None:
    loop = running(".", "--interval", "1h")
    assert "create" in loop.wait_for("round 1:")
    code, stderr = loop.signal(signal.SIGINT)
    assert code == 0, stderr
