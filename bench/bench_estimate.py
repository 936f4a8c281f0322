"""Benchmark: what the local cost estimate adds to a ``plan`` of 1,000 new jobs.

A project of 1,000 datasets and 1,000 jobs against a sandbox process (as a remote would be),
nothing applied, so every job is a create to price. After a first plan (which fills the hash
cache), each round measures two plans, and inside each the time spent on costs, where it is
spent: the price function the planner calls for each job, the review of the budgets after
it, and — for the command — the rendering of the cost lines and the headline. The timer's
own overhead is counted in, so the shares are if anything overstated.

1. ``reconciler plan PROJECT``, the command as a user runs it (in this process, so without
   the interpreter's start-up): load the specs, prepare and refresh, plan, render the text.
2. The planning step alone (:func:`~reconciler.operations.prepare_and_refresh` and
   :func:`~reconciler.operations.make_plan`, the specs already loaded), and the same plan
   without estimates, for comparison.

Run: ``python bench/bench_estimate.py [--jobs 1000] [--datasets 1000] [--repeat 5]``
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_plan import start_sandbox  # noqa: E402
from reconciler.cli.app import main as reconciler_main  # noqa: E402
from reconciler.engine import costs  # noqa: E402
from reconciler.operations import PlanRequest, make_plan, prepare_and_refresh  # noqa: E402
from reconciler.render import plan as render  # noqa: E402
from reconciler.workspace import open_workspace  # noqa: E402
from tests.engine.project import SANDBOX_KEY_ENV, make_project  # noqa: E402

F = TypeVar("F", bound=Callable[..., Any])

KEY = "bench-key"


class Stopwatch:
    """Seconds spent in the wrapped functions since the last :meth:`reset`."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def reset(self) -> None:
        self.seconds = 0.0

    def wrap(self, func: F) -> F:
        @functools.wraps(func)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return timed  # type: ignore[return-value]


def run_command(args: list[str]) -> tuple[float, str]:
    """(seconds, stdout) of ``reconciler ARGS`` run in this process."""
    out = io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        try:
            reconciler_main(args)
        except SystemExit as done:
            assert done.code in (0, None), f"reconciler {' '.join(args)}: exit {done.code}"
    return time.perf_counter() - start, out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--datasets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    os.environ[SANDBOX_KEY_ENV] = KEY
    # Timed where they run: make_plan and the renderer look these up through their modules.
    watch = Stopwatch()
    make_pricer = costs.pricer

    def timed_pricer(*pricer_args: Any) -> Any:
        return watch.wrap(make_pricer(*pricer_args))

    costs.pricer = timed_pricer
    costs.review_costs = watch.wrap(costs.review_costs)
    render.describe_cost = watch.wrap(render.describe_cost)
    render.cost_headline = watch.wrap(render.cost_headline)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        server, url = start_sandbox(root / "sandbox")
        try:
            project = make_project(
                root / "project", endpoint=url, n_datasets=args.datasets, n_jobs=args.jobs
            )
            print(f"{args.datasets} datasets, {args.jobs} jobs, nothing applied; sandbox at {url}")
            first, _ = run_command(["plan", str(project)])
            print(f"first plan command (cold hash cache): {first:.2f}s")
            commands: list[tuple[float, float]] = []
            steps: list[tuple[float, float, float]] = []
            for _ in range(args.repeat):
                watch.reset()
                took, text = run_command(["plan", str(project)])
                assert text.count("(local)") == args.jobs, "every job is priced"
                commands.append((took, watch.seconds))
            with open_workspace([project]) as ws:
                for _ in range(args.repeat):
                    watch.reset()
                    start = time.perf_counter()
                    prepared, observed = prepare_and_refresh(ws)
                    plan, _ = make_plan(ws, prepared, ws.backend.read(), PlanRequest(), observed)
                    whole, pricing = time.perf_counter() - start, watch.seconds
                    assert len(plan.costly) == args.jobs and not plan.unestimated
                    start = time.perf_counter()
                    prepared, observed = prepare_and_refresh(ws)
                    bare, _ = make_plan(
                        ws, prepared, ws.backend.read(), PlanRequest(estimate=False), observed
                    )
                    without = time.perf_counter() - start
                    assert all(c.cost is None for c in bare.costly)
                    steps.append((whole, pricing, without))
            total = sum(c.cost.amount for c in plan.costly if c.cost is not None)
            print(f"estimated cost of the {len(plan.costly)} jobs: {total:,.2f} USD\n")
            print(
                "| round | plan command | of which costs | share | planning step "
                "| of which costs | share | planning step without estimates |"
            )
            print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            for i, ((cmd, cmd_cost), (step, step_cost, without)) in enumerate(
                zip(commands, steps, strict=True), 1
            ):
                print(
                    f"| {i} | {cmd:.3f} s | {cmd_cost * 1000:.1f} ms | {cmd_cost / cmd:.1%} "
                    f"| {step:.3f} s | {step_cost * 1000:.1f} ms | {step_cost / step:.1%} "
                    f"| {without:.3f} s |"
                )
            cmd, cmd_cost = min(commands)
            step, step_cost, _ = min(steps)
            print(
                f"\nbest rounds: the plan command {cmd:.3f} s, of which costs {cmd_cost * 1000:.1f} ms "
                f"({cmd_cost / cmd:.1%}); the planning step {step:.3f} s, of which costs "
                f"{step_cost * 1000:.1f} ms ({step_cost / step:.1%}). Target: < 5% of plan time."
            )
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
