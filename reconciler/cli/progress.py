"""Plain progress lines of the commands that apply changes (``apply``, ``reconcile``).

:class:`ProgressHooks` is the executor's :class:`~reconciler.engine.outcome.ApplyHooks` for a
terminal or a log: one line when a change begins, a note, or an outcome; large uploads every
quarter. Kept free of rich, like :mod:`reconciler.cli.common`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import typer

from reconciler.engine.outcome import OutcomeStatus

if TYPE_CHECKING:
    from reconciler.engine.outcome import Outcome
    from reconciler.engine.plan import Change

LARGE_UPLOAD = 8 * 1024 * 1024
"""Uploads of at least this many bytes report their progress (every 25%)."""


class ProgressHooks:
    """Progress lines on stdout, one per event (none when ``quiet``, e.g. with --format json).

    Thread-safe: the executor calls it from its worker threads.
    """

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
        """A change starts."""
        self._started[change.address] = time.monotonic()
        self._say(f"{change.address}: {change.action.value}...")

    def upload_progress(self, address: str, sent: int, total: int) -> None:
        """Bytes of an upload sent so far (a line per quarter of a large file)."""
        if total < LARGE_UPLOAD:
            return
        pct = int(100 * sent / total) if total else 100
        step = pct // 25 * 25
        if step > self._last_pct.get(address, -1):
            self._last_pct[address] = step
            self._say(f"{address}: uploaded {sent / 1e6:.1f} of {total / 1e6:.1f} MB ({pct}%)")

    def note(self, address: str, message: str) -> None:
        """Something worth saying about an address while it is worked on."""
        self._say(f"{address}: {message}")

    def done(self, outcome: Outcome) -> None:
        """A change ended: its outcome and how long it took."""
        took = time.monotonic() - self._started.get(outcome.address, time.monotonic())
        mark = {
            OutcomeStatus.APPLIED: "done",
            OutcomeStatus.SKIPPED: "done",
            OutcomeStatus.FAILED: "FAILED",
        }.get(outcome.status, outcome.status)
        self._say(f"{outcome.address}: {mark} — {outcome.message} [{took:.1f}s]")
