"""Benchmark: ``plan`` over 1,000 jobs and 1,000 datasets against a sandbox on 127.0.0.1.

The sandbox runs as its own process (``reconciler sandbox``), as a remote would. After a
first apply (so the hash cache is warm), the script measures the time and HTTP request count
of a full plan — validate and prepare every dataset from the cache, refresh the remote with
paginated list calls, diff — and compares them, in the same run, with the floor: the bare
list calls alone. Then it checks that a no-op ``apply`` sends zero mutating requests.

Run: ``python bench/bench_plan.py [--jobs 1000] [--datasets 1000]``
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402

from reconciler.client.api import MistralClient  # noqa: E402
from reconciler.engine.executor import ApplyOptions, Executor  # noqa: E402
from reconciler.operations import PlanRequest, make_plan, prepare_and_refresh  # noqa: E402
from reconciler.workspace import open_workspace  # noqa: E402
from tests.engine.project import SANDBOX_KEY_ENV, make_project  # noqa: E402

KEY = "bench-key"
MUTATING = {"POST", "PATCH", "DELETE", "PUT"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sandbox(data_dir: Path, *extra_args: str) -> tuple[subprocess.Popen[bytes], str]:
    """``reconciler sandbox`` as its own process (plus ``extra_args``); waits until it serves."""
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reconciler",
            "sandbox",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--api-key",
            KEY,
            "--time-scale",
            "1000",
            *extra_args,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if httpx.get(f"{url}/sandbox/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the sandbox did not start")


def journal_length(url: str) -> list[dict[str, object]]:
    response = httpx.get(
        f"{url}/sandbox/journal", headers={"Authorization": f"Bearer {KEY}"}, timeout=60
    )
    response.raise_for_status()
    data = response.json()
    return list(data["entries"] if isinstance(data, dict) else data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ[SANDBOX_KEY_ENV] = KEY
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server, url = start_sandbox(root / "sandbox")
        try:
            project = make_project(
                root / "project", endpoint=url, n_datasets=args.datasets, n_jobs=args.jobs
            )
            print(f"{args.datasets} datasets, {args.jobs} jobs; sandbox process at {url}")
            with open_workspace([project]) as ws:
                start = time.perf_counter()
                prepared, observed = prepare_and_refresh(ws)
                state = ws.backend.read()
                plan, _ = make_plan(ws, prepared, state, PlanRequest(), observed)
                print(
                    f"first plan (cold hash cache): {len(plan.actionable)} changes in "
                    f"{time.perf_counter() - start:.2f}s"
                )
                start = time.perf_counter()
                with ws.backend.lock("apply"):
                    result = Executor(
                        ws.client(),
                        ws.backend,
                        state,
                        prepared.desired,
                        options=ApplyOptions(parallelism=8),
                    ).apply(plan)
                print(
                    f"first apply: {len(result.outcomes)} changes, {len(result.failures)} "
                    f"failed, in {time.perf_counter() - start:.1f}s "
                    f"({ws.client().stats.requests} requests)"
                )

            plan_times, plan_requests = [], []
            with open_workspace([project]) as ws:
                client = ws.client()
                for _ in range(args.repeat):
                    before = client.stats.requests
                    start = time.perf_counter()
                    prepared, observed = prepare_and_refresh(ws)
                    plan, _ = make_plan(ws, prepared, ws.backend.read(), PlanRequest(), observed)
                    plan_times.append(time.perf_counter() - start)
                    plan_requests.append(client.stats.requests - before)
                    assert not plan.has_changes, plan.summary()

            floor_times, floor_requests = [], []
            with MistralClient(url, KEY) as client:
                for _ in range(args.repeat):
                    before = client.stats.requests
                    start = time.perf_counter()
                    client.list_files()
                    client.list_jobs()
                    client.list_models()
                    floor_times.append(time.perf_counter() - start)
                    floor_requests.append(client.stats.requests - before)

            mark = len(journal_length(url))
            apply_proc = subprocess.run(
                [sys.executable, "-m", "reconciler", "apply", "--yes", str(project)],
                capture_output=True,
                text=True,
                env={**os.environ, SANDBOX_KEY_ENV: KEY},
            )
            assert apply_proc.returncode == 0, apply_proc.stderr
            writes = [e for e in journal_length(url)[mark:] if e.get("method") in MUTATING]

            best_plan, best_floor = min(plan_times), min(floor_times)
            print()
            print(f"| measurement (best of {args.repeat}) | time | HTTP requests |")
            print("| --- | ---: | ---: |")
            print(
                f"| plan, no changes (warm hash cache) | {best_plan:.2f} s | {plan_requests[0]} |"
            )
            print(f"| floor: the bare list calls | {best_floor:.2f} s | {floor_requests[0]} |")
            print(
                f"| plan / floor | {best_plan / best_floor:.2f}x | "
                f"{plan_requests[0] / floor_requests[0]:.2f}x |"
            )
            print(
                f"no-op apply (CLI): exit {apply_proc.returncode}, mutating requests: {len(writes)}"
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
