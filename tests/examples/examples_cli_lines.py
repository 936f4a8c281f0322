"""Finds ``reconciler`` command lines in shell text and checks them against the real CLI.

Used by the tests of the CI recipes: a workflow or hook that calls a command or flag the CLI
does not have would fail only on a user's runner, so every such line is checked here against
the click command tree Typer builds from the application.
"""

from __future__ import annotations

import enum
import shlex
import typing
from collections.abc import Iterator
from typing import Any

import typer

from reconciler.cli.app import app

CONTROL = {"&&", "||", ";", "|", "&", "(", ")", "|&", ";;"}
"""Shell tokens that end one simple command."""

REDIRECTS = {">", ">>", "<", "&>", ">&", "<<", "<<<"}
"""Redirection operators; the token after one is a file, not an argument. (A descriptor
number before one, as in ``2>&1``, stays an ordinary token: never an option.)"""


def cli_root() -> Any:
    """The command group behind the ``reconciler`` console script.

    Typer builds it on its own copy of click, so commands, options and choices are recognised
    by their attributes (``commands``, ``opts``, ``choices``), not by click's classes. A
    group's ``commands`` mapping imports a command's module when the command is looked up.
    """
    root = typer.main.get_command(app)
    assert hasattr(root, "commands"), "the reconciler app is expected to be a command group"
    return root


def shell_commands(script: str) -> Iterator[list[str]]:
    """Simple commands of a shell script: argument lists without redirections/assignments."""
    text = script.replace("\\\n", " ")  # line continuations
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        skip_next = False
        for token in lexer:
            if skip_next:
                skip_next = False
                continue
            if token in CONTROL:
                if current:
                    yield current
                current = []
            elif token in REDIRECTS:
                skip_next = True
            elif not current and "=" in token and token.split("=", 1)[0].isidentifier():
                continue  # VAR=value prefix: an environment assignment, not the command
            else:
                current.append(token)
        if current:
            yield current


def reconciler_invocations(script: str) -> list[list[str]]:
    """Argument lists (after the program name) of every ``reconciler`` call in ``script``."""
    return [cmd[1:] for cmd in shell_commands(script) if cmd and cmd[0] == "reconciler"]


def check_invocation(root: Any, args: list[str]) -> list[str]:
    """Problems with one ``reconciler ARGS`` call: unknown commands, options or choices."""
    problems: list[str] = []
    command = root
    index = 0
    path = ["reconciler"]
    while hasattr(command, "commands"):
        if index >= len(args) or args[index].startswith("-"):
            return [f"'{' '.join(path)}' needs a subcommand"]
        sub = command.commands.get(args[index])
        if sub is None:
            known = ", ".join(sorted(command.commands))
            return [f"'{' '.join(path)}' has no command '{args[index]}' (has: {known})"]
        command = sub
        path.append(args[index])
        index += 1
    options: dict[str, Any] = {}
    for param in command.params:
        if param.param_type_name == "option":
            for opt in (*param.opts, *param.secondary_opts):
                options[opt] = param
    while index < len(args):
        arg = args[index]
        index += 1
        if not arg.startswith("-") or arg == "-":
            continue  # a PATH or other argument
        name, has_value, value = arg.partition("=")
        option = options.get(name)
        if option is None:
            problems.append(f"'{' '.join(path)}' has no option '{name}'")
            continue
        if option.is_flag or option.count:
            if has_value:
                problems.append(f"'{' '.join(path)} {name}' takes no value")
            continue
        if not has_value:
            if index >= len(args):
                problems.append(f"'{' '.join(path)} {name}' needs a value")
                continue
            value = args[index]
            index += 1
        choices = _choices(option)
        if choices is not None and value not in choices:
            problems.append(
                f"'{' '.join(path)} {name}' does not accept '{value}' "
                f"(choices: {', '.join(map(str, choices))})"
            )
    return problems


def _choices(option: Any) -> list[str] | None:
    """Accepted values of an option with a fixed set of them, else None."""
    click_type = getattr(option, "type", None)
    if click_type is not None and hasattr(click_type, "choices"):
        return [str(c) for c in click_type.choices]
    descriptor = getattr(option, "type_descriptor", None)
    parser = getattr(getattr(descriptor, "parameter_info", None), "parser", None)
    if parser is not None and hasattr(parser, "choices"):  # e.g. each command's --format
        return [str(c) for c in parser.choices]
    annotation = getattr(descriptor, "annotation", None)
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return [str(member.value) for member in annotation]
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    return None
