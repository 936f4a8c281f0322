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


def make_console(*, stderr: bool = False, soft_wrap: bool = True) -> Console:
    """A console that is as wide as the terminal, or :data:`PIPE_WIDTH` when piped.

    ``COLUMNS`` in the environment still wins, as everywhere in rich.
    """
    stream = sys.stderr if stderr else sys.stdout
    piped = not (hasattr(stream, "isatty") and stream.isatty())
    width = PIPE_WIDTH if piped and not os.environ.get("COLUMNS") else None
    return Console(stderr=stderr, highlight=False, soft_wrap=soft_wrap, width=width)


stdout = make_console()
stderr = make_console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``Error: message`` on stderr and return an Exit to raise."""
    stderr.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)
