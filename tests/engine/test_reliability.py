"""Crash, fault and concurrency harnesses at small scale (full scale: bench/reliability.py),
on both providers: the sandbox speaking Mistral's API, and speaking OpenAI's behind an
``openai`` Provider (whose jobs carry their identity in metadata and start when created)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli_processes import CliProcesses
from tests.engine.harness import concurrent_applies, crash_trials, fault_runs
from tests.engine.project import FLAVOURS, Flavour
from tests.postgres.pg_helpers import BACKEND_ENV

pytestmark = pytest.mark.slow

each_provider = pytest.mark.parametrize("flavour", FLAVOURS.values(), ids=list(FLAVOURS))

covered_on_postgres = pytest.mark.skipif(
    os.environ.get(BACKEND_ENV) == "postgres",
    reason="on the postgres backend, concurrent CLI processes are the subject of "
    "tests/postgres/test_apply_postgres.py (same scenarios, plus the lock's own checks)",
)


@each_provider
def test_kill_9_at_random_moments_never_duplicates(
    tmp_path: Path, cli_processes: CliProcesses, flavour: Flavour
) -> None:
    # 3 datasets and 5 jobs: 13 mutating requests on Mistral's API (3 uploads, 5 creates,
    # 5 starts), 8 on OpenAI's (its jobs start when created); six kills, one in each sixth of
    # that sequence: during the uploads, among the creates, among the starts and after the
    # last one (where the apply may just have finished).
    report = crash_trials(
        tmp_path,
        trials=7,
        n_datasets=3,
        n_jobs=5,
        seed=7,
        children=cli_processes,
        flavour=flavour,
    )
    assert report.trials == 6
    assert len(set(report.killed_after)) == 6 and min(report.killed_after) >= 1
    # Every kill before the starts (the first four at least) cut a running apply short.
    assert report.interrupted >= 4, report
    assert report.ok, (report.duplicates, report.missing)


@each_provider
def test_injected_faults_converge_without_duplicates(tmp_path: Path, flavour: Flavour) -> None:
    report = fault_runs(
        tmp_path,
        # retry_after=0: the 429s send no wait time, so the client backs off on its own;
        # honouring Retry-After is the client tests' subject, here a 429 only costs time.
        faults="500=0.1,503=0.1,429=0.1,drop=0.05,timeout_after_commit=0.15,retry_after=0",
        seeds=[1, 2, 3],
        n_datasets=3,
        n_jobs=4,
        backoff_scale=0.05,
        flavour=flavour,
    )
    assert report.ok, (report.duplicates, report.missing)
    # The fault that threatens exactly-once happened: a create, upload or start done by the
    # remote whose answer was lost (about 15 such requests per seed at 15%).
    lost = [request for fault, request in report.faults if fault == "timeout_after_commit"]
    assert any(request.startswith("POST ") for request in lost), report.faults


@covered_on_postgres
@each_provider
def test_concurrent_applies_one_proceeds_others_fail_naming_holder(
    tmp_path: Path, cli_processes: CliProcesses, flavour: Flavour
) -> None:
    report, results = concurrent_applies(
        tmp_path,
        processes=3,
        n_datasets=2,
        n_jobs=3,
        lock_timeout="0s",
        children=cli_processes,
        flavour=flavour,
    )
    assert report.ok, (report.duplicates, report.missing)
    codes = sorted(code for code, _, _ in results)
    assert codes[0] == 0
    for code, _, err in results:
        if code != 0:
            assert "locked" in err and "pid" in err


@covered_on_postgres
@each_provider
def test_concurrent_applies_with_lock_timeout_all_succeed(
    tmp_path: Path, cli_processes: CliProcesses, flavour: Flavour
) -> None:
    report, results = concurrent_applies(
        tmp_path,
        processes=3,
        n_datasets=2,
        n_jobs=3,
        lock_timeout="2m",
        children=cli_processes,
        flavour=flavour,
    )
    assert report.ok, (report.duplicates, report.missing)
    assert [code for code, _, _ in results] == [0, 0, 0]
