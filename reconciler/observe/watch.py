"""Follow jobs until they settle: ``apply --wait`` and ``status --watch``.

:func:`follow_jobs` polls a caller-supplied ``fetch()`` (address -> job dict) and renders each
poll in one of three ways:

* ``rich``: a live table redrawn in place (status, progress bar, step, ETA, losses,
  accuracy), for a terminal;
* ``plain``: one line per job each time something about it changes, for CI logs (no control
  characters, no redraws);
* ``json``: one JSON object per change (``{"format_version": 1, "type": "job", ...}``) and a
  final ``{"type": "summary", ...}`` line, for machines.

The clock, the sleep and the stop predicate are parameters so tests drive it with a scripted
fetch sequence and no real waiting.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, TextIO

from reconciler.client.types import JobStatus
from reconciler.errors import ApiError, ReconcilerError
from reconciler.observe.progress import (
    JobProgress,
    failed,
    format_cost,
    format_duration,
    format_metric,
    format_steps,
    job_progress,
)

WATCH_FORMAT_VERSION = 1
"""Version of the JSON lines written in ``json`` mode."""

DEFAULT_TIMEOUT = "24h"
"""How long ``status --watch`` and ``apply --wait`` follow jobs unless told otherwise: longer
than a fine-tuning job takes, short enough that a forgotten watch ends (``0`` waits forever,
only when asked for)."""

MAX_FAILED_POLLS = 5
MAX_OUTAGE_SECONDS = 120.0
"""A watch gives up when this many polls in a row failed (each one already retried by the
client) and the remote has not answered for this long: a dead endpoint ends the watch with
an error instead of being retried forever, while a short outage is ridden out."""

Mode = Literal["rich", "plain", "json"]
Fetch = Callable[[], Mapping[str, Mapping[str, Any]]]
StopPredicate = Callable[[str, JobProgress], bool]


def terminal(address: str, progress: JobProgress) -> bool:
    """Default stop predicate: the job reached a terminal status."""
    return progress.terminal


def stop_at_validated(not_started: Collection[str]) -> StopPredicate:
    """A stop predicate for jobs whose spec holds them: not to start, or to stay paused.

    Jobs in ``not_started`` are settled once VALIDATED or PAUSED (they will stay there);
    every other job is settled when terminal.
    """
    held = frozenset(not_started)

    def predicate(address: str, progress: JobProgress) -> bool:
        if address in held and progress.job_status in (JobStatus.VALIDATED, JobStatus.PAUSED):
            return True
        return progress.terminal

    return predicate


def choose_mode(output_format: str, out: TextIO) -> Mode:
    """``json`` for ``--format json``; ``rich`` on a terminal; ``plain`` otherwise (CI logs)."""
    if output_format == "json":
        return "json"
    isatty = getattr(out, "isatty", None)
    return "rich" if callable(isatty) and isatty() else "plain"


def _change_key(p: JobProgress) -> tuple[Any, ...]:
    # The ETA changes on every poll; a plain log line is written only when the job does.
    return (
        p.status,
        p.step,
        p.train_loss,
        p.valid_loss,
        p.valid_mean_token_accuracy,
        p.fine_tuned_model,
        p.failure_reason,
        p.cost,
    )


def plain_line(address: str, p: JobProgress) -> str:
    """One CI-log line describing a job, e.g.
    ``job.a RUNNING step 30/100 (30%) eta 1m10s train_loss 0.8123 valid_loss 0.8301``."""
    parts = [address, p.status]
    if p.step is not None or p.percent is not None:
        parts.append(f"step {format_steps(p)}")
    if p.eta_seconds is not None:
        parts.append(f"eta {format_duration(p.eta_seconds)}")
    for name in ("train_loss", "valid_loss", "valid_mean_token_accuracy"):
        value = getattr(p, name)
        if value is not None:
            parts.append(f"{name} {format_metric(value)}")
    status = p.job_status
    if (
        p.cost is not None
        and status is not None
        and (status.awaits_start or status is JobStatus.STARTED)
    ):
        parts.append(f"cost {format_cost(p)}")
    if p.fine_tuned_model:
        parts.append(f"model {p.fine_tuned_model}")
    if p.failure_reason and p.failed:
        parts.append(f"reason: {p.failure_reason}")
    return " ".join(parts)


def progress_table(progress: Mapping[str, JobProgress], title: str | None = None) -> Any:
    """A rich Table of jobs with a progress bar column (used by the live view).

    Failure reasons are not in the table (they are long and would squeeze every other
    column); the summary after the live view names them.
    """
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, expand=False)
    width = max((len(a) for a in progress), default=3)
    table.add_column("JOB", no_wrap=True, min_width=min(width, 60))
    table.add_column("STATUS", no_wrap=True)
    for header in ("PROGRESS", "STEP", "ETA", "TRAIN", "VALID", "ACC"):
        table.add_column(header, no_wrap=True, justify="left" if header == "PROGRESS" else "right")
    style = {
        "succeeded": "green",
        "failed": "red",
        "cancelled": "yellow",
        "running": "cyan",
    }
    for address, p in sorted(progress.items()):
        # Text objects, not markup strings: a status or address is never read as markup.
        table.add_row(
            Text(address),
            Text(p.status, style=style.get(p.health, "")),
            ProgressBar(total=100.0, completed=p.percent or 0.0, width=20),
            Text(format_steps(p)),
            Text(format_duration(p.eta_seconds)),
            Text(format_metric(p.train_loss)),
            Text(format_metric(p.valid_loss)),
            Text(format_metric(p.valid_mean_token_accuracy)),
        )
    return table


class _Renderer:
    """Writes one poll's progress in the chosen mode; remembers what it already said."""

    def __init__(self, mode: Mode, out: TextIO) -> None:
        self.mode = mode
        self.out = out
        self._last: dict[str, tuple[Any, ...]] = {}
        self._live: Any = None

    def __enter__(self) -> _Renderer:
        if self.mode == "rich":
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.out, highlight=False)
            self._live = Live(console=console, refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def notice(self, message: str) -> None:
        """A transient problem (e.g. a retryable API error while polling)."""
        if self.mode == "json":
            self._json({"type": "notice", "message": message})
        elif self._live is not None:
            self._live.console.print(f"[yellow]{message}[/]", markup=True)
        else:
            self.out.write(message + "\n")
            self.out.flush()

    def _json(self, data: dict[str, Any]) -> None:
        payload = {"format_version": WATCH_FORMAT_VERSION, **data}
        self.out.write(json.dumps(payload, sort_keys=False) + "\n")
        self.out.flush()

    def poll(self, progress: Mapping[str, JobProgress]) -> None:
        if self.mode == "rich":
            self._live.update(progress_table(progress), refresh=True)
            return
        for address, p in sorted(progress.items()):
            key = _change_key(p)
            if self._last.get(address) == key:
                continue
            self._last[address] = key
            if self.mode == "json":
                self._json({"type": "job", "address": address, **p.to_dict()})
            else:
                self.out.write(plain_line(address, p) + "\n")
        self.out.flush()

    def summary(self, progress: Mapping[str, JobProgress]) -> None:
        failures = failed(progress)
        if self.mode == "json":
            self._json(
                {
                    "type": "summary",
                    "jobs": {a: p.to_dict() for a, p in sorted(progress.items())},
                    "failed": [{"address": a, "reason": r} for a, r in failures],
                }
            )
            return
        done = sum(1 for p in progress.values() if p.job_status is JobStatus.SUCCESS)
        line = f"{done} of {len(progress)} job(s) succeeded"
        held = sum(1 for p in progress.values() if p.job_status is JobStatus.VALIDATED)
        if held:
            line += f", {held} validated and not started"
        if failures:
            line += f", {len(failures)} ended without a model: " + "; ".join(
                f"{a} ({r})" for a, r in failures
            )
        isatty = getattr(self.out, "isatty", None)
        if self.mode == "rich" and not (callable(isatty) and isatty()):
            # Off a terminal, the live view's last frame does not end its line.
            line = "\n" + line
        self.out.write(line + "\n")
        self.out.flush()


def follow_jobs(
    fetch: Fetch,
    *,
    interval: float,
    mode: Mode,
    out: TextIO | None = None,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    until: StopPredicate = terminal,
    clock: Callable[[], float] = time.monotonic,
    now: Callable[[], float] = time.time,
    max_failed_polls: int = MAX_FAILED_POLLS,
    max_outage: float = MAX_OUTAGE_SECONDS,
) -> dict[str, JobProgress]:
    """Poll ``fetch()`` until every job is settled and return the final progress.

    Args:
        fetch: returns address -> API-shaped job dict; called once per poll.
        interval: seconds between polls.
        mode: ``rich``, ``plain`` or ``json`` (see :func:`choose_mode`).
        out: where to write (default: stdout).
        timeout: give up after this many seconds (``None``: wait as long as it takes; the
            commands default to :data:`DEFAULT_TIMEOUT`).
        sleep, clock, now: injectable for tests (``now`` is unix time for ETAs).
        until: ``until(address, progress)`` is True when that job needs no more waiting;
            default :func:`terminal`; see :func:`stop_at_validated`.
        max_failed_polls, max_outage: give up once this many polls in a row failed and no
            poll succeeded for this many seconds (see :data:`MAX_FAILED_POLLS`).

    A retryable API error while polling (5xx, 429, dropped connection) is reported as a notice
    and the poll is retried, within ``max_failed_polls``/``max_outage``; any other error
    propagates. The caller decides the exit code, typically from
    :func:`~reconciler.observe.progress.failed`.

    Raises:
        ReconcilerError: ``timeout`` passed while some jobs were still not settled, or the
            remote stopped answering (the message says which, and that the jobs keep running
            remotely).
    """
    stream = out if out is not None else sys.stdout
    started = answered = clock()
    failures = 0
    progress: dict[str, JobProgress] = {}
    with _Renderer(mode, stream) as renderer:
        while True:
            try:
                jobs = fetch()
            except ApiError as exc:
                if not exc.retryable:
                    raise
                failures += 1
                silent = clock() - answered
                if failures >= max_failed_polls and silent >= max_outage:
                    raise ReconcilerError(
                        f"gave up watching: the remote has not answered for "
                        f"{format_duration(silent)} ({failures} polls in a row failed; the "
                        f"last: {exc}). The jobs keep running remotely; once the remote "
                        "answers again, follow them with 'reconciler status --watch'."
                    ) from exc
                renderer.notice(f"polling failed, retrying in {interval:g}s: {exc}")
                jobs = None
            if jobs is not None:
                failures, answered = 0, clock()
                stamp = now()
                progress = {a: job_progress(j, now=stamp) for a, j in jobs.items()}
                renderer.poll(progress)
                if all(until(a, p) for a, p in progress.items()):
                    break
            if timeout is not None and clock() - started >= timeout:
                pending = [
                    f"{a} ({p.status}, {format_steps(p)})"
                    for a, p in sorted(progress.items())
                    if not until(a, p)
                ]
                raise ReconcilerError(
                    f"gave up waiting after {timeout:g}s; still not finished: "
                    + (", ".join(pending) or "no answer from the remote")
                    + ". The jobs keep running remotely; follow them with "
                    "'reconciler status --watch' or raise the timeout."
                )
            sleep(interval)
    # After the live view closed, so the summary comes below the final table.
    renderer.summary(progress)
    return progress
