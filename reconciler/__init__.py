"""reconciler: fine-tuning as code.

Declare Mistral fine-tuning datasets, hyperparameter profiles, Weights & Biases integrations
and jobs in YAML; ``reconciler plan`` shows what would change and ``reconciler apply`` makes
it so, idempotently and exactly once.

Layers, bottom to top (imports only point downwards):

``errors`` / ``address`` → ``spec`` (models, loader, schema) → ``data`` (training-data rules,
preparation, hashing) → ``client`` / ``engine.state`` / ``engine.fingerprint`` →
``engine.planner`` / ``engine.executor`` → ``operations`` (the plan and apply use cases) /
``render`` / ``observe`` → ``cli``.

``sandbox`` implements the remote API contract and depends on nothing above ``data.rules``.
"""

__version__ = "0.1.0"

DISTRIBUTION = "finetune-reconciler"
"""The distribution name: what ``pip install`` takes. The import package and the command are
both ``reconciler``; the package index's ``reconciler`` is an unrelated project."""

__all__ = ["DISTRIBUTION", "__version__", "install_command"]


def install_command(extra: str) -> str:
    """The command that adds the optional extra ``extra``, for error hints.

    ``install_command("postgres")`` is ``pip install 'finetune-reconciler[postgres]'``.
    """
    return f"pip install '{DISTRIBUTION}[{extra}]'"
