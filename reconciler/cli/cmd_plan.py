"""``reconciler plan`` and ``reconciler apply``.

Both print the target on their first line. ``plan`` never writes remotely or to the state
(its cost estimates are computed locally; ``--remote-estimate`` alone asks the remote, with a
dry run) and exits 1 when the plan has errors (a budget exceeded, a possible duplicate),
which ``apply`` refuses;
``apply`` parses its options and hands over to
:func:`~reconciler.operations.apply_workspace`, which holds the state lock from refresh to
the last write, has the plan shown and confirmed (unless ``--yes``) by this module, then
executes it exactly once. A saved plan (``plan --out``) is an approval: apply makes the plan
again and applies it only when it does what the saved one says, else refuses and names the
differences. ``plan --detailed-exitcode`` exits 2 when the remote differs from the specs in
any way: changes, drift, or objects no longer in the specs. This module only renders.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from reconciler.operations import PlanRequest
    from reconciler.workspace import Workspace

from reconciler.cli.common import (
    LOCK_TIMEOUT,
    PARALLELISM,
    REPORT_FORMAT,
    SELECTOR,
    SPEC_PATHS,
    TEXT_OR_JSON,
    OutputFormat,
    duration_option,
    handle_errors,
)
from reconciler.cli.progress import ProgressHooks
from reconciler.engine.plan import Plan
from reconciler.errors import ApplyError, ReconcilerError
from reconciler.observe.watch import DEFAULT_TIMEOUT as WAIT_TIMEOUT
from reconciler.render.plan import render_json, render_markdown, render_text

commands = typer.Typer()
"""``plan`` and ``apply``."""

TARGET_OPT = typer.Option(
    None,
    "--target",
    help="Only this address or glob (and what it depends on); repeatable. "
    "One that matches nothing is an error.",
)
REPLACE_OPT = typer.Option(
    None, "--replace", help="Create this job anew even if unchanged; repeatable."
)
PRUNE_OPT = typer.Option(
    False, "--prune", help="Act on managed objects no longer in the specs (cancel/delete, forget)."
)
MAX_COST_OPT = typer.Option(
    None,
    "--max-cost",
    min=0.0,
    help="Cap on the estimated cost (USD) of the jobs the plan creates or starts; over it the "
    "plan has an error and apply refuses it.",
)
EXACT_TOKENS_OPT = typer.Option(
    False,
    "--exact-tokens",
    help="Count tokens with Mistral's tokenizer for the cost estimates (the 'tokens' extra) "
    "instead of estimating them from the data's size.",
)
REBIND_OPT = typer.Option(
    False,
    "--rebind",
    help="The workspace moved to another target on purpose: use the state bound to the old "
    "one (apply records the new target).",
)


def _emit_target(ws: Workspace, fmt: str) -> None:
    typer.echo(ws.headline, err=fmt != "text")


class PlanningOptions(BaseModel):
    """The planning options ``plan`` and ``apply`` both declare, under the same names, read
    from a command's parsed parameters (``ctx.params``; the command's other parameters are
    ignored). Validated, so a renamed or retyped option fails here, not as a wrong plan.

    Attributes:
        target, selector, replace, prune, max_cost, exact_tokens, rebind: as given on the
            command line (``--target`` ... ``--rebind``).
        remote_estimate: ``plan --remote-estimate`` (``apply`` has no such option).
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    target: list[str] | None
    selector: list[str] | None
    replace: list[str] | None
    prune: bool
    max_cost: float | None
    exact_tokens: bool
    rebind: bool
    remote_estimate: bool = False

    def request(self, spec_paths: tuple[str, ...]) -> PlanRequest:
        """What to plan, for the engine."""
        from reconciler.engine.selection import parse_selectors
        from reconciler.operations import PlanRequest

        return PlanRequest(
            spec_paths=spec_paths,
            targets=tuple(self.target or ()),
            selectors=parse_selectors(self.selector or ()),
            replace=tuple(self.replace or ()),
            prune=self.prune,
            remote_estimate=self.remote_estimate,
            max_cost=self.max_cost,
            exact_tokens=self.exact_tokens,
            rebind=self.rebind,
        )


