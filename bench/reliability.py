"""Reliability harnesses at full scale: kill -9, injected faults, concurrent applies.

Each prints what it did and whether the sandbox ended with exactly the desired objects
(zero duplicates, nothing missing). The test suite runs the same harnesses at small scale.

Run: ``python bench/reliability.py [--trials 30] [--datasets 10] [--jobs 20]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.engine.harness import concurrent_applies, crash_trials, fault_runs  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=30, help="kill -9 trials")
    parser.add_argument("--datasets", type=int, default=10)
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=4, help="fault-injection seeds")
    args = parser.parse_args()
    objects = args.datasets + args.jobs
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        start = time.monotonic()
        crash = crash_trials(
            Path(tmp) / "crash", trials=args.trials + 1, n_datasets=args.datasets, n_jobs=args.jobs
        )
        print(
            f"kill -9: {crash.trials} trials on a {objects}-object spec in "
            f"{time.monotonic() - start:.0f}s; killed after {min(crash.killed_after)}-"
            f"{max(crash.killed_after)} mutating requests, "
            f"{min(crash.killed_at):.2f}-{max(crash.killed_at):.2f}s in "
            f"(median {statistics.median(crash.killed_at):.2f}s), {crash.interrupted} "
            f"of them mid-apply; re-runs to converge: max {max(crash.reruns)}; "
            f"duplicates {len(crash.duplicates)}, missing {len(crash.missing)}"
        )
        ok &= crash.ok
        start = time.monotonic()
        faults = "500=0.15,503=0.15,429=0.1,drop=0.1,timeout_after_commit=0.15"
        fault = fault_runs(
            Path(tmp) / "faults",
            faults=faults,
            seeds=list(range(1, args.seeds + 1)),
            n_datasets=args.datasets,
            n_jobs=args.jobs,
        )
        print(
            f"faults ({faults}): {fault.trials} seeds in {time.monotonic() - start:.0f}s; "
            f"applies to converge: {fault.reruns}; duplicates {len(fault.duplicates)}, "
            f"missing {len(fault.missing)}"
        )
        ok &= fault.ok
        for timeout in ("0s", "5m"):
            report, results = concurrent_applies(
                Path(tmp) / f"conc{timeout}",
                processes=4,
                n_datasets=args.datasets,
                n_jobs=args.jobs,
                lock_timeout=timeout,
            )
            codes = [code for code, _, _ in results]
            print(
                f"concurrency (4 applies, --lock-timeout {timeout}): exit codes {codes}; "
                f"duplicates {len(report.duplicates)}, missing {len(report.missing)}"
            )
            ok &= report.ok
    print("RESULT:", "zero duplicates, converged" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
