"""The ``reconciler`` command: the entry point, its groups, and errors mapped to exit codes.

This module builds the application from the command table (:mod:`reconciler.cli.commands`);
the command modules never import it. A command's module is imported only when the command
runs, so ``reconciler --version`` or ``--help`` import none of them.

Every :class:`~reconciler.errors.ReconcilerError` ends the process with its message on stderr
and exit code 1 — never a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import typer

from reconciler import __version__
from reconciler.cli.commands import root_commands
from reconciler.cli.lazy import LazyGroup
from reconciler.errors import ReconcilerError


class _Root(LazyGroup):
    """The top-level group, built by Typer from :data:`app`: every command, lazily."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(lazy_commands=root_commands(), **attrs)


app = typer.Typer(
    name="reconciler",
    cls=_Root,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"reconciler {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Fine-tuning as code: plan and apply Mistral fine-tuning datasets and jobs from YAML."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    # pydantic looks for third-party plugins (by scanning every installed distribution's
    # metadata) before building the first model: a tenth of `validate`'s start-up, for hooks
    # meant for applications, not for a command line validating its own spec models. A value
    # the user set is kept.
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    try:
        app(args=argv, standalone_mode=True)
    except ReconcilerError as exc:  # raised outside a command's own handling
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
