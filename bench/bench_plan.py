"""Benchmark: ``plan`` over 1,000 jobs and 1,000 datasets against a sandbox on 127.0.0.1.

Measures, after a first apply (warm hash cache), the time and HTTP request count of a full
``plan`` (load specs, validate/prepare datasets from the cache, refresh, diff), and compares
them in the same run with the floor: the bare paginated list calls alone. Also checks that a
no-op ``apply`` sends zero mutating requests.

Run: ``python bench/bench_plan.py [--jobs 1000] [--datasets 1000]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reconciler.sandbox.server import EmbeddedSandbox  # noqa: E402

from reconciler.client.api import MistralClient  # noqa: E402
from reconciler.engine.executor import ApplyOptions, Executor  # noqa: E402
from reconciler.operations import PlanRequest, make_plan, prepare  # noqa: E402
from reconciler.sandbox.app import SandboxConfig  # noqa: E402
from reconciler.workspace import open_workspace  # noqa: E402
from tests.engine.project import SANDBOX_KEY_ENV, make_project  # noqa: E402

KEY = "bench-key"


def timed(fn):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    os.environ[SANDBOX_KEY_ENV] = KEY
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sb = EmbeddedSandbox(SandboxConfig(data_dir=root / "sandbox", api_key=KEY, time_scale=1000.0))
        sb.start()
        try:
            project = make_project(root / "project", endpoint=sb.base_url,
                                   n_datasets=args.datasets, n_jobs=args.jobs)
            print(f"{args.datasets} datasets, {args.jobs} jobs; sandbox {sb.base_url}")
            with open_workspace([project]) as ws:
                (prepared, t_prep) = timed(lambda: prepare(ws))
                print(f"first prepare (cold hash cache): {t_prep:.2f}s")
                state = ws.backend.read()
                (plan, _), t_plan = timed(lambda: make_plan(ws, prepared, state, PlanRequest()))
                print(f"first plan: {len(plan.actionable)} changes in {t_plan:.2f}s")
                start = time.perf_counter()
                with ws.backend.lock("apply"):
                    result = Executor(ws.client(), ws.backend, state, prepared.desired,
                                      options=ApplyOptions(parallelism=8)).apply(plan)
                print(f"first apply: {len(result.outcomes)} outcomes, {len(result.failures)} failures "
                      f"in {time.perf_counter() - start:.1f}s")

            plan_times, plan_requests = [], []
            for _ in range(args.repeat):
                with open_workspace([project]) as ws:
                    client = ws.client()
                    before = client.stats.requests
                    start = time.perf_counter()
                    prepared = prepare(ws)
                    (plan, _) = make_plan(ws, prepared, ws.backend.read(), PlanRequest())
                    plan_times.append(time.perf_counter() - start)
                    plan_requests.append(client.stats.requests - before)
                    assert not plan.has_changes, plan.summary()

            floor_times, floor_requests = [], []
            for _ in range(args.repeat):
                with MistralClient(sb.base_url, KEY) as client:
                    start = time.perf_counter()
                    client.list_files()
                    client.list_jobs()
                    client.list_models()
                    floor_times.append(time.perf_counter() - start)
                    floor_requests.append(client.stats.requests)

            mark = len(sb.journal())
            with open_workspace([project]) as ws:
                prepared = prepare(ws)
                state = ws.backend.read()
                plan, _ = make_plan(ws, prepared, state, PlanRequest())
                if plan.has_changes:
                    Executor(ws.client(), ws.backend, state, prepared.desired).apply(plan)
            writes = [e for e in sb.journal()[mark:] if e["method"] in ("POST", "PATCH", "DELETE", "PUT")]

            best_plan, best_floor = min(plan_times), min(floor_times)
            print()
            print(f"| measurement | time (best of {args.repeat}) | HTTP requests |")
            print("| --- | ---: | ---: |")
            print(f"| plan (warm cache, no changes) | {best_plan:.2f} s | {plan_requests[0]} |")
            print(f"| floor: bare list calls | {best_floor:.2f} s | {floor_requests[0]} |")
            print(f"| ratio | {best_plan / best_floor:.2f}x | {plan_requests[0] / floor_requests[0]:.2f}x |")
            print(f"no-op apply mutating requests: {len(writes)}")
        finally:
            sb.stop()


if __name__ == "__main__":
    main()
