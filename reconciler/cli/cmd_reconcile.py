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

from reconciler.cli.app import app
from reconciler.cli.common import handle_errors
from reconciler.engine.duration import parse_duration
from reconciler.errors import InvalidValueError

if TYPE_CHECKING:
    from reconciler.workspace import Workspace

PATHS_ARG = typer.Argument(None, help="Spec files or directories (default: current directory).")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


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


@app.command()
@handle_errors
def reconcile(
    paths: list[str] | None = PATHS_ARG,
    interval: str = typer.Option(
        "10m", "--interval", help="Time between rounds (e.g. 30s, 10m, 1h)."
    ),
    once: bool = typer.Option(
        False,
        "--once",
        help="Run one round and exit: 0 all fine, 2 something awaits review or drifted, 1 error.",
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
    fmt: str = typer.Option(
        "text", "--format", "-f", help="Output: text, or json (one object per round)."
    ),
    lock_timeout: str = typer.Option(
        "0s", "--lock-timeout", help="How long a round waits for the state lock (e.g. 30s, 5m)."
    ),
    start_timeout: str = typer.Option(
        "10m",
        "--start-timeout",
        help="With --auto-approve: how long to wait for new jobs to be validated before "
        "starting them.",
    ),
    parallelism: int | None = typer.Option(
        None, "--parallelism", min=1, max=64, help="Concurrent remote operations (default 8)."
    ),
) -> None:
    """Start validated jobs and update models in a loop; report what awaits review and drift."""
    from reconciler.cli.cmd_plan import _check_format, _CliHooks
    from reconciler.engine.rounds import count_failed, retry_delay
    from reconciler.reconcile import ReconcileRequest, run_round
    from reconciler.render.reconcile import render_json, render_text

    _check_format(fmt, ("text", "json"))
    seconds = parse_duration(interval)
    if seconds <= 0 and not once:
        raise InvalidValueError(f"--interval {interval}: give a time longer than 0s, e.g. 10m")
    request = ReconcileRequest(
        spec_paths=tuple(paths or ["."]),
        auto_approve=auto_approve,
        prune=prune,
        lock_timeout=parse_duration(lock_timeout),
        start_timeout=parse_duration(start_timeout),
        parallelism=parallelism,
    )
    stop = threading.Event()
    hooks = _CliHooks(quiet=fmt == "json")
    targets: list[str] = []

    def name_target(ws: Workspace) -> None:
        # On the first line, and again whenever the specs point elsewhere.
        if not targets or targets[-1] != ws.target:
            targets.append(ws.target)
            typer.echo(f"Target: {ws.target}", err=fmt == "json")

    failed = 0
    number = 0
    with _stop_on_signals(stop):
        while not stop.is_set():
            number += 1
            result = run_round(number, request, stop=stop, hooks=hooks, opened=name_target)
            failed = count_failed(failed, result)
            delay = None if once or stop.is_set() else retry_delay(seconds, failed)
            render = render_json if fmt == "json" else render_text
            typer.echo(render(result, next_round_in=delay))
            if once:
                raise typer.Exit(result.exit_code)
            if delay is not None:
                stop.wait(delay)
