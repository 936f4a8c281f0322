"""``python -m reconciler``: the same entry point as the ``reconciler`` console script."""

from reconciler.cli.app import main

if __name__ == "__main__":
    main()
