"""Request bodies of the sandbox API, and the catalogue of base models.

The pydantic models mirror ``JobIn`` and ``UpdateFTModelIn`` of the Mistral OpenAPI contract,
with ``extra="forbid"`` everywhere so unknown fields give FastAPI's 422 ``extra_forbidden``
exactly like the real service, and with the contract's ranges (suffix ≤ 18 characters, W&B
key of exactly 40, ``invalid_sample_skip_percentage`` in [0, 0.5], hyperparameter bounds).
Numbers the sandbox could not store are refused too: no infinity or NaN (JSON has neither,
but Python's parser reads them), and no integer beyond SQLite's 64 bits.
One deliberate tolerance: ``training_files`` items may be plain file ids as well as
``{file_id, weight}`` objects, as the public curl examples send them.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from reconciler.sandbox.database import INT64_MAX

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False)

#: Sequences per training step (a step's tokens are ``seq_len`` times this).
SEQUENCES_PER_STEP = 4


class TrainingFileIn(BaseModel):
    """A training file reference.

    Attributes:
        file_id: id of an uploaded file.
        weight: sampling weight (> 0); accepted, not returned by the API.
    """

    model_config = _STRICT

    file_id: UUID
    weight: float = Field(1.0, gt=0)


class WandbIntegrationIn(BaseModel):
    """Weights & Biases integration.

    Attributes:
        type: always ``wandb``.
        project: W&B project of the run.
        name: display name of the run.
        api_key: W&B key, exactly 40 characters; write-only (never returned).
        run_name: run name.
    """

    model_config = _STRICT

    type: Literal["wandb"] = "wandb"
    project: str
    name: str | None = None
    api_key: str = Field(min_length=40, max_length=40)
    run_name: str | None = None


class GithubRepositoryIn(BaseModel):
    """A GitHub repository as training data (recorded, never fetched).

    Attributes:
        type: always ``github``.
        name: repository name.
        owner: repository owner.
        ref: branch, tag or commit.
        weight: sampling weight (> 0).
        token: access token; write-only (never returned).
    """

    model_config = _STRICT

    type: Literal["github"] = "github"
    name: str
    owner: str
    ref: str | None = None
    weight: float = Field(1.0, gt=0)
    token: str


class ClassifierTargetIn(BaseModel):
    """One classification target of a classifier job.

    Attributes:
        name: target name.
        labels: the labels of the target.
        weight: loss weight (>= 0).
        loss_function: ``single_class`` or ``multi_class`` (returned as ``single_class``
            when not given).
    """

    model_config = _STRICT

    name: str
    labels: list[str]
    weight: float = Field(1.0, ge=0)
    loss_function: Literal["single_class", "multi_class"] | None = None


class HyperparametersIn(BaseModel):
    """Training parameters (completion and classifier; ``fim_ratio`` is completion-only).

    Attributes:
        training_steps: number of steps (>= 1); the server picks one when absent.
        learning_rate: peak learning rate in [1e-8, 1].
        weight_decay: in [0, 1].
        warmup_fraction: share of steps for the warm-up, in [0, 1].
        epochs: passes over the data (> 0); decides the steps when ``training_steps`` is absent.
        seq_len: sequence length (>= 100).
        fim_ratio: fill-in-the-middle ratio in [0, 1] (completion jobs).
    """

    model_config = _STRICT

    training_steps: int | None = Field(None, ge=1, le=INT64_MAX)
    learning_rate: float = Field(0.0001, ge=1e-8, le=1)
    weight_decay: float | None = Field(0.1, ge=0, le=1)
    warmup_fraction: float | None = Field(0.05, ge=0, le=1)
    epochs: float | None = Field(None, gt=0)
    seq_len: int | None = Field(None, ge=100, le=INT64_MAX // SEQUENCES_PER_STEP)
    fim_ratio: float | None = Field(0.9, ge=0, le=1)


class JobIn(BaseModel):
    """Body of ``POST /v1/fine_tuning/jobs`` (``JobIn``).

    Attributes:
        model: base model to fine-tune (see :data:`BASE_MODELS`).
        training_files: files to train on, as objects or plain ids.
        validation_files: ids of validation files.
        suffix: at most 18 characters, part of the fine-tuned model's id.
        integrations: W&B integrations.
        auto_start: start right after validation (default false: hold at VALIDATED).
        invalid_sample_skip_percentage: share of invalid samples tolerated, in [0, 0.5].
        job_type: ``completion`` (default) or ``classifier``.
        hyperparameters: training parameters (required, every field optional).
        repositories: GitHub repositories as training data.
        classifier_targets: required for classifier jobs.
    """

    model_config = _STRICT

    model: str
    training_files: list[TrainingFileIn | UUID] = Field(default_factory=list)
    validation_files: list[UUID] | None = None
    suffix: str | None = Field(None, max_length=18)
    integrations: list[WandbIntegrationIn] | None = None
    auto_start: bool = False
    invalid_sample_skip_percentage: float = Field(0, ge=0, le=0.5)
    job_type: Literal["completion", "classifier"] | None = None
    hyperparameters: HyperparametersIn
    repositories: list[GithubRepositoryIn] | None = None
    classifier_targets: list[ClassifierTargetIn] | None = None


class UpdateFTModelIn(BaseModel):
    """Body of ``PATCH /v1/fine_tuning/models/{model_id}``; only the fields sent change.

    Attributes:
        name: new display name (null clears it).
        description: new description (null clears it).
    """

    model_config = _STRICT

    name: str | None = None
    description: str | None = None


#: Base models served by ``/v1/models``: id -> (max context, fine-tunable job types, caps).
BASE_MODELS: dict[str, tuple[int, frozenset[str], dict[str, bool]]] = {
    "open-mistral-7b": (32768, frozenset({"completion"}), {"function_calling": True}),
    "open-mistral-nemo": (131072, frozenset({"completion"}), {"function_calling": True}),
    "mistral-small-latest": (131072, frozenset({"completion"}), {"function_calling": True}),
    "mistral-large-latest": (131072, frozenset({"completion"}), {"function_calling": True}),
    "codestral-latest": (
        262144,
        frozenset({"completion"}),
        {"function_calling": True, "completion_fim": True},
    ),
    "ministral-3b-latest": (
        131072,
        frozenset({"completion", "classifier"}),
        {"function_calling": True},
    ),
    "ministral-8b-latest": (
        131072,
        frozenset({"completion", "classifier"}),
        {"function_calling": True},
    ),
}

#: A fixed creation time for the base model cards (they are not created by the sandbox).
BASE_MODEL_CREATED = 1_718_000_000
