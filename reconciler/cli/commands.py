"""Imports every command module so each registers its commands on the app."""

# Each import registers commands on ``reconciler.cli.app.app``; order sets --help order.
from reconciler.cli import (  # noqa: F401
    cmd_validate,
    cmd_plan,
    cmd_status,
    cmd_state,
    cmd_state_migrate,
    cmd_sandbox,
)
