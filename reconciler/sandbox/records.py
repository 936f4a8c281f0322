"""Typed records: what the sandbox's store takes in and gives back.

The store (:mod:`.store`) turns SQLite rows into these frozen values, with the JSON columns
already decoded, so routes and rules never read a column by name. Rendering a record in the
API's shape is the routes' job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reconciler.sandbox.lifecycle import JobPlan, Pause


@dataclass(frozen=True)
class FileRecord:
    """An uploaded file.

    Attributes:
        id: file id (a UUID).
        filename: the name it was uploaded under (path components already stripped).
        bytes: its size.
        created_at: upload time, UNIX seconds.
        purpose: ``fine-tune``, ``batch`` or ``ocr``.
        sample_type: ``instruct``, ``pretrain`` or ``batch_request``.
        source: always ``upload`` here.
        num_lines: line count (fine-tuning files), else None.
        mimetype: the content type.
        signature: the first 16 hex digits of its SHA-256.
        expires_at: when it expires (recorded, never enforced), or None.
        visibility: ``workspace`` or ``user``.
        sha256: full SHA-256 of the bytes (with the name, the dedupe key).
        samples: number of samples.
        invalid: how many samples break a training-data rule.
        approx_tokens: approximate token count (cost estimates).
        problems: the first problems found in it, rendered (``line 3: ... [code]``); empty
            for a file without any (or one stored before problems were kept).
    """

    id: str
    filename: str
    bytes: int
    created_at: int
    purpose: str
    sample_type: str
    source: str
    num_lines: int | None
    mimetype: str | None
    signature: str | None
    expires_at: int | None
    visibility: str | None
    sha256: str
    samples: int
    invalid: int
    approx_tokens: int
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """Everything fixed about a job when it is created (what the store inserts).

    Attributes:
        plan: its timeline's fixed inputs (id, creation time, steps, start mode, fate).
        model: base model.
        job_type: ``completion`` or ``classifier``.
        suffix: model-name suffix, or None.
        training_files: training file ids, in request order.
        validation_files: validation file ids.
        hyperparameters: the hyperparameters as requested (defaults filled).
        integrations: W&B integrations in API shape (no key), or None when not sent.
        repositories: GitHub repositories in API shape (no token).
        classifier_targets: targets in API shape (classifier jobs), else None.
        similarity: the key of the "similar active job" rule (see :mod:`.job_rules`).
        tokens_per_step: trained tokens per step.
        data_tokens: approximate tokens in the training files.
        model_name: the fine-tuned model's id when the dialect decides it at creation (the
            OpenAI one); None to name it when the job succeeds (the Mistral way, with the
            date of success).
        metadata: the user's metadata (string pairs, filterable when listing), or None.
        extra: what only the dialect that created the job knows and shows (JSON-ready).
    """

    plan: JobPlan
    model: str
    job_type: str
    suffix: str | None
    training_files: tuple[str, ...]
    validation_files: tuple[str, ...]
    hyperparameters: dict[str, Any]
    integrations: list[dict[str, Any]] | None
    repositories: list[dict[str, Any]]
    classifier_targets: list[dict[str, Any]] | None
    similarity: str
    tokens_per_step: int
    data_tokens: int
    model_name: str | None = None
    metadata: dict[str, str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The job id."""
        return self.plan.job_id

    @property
    def auto_start(self) -> bool:
        """Whether it starts right after validation."""
        return self.plan.auto_start


@dataclass(frozen=True, kw_only=True)
class JobRecord(JobSpec):
    """A stored job: its spec plus how far its lifecycle has been materialised.

    Attributes:
        status: current status.
        modified_at: time of the last status change, UNIX seconds.
        started: when ``/start`` was called, or None.
        cancel_requested: when ``/cancel`` was called, or None.
        pauses: its pauses, oldest first (only the last may be unresumed).
        n_events: events recorded so far.
        n_checkpoints: checkpoints recorded so far.
        validated: whether validation has passed (metadata and epochs are then shown).
        fine_tuned_model: the model id once it succeeded, else None.
    """

    status: str
    modified_at: int
    started: float | None
    cancel_requested: float | None
    n_events: int
    n_checkpoints: int
    validated: bool
    fine_tuned_model: str | None
    pauses: tuple[Pause, ...] = ()


@dataclass(frozen=True)
class EventRecord:
    """One job event.

    Attributes:
        name: always ``status-updated`` here.
        data: ``{"status": ...}`` plus ``error`` for failures.
        created_at: when it happened, UNIX seconds.
    """

    name: str
    data: dict[str, Any] | None
    created_at: int


@dataclass(frozen=True)
class CheckpointRecord:
    """One checkpoint of a job's (simulated) run.

    Attributes:
        step_number: the training step it follows.
        created_at: when it was written, UNIX seconds.
        train_loss: training loss.
        valid_loss: validation loss, or None without validation files.
        valid_mean_token_accuracy: validation accuracy, or None.
    """

    step_number: int
    created_at: int
    train_loss: float | None
    valid_loss: float | None
    valid_mean_token_accuracy: float | None


@dataclass(frozen=True)
class ModelRecord:
    """A fine-tuned model.

    Attributes:
        id: ``ft:<model>:<suffix or org>:<date>:<job id prefix>``.
        job_id: the job that produced it.
        root: its base model.
        model_type: ``completion`` or ``classifier``.
        created: creation time, UNIX seconds.
        name: display name, or None.
        description: description, or None.
        archived: whether it is archived.
        classifier_targets: the job's targets (classifier models), else None.
    """

    id: str
    job_id: str
    root: str
    model_type: str
    created: int
    name: str | None
    description: str | None
    archived: bool
    classifier_targets: list[dict[str, Any]] | None
