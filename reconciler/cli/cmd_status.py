"""``reconciler status`` and ``reconciler output``.

``status [PATH...]`` shows every managed object with its sync (from a fresh plan) and health
(from the refreshed remote job) as separate columns, the latest metrics, the W&B link and the
fine-tuned model id; ``--watch`` follows the jobs until they settle. ``status ADDRESS... -p
PATH`` shows the events and checkpoints of jobs, and ``--plot FILE.png|FILE.svg|-`` draws their
loss and accuracy curves (a matrix job's base name selects all its cells). ``output`` prints
job address -> fine-tuned model id for downstream configuration (an address keeps its previous
model while a replacement runs: :mod:`reconciler.observe.outputs`).

Both are read-only: they never write the state or anything remote, and take no lock; both
refuse a state bound to another target (:meth:`~reconciler.workspace.Workspace.read_state`).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from reconciler.cli.common import (
    REPORT_FORMAT,
    SELECTOR,
    TEXT_OR_JSON,
    OutputFormat,
    duration_option,
    handle_errors,
)
from reconciler.cli.consoles import make_console
from reconciler.engine.state_model import State
from reconciler.errors import NotFoundError, ReconcilerError
from reconciler.observe.outputs import job_ids, outputs, outputs_json, render_outputs_text
from reconciler.observe.plot import plot_jobs, terminal_plot
from reconciler.observe.progress import (
    checkpoints_by_step,
    events_newest_first,
    failed,
    format_cost,
    format_duration,
    format_metric,
    format_steps,
    job_progress,
)
from reconciler.observe.status import (
    build_rows,
    provisional_sync,
    render_status_markdown,
    render_status_table,
    status_json,
    status_problems,
    sync_from_plan,
)
from reconciler.observe.watch import DEFAULT_TIMEOUT, choose_mode, follow_jobs, stop_at_validated
from reconciler.workspace import Workspace, open_workspace

DETAIL_FORMAT_VERSION = 1
"""``format_version`` of ``status ADDRESS --format json``."""

commands = typer.Typer()
"""``status`` and ``output``."""

# An argument of `status` is an address when it looks like one and is not an existing path:
# `status job.a -p specs/` must not try to load a directory named "job.a".
_ADDRESS = re.compile(r"^(job|dataset)\.[a-z0-9][a-z0-9-]*(\[[a-z]+\])?$")

ARGS_ARG = typer.Argument(
    None,
    metavar="PATH|ADDRESS",
    help="Spec files or directories (default: current directory), or job ADDRESSes "
    "(e.g. job.dumbledore-v1) to show their events and checkpoints.",
)
PATH_OPT = typer.Option(
    None, "--path", "-p", help="Spec file or directory when ADDRESSes are given; repeatable."
)


def _split_args(args: Sequence[str], paths: Sequence[str]) -> tuple[list[str], list[str]]:
    addresses = [a for a in args if _ADDRESS.match(a) and not os.path.exists(a)]
    spec_paths = [a for a in args if a not in addresses] + list(paths)
    return spec_paths, addresses


def _emit_target(ws: Workspace, fmt: str) -> None:
    # Machine-readable formats keep stdout parseable: the target line goes to stderr.
    typer.echo(ws.headline, err=fmt != "text")


def _console() -> Console:
    return make_console(soft_wrap=False)


def _job_details(ws: Workspace, ids: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """address -> detailed job dict (events, checkpoints), fetched in parallel."""
    if not ids:
        return {}
    client = ws.client()

    def one(item: tuple[str, str]) -> tuple[str, dict[str, Any] | None]:
        address, job_id = item
        try:
            return address, client.get_job(job_id).model_dump(mode="json")
        except NotFoundError:
            # Gone remotely (or another remote than the state's): the row falls back to the
            # state, and the plan reports the drift.
            return address, None

    with ThreadPoolExecutor(max_workers=max(1, min(ws.parallelism, 16))) as pool:
        found = dict(pool.map(one, sorted(ids.items())))
    return {a: j for a, j in found.items() if j is not None}


def _state_jobs(state: State | None) -> dict[str, str]:
    if state is None:
        return {}
    return {a: r.remote_id for a, r in state.resources.items() if r.type == "job"}


def _spec_addresses(ws: Workspace) -> set[str]:
    addresses = {f"job.{name}" for name in ws.specs.jobs}
    for name, loaded in ws.specs.datasets.items():
        addresses.update(f"dataset.{name}[{part}]" for part in loaded.doc.parts)
    return addresses


def _selected(
    ws: Workspace, state: State | None, selector: Sequence[str] | None
) -> set[str] | None:
    """The addresses ``--selector`` keeps (None: no selector, everything)."""
    from reconciler.engine.selection import parse_selectors, select_labelled

    if not selector:
        return None
    labels: dict[str, Mapping[str, str]] = {}
    for address, res in state.resources.items() if state is not None else ():
        recorded = res.attributes.get("labels")
        labels[address] = recorded if isinstance(recorded, Mapping) else {}
    for job in ws.specs.jobs.values():
        labels[job.address] = job.labels
    for name, loaded in ws.specs.datasets.items():
        for part in loaded.doc.parts:
            labels[f"dataset.{name}[{part}]"] = loaded.doc.labels
    return select_labelled(labels, parse_selectors(selector))


def _sync(
    ws: Workspace, state: State | None, jobs: Mapping[str, Mapping[str, Any]]
) -> tuple[dict[str, str], dict[str, dict[str, Any]], str | None]:
    """(address -> sync, file id -> remote file, note). Uses the planner; falls back to a
    state-only classification (with a note saying so) when the data cannot be prepared."""
    from reconciler.operations import PlanRequest, make_plan, prepare

    try:
        prepared = prepare(ws)
    except ReconcilerError as exc:
        first = str(exc).splitlines()[0]
        note = (
            f"sync is approximate (from the state only): the datasets cannot be prepared "
            f"({first}); run 'reconciler validate' for details"
        )
        files = {f.id: f.model_dump(mode="json", by_alias=True) for f in ws.client().list_files()}
        return provisional_sync(state, _spec_addresses(ws), jobs), files, note
    plan, observed = make_plan(ws, prepared, state, PlanRequest(estimate=False))
    return sync_from_plan(plan), observed.files, None


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)


def _expand(ws: Workspace, state: State | None, addresses: Sequence[str]) -> dict[str, str]:
    """Requested addresses -> job ids; a matrix job's base name selects all its cells."""
    known = _state_jobs(state)
    spec_jobs = {f"job.{n}" for n in ws.specs.jobs}
    result: dict[str, str] = {}
    for address in addresses:
        if address in known:
            result[address] = known[address]
            continue
        name = address.removeprefix("job.")
        cells = sorted(
            f"job.{j.name}"
            for j in ws.specs.jobs.values()
            if j.source == name and f"job.{j.name}" != address
        )
        wanted = cells or ([address] if address in spec_jobs else [])
        if wanted:
            created = [c for c in wanted if c in known]
            if not created:
                raise ReconcilerError(
                    f"{address} has no remote job yet: it is in the specs but was never "
                    "applied. Run 'reconciler apply' first."
                )
            result.update({c: known[c] for c in created})
            continue
        if address.startswith("dataset."):
            raise ReconcilerError(
                f"{address} is a dataset: 'status ADDRESS' shows jobs. Run 'reconciler status' "
                "for the table of every object."
            )
        bases = {f"job.{n}" for n, d in ws.specs.job_documents.items() if d.doc.matrix}
        choices = sorted(set(known) | spec_jobs | bases)
        close = difflib.get_close_matches(address, choices, n=1)
        hint = f" Did you mean {close[0]}?" if close else ""
        raise ReconcilerError(
            f"{address} is neither in the state nor in the specs at "
            f"{', '.join(_rel(f) for f in ws.specs.files[:3]) or 'the given paths'}.{hint} "
            "Known job addresses: " + (", ".join(choices) or "none")
        )
    return result


