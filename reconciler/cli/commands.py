"""Imports every command module so each registers its commands on the app."""

# isort: skip_file
# Each import registers commands on ``reconciler.cli.app.app``; order sets --help order.
from reconciler.cli import cmd_validate  # noqa: F401
from reconciler.cli import cmd_plan  # noqa: F401
from reconciler.cli import cmd_status  # noqa: F401
from reconciler.cli import cmd_state  # noqa: F401
from reconciler.cli import cmd_state_migrate  # noqa: F401
from reconciler.cli import cmd_sandbox  # noqa: F401
from reconciler.cli import cmd_reconcile  # noqa: F401
