"""The ``reconciler`` command: assembles the command modules and maps errors to exit codes.

Every :class:`~reconciler.errors.ReconcilerError` ends the process with its message on stderr
and exit code 1 — never a traceback. Each command group lives in its own module and registers
itself with :func:`register` on the shared Typer app.
"""

from __future__ import annotations

import sys

import typer

from reconciler import __version__
from reconciler.errors import ReconcilerError

app = typer.Typer(
    name="reconciler",
    help="Fine-tuning as code: plan and apply Mistral fine-tuning datasets and jobs from YAML.",
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


def _load_commands() -> None:
    # Imported for their side effect of registering commands on ``app``.
    from reconciler.cli import commands  # noqa: F401


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    _load_commands()
    try:
        app(args=argv, standalone_mode=True)
    except ReconcilerError as exc:  # raised outside a command's own handling
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