def _watch(
    ws: Workspace, ids: Mapping[str, str], *, fmt: str, interval: float, timeout: float | None
) -> None:
    from reconciler.operations import job_fetcher

    if not ids:
        typer.echo("No jobs to watch: nothing has been applied yet.", err=fmt != "text")
        return
    held = [
        a
        for a in ids
        if (j := ws.specs.jobs.get(a.removeprefix("job."))) and (not j.start or j.paused)
    ]
    progress = follow_jobs(
        job_fetcher(ws, ids),
        interval=interval,
        mode=choose_mode(fmt, sys.stdout),
        timeout=timeout,
        until=stop_at_validated(held),
    )
    bad = failed(progress)
    if bad:
        raise ReconcilerError(
            f"{len(bad)} job(s) did not succeed:\n" + "\n".join(f"  {a}: {r}" for a, r in bad)
        )


def _detail_json(address: str, job: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "address": address,
        "job_id": job.get("id"),
        "progress": job_progress(job).to_dict(),
        "events": events_newest_first(job),
        "checkpoints": list(reversed(checkpoints_by_step(job))),
    }


def _when(seconds: Any) -> str:
    import datetime as dt

    if not isinstance(seconds, int | float):
        return "-"
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _print_detail(console: Console, address: str, job: Mapping[str, Any]) -> None:
    p = job_progress(job)
    console.print(f"[bold]{escape(address)}[/]  job {escape(str(job.get('id')))}")
    health = p.health if not p.failure_reason else f"{p.health}: {p.failure_reason}"
    facts = [
        ("status", f"{p.status} ({health})"),
        ("progress", format_steps(p)),
        ("eta", format_duration(p.eta_seconds)),
        ("cost", format_cost(p)),
        ("fine-tuned model", p.fine_tuned_model or "-"),
        ("W&B", p.wandb_url or "-"),
    ]
    for key, value in facts:
        console.print(f"  {key:<17}{escape(value)}")
    events = Table(title="Events (newest first)", title_justify="left")
    for header in ("TIME (UTC)", "EVENT", "STATUS", "DETAIL"):
        events.add_column(header)
    for event in events_newest_first(job):
        data = event.get("data") if isinstance(event.get("data"), Mapping) else {}
        assert isinstance(data, Mapping)
        detail = ", ".join(f"{k}={v}" for k, v in data.items() if k != "status")
        events.add_row(
            _when(event.get("created_at")),
            escape(str(event.get("name", "-"))),
            escape(str(data.get("status", "-"))),
            escape(detail or "-"),
        )
    console.print(events)
    checkpoints = Table(title="Checkpoints (newest first)", title_justify="left")
    for header in ("STEP", "TIME (UTC)", "TRAIN LOSS", "VALID LOSS", "VALID TOKEN ACC"):
        checkpoints.add_column(header, justify="right")
    for point in reversed(checkpoints_by_step(job)):
        metrics = point.get("metrics") if isinstance(point.get("metrics"), Mapping) else {}
        assert isinstance(metrics, Mapping)
        checkpoints.add_row(
            str(point.get("step_number")),
            _when(point.get("created_at")),
            format_metric(metrics.get("train_loss")),
            format_metric(metrics.get("valid_loss")),
            format_metric(metrics.get("valid_mean_token_accuracy")),
        )
    if not checkpoints.row_count:
        console.print("  no checkpoints yet (metrics come every 10% of training)")
    else:
        console.print(checkpoints)
    console.print()


