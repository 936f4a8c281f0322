"""Command line: one module per command group, listed in :mod:`reconciler.cli.commands` and
imported by :mod:`reconciler.cli.app` only when one of its commands runs."""
