"""A generated spec project for end-to-end engine tests and harnesses.

Writes ``n_datasets`` small chat datasets and ``n_jobs`` jobs (round-robin over the
datasets) into a directory, with a Provider document pointing at a sandbox server. A
:class:`Flavour` says which provider: the sandbox in Mistral's dialect (``type: sandbox``,
the default) or in OpenAI's (``type: openai``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SANDBOX_KEY_ENV = "RECONCILER_TEST_SANDBOX_KEY"
WANDB_KEY = "w" * 40


@dataclass(frozen=True)
class Flavour:
    """A provider the engine end-to-end tests and harnesses run on.

    Attributes:
        name: its test id.
        dialect: the sandbox's dialect.
        provider_type: the Provider document's ``type``.
        model: the base model the jobs train.
        sized_by_epochs: runs are sized in epochs (OpenAI), not in training steps.
        samples: examples per dataset (OpenAI refuses training files with fewer than 10).
        starts_at_create: jobs start when created (no start gate, nothing "unstarted").
        change: a spec edit that changes every job's request: (old text, new text).
        changed_field: the request field that edit changes, as plans name it.
    """

    name: str
    dialect: str
    provider_type: str
    model: str
    sized_by_epochs: bool
    samples: int
    starts_at_create: bool
    change: tuple[str, str]
    changed_field: str

    def hyperparameters(self, steps: int) -> str:
        """The jobs' inline hyperparameters for a run of about ``steps`` steps (YAML)."""
        if self.sized_by_epochs:  # an epoch of the generated datasets is 10 steps
            return f"{{epochs: {max(1, min(50, steps // self.samples))}}}"
        return f"{{training_steps: {steps}, learning_rate: 1.0e-4}}"

    def target(self, base_url: str) -> str:
        """The first line of every command for a Provider on the sandbox at ``base_url``."""
        return f"Target: {self.provider_type} {self.endpoint(base_url)}"

    def endpoint(self, base_url: str) -> str:
        """The Provider's endpoint for a sandbox at ``base_url``."""
        return f"{base_url}/v1" if self.dialect == "openai" else base_url

    def env(self, base_url: str) -> dict[str, str]:
        """What the CLI's environment needs for this provider on a sandbox at ``base_url``:
        the operator allows a loopback endpoint for a provider other than ``sandbox``."""
        if self.provider_type == "sandbox":
            return {}
        return {"RECONCILER_ALLOWED_ENDPOINTS": base_url}

    def client(self, base_url: str, key: str) -> Any:
        """The provider for a sandbox at ``base_url`` (as the workspace would build it)."""
        if self.dialect == "openai":
            from reconciler.providers.openai import OpenAIProvider

            return OpenAIProvider(self.endpoint(base_url), key)
        from reconciler.providers.mistral import MistralProvider

        return MistralProvider(base_url, key)

    def job_key(self, job: Any) -> str:
        """Which spec a remote job is: its suffix ``t<N>``, or (OpenAI, whose jobs show their
        suffix only once they have a model) the address its identity tag names."""
        if self.dialect == "openai":
            from reconciler.providers.base import JobTag

            tag = JobTag.from_metadata(job.user_metadata)
            return tag.address.replace("job.job", "t") if tag is not None else "?"
        return str(job.suffix)


SANDBOX = Flavour(
    name="sandbox",
    dialect="mistral",
    provider_type="sandbox",
    model="open-mistral-7b",
    sized_by_epochs=False,
    samples=4,
    starts_at_create=False,
    change=("learning_rate: 1.0e-4", "learning_rate: 2.0e-5"),
    changed_field="hyperparameters.learning_rate",
)
OPENAI = Flavour(
    name="openai",
    dialect="openai",
    provider_type="openai",
    model="gpt-4o-mini-2024-07-18",
    sized_by_epochs=True,
    samples=10,
    starts_at_create=True,
    change=("{epochs: ", "{learning_rate_multiplier: 0.5, epochs: "),
    changed_field="hyperparameters.learning_rate_multiplier",
)
FLAVOURS: Mapping[str, Flavour] = {f.name: f for f in (SANDBOX, OPENAI)}
"""Every flavour, by name (``pytest.mark.parametrize`` over ``FLAVOURS.values()``)."""


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


def lose_state(project: Path) -> None:
    """The project's state is lost (deleted), on whichever backend the run uses: the state
    file, or the postgres workspace :func:`state_yaml_for` named."""
    from tests.postgres.pg_helpers import BACKEND_ENV, drop_e2e_state

    if os.environ.get(BACKEND_ENV, "file") == "postgres":
        drop_e2e_state(str(project.resolve()))
    else:
        (project / ".reconciler" / "state.json").unlink()


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
    flavour: Flavour = SANDBOX,
    provider_fields: str = "",
) -> Path:
    """Write the project into ``root`` and return it (for ``flavour``'s provider)."""
    root.mkdir(parents=True, exist_ok=True)
    if state_yaml is None:
        state_yaml = state_yaml_for(root) if endpoint is not None else ""
    (root / "data").mkdir(exist_ok=True)
    docs: list[str] = []
    if endpoint is not None:
        docs.append(
            f"kind: Provider\nname: test-sandbox\ntype: {flavour.provider_type}\n"
            f"endpoint: {flavour.endpoint(endpoint)}\napi_key: {{env: {SANDBOX_KEY_ENV}}}\n"
            + provider_fields
            + state_yaml
        )
    for d in range(n_datasets):
        write_dataset(root / "data" / f"d{d}.jsonl", f"topic {d}", flavour.samples)
        docs.append(f"kind: Dataset\nname: d{d}\npath: data/d{d}.jsonl\n")
    if wandb:
        docs.append(
            "kind: WandbIntegration\nname: team\nproject: tests\napi_key: {env: WANDB_API_KEY}\n"
        )
    for j in range(n_jobs):
        docs.append(
            f"kind: FineTuningJob\nname: job{j}\nmodel: {flavour.model}\n"
            f"training_files: [d{j % n_datasets}]\n"
            f"hyperparameters: {flavour.hyperparameters(steps)}\n"
            f"suffix: t{j}\n" + ("integrations: [team]\n" if wandb else "") + extra_job_fields
        )
    (root / "specs.yaml").write_text("---\n".join(docs), encoding="utf-8")
    return root