def _show_jobs(ws: Workspace, ids: Mapping[str, str], fmt: str, plot: str | None) -> None:
    jobs = _job_details(ws, ids)
    missing = [f"{a} ({ids[a]})" for a in ids if a not in jobs]
    if missing:
        raise ReconcilerError(
            f"not found at {ws.target}: {', '.join(missing)}. The state records job(s) the "
            "remote does not have: check the Provider endpoint, or run 'reconciler plan' to "
            "see the drift."
        )
    if plot == "-":
        width = min(_console().width, 120)
        typer.echo(terminal_plot(jobs, width=width, height=20))
        return
    if plot is not None:
        target = plot_jobs(jobs, Path(plot))
        message = f"Wrote the loss and accuracy curves of {len(jobs)} job(s) to {target}"
        typer.echo(message, err=fmt == "json")
    if fmt == "json":
        document = {
            "format_version": DETAIL_FORMAT_VERSION,
            "target": ws.target,
            "jobs": [_detail_json(a, j) for a, j in jobs.items()],
        }
        typer.echo(json.dumps(document, indent=2))
        return
    if plot is None:
        console = _console()
        for address, job in jobs.items():
            _print_detail(console, address, job)


@commands.command()
@handle_errors
def status(
    args: list[str] | None = ARGS_ARG,
    path: list[str] | None = PATH_OPT,
    fmt: OutputFormat = REPORT_FORMAT,
    watch: bool = typer.Option(
        False, "--watch", "-w", help="Follow the jobs until they finish (exit 1 if one fails)."
    ),
    interval: float = duration_option(
        "5s", "--interval", minimum=0.1, help="Time between polls (e.g. 5s, 500ms)."
    ),
    watch_timeout: float = duration_option(
        DEFAULT_TIMEOUT,
        "--timeout",
        help=f"With --watch: give up after this long (e.g. 30m; default {DEFAULT_TIMEOUT}; "
        "0: never).",
    ),
    plot: str | None = typer.Option(
        None,
        "--plot",
        help="With ADDRESSes: draw loss and accuracy curves to FILE.png or FILE.svg, "
        "or '-' to draw them in the terminal.",
    ),
    selector: list[str] | None = SELECTOR,
) -> None:
    """Sync and health of every managed object, or the events and checkpoints of jobs."""
    spec_paths, addresses = _split_args(args or [], path or [])
    if plot is not None and not addresses:
        raise ReconcilerError(
            "--plot needs the job(s) to draw: reconciler status job.NAME --plot loss.png "
            "(with -p PATH when the specs are not in the current directory)"
        )
    timeout = watch_timeout or None
    with open_workspace(spec_paths) as ws:
        _emit_target(ws, fmt)
        state = ws.read_state()
        if addresses:
            ids = _expand(ws, state, addresses)
            if watch:
                _watch(ws, ids, fmt=fmt, interval=interval, timeout=timeout)
            else:
                _show_jobs(ws, ids, fmt, plot)
            return
        chosen = _selected(ws, state, selector)
        if watch:
            wanted = {f"job.{n}" for n in ws.specs.jobs}
            ids = {
                a: i
                for a, i in _state_jobs(state).items()
                if a in wanted and (chosen is None or a in chosen)
            }
            _watch(ws, ids, fmt=fmt, interval=interval, timeout=timeout)
            return
        jobs = _job_details(ws, _state_jobs(state))
        sync, files, note = _sync(ws, state, jobs)
        rows = build_rows(state, jobs, files, sync, files_refreshed=True)
        if chosen is not None:
            rows = [r for r in rows if r.address in chosen]
        if fmt == "json":
            document = status_json(rows, target=ws.target, notes=[note] if note else [])
            typer.echo(json.dumps(document, indent=2))
            return
        if note:
            typer.echo(f"Note: {note}", err=True)
        if fmt == "markdown":
            typer.echo(render_status_markdown(rows))
            return
        if not rows:
            typer.echo("Nothing to show: the specs declare nothing and the state is empty.")
            return
        console = _console()
        console.print(render_status_table(rows))
        for line in status_problems(rows):
            console.print(line, markup=False)


@commands.command()
@handle_errors
def output(
    paths: list[str] | None = typer.Argument(
        None, help="Spec files or directories (default: current directory)."
    ),
    fmt: OutputFormat = TEXT_OR_JSON,
    selector: list[str] | None = SELECTOR,
) -> None:
    """Fine-tuned model id (and job id, status) of every job, for downstream configuration."""
    with open_workspace(paths or []) as ws:
        _emit_target(ws, fmt)
        state = ws.read_state()
        chosen = _selected(ws, state, selector)
        # The list form carries status and fine_tuned_model: one paginated call suffices.
        # Previous jobs too: an address keeps its last model while a replacement runs.
        wanted = job_ids(state)
        jobs = (
            {j.id: j.model_dump(mode="json") for j in ws.client().list_jobs() if j.id in wanted}
            if wanted
            else {}
        )
        values = outputs(state, jobs)
        if chosen is not None:
            values = {a: v for a, v in values.items() if a in chosen}
        if fmt == "json":
            typer.echo(json.dumps(outputs_json(values), indent=2))
        elif values:
            typer.echo(render_outputs_text(values))
        else:
            typer.echo("No jobs in the state yet: run 'reconciler apply' first.")
