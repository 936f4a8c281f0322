"""Reliability harnesses: kill -9 at random moments, injected faults, concurrent applies.

Used at small scale by the test suite and at full scale by ``bench/reliability.py``. Every
harness ends by checking the sandbox holds exactly the desired files and jobs: one file per
dataset (by content-addressed name) and one job per spec — zero duplicates. Each runs on a
provider :class:`~tests.engine.project.Flavour`: the sandbox in Mistral's dialect (default)
or in OpenAI's, behind an ``openai`` Provider.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.cli_processes import CliProcess, CliProcesses
from tests.engine.conftest import SANDBOX_KEY, Cli, cli_env, mutating
from tests.engine.project import SANDBOX, Flavour, make_project


@dataclass
class HarnessReport:
    """What a harness saw.

    Attributes:
        trials: runs that were interrupted, faulted or run concurrently (not calibration).
        killed_at: per kill -9 trial, seconds from the child's start to the kill.
        killed_after: per kill -9 trial, mutating requests the sandbox had answered by then.
        interrupted: kill -9 trials whose apply was still running when the kill came (a
            kill after the last request may find it finished).
        reruns: per trial, the applies it took to converge afterwards.
        duplicates: objects the sandbox held more than once (must stay empty).
        missing: desired objects the sandbox lacked, or jobs never started (must stay empty).
        faults: injected faults by (fault, ``METHOD /path`` with ids as ``{id}``).
    """

    trials: int = 0
    killed_at: list[float] = field(default_factory=list)
    killed_after: list[int] = field(default_factory=list)
    interrupted: int = 0
    reruns: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    faults: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not self.duplicates and not self.missing


def _sandbox(data_dir: Path, flavour: Flavour = SANDBOX, **config: Any) -> Any:
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.server import EmbeddedSandbox

    sb = EmbeddedSandbox(
        SandboxConfig(
            data_dir=data_dir,
            api_key=SANDBOX_KEY,
            time_scale=50.0,
            dialect=flavour.dialect,
            **config,
        )
    )
    sb.start()
    return sb


def check_exact(
    base_url: str,
    n_datasets: int,
    n_jobs: int,
    report: HarnessReport,
    label: str,
    flavour: Flavour = SANDBOX,
) -> None:
    """Record duplicates and missing objects on the remote."""
    client = flavour.client(base_url, SANDBOX_KEY)
    try:
        files = Counter(f.filename for f in client.list_files())
        listed = client.list_jobs()
    finally:
        client.close()
    jobs = Counter(flavour.job_key(j) for j in listed)
    waiting = ("QUEUED", "VALIDATING", "VALIDATED")
    # Jobs that start when created are never "unstarted", whatever their status.
    unstarted = [
        flavour.job_key(j) for j in listed if j.status in waiting and not flavour.starts_at_create
    ]
    if unstarted:
        report.missing.append(f"{label}: jobs never started: {sorted(map(str, unstarted))}")
    for name, count in files.items():
        if count > 1:
            report.duplicates.append(f"{label}: file {name} x{count}")
    for suffix, count in jobs.items():
        if count > 1:
            report.duplicates.append(f"{label}: job {suffix} x{count}")
    if len(files) != n_datasets:
        report.missing.append(f"{label}: {len(files)} files, expected {n_datasets}")
    expected = {f"t{j}" for j in range(n_jobs)}
    if set(jobs) != expected:
        report.missing.append(f"{label}: jobs {sorted(jobs)}, expected {sorted(expected)}")


def converge(cli: Cli, attempts: int = 6) -> int:
    """Re-run apply until it succeeds; returns how many runs it took."""
    for attempt in range(1, attempts + 1):
        proc = cli.run("apply", "--yes", "--lock-timeout", "30s")
        if proc.returncode == 0:
            return attempt
    raise AssertionError(
        f"apply did not converge in {attempts} runs:\n{proc.stdout}\n{proc.stderr}"
    )


@dataclass
class _CrashTrial:
    """One kill -9 trial: its sandbox, project, target and child process."""

    label: str
    sandbox: Any
    cli: Cli
    kill_after: int
    delay: float
    proc: CliProcess | None = None
    started: float = 0.0
    seen: int = 0  # mutating requests the sandbox has answered so far
    journal_id: int = 0  # last journal entry counted
    killed_at: float = 0.0  # seconds from the start to the kill


def crash_trials(
    workdir: Path,
    *,
    trials: int,
    n_datasets: int,
    n_jobs: int,
    seed: int = 1,
    parallel: int = 3,
    children: CliProcesses | None = None,
    flavour: Flavour = SANDBOX,
) -> HarnessReport:
    """Apply as a child process, kill -9 it in the middle of its work, re-apply; check exactness.

    The first trial is an uninterrupted apply (in this process) that counts the mutating
    requests an apply of this spec makes: uploads, creates, starts. Each later trial starts
    ``reconciler apply`` as a child process (:mod:`tests.cli_processes`) against its own
    fresh sandbox and kills it with SIGKILL once the sandbox has answered a chosen number of
    those requests, plus up to 5 ms: the kill lands between a remote write and the state
    write that records it, or between two operations — never during interpreter start-up,
    where it would prove nothing. The numbers are spread over the whole request sequence: one
    random pick from each of ``trials - 1`` equal slices of it. Up to ``parallel`` children
    run at once (each trial has its own sandbox, project and state, so they cannot meet);
    each kill is timed on its own sandbox's record. Then, trial by trial, apply re-runs in
    this process until it succeeds and the sandbox must hold exactly the desired objects.
    ``children``: where to start the children (default: a helper of this call's own).
    ``flavour``: the provider (default: the sandbox in Mistral's dialect).
    """
    rng = random.Random(seed)
    report = HarnessReport()
    trials_run: list[_CrashTrial] = []
    with ExitStack() as cleanup:
        # A helper of this call's own imports while the calibration runs.
        processes = children or cleanup.enter_context(CliProcesses(cli_env()))
        cleanup.callback(_stop_all, trials_run)
        calibration = _crash_trial(workdir / "trial0", "calibration", n_datasets, n_jobs, flavour)
        trials_run.append(calibration)
        converge(calibration.cli)
        requests = len(mutating(calibration.sandbox.journal()))
        check_exact(
            calibration.sandbox.base_url, n_datasets, n_jobs, report, "calibration", flavour
        )
        kills = max(0, trials - 1)
        for number, after in enumerate(_kill_points(rng, requests, kills), start=1):
            trial = _crash_trial(
                workdir / f"trial{number}", f"trial {number}", n_datasets, n_jobs, flavour
            )
            trial.kill_after, trial.delay = after, rng.uniform(0.0, 0.005)
            trials_run.append(trial)
        _kill_all(processes, trials_run[1:], parallel)
        for trial in trials_run[1:]:
            report.killed_at.append(round(trial.killed_at, 2))
            report.killed_after.append(trial.kill_after)
            report.interrupted += trial.proc is not None and trial.proc.returncode == -9
            report.reruns.append(converge(trial.cli))
            report.trials += 1
            check_exact(trial.sandbox.base_url, n_datasets, n_jobs, report, trial.label, flavour)
    return report


def _stop_all(trials: list[_CrashTrial]) -> None:
    """Kill any child still running, stop every sandbox."""
    for trial in trials:
        if trial.proc is not None:
            trial.proc.kill()
        trial.sandbox.stop()


def _project(root: Path, sb: Any, n_datasets: int, n_jobs: int, flavour: Flavour) -> Cli:
    """The CLI in a project of ``flavour`` at ``root`` on the sandbox ``sb``."""
    project = make_project(
        root, endpoint=sb.base_url, n_datasets=n_datasets, n_jobs=n_jobs, flavour=flavour
    )
    return Cli(cwd=project, env=cli_env(**flavour.env(sb.base_url)))


def _crash_trial(
    base: Path, label: str, n_datasets: int, n_jobs: int, flavour: Flavour
) -> _CrashTrial:
    sb = _sandbox(base / "sandbox", flavour)
    cli = _project(base / "project", sb, n_datasets, n_jobs, flavour)
    return _CrashTrial(label, sb, cli, kill_after=0, delay=0.0)


def _kill_points(rng: random.Random, requests: int, kills: int) -> list[int]:
    """One random request count (1-based) from each of ``kills`` equal slices of 1..requests."""
    points = []
    for i in range(kills):
        low = 1 + i * requests // kills
        high = (i + 1) * requests // kills
        points.append(rng.randint(low, max(low, high)))
    return points


def _kill_all(
    processes: CliProcesses, trials: list[_CrashTrial], parallel: int, timeout: float = 300
) -> None:
    """Run the trials' applies, ``parallel`` at a time; kill each at its point."""
    waiting = list(trials)
    running: list[_CrashTrial] = []
    deadline = time.monotonic() + timeout
    while waiting or running:
        while waiting and len(running) < parallel:
            trial = waiting.pop(0)
            trial.started = time.monotonic()
            trial.proc = processes.start(["apply", "--yes"], cwd=trial.cli.cwd, env=trial.cli.env)
            running.append(trial)
        for trial in list(running):
            new = trial.sandbox.journal(trial.journal_id)
            if new:
                trial.journal_id = new[-1]["id"]
                trial.seen += len(mutating(new))
            if trial.seen >= trial.kill_after or trial.proc.poll() is not None:
                time.sleep(trial.delay)
                trial.proc.kill()
                trial.killed_at = time.monotonic() - trial.started
                trial.proc.communicate(timeout=60)
                running.remove(trial)
        if time.monotonic() > deadline:
            raise AssertionError(f"kill -9 trials did not finish within {timeout:.0f}s")
        time.sleep(0.002)


def fault_runs(
    workdir: Path,
    *,
    faults: str,
    seeds: list[int],
    n_datasets: int,
    n_jobs: int,
    backoff_scale: float = 1.0,
    flavour: Flavour = SANDBOX,
) -> HarnessReport:
    """Apply against a sandbox injecting faults at high rates; check it converges exactly.

    The applies run in this process. ``backoff_scale`` shortens the client's waits between
    attempts by that factor (1: the real waits, as the benchmark runs them): the attempts, the
    lost responses and the lookups that resolve them are what exactly-once depends on, not
    how long the client pauses in between. ``report.faults`` counts the injected faults by
    fault and request, so a caller can check the run reached what it means to test.
    """
    from reconciler.sandbox.config import parse_faults

    report = HarnessReport()
    for seed in seeds:
        base = workdir / f"seed{seed}"
        sb = _sandbox(base / "sandbox", flavour, faults=parse_faults(faults), seed=seed)
        try:
            cli = _project(base / "project", sb, n_datasets, n_jobs, flavour)
            with _scaled_backoff(backoff_scale):
                report.reruns.append(converge(cli, attempts=10))
            report.trials += 1
            report.faults.update(
                (entry["fault"], f"{entry['method']} {_ID.sub('{id}', entry['path'])}")
                for entry in sb.journal()
                if entry["fault"]
            )
        finally:
            sb.stop()
        # Count on the same data without faults: the check itself must not be faulted.
        clean = _sandbox(base / "sandbox", flavour)
        try:
            check_exact(clean.base_url, n_datasets, n_jobs, report, f"seed {seed}", flavour)
        finally:
            clean.stop()
    return report


_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""A remote object id in a request path."""


@contextmanager
def _scaled_backoff(scale: float) -> Iterator[None]:
    """The API client's retry waits multiplied by ``scale`` (its jitter and growth kept)."""
    from reconciler.client import api

    if scale == 1.0:
        yield
        return
    real = api.backoff_delay

    def scaled(attempt: int, **kwargs: Any) -> float:
        return scale * real(attempt, **kwargs)

    api.backoff_delay = scaled
    try:
        yield
    finally:
        api.backoff_delay = real


def concurrent_applies(
    workdir: Path,
    *,
    processes: int,
    n_datasets: int,
    n_jobs: int,
    lock_timeout: str,
    children: CliProcesses | None = None,
    flavour: Flavour = SANDBOX,
) -> tuple[HarnessReport, list[Any]]:
    """Several applies at once, as child processes, on one state; then one more apply.

    Returns the report and each child's (exit code, stdout, stderr). ``children``: where to
    start the children (default: a helper of this call's own).
    """
    report = HarnessReport()
    sb = _sandbox(workdir / "sandbox", flavour)
    try:
        cli = _project(workdir / "project", sb, n_datasets, n_jobs, flavour)
        with ExitStack() as own:
            starter = children or own.enter_context(CliProcesses(cli.env))
            args = ["apply", "--yes", "--lock-timeout", lock_timeout]
            procs = [starter.start(args, cwd=cli.cwd, env=cli.env) for _ in range(processes)]
            results = []
            for p in procs:
                out, err = p.communicate(timeout=300)
                results.append((p.returncode, out, err))
        converge(cli)
        report.trials = processes
        check_exact(sb.base_url, n_datasets, n_jobs, report, "concurrent", flavour)
        return report, results
    finally:
        sb.stop()
