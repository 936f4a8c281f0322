"""Benchmark: apply under a server rate limit runs near the limit, with zero failures.

A sandbox process enforces ``--rate-limit N/s`` (token bucket, 429 with Retry-After). An
apply of a generated spec runs against it twice from scratch: once with no client-side cap
(the client slows down from the server's 429s and rate-limit headers) and once with the
Provider's ``rate_limit`` set just under the server's. For each run the script prints the
requests the server saw, how many it refused with 429, the achieved request rate against the
limit, and whether the apply succeeded.

Run: ``python bench/bench_ratelimit.py [--limit 10] [--datasets 20] [--jobs 20]``
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


from bench.bench_plan import KEY, journal_length, start_sandbox  # noqa: E402
from tests.engine.project import SANDBOX_KEY_ENV, make_project  # noqa: E402


def run(root: Path, limit: float, client_cap: float | None, n_datasets: int, n_jobs: int) -> str:
    server, url = start_sandbox(root / "sandbox", "--rate-limit", f"{limit:g}/s")
    try:
        project = make_project(root / "project", endpoint=url, n_datasets=n_datasets, n_jobs=n_jobs)
        if client_cap is not None:
            specs = project / "specs.yaml"
            specs.write_text(
                specs.read_text().replace(
                    "api_key: {env: " + SANDBOX_KEY_ENV + "}\n",
                    "api_key: {env: " + SANDBOX_KEY_ENV + "}\nrate_limit: " + f"{client_cap:g}\n",
                    1,
                )
            )
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "reconciler", "apply", "--yes", str(project)],
            capture_output=True,
            text=True,
            env={**os.environ, SANDBOX_KEY_ENV: KEY},
        )
        elapsed = time.perf_counter() - start
        entries = [e for e in journal_length(url) if str(e.get("path", "")).startswith("/v1/")]
        refused = sum(1 for e in entries if e.get("status") == 429)
        first = min(float(e["ts"]) for e in entries)  # type: ignore[arg-type]
        last = max(float(e["ts"]) for e in entries)  # type: ignore[arg-type]
        served = len(entries) - refused
        rate = served / max(last - first, 1e-9)
        cap = "none" if client_cap is None else f"{client_cap:g}/s"
        return (
            f"| {cap} | {'ok' if proc.returncode == 0 else 'FAILED'} | {len(entries)} | "
            f"{refused} | {rate:.1f}/s ({100 * rate / limit:.0f}% of {limit:g}/s) | "
            f"{elapsed:.1f} s |"
        )
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--limit", type=float, default=10.0, help="server limit, requests/s")
    parser.add_argument("--datasets", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=20)
    args = parser.parse_args()
    os.environ[SANDBOX_KEY_ENV] = KEY
    print(f"apply of {args.datasets} datasets and {args.jobs} jobs; server limit {args.limit:g}/s")
    print("| client cap | apply | requests seen | refused (429) | served rate | wall time |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for cap in (None, args.limit * 0.95):
        with tempfile.TemporaryDirectory() as tmp:
            print(run(Path(tmp), args.limit, cap, args.datasets, args.jobs), flush=True)


if __name__ == "__main__":
    main()
