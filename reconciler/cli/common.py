"""Shared pieces of the command modules: output formats, error exit, consoles."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from functools import wraps
from typing import Any, TypeVar

import typer
from rich.console import Console

from reconciler.errors import ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])

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


class OutputFormat(StrEnum):
    """Output formats shared by commands."""

    text = "text"
    json = "json"


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``Error: message`` on stderr and return an Exit to raise."""
    stderr.print(f"[bold red]Error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a ReconcilerError into a clean message and exit 1; Ctrl-C into exit 130."""
    try:
        yield
    except ReconcilerError as exc:
        # Print plainly: messages may contain brackets that rich would read as markup.
        print(f"Error: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("Interrupted.", file=sys.stderr)
        raise typer.Exit(130) from None


def handle_errors(func: F) -> F:
    """Decorator form of :func:`reported_errors` for command functions."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with reported_errors():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
