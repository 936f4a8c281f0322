"""A generated spec project for end-to-end engine tests and harnesses.

Writes ``n_datasets`` small chat datasets and ``n_jobs`` jobs (round-robin over the
datasets) into a directory, with a Provider document pointing at a sandbox server.
"""

from __future__ import annotations

import json
from pathlib import Path

SANDBOX_KEY_ENV = "RECONCILER_TEST_SANDBOX_KEY"
WANDB_KEY = "w" * 40


def write_dataset(path: Path, tag: str, samples: int = 4) -> None:
    lines = []
    for i in range(samples):
        lines.append(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"Question {i} about {tag}?"},
                        {"role": "assistant", "content": f"Answer {i} about {tag}."},
                    ]
                }
            )
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def state_yaml_for(project: Path) -> str:
    """Provider ``state:`` YAML for the backend under test.

    ``RECONCILER_TEST_STATE_BACKEND=postgres`` runs the same end-to-end tests on the
    PostgreSQL backend (``RECONCILER_TEST_PG_DSN``, passed to the CLI by ``cli_env``); the
    default is the file backend.
    """
    from tests.postgres.pg_helpers import e2e_state_backend

    return e2e_state_backend(str(project.resolve()))[0]


def make_project(
    root: Path,
    *,
    endpoint: str | None,
    n_datasets: int = 2,
    n_jobs: int = 2,
    steps: int = 10,
    extra_job_fields: str = "",
    wandb: bool = False,
    state_yaml: str | None = None,
    provider_fields: str = "",
) -> Path:
    """Write the project into ``root`` and return it."""
    root.mkdir(parents=True, exist_ok=True)
    if state_yaml is None:
        state_yaml = state_yaml_for(root) if endpoint is not None else ""
    (root / "data").mkdir(exist_ok=True)
    docs: list[str] = []
    if endpoint is not None:
        docs.append(
            "kind: Provider\nname: test-sandbox\ntype: sandbox\n"
            f"endpoint: {endpoint}\napi_key: {{env: {SANDBOX_KEY_ENV}}}\n"
            + provider_fields
            + state_yaml
        )
    for d in range(n_datasets):
        write_dataset(root / "data" / f"d{d}.jsonl", f"topic {d}")
        docs.append(f"kind: Dataset\nname: d{d}\npath: data/d{d}.jsonl\n")
    if wandb:
        docs.append(
            "kind: WandbIntegration\nname: team\nproject: tests\napi_key: {env: WANDB_API_KEY}\n"
        )
    for j in range(n_jobs):
        docs.append(
            f"kind: FineTuningJob\nname: job{j}\nmodel: open-mistral-7b\n"
            f"training_files: [d{j % n_datasets}]\n"
            f"hyperparameters: {{training_steps: {steps}, learning_rate: 1.0e-4}}\n"
            f"suffix: t{j}\n" + ("integrations: [team]\n" if wandb else "") + extra_job_fields
        )
    (root / "specs.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return root
