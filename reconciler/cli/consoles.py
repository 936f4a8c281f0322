"""rich consoles for the commands that print tables or styled text, and :func:`fail`.

Apart from :mod:`reconciler.cli.common` because importing rich costs start-up time that
commands printing plain text (``validate``, ``plan``) do not need to pay.
"""

from __future__ import annotations

import os
import sys

import typer
from rich.console import Console

PIPE_WIDTH = 220
"""Width of tables when output is not a terminal (CI logs, files): wide, not rich's 80."""

MAX_COLUMNS = 10_000
"""Widest ``COLUMNS`` honoured; a rule or panel is drawn across the whole width."""


def columns_from_environment() -> int | None:
    """``COLUMNS`` as a width, or None when it is unset or not a width (1 to
    :data:`MAX_COLUMNS`).

    A bad value is ignored rather than refused: ``COLUMNS`` belongs to the terminal, not to
    reconciler, and rich would otherwise take ``0`` at its word and print every table as
    nothing at all.
    """
    raw = os.environ.get("COLUMNS", "").strip()
    if not raw.isdigit() or not 0 < int(raw) <= MAX_COLUMNS:
        return None
    return int(raw)


def make_console(*, stderr: bool = False, soft_wrap: bool = True) -> Console:
    """A console that is as wide as the terminal, or :data:`PIPE_WIDTH` when piped.

    A valid ``COLUMNS`` in the environment still wins, as everywhere in rich.
    """
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = columns_from_environment()
    if width is None and piped:
        width = PIPE_WIDTH
    elif width is None and "COLUMNS" in os.environ:
        # A terminal, and a COLUMNS rich would misread: ask the terminal itself.
        try:
            width = os.get_terminal_size(stream.fileno()).columns
        except (AttributeError, OSError, ValueError):
            width = 80
    return Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap, width=width)


stdout = make_console()
stderr = make_console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``Error: message`` on stderr and return an Exit to raise."""
    stderr.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)
