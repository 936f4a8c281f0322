"""The command table and lazy loading: what start-up imports, help, completion, option types."""

from __future__ import annotations

import ast
import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from reconciler.cli.app import app
from reconciler.cli.commands import STATE_COMMANDS, TOP_COMMANDS
from reconciler.cli.lazy import LazyCommand

REPO = Path(__file__).resolve().parents[2]
CLI_DIR = REPO / "reconciler" / "cli"
runner = CliRunner()


def _first_paragraph(help_text: str | None) -> str:
    return " ".join(inspect.cleandoc(help_text or "").split("\n\n")[0].split())


@pytest.mark.parametrize(
    "entry", [*TOP_COMMANDS, *STATE_COMMANDS], ids=lambda e: f"{e.module}:{e.name}"
)
def test_each_summary_is_the_first_paragraph_of_the_commands_help(entry: LazyCommand) -> None:
    command = entry.load()
    assert command.name == entry.name
    assert _first_paragraph(command.help) == entry.summary


def test_every_declared_command_is_in_the_table() -> None:
    listed = {(e.module, e.attribute, e.name) for e in (*TOP_COMMANDS, *STATE_COMMANDS)}
    declared = set()
    for path in sorted(CLI_DIR.glob("cmd_*.py")):
        module = importlib.import_module(f"reconciler.cli.{path.stem}")
        for attribute, value in vars(module).items():
            if isinstance(value, typer.Typer):
                for name in typer.main.get_group(value).commands:
                    declared.add((module.__name__, attribute, name))
    assert declared == listed


def test_command_modules_never_import_the_application() -> None:
    # The application imports the command table and, lazily, the commands: never the reverse.
    for path in sorted(CLI_DIR.glob("*.py")):
        if path.name in ("app.py", "__init__.py"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)} | {
            a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names
        }
        assert "reconciler.cli.app" not in imported, path.name
        if path.name.startswith("cmd_"):
            assert "reconciler.cli.commands" not in imported, path.name


def _modules_after(*args: str, env: dict[str, str] | None = None) -> tuple[str, list[str]]:
    """Run the entry point in a fresh interpreter: its output and the modules it imported."""
    code = (
        "import sys, json\n"
        "sys.argv = ['reconciler']  # the program name, as the console script has it\n"
        "from reconciler.cli.app import main\n"
        "try:\n"
        f"    main({list(args)!r} or None)\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "200", **(env or {})},
        timeout=60,
    )
    return result.stdout, json.loads(result.stderr.strip().splitlines()[-1])


def _command_modules(modules: list[str]) -> list[str]:
    return [m for m in modules if m.startswith("reconciler.cli.cmd_")]


def test_version_imports_no_command_and_nothing_heavy() -> None:
    out, modules = _modules_after("--version")
    assert out.startswith("reconciler ")
    assert _command_modules(modules) == []
    heavy = ("pydantic", "yaml", "rich", "httpx", "reconciler.spec", "reconciler.engine")
    assert [m for m in modules if m.startswith(heavy)] == []


def test_help_lists_every_command_without_importing_one() -> None:
    out, modules = _modules_after("--help")
    assert _command_modules(modules) == []
    for entry in TOP_COMMANDS:
        assert entry.name in out and entry.summary in out
    assert "state" in out
    out, modules = _modules_after("state", "--help")
    assert _command_modules(modules) == []
    for entry in STATE_COMMANDS:
        assert entry.summary in out


def test_a_command_imports_only_its_own_module(tmp_path: Path) -> None:
    _, modules = _modules_after("validate", "--help")
    assert _command_modules(modules) == ["reconciler.cli.cmd_validate"]
    _, modules = _modules_after("state", "migrate", "--help")
    assert _command_modules(modules) == [
        "reconciler.cli.cmd_state",
        "reconciler.cli.cmd_state_migrate",
    ]


def test_completion_of_command_names_uses_the_summaries() -> None:
    env = {"_RECONCILER_COMPLETE": "complete_zsh", "_TYPER_COMPLETE_ARGS": "reconciler st"}
    out, modules = _modules_after(env=env)
    assert '"status":"Sync and health' in out and '"state":"Inspect and edit' in out
    assert _command_modules(modules) == []


def test_completion_of_a_commands_options_and_format_values() -> None:
    env = {"_RECONCILER_COMPLETE": "complete_bash", "COMP_CWORD": "3"}
    out, modules = _modules_after(env={**env, "COMP_WORDS": "reconciler state rm --"})
    assert out.split() == ["--path", "--state", "--lock-timeout", "--help"]
    assert _command_modules(modules) == ["reconciler.cli.cmd_state"]
    out, _ = _modules_after(env={**env, "COMP_WORDS": "reconciler plan --format "})
    assert out.split() == ["text", "json", "markdown"]


def test_unknown_command_suggests_the_close_ones() -> None:
    result = runner.invoke(app, ["stat"])
    assert result.exit_code == 2
    assert "Did you mean 'state', 'status'?" in " ".join(result.stderr.split())


FORMATS = [
    (["validate"], "'text', 'json', 'github'"),
    (["plan"], "'text', 'json', 'markdown'"),
    (["apply"], "'text', 'json'"),
    (["status"], "'text', 'json', 'markdown'"),
    (["output"], "'text', 'json'"),
    (["reconcile"], "'text', 'json'"),
    (["state", "list"], "'text', 'json'"),
    (["state", "show", "job.x"], "'text', 'json'"),
    (["state", "lock-info"], "'text', 'json'"),
]


@pytest.mark.parametrize(("command", "allowed"), FORMATS, ids=lambda v: " ".join(v))
def test_a_bad_format_is_the_same_usage_error_everywhere(command: list[str], allowed: str) -> None:
    result = runner.invoke(app, [*command, "--format", "yaml"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert f"Invalid value for '--format' / '-f': 'yaml' is not one of {allowed}." in message


DURATIONS = [
    ["apply", "--lock-timeout"],
    ["apply", "--wait-timeout"],
    ["apply", "--start-timeout"],
    ["reconcile", "--interval"],
    ["reconcile", "--lock-timeout"],
    ["reconcile", "--start-timeout"],
    ["status", "--interval"],
    ["status", "--timeout"],
    ["import", "job.x", "id", "--lock-timeout"],
    ["state", "rm", "job.x", "--lock-timeout"],
    ["state", "migrate", "--to", "file", "--lock-timeout"],
]


@pytest.mark.parametrize("command", DURATIONS, ids=" ".join)
def test_a_bad_duration_is_the_same_usage_error_everywhere(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "5 min"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert (
        f"Invalid value for '{command[-1]}': invalid duration '5 min': expected a number "
        "with a unit (d, h, m, s, ms)"
    ) in message


def test_durations_below_the_minimum_are_refused() -> None:
    result = runner.invoke(app, ["status", "--interval", "50ms"], env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "invalid duration '50ms': it must be at least 0.1s" in " ".join(result.stderr.split())
