"""Every command of ``reconciler``: name, declaring module and one-line help, in help order.

The application (:mod:`reconciler.cli.app`) builds its groups from these tables; a command's
module is imported only when the command runs (:mod:`reconciler.cli.lazy`). A test checks that
each summary is the first paragraph of the command's own help and that every command a module
declares is listed here.
"""

from __future__ import annotations

from typer import _click as click

from reconciler.cli.lazy import LazyCommand, LazyGroup

_VALIDATE = "reconciler.cli.cmd_validate"
_PLAN = "reconciler.cli.cmd_plan"
_STATUS = "reconciler.cli.cmd_status"
_STATE = "reconciler.cli.cmd_state"

TOP_COMMANDS: tuple[LazyCommand, ...] = (
    LazyCommand(
        "validate",
        _VALIDATE,
        "Check specs and the datasets they name, without any network access.",
    ),
    LazyCommand(
        "schema",
        _VALIDATE,
        "Print the JSON Schema of spec documents (for yaml-language-server and other editors).",
    ),
    LazyCommand(
        "plan", _PLAN, "Show what apply would change: refreshes the remote, never writes anything."
    ),
    LazyCommand(
        "apply",
        _PLAN,
        "Make the remote match the specs: upload files, create and start jobs, exactly once.",
    ),
    LazyCommand(
        "reconcile",
        "reconciler.cli.cmd_reconcile",
        "Start validated jobs and update models in a loop; report what awaits review and drift.",
    ),
    LazyCommand(
        "status",
        _STATUS,
        "Sync and health of every managed object, or the events and checkpoints of jobs.",
    ),
    LazyCommand(
        "output",
        _STATUS,
        "Fine-tuned model id (and job id, status) of every job, for downstream configuration.",
    ),
    LazyCommand(
        "import",
        _STATE,
        "Adopt an existing remote file or job under ADDRESS; nothing changes remotely.",
    ),
    LazyCommand(
        "gc",
        "reconciler.cli.cmd_gc",
        "List (and with --yes delete) remote files that no address or job of the state uses.",
    ),
    LazyCommand(
        "sandbox",
        "reconciler.cli.cmd_sandbox",
        "Run the sandbox: a local Mistral or OpenAI fine-tuning API that NEVER trains a model.",
    ),
)
"""The top-level commands; ``state`` (a group, :data:`STATE_COMMANDS`) follows them."""

STATE_HELP = "Inspect and edit the state: list, show, rm, mv, lock-info, unlock, migrate."

STATE_COMMANDS: tuple[LazyCommand, ...] = (
    LazyCommand(
        "list",
        _STATE,
        "List the managed objects: address, type, remote id, status.",
        attribute="state_commands",
    ),
    LazyCommand(
        "show",
        _STATE,
        "Show one managed object: remote id, fingerprint, attributes and history.",
        attribute="state_commands",
    ),
    LazyCommand(
        "rm",
        _STATE,
        "Forget objects: they stay on the remote, untouched, and are no longer managed.",
        attribute="state_commands",
    ),
    LazyCommand(
        "mv",
        _STATE,
        "Rename an address: its record becomes TO's; the remote is untouched.",
        attribute="state_commands",
    ),
    LazyCommand(
        "lock-info",
        _STATE,
        "Show who holds the state lock, if anyone.",
        attribute="state_commands",
    ),
    LazyCommand(
        "unlock",
        _STATE,
        "Break a stuck lock, only when its holder is gone.",
        attribute="state_commands",
    ),
    LazyCommand(
        "migrate",
        "reconciler.cli.cmd_state_migrate",
        "Copy the state to another backend exactly (lineage, serial, resources, intents).",
    ),
)
"""The commands of ``reconciler state``."""


def root_commands() -> list[LazyCommand | click.Command]:
    """The top-level entries in help order: the commands, then a new ``state`` group."""
    state = LazyGroup(
        name="state", help=STATE_HELP, no_args_is_help=True, lazy_commands=STATE_COMMANDS
    )
    return [*TOP_COMMANDS, state]
