"""Shared pieces of the command modules: the ``--format`` and duration option types, errors.

Every command that prints in several formats declares its ``--format`` with
:func:`format_option`, naming the formats it allows; every option that takes a length of time
(``--lock-timeout``, ``--wait-timeout``, ``--interval``...) is a :func:`duration_option`. So
values are checked while the command line is parsed, and a bad one gets the same usage error
(exit 2) from every command.

Kept free of rich: consoles live in :mod:`reconciler.cli.consoles`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import wraps
from typing import Any, TypeVar

import typer

from reconciler.engine.duration import format_duration, parse_duration
from reconciler.errors import ReconcilerError

F = TypeVar("F", bound=Callable[..., Any])


class OutputFormat(StrEnum):
    """Every output format a command may offer; each command allows some of them."""

    text = "text"
    json = "json"
    markdown = "markdown"
    github = "github"


@dataclass(frozen=True)
class FormatParser:
    """Parses one command's ``--format``: one of ``choices``, else a usage error.

    Attributes:
        choices: the formats the command allows; the first is the default.
    """

    choices: tuple[OutputFormat, ...]

    def __call__(self, value: str) -> OutputFormat:
        if value in self.choices:
            return OutputFormat(value)
        allowed = ", ".join(repr(c.value) for c in self.choices)
        raise typer.BadParameter(f"{value!r} is not one of {allowed}.")

    def complete(self, incomplete: str) -> list[str]:
        """Shell completion of the value."""
        return [c.value for c in self.choices if c.value.startswith(incomplete)]


def format_option(*choices: OutputFormat, help: str) -> Any:
    """The ``--format``/``-f`` option of a command that prints in ``choices`` (default: the
    first); its value is an :class:`OutputFormat`."""
    parser = FormatParser(choices)
    return typer.Option(
        choices[0].value,
        "--format",
        "-f",
        parser=parser,
        autocompletion=parser.complete,
        metavar="[" + "|".join(c.value for c in choices) + "]",
        help=help,
    )


@dataclass(frozen=True)
class DurationParser:
    """Parses a duration option (``30s``, ``5m``, ``1h30m``, ``90``) into seconds.

    Attributes:
        minimum: the shortest duration accepted, in seconds.
    """

    minimum: float = 0.0

    def __call__(self, value: str) -> float:
        try:
            seconds = parse_duration(value)
        except ValueError as exc:  # parse_duration's message shows valid examples
            raise typer.BadParameter(str(exc)) from None
        if seconds < self.minimum:
            raise typer.BadParameter(
                f"invalid duration {value!r}: it must be at least {format_duration(self.minimum)}"
            )
        return seconds


def duration_option(default: str, *param_decls: str, help: str, minimum: float = 0.0) -> Any:
    """An option taking a duration (see :mod:`reconciler.engine.duration`); its value is in
    seconds (a float). ``default`` is written as a user would (``"10m"``, ``"0"``)."""
    return typer.Option(
        default, *param_decls, parser=DurationParser(minimum), metavar="DURATION", help=help
    )


SPEC_PATHS = typer.Argument(None, help="Spec files or directories (default: current directory).")
"""The spec paths argument of the commands that plan (``plan``, ``reconcile``, ``gc``)."""

REPORT_FORMAT = format_option(
    OutputFormat.text,
    OutputFormat.json,
    OutputFormat.markdown,
    help="Output: text, json or markdown.",
)
"""``--format`` of the commands that print a report for people and for CI (``plan``,
``status``)."""

TEXT_OR_JSON = format_option(OutputFormat.text, OutputFormat.json, help="Output: text or json.")
"""``--format`` of the commands that print for people or for scripts (``apply``, ``output``,
``gc``, ``state``)."""

SELECTOR = typer.Option(
    None,
    "--selector",
    "-l",
    help="Only objects whose document has this label, as key=value; repeatable (all must match).",
)
"""``--selector`` of the commands that can narrow what they show or do (``plan``, ``apply``,
``status``)."""

PARALLELISM = typer.Option(
    None, "--parallelism", min=1, max=64, help="Concurrent remote operations (default 8)."
)
"""``--parallelism`` of the commands that apply (``apply``, ``reconcile``)."""

LOCK_TIMEOUT = duration_option(
    "0s",
    "--lock-timeout",
    help="How long to wait for the state lock (e.g. 30s, 5m; default 0: fail at once).",
)
"""``--lock-timeout`` of every command that writes the state."""


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