def _request(spec_paths: tuple[str, ...], params: Mapping[str, Any]) -> PlanRequest:
    """The planning request of ``plan`` or ``apply`` from its parsed parameters."""
    return PlanningOptions.model_validate(params).request(spec_paths)


def _render(plan: Plan, fmt: str) -> str:
    if fmt == "json":
        return render_json(plan)
    if fmt == "markdown":
        return render_markdown(plan)
    return render_text(plan)


@commands.command()
@handle_errors
def plan(
    ctx: typer.Context,
    paths: list[str] | None = SPEC_PATHS,
    out: Path | None = typer.Option(None, "--out", "-o", help="Save the plan to apply it later."),
    fmt: OutputFormat = REPORT_FORMAT,
    detailed_exitcode: bool = typer.Option(
        False,
        "--detailed-exitcode",
        help="Exit 0: no changes, 1: error, 2: changes present, or drift, or objects no "
        "longer in the specs.",
    ),
    # The planning options (see PlanningOptions) reach the planner through ctx.params.
    target: list[str] | None = TARGET_OPT,
    selector: list[str] | None = SELECTOR,
    replace: list[str] | None = REPLACE_OPT,
    prune: bool = PRUNE_OPT,
    max_cost: float | None = MAX_COST_OPT,
    exact_tokens: bool = EXACT_TOKENS_OPT,
    remote_estimate: bool = typer.Option(
        False,
        "--remote-estimate",
        help="Also ask the remote for its own estimate of new jobs whose files it has (a "
        "dry-run create; should it create a job instead, the job is cancelled and plan fails).",
    ),
    estimate: bool = typer.Option(
        True,
        "--estimate/--no-estimate",
        hidden=True,
        help="Ignored: costs are estimated locally, sending nothing.",
    ),
    rebind: bool = REBIND_OPT,
) -> None:
    """Show what apply would change: refreshes the remote, never writes anything.

    Exits 1 when the plan has errors: a job over its budget or the plan over --max-cost or
    the Provider's budget (apply refuses the plan), or a change apply refuses (a possible
    duplicate of a remote job).
    """
    from reconciler.operations import plan_workspace
    from reconciler.workspace import open_workspace

    spec_paths = tuple(paths or ["."])
    with open_workspace(spec_paths) as ws:
        _emit_target(ws, fmt)
        if not estimate:
            typer.echo(
                "Note: --no-estimate is no longer needed: costs are estimated locally and "
                "plan sends nothing to the remote.",
                err=True,
            )
        planned = plan_workspace(ws, _request(spec_paths, ctx.params))
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
    errors = the_plan.all_errors
    if errors:
        refused = "it" if the_plan.errors else "those changes"
        raise ReconcilerError(
            f"the plan has {len(errors)} error(s), listed first; apply would refuse {refused}"
        )
    if detailed_exitcode and the_plan.differs:
        raise typer.Exit(2)


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


def _confirm(plan: Plan) -> bool:
    """Ask on the terminal whether to apply the plan just shown."""
    if not sys.stdin.isatty():
        raise ReconcilerError(
            "apply needs confirmation, but there is no terminal to ask on: pass --yes "
            "(after reviewing 'reconciler plan') to apply without asking"
        )
    answer = typer.prompt("Do you want to perform these actions? Only 'yes' will be accepted")
    return str(answer).strip() == "yes"


