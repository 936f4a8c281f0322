"""Command groups that import a command's module only when that command runs.

Importing every command module costs most of the start-up time (pydantic models, the spec
loader, the engine, rich tables): ``reconciler --version`` or a pre-commit hook running
``reconciler validate`` should not pay for ``apply``. A :class:`LazyGroup` knows its commands
by name and one-line summary (:class:`LazyCommand`); the module behind a command is imported
the first time the command is looked up to run, to show its own help, or to complete its
options. Listing the commands (``--help`` of the group, completing a command name) shows the
summaries and imports nothing.

A command module declares its commands on a module-level :class:`typer.Typer` (``commands``
by default) and never imports the application that lists it.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click as click  # typer's own copy of click: the classes its commands use
from typer._click.shell_completion import CompletionItem
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class LazyCommand:
    """A command known before its module is imported.

    Attributes:
        name: the command's name on the command line.
        module: dotted name of the module that declares it.
        summary: its one-line help, shown when the group lists its commands; the first
            paragraph of the command's own help (a test keeps the two equal).
        attribute: the module's :class:`typer.Typer` that declares the command.
    """

    name: str
    module: str
    summary: str
    attribute: str = "commands"

    def load(self) -> click.Command:
        """Import the module and build the command (a click command, as Typer makes it)."""
        command = _declared_group(self.module, self.attribute).commands.get(self.name)
        if command is None:  # a mistake in the command table, not in user input
            raise LookupError(f"{self.module}.{self.attribute} declares no command {self.name!r}")
        return command

    def placeholder(self) -> click.Command:
        """A stand-in carrying only the name and summary, for listings."""
        return TyperCommand(self.name, help=self.summary)


@functools.cache
def _declared_group(module: str, attribute: str) -> TyperGroup:
    """The click group Typer builds from ``module.attribute``, once per process: building it
    analyses every command's signature (milliseconds), and a program that runs the command
    line more than once (a test, an embedding tool) should pay that once. Click commands keep
    no state between invocations."""
    return typer.main.get_group(getattr(importlib.import_module(module), attribute))


class _CommandTable(MutableMapping[str, click.Command]):
    """A group's commands by name, in listing order; lazy ones are built on first access.

    While :meth:`listing` is active, a lazy command not yet built is answered by its
    placeholder instead, so listing imports nothing.
    """

    def __init__(self, entries: Sequence[LazyCommand | click.Command]) -> None:
        self._entries: dict[str, LazyCommand | click.Command] = {}
        for entry in entries:
            if entry.name is None:
                raise ValueError("a command in a group needs a name")
            self._entries[entry.name] = entry
        self._listing = False

    @contextmanager
    def listing(self) -> Iterator[None]:
        """Within: unbuilt lazy commands are answered by their placeholders."""
        before, self._listing = self._listing, True
        try:
            yield
        finally:
            self._listing = before

    def __getitem__(self, name: str) -> click.Command:
        entry = self._entries[name]
        if not isinstance(entry, LazyCommand):
            return entry
        if self._listing:
            return entry.placeholder()
        command = entry.load()
        self._entries[name] = command
        return command

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._entries[name] = command

    def __delitem__(self, name: str) -> None:
        del self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class LazyGroup(TyperGroup):
    """A Typer group whose commands may be :class:`LazyCommand` entries.

    ``lazy_commands`` (the argument, else the class attribute, for groups Typer builds from
    ``typer.Typer(cls=...)``) lists the commands in help order; commands added later are
    appended.
    """

    lazy_commands: Sequence[LazyCommand | click.Command] = ()

    def __init__(
        self, *, lazy_commands: Sequence[LazyCommand | click.Command] | None = None, **attrs: Any
    ) -> None:
        super().__init__(**attrs)
        entries = [*(self.lazy_commands if lazy_commands is None else lazy_commands)]
        entries.extend(self.commands.values())
        self.commands = self._table = _CommandTable(entries)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self._table)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with self._table.listing():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: click.Context, incomplete: str) -> list[CompletionItem]:
        with self._table.listing():
            return super().shell_complete(ctx, incomplete)
