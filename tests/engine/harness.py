"""Reliability harnesses: kill -9 at random moments, injected faults, concurrent applies.

Used at small scale by the test suite and at full scale by ``bench/reliability.py``. Every
harness ends by checking the sandbox holds exactly the desired files and jobs: one file per
dataset (by content-addressed name) and one job per spec — zero duplicates.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.client.api import MistralClient
from tests.engine.conftest import SANDBOX_KEY, Cli, cli_env
from tests.engine.project import make_project


@dataclass
class HarnessReport:
    """What a harness saw."""

    trials: int = 0
    killed_at: list[float] = field(default_factory=list)
    reruns: list[int] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.duplicates and not self.missing


def _sandbox(data_dir: Path, **config: Any) -> Any:
    from reconciler.sandbox.app import SandboxConfig
    from reconciler.sandbox.server import EmbeddedSandbox

    sb = EmbeddedSandbox(
        SandboxConfig(data_dir=data_dir, api_key=SANDBOX_KEY, time_scale=50.0, **config)
    )
    sb.start()
    return sb


def check_exact(
    base_url: str, n_datasets: int, n_jobs: int, report: HarnessReport, label: str
) -> None:
    """Record duplicates and missing objects on the remote."""
    with MistralClient(base_url, SANDBOX_KEY) as client:
        files = Counter(f.filename for f in client.list_files())
        listed = client.list_jobs()
        jobs = Counter(j.suffix for j in listed)
    unstarted = [j.suffix for j in listed if j.status in ("QUEUED", "VALIDATING", "VALIDATED")]
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


def crash_trials(
    workdir: Path, *, trials: int, n_datasets: int, n_jobs: int, seed: int = 1
) -> HarnessReport:
    """Apply as a subprocess, kill -9 it at a random moment, re-apply; check exactness."""
    rng = random.Random(seed)
    report = HarnessReport()
    full: float | None = None
    for trial in range(trials):
        base = workdir / f"trial{trial}"
        sb = _sandbox(base / "sandbox")
        try:
            cli = Cli(
                cwd=make_project(
                    base / "project", endpoint=sb.base_url, n_datasets=n_datasets, n_jobs=n_jobs
                ),
                env=cli_env(),
            )
            if full is None:  # calibrate on an uninterrupted run, then reset
                started = time.monotonic()
                converge(cli)
                full = time.monotonic() - started
                check_exact(sb.base_url, n_datasets, n_jobs, report, "calibration")
                continue
            proc = cli.popen("apply", "--yes")
            delay = rng.uniform(0.1, full)
            time.sleep(delay)
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            report.killed_at.append(round(delay, 2))
            report.reruns.append(converge(cli))
            report.trials += 1
            check_exact(sb.base_url, n_datasets, n_jobs, report, f"trial {trial}")
        finally:
            sb.stop()
    return report


def fault_runs(
    workdir: Path, *, faults: str, seeds: list[int], n_datasets: int, n_jobs: int
) -> HarnessReport:
    """Apply against a sandbox injecting faults at high rates; check it converges exactly."""
    from reconciler.sandbox.config import parse_faults

    report = HarnessReport()
    for seed in seeds:
        base = workdir / f"seed{seed}"
        sb = _sandbox(base / "sandbox", faults=parse_faults(faults), seed=seed)
        try:
            cli = Cli(
                cwd=make_project(
                    base / "project", endpoint=sb.base_url, n_datasets=n_datasets, n_jobs=n_jobs
                ),
                env=cli_env(),
            )
            report.reruns.append(converge(cli, attempts=10))
            report.trials += 1
        finally:
            sb.stop()
        # Count on the same data without faults: the check itself must not be faulted.
        clean = _sandbox(base / "sandbox")
        try:
            check_exact(clean.base_url, n_datasets, n_jobs, report, f"seed {seed}")
        finally:
            clean.stop()
    return report


def concurrent_applies(
    workdir: Path, *, processes: int, n_datasets: int, n_jobs: int, lock_timeout: str
) -> tuple[HarnessReport, list[Any]]:
    """Several applies at once on one state; returns the report and the finished processes."""
    report = HarnessReport()
    sb = _sandbox(workdir / "sandbox")
    try:
        cli = Cli(
            cwd=make_project(
                workdir / "project", endpoint=sb.base_url, n_datasets=n_datasets, n_jobs=n_jobs
            ),
            env=cli_env(),
        )
        procs = [
            cli.popen("apply", "--yes", "--lock-timeout", lock_timeout) for _ in range(processes)
        ]
        results = []
        for p in procs:
            out, err = p.communicate(timeout=300)
            results.append((p.returncode, out, err))
        converge(cli)
        report.trials = processes
        check_exact(sb.base_url, n_datasets, n_jobs, report, "concurrent")
        return report, results
    finally:
        sb.stop()