@commands.command()
@handle_errors
def apply(
    ctx: typer.Context,
    paths: list[str] | None = typer.Argument(
        None, help="Spec files or directories (default: current directory), or one saved plan file."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    fmt: OutputFormat = TEXT_OR_JSON,
    parallelism: int | None = PARALLELISM,
    # The planning options (see PlanningOptions) reach the planner through ctx.params.
    target: list[str] | None = TARGET_OPT,
    selector: list[str] | None = SELECTOR,
    replace: list[str] | None = REPLACE_OPT,
    prune: bool = PRUNE_OPT,
    wait: bool = typer.Option(
        False, "--wait", help="Follow jobs until they finish, with progress and metrics."
    ),
    wait_timeout: float = duration_option(
        WAIT_TIMEOUT,
        "--wait-timeout",
        help=f"Give up waiting after this long (default {WAIT_TIMEOUT}; 0: never).",
    ),
    lock_timeout: float = LOCK_TIMEOUT,
    max_cost: float | None = MAX_COST_OPT,
    exact_tokens: bool = EXACT_TOKENS_OPT,
    allow_duplicates: bool = typer.Option(
        False, "--allow-duplicates", help="Create jobs the plan flags as possible duplicates."
    ),
    start_timeout: float = duration_option(
        "10m",
        "--start-timeout",
        help="How long to wait for new jobs to be validated before starting them.",
    ),
    rebind: bool = REBIND_OPT,
) -> None:
    """Make the remote match the specs: upload files, create and start jobs, exactly once."""
    from reconciler.operations import ApplyRequest, apply_workspace
    from reconciler.workspace import open_workspace

    given = list(paths or ["."])
    saved = Plan.load(Path(given[0])) if _is_plan_file(given) else None
    spec_paths = tuple(saved.spec_paths) if saved is not None else tuple(given)
    request = ApplyRequest(
        plan=_request(spec_paths, ctx.params),
        saved=saved,
        lock_timeout=lock_timeout,
        allow_duplicates=allow_duplicates,
        start_timeout=start_timeout,
    )
    with open_workspace(spec_paths, parallelism=parallelism) as ws:
        _emit_target(ws, fmt)
        applied = apply_workspace(
            ws,
            request,
            show=(lambda p: typer.echo(render_text(p))) if fmt == "text" else None,
            confirm=None if yes else _confirm,
            hooks=ProgressHooks(quiet=fmt == "json"),
        )
        result = applied.result
        if fmt == "json":
            typer.echo(
                json.dumps(
                    {
                        "plan": applied.plan.to_json_dict(),
                        "result": result.to_dict() if result is not None else None,
                    },
                    indent=2,
                    sort_keys=result is not None,
                )
            )
        elif result is not None:
            typer.echo(
                f"\nApply complete: {result.applied} applied, "
                f"{len(result.failures)} failed, {len(result.recovered)} recovered."
            )
        if result is not None and result.failures:
            raise ApplyError([(o.address, o.message) for o in result.failures])
        if wait:
            _wait(ws, fmt=fmt, timeout=wait_timeout)


WAIT_POLL_SECONDS = 1.0
"""Seconds between the status polls of ``apply --wait`` (read at each run, so that tests running
whole commands against sandboxes at many times real speed can poll faster)."""


def _wait(ws: Workspace, *, fmt: str, timeout: float) -> None:
    from reconciler.observe.progress import failed
    from reconciler.observe.watch import choose_mode, follow_jobs, stop_at_validated
    from reconciler.operations import job_fetcher, sync_models

    state = ws.backend.read()
    if state is None:
        return
    jobs = [j for j in ws.specs.jobs.values() if j.address in state.resources]
    if not jobs:
        return
    progress = follow_jobs(
        job_fetcher(ws, {j.address: state.resources[j.address].remote_id for j in jobs}),
        interval=WAIT_POLL_SECONDS,
        mode=choose_mode(fmt, sys.stdout),
        timeout=timeout or None,
        until=stop_at_validated([j.address for j in jobs if not j.start or j.paused]),
    )
    bad = failed(progress)
    result = sync_models(ws, hooks=ProgressHooks(quiet=False))
    if result is not None and result.failures:
        raise ApplyError([(o.address, o.message) for o in result.failures])
    if bad:
        raise ReconcilerError(
            f"{len(bad)} job(s) did not succeed:\n" + "\n".join(f"  {a}: {r}" for a, r in bad)
        )
