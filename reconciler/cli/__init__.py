"""Command line: one module per command group, assembled in :mod:`reconciler.cli.app`."""
