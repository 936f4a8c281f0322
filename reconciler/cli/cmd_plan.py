"""``reconciler plan`` and ``reconciler apply``.

Both print the target on their first line. ``plan`` never writes remotely or to the state;
``apply`` holds the state lock from refresh to the last write, shows the plan, asks for
confirmation (unless ``--yes``), then executes it exactly once. A saved plan (``plan --out``)
is applied exactly as saved, or refused when the state or the specs moved on.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from reconciler.operations import PlanRequest
    from reconciler.workspace import Workspace

from reconciler.cli.common import (
    LOCK_TIMEOUT,
    OutputFormat,
    duration_option,
    format_option,
    handle_errors,
)
from reconciler.engine.executor import ApplyOptions, Executor, Outcome
from reconciler.engine.plan import Action, Change, Plan
from reconciler.errors import ApplyError, PlanError, ReconcilerError
from reconciler.render.plan import render_json, render_markdown, render_text

commands = typer.Typer()
"""``plan`` and ``apply``."""

PATHS_ARG = typer.Argument(None, help="Spec files or directories (default: current directory).")
FORMAT_OPT = format_option(
    OutputFormat.text,
    OutputFormat.json,
    OutputFormat.markdown,
    help="Output: text, json or markdown.",
)
TARGET_OPT = typer.Option(
    None, "--target", help="Only this address (and what it depends on); repeatable."
)
REPLACE_OPT = typer.Option(
    None, "--replace", help="Create this job anew even if unchanged; repeatable."
)
PRUNE_OPT = typer.Option(
    False, "--prune", help="Act on managed objects no longer in the specs (cancel/delete, forget)."
)


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise typer.BadParameter(f"must be one of: {', '.join(allowed)}")
    return value


def _emit_target(ws: Workspace, fmt: str) -> None:
    line = f"Target: {ws.target}"
    if fmt == "text":
        typer.echo(line)
    else:
        typer.echo(line, err=True)


def _request(
    spec_paths: tuple[str, ...],
    target: list[str] | None,
    replace: list[str] | None,
    prune: bool,
    *,
    estimate: bool = True,
) -> PlanRequest:
    """The planning options of the command line."""
    from reconciler.operations import PlanRequest

    return PlanRequest(
        spec_paths=spec_paths,
        targets=tuple(target or ()),
        replace=tuple(replace or ()),
        prune=prune,
        estimate=estimate,
    )


def _render(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan)


@commands.command()
@handle_errors
def plan(
    paths: list[str] | None = PATHS_ARG,
    out: Path | None = typer.Option(None, "--out", "-o", help="Save the plan to apply it later."),
    fmt: OutputFormat = FORMAT_OPT,
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 0: no changes, 1: error, 2: changes present."
    ),
    target: list[str] | None = TARGET_OPT,
    replace: list[str] | None = REPLACE_OPT,
    prune: bool = PRUNE_OPT,
    estimate: bool = typer.Option(
        True, "--estimate/--no-estimate", help="Ask the remote for cost estimates of new jobs."
    ),
) -> None:
    """Show what apply would change: refreshes the remote, never writes anything."""
    from reconciler.operations import plan_workspace
    from reconciler.workspace import open_workspace

    _check_format(fmt, ("text", "json", "markdown"))
    spec_paths = tuple(paths or ["."])
    with open_workspace(spec_paths) as ws:
        _emit_target(ws, fmt)
        planned = plan_workspace(
            ws, _request(spec_paths, target, replace, prune, estimate=estimate)
        )
        the_plan, observed = planned.plan, planned.observed
        if fmt == "text":
            typer.echo(
                f"Refreshed {len(observed.files)} files, {len(observed.jobs)} jobs, "
                f"{len(observed.models)} models ({observed.requests} requests).\n"
            )
        typer.echo(_render(the_plan, fmt))
        if out is not None:
            the_plan.save(out)
            typer.echo(
                f"Saved the plan to {out}; apply it with: reconciler apply {out}", err=fmt != "text"
            )
    if detailed_exitcode and the_plan.has_changes:
        raise typer.Exit(2)


class _CliHooks:
    """Plain progress lines for apply (quiet with --format json)."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._lock = threading.Lock()
        self._last_pct: dict[str, int] = {}
        self._started: dict[str, float] = {}

    def _say(self, text: str) -> None:
        if not self.quiet:
            with self._lock:
                typer.echo(text)

    def begin(self, change: Change) -> None:
        self._started[change.address] = time.monotonic()
        self._say(f"{change.address}: {change.action.value}...")

    def upload_progress(self, address: str, sent: int, total: int) -> None:
        if total < 8 * 1024 * 1024:
            return
        pct = int(100 * sent / total) if total else 100
        step = pct // 25 * 25
        if step > self._last_pct.get(address, -1):
            self._last_pct[address] = step
            self._say(f"{address}: uploaded {sent / 1e6:.1f} of {total / 1e6:.1f} MB ({pct}%)")

    def note(self, address: str, message: str) -> None:
        self._say(f"{address}: {message}")

    def done(self, outcome: Outcome) -> None:
        took = time.monotonic() - self._started.get(outcome.address, time.monotonic())
        mark = {"applied": "done", "skipped": "done", "failed": "FAILED"}.get(
            outcome.status, outcome.status
        )
        self._say(f"{outcome.address}: {mark} — {outcome.message} [{took:.1f}s]")


