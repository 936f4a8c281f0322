"""``reconciler reconcile``: plan and apply the changes that need no review, in a loop.

Each round refreshes and plans without the state lock; only when there is something it may do
does it take the lock, plan again and apply. It never creates, replaces or deletes anything
unless ``--auto-approve`` is given: those changes are reported as awaiting review, with drift,
every round. This module loops, renders and handles signals; each round is
:func:`reconciler.reconcile.run_round`. SIGTERM and SIGINT stop it cleanly: while it waits
between rounds it exits at once; while a round applies, the operations in flight finish and
are recorded, the remaining stages are skipped, the lock is released, then it exits 0. A second
signal stops at once (exit 130), as a crash would: the next run recovers the interrupted
creates from their intents.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING

import typer

from reconciler.cli.common import (
    LOCK_TIMEOUT,
    PARALLELISM,
    SPEC_PATHS,
    OutputFormat,
    duration_option,
    format_option,
    handle_errors,
)

if TYPE_CHECKING:
    from reconciler.workspace import Workspace

commands = typer.Typer()
"""``reconcile``."""

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
MIN_INTERVAL = 1.0
"""The shortest ``--interval``, in seconds: rounds back to back would only load the remote."""


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT set ``stop``; a second one raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be installed from the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@commands.command()
@handle_errors
def reconcile(
    paths: list[str] | None = SPEC_PATHS,
    interval: float = duration_option(
        "10m",
        "--interval",
        minimum=MIN_INTERVAL,
        help="Time between rounds (e.g. 30s, 10m, 1h; at least 1s).",
    ),
    once: bool = typer.Option(
        False,
        "--once",
        help="Run one round and exit: 0 all fine, 2 something awaits review, drifted or is "
        "no longer in the specs, 1 error.",
    ),
    auto_approve: bool = typer.Option(
        False,
        "--auto-approve",
        help="Apply the whole plan each round (creates, replacements, deletes), as 'apply "
        "--yes' would. Without it only validated jobs are started and models updated.",
    ),
    prune: bool = typer.Option(
        False,
        "--prune",
        help="Plan the removal of objects no longer in the specs (applied only with "
        "--auto-approve).",
    ),
    fmt: OutputFormat = format_option(
        OutputFormat.text, OutputFormat.json, help="Output: text, or json (one object per round)."
    ),
    lock_timeout: float = LOCK_TIMEOUT,
    start_timeout: float = duration_option(
        "10m",
        "--start-timeout",
        help="With --auto-approve: how long to wait for new jobs to be validated before "
        "starting them.",
    ),
    parallelism: int | None = PARALLELISM,
) -> None:
    """Start validated jobs and update models in a loop; report what awaits review and drift."""
    from reconciler.cli.progress import ProgressHooks
    from reconciler.engine.rounds import count_failed, retry_delay
    from reconciler.reconcile import ReconcileRequest, run_round
    from reconciler.render.reconcile import render_json, render_text

    request = ReconcileRequest(
        spec_paths=tuple(paths or ["."]),
        auto_approve=auto_approve,
        prune=prune,
        lock_timeout=lock_timeout,
        start_timeout=start_timeout,
        parallelism=parallelism,
    )
    stop = threading.Event()
    hooks = ProgressHooks(quiet=fmt == OutputFormat.json)
    render = render_json if fmt == OutputFormat.json else render_text
    targets: list[str] = []

    def name_target(ws: Workspace) -> None:
        # On the first line, and again whenever the specs point elsewhere.
        if not targets or targets[-1] != ws.target:
            targets.append(ws.target)
            typer.echo(f"Target: {ws.target}", err=fmt == OutputFormat.json)

    failed = 0
    number = 0
    with _stop_on_signals(stop):
        while not stop.is_set():
            number += 1
            result = run_round(number, request, stop=stop, hooks=hooks, opened=name_target)
            failed = count_failed(failed, result)
            delay = None if once or stop.is_set() else retry_delay(interval, failed)
            typer.echo(render(result, next_round_in=delay))
            if once:
                raise typer.Exit(result.exit_code)
            if delay is not None:
                stop.wait(delay)