def _is_plan_file(paths: list[str]) -> bool:
    if len(paths) != 1:
        return False
    path = Path(paths[0])
    if not path.is_file() or path.suffix in (".yaml", ".yml"):
        return False
    try:
        with path.open("rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return b'"reconciler-plan"' in head or head.lstrip().startswith(b"{")


def _confirm(yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        raise ReconcilerError(
            "apply needs confirmation, but there is no terminal to ask on: pass --yes "
            "(after reviewing 'reconciler plan') to apply without asking"
        )
    answer = typer.prompt("Do you want to perform these actions? Only 'yes' will be accepted")
    if answer.strip() != "yes":
        raise ReconcilerError("Apply cancelled.")


@commands.command()
@handle_errors
def apply(
    paths: list[str] | None = typer.Argument(
        None, help="Spec files or directories (default: current directory), or one saved plan file."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    fmt: OutputFormat = format_option(
        OutputFormat.text, OutputFormat.json, help="Output: text or json."
    ),
    parallelism: int | None = typer.Option(
        None, "--parallelism", min=1, max=64, help="Concurrent remote operations (default 8)."
    ),
    target: list[str] | None = TARGET_OPT,
    replace: list[str] | None = REPLACE_OPT,
    prune: bool = PRUNE_OPT,
    wait: bool = typer.Option(
        False, "--wait", help="Follow jobs until they finish, with progress and metrics."
    ),
    wait_timeout: float = duration_option(
        "0", "--wait-timeout", help="Give up waiting after this long (0: never)."
    ),
    lock_timeout: float = LOCK_TIMEOUT,
    allow_duplicates: bool = typer.Option(
        False, "--allow-duplicates", help="Create jobs the plan flags as possible duplicates."
    ),
    start_timeout: float = duration_option(
        "10m",
        "--start-timeout",
        help="How long to wait for new jobs to be validated before starting them.",
    ),
) -> None:
    """Make the remote match the specs: upload files, create and start jobs, exactly once."""
    from reconciler.operations import check_fresh, plan_workspace, prepare
    from reconciler.workspace import open_workspace

    _check_format(fmt, ("text", "json"))
    given = list(paths or ["."])
    saved: Plan | None = None
    if _is_plan_file(given):
        saved = Plan.load(Path(given[0]))
        if target or replace or prune:
            raise PlanError(
                "--target, --replace and --prune cannot change a saved plan; "
                "make a new plan with them instead"
            )
        spec_paths: tuple[str, ...] = tuple(saved.spec_paths)
    else:
        spec_paths = tuple(given)
    lock_wait = lock_timeout
    with open_workspace(spec_paths, parallelism=parallelism) as ws:
        _emit_target(ws, fmt)
        if saved is not None and saved.target != ws.target:
            raise PlanError(
                f"the saved plan targets {saved.target}, but the specs now target "
                f"{ws.target}; make a new plan"
            )
        with ws.backend.lock("apply", lock_wait):
            if saved is not None:
                prepared = prepare(ws)
                state = ws.backend.read()
                check_fresh(saved, state, prepared.digest)
                the_plan = saved
            else:
                planned = plan_workspace(ws, _request(spec_paths, target, replace, prune))
                prepared, state, the_plan = planned.prepared, planned.state, planned.plan
            if fmt == "text":
                typer.echo(render_text(the_plan))
            has_intents = bool(state and state.intents)
            if not the_plan.has_changes and not has_intents:
                if fmt == "json":
                    typer.echo(
                        json.dumps({"plan": the_plan.to_json_dict(), "result": None}, indent=2)
                    )
                if not wait:
                    return
                result = None
            else:
                if saved is None:
                    _confirm(yes)
                executor = Executor(
                    ws.client(),
                    ws.backend,
                    state,
                    prepared.desired,
                    options=ApplyOptions(
                        parallelism=ws.parallelism,
                        allow_duplicates=allow_duplicates,
                        start_timeout=start_timeout,
                    ),
                    hooks=_CliHooks(quiet=fmt == "json"),
                )
                result = executor.apply(the_plan)
                if fmt == "json":
                    typer.echo(
                        json.dumps(
                            {"plan": the_plan.to_json_dict(), "result": result.to_dict()},
                            indent=2,
                            sort_keys=True,
                        )
                    )
                else:
                    applied = sum(1 for o in result.outcomes if o.status == "applied")
                    typer.echo(
                        f"\nApply complete: {applied} applied, "
                        f"{len(result.failures)} failed, {len(result.recovered)} recovered."
                    )
                if result.failures:
                    raise ApplyError([(o.address, o.message) for o in result.failures])
        if wait:
            _wait(
                ws,
                prepared_jobs=[a for a in ws.specs.jobs],
                fmt=fmt,
                timeout=wait_timeout,
            )


def _wait(ws: Workspace, *, prepared_jobs: list[str], fmt: str, timeout: float) -> None:
    from reconciler.observe.progress import failed
    from reconciler.observe.watch import choose_mode, follow_jobs, stop_at_validated
    from reconciler.operations import job_fetcher

    state = ws.backend.read()
    if state is None:
        return
    addresses = {
        f"job.{n}": state.resources[f"job.{n}"].remote_id
        for n in prepared_jobs
        if f"job.{n}" in state.resources
    }
    if not addresses:
        return
    held = [f"job.{n}" for n in prepared_jobs if not ws.specs.jobs[n].start]
    progress = follow_jobs(
        job_fetcher(ws, addresses),
        interval=1.0,
        mode=choose_mode(fmt, sys.stdout),
        timeout=timeout or None,
        until=stop_at_validated(held),
    )
    bad = failed(progress)
    _sync_models_after_wait(ws)
    if bad:
        raise ReconcilerError(
            f"{len(bad)} job(s) did not succeed:\n" + "\n".join(f"  {a}: {r}" for a, r in bad)
        )


def _sync_models_after_wait(ws: Workspace) -> None:
    """Apply fine-tuned model name/description/archived once jobs have succeeded."""
    from reconciler.operations import PlanRequest, plan_workspace

    with ws.backend.lock("apply", 0.0):
        planned = plan_workspace(ws, PlanRequest(estimate=False))
        prepared, state, the_plan = planned.prepared, planned.state, planned.plan
        updates = [c for c in the_plan.changes if c.action is Action.UPDATE]
        if not updates:
            return
        the_plan.changes = updates
        result = Executor(
            ws.client(), ws.backend, state, prepared.desired, hooks=_CliHooks(quiet=False)
        ).apply(the_plan)
        if result.failures:
            raise ApplyError([(o.address, o.message) for o in result.failures])
