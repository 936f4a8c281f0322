"""Typed views of the objects the Mistral files / fine-tuning API returns.

These are the *response* shapes of the remote contract (``FileSchema``/``RetrieveFileOut``,
``CompletionJobOut``/``CompletionDetailedJobOut`` and the classifier variants,
``LegacyJobMetadataOut``, ``FTModelCard``/``CompletionFTModelOut``). Every model keeps fields the
server sends that we do not know about (``extra="allow"``): the remote evolves, and a field we
drop silently today could be the one a later version of the planner needs. Only the fields the
contract marks as required are required here, and even those are lenient where real servers
were seen to deviate (e.g. ``bytes: null`` in the spec's own examples).

Two rules keep a refresh from breaking on an odd but harmless answer:

* a ``null`` in any field that has a default here means the same as the field being absent
  (the contract marks most fields optional or nullable, and servers send ``null`` for what
  they do not fill); fields without a default (ids, a job's ``status`` and ``model``) stay
  strict, because nothing sensible can replace them;
* descriptive model-card fields that nothing in reconciler reads (capabilities, aliases,
  context length, ...) fall back to their default when malformed, instead of failing the card.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)


class JobStatus(StrEnum):
    """A fine-tuning job's status, as the API names it, with what each one means.

    These are Mistral's statuses, plus ``PAUSED`` (OpenAI's ``paused``); providers of other
    services map their statuses onto them (OpenAI's ``succeeded`` is ``SUCCESS``).

    Remote objects keep their status as the string the server sent (a newer server may send
    one this version does not know); :meth:`of` reads such a string, and members compare
    equal to their string, so ``job["status"] == JobStatus.SUCCESS`` works on raw dicts.
    """

    QUEUED = "QUEUED"
    VALIDATING = "VALIDATING"
    VALIDATED = "VALIDATED"
    STARTED = "STARTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"
    FAILED_VALIDATION = "FAILED_VALIDATION"
    CANCELLATION_REQUESTED = "CANCELLATION_REQUESTED"
    CANCELLED = "CANCELLED"
    PAUSED = "PAUSED"

    @classmethod
    def of(cls, value: object) -> JobStatus | None:
        """The status a remote value names (any case); None when missing or unknown."""
        if isinstance(value, str):
            try:
                return cls(value.upper())
            except ValueError:
                return None
        return None

    @property
    def is_active(self) -> bool:
        """The job can still move on (and blocks a similar create: 409)."""
        return self not in _TERMINAL

    @property
    def is_terminal(self) -> bool:
        """The remote never changes the job again."""
        return self in _TERMINAL

    @property
    def is_failed(self) -> bool:
        """The job itself failed (training, or validation of its data); not a cancel."""
        return self in (JobStatus.FAILED, JobStatus.FAILED_VALIDATION)

    @property
    def is_cancelled(self) -> bool:
        """Cancelled, or cancellation requested (nothing will train any more)."""
        return self in (JobStatus.CANCELLATION_REQUESTED, JobStatus.CANCELLED)

    @property
    def awaits_start(self) -> bool:
        """Created with ``auto_start=false`` and not started: QUEUED, VALIDATING, VALIDATED."""
        return self in (JobStatus.QUEUED, JobStatus.VALIDATING, JobStatus.VALIDATED)

    @property
    def has_started(self) -> bool:
        """A start took effect: the job ran, runs, or ended after running (or was cancelled)."""
        return not self.awaits_start and self is not JobStatus.FAILED_VALIDATION

    @property
    def is_running(self) -> bool:
        """Training: STARTED (the short step after /start) or RUNNING."""
        return self in (JobStatus.STARTED, JobStatus.RUNNING)

    @property
    def is_paused(self) -> bool:
        """Paused (services with pause/resume): active, started, not training until resumed."""
        return self is JobStatus.PAUSED

    @property
    def can_pause(self) -> bool:
        """A pause request is meaningful: the job has started and not ended (not paused yet)."""
        return (
            self.has_started
            and not self.is_terminal
            and not self.is_cancelled
            and (self is not JobStatus.PAUSED)
        )


_TERMINAL = frozenset(
    {JobStatus.SUCCESS, JobStatus.FAILED, JobStatus.FAILED_VALIDATION, JobStatus.CANCELLED}
)


class _Remote(BaseModel):
    """Base of the response models: unknown server fields are kept, not rejected, and a
    ``null`` in a field that has a default is read as the field being absent."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _null_is_absent(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {
            key: value
            for key, value in data.items()
            if value is not None or key not in fields or fields[key].is_required()
        }


class RemoteFile(_Remote):
    """An uploaded file (``FileSchema`` / ``UploadFileOut`` / ``RetrieveFileOut``).

    Attributes:
        id: file id (uuid string).
        object: always ``"file"``.
        bytes: size in bytes (``None`` only if the server omits it).
        created_at: creation time, unix seconds.
        filename: the name the file was uploaded under (ours carry the content hash).
        purpose: ``fine-tune`` / ``batch`` / ``ocr`` (``None`` on old servers).
        sample_type: detected content kind, e.g. ``instruct``.
        source: ``upload`` / ``repository`` / ``mistral``.
        num_lines: number of lines, if reported.
        mimetype: e.g. ``application/jsonl``.
        signature: server-side content signature (algorithm undocumented; not relied on).
        expires_at: expiry time, unix seconds, if any.
        visibility: ``workspace`` / ``user``, if reported.
        deleted: only on retrieve: whether the file was deleted.
    """

    id: str
    object: str = "file"
    bytes: int | None = None
    created_at: int = 0
    filename: str = ""
    purpose: str | None = None
    sample_type: str | None = None
    source: str | None = None
    num_lines: int | None = None
    mimetype: str | None = None
    signature: str | None = None
    expires_at: int | None = None
    visibility: str | None = None
    deleted: bool | None = None


class RemoteJob(_Remote):
    """A fine-tuning job (completion or classifier; list or detailed form).

    Attributes:
        id: job id (uuid string).
        status: one of QUEUED, VALIDATING, VALIDATED, STARTED, RUNNING, FAILED_VALIDATION,
            FAILED, SUCCESS, CANCELLED, CANCELLATION_REQUESTED, PAUSED.
        model: base model name.
        job_type: ``completion`` or ``classifier`` (``None`` if the server omits it).
        auto_start: whether the job starts by itself after validation.
        created_at: creation time, unix seconds.
        modified_at: last status change, unix seconds.
        training_files: training file ids. The API echoes plain ids: weights are not readable.
        validation_files: validation file ids.
        hyperparameters: the parameters, including server-filled ones (e.g. ``epochs``).
        suffix: the model-name suffix, if any.
        integrations: W&B integrations as returned (``type, project, name, run_name, url``;
            never ``api_key``).
        fine_tuned_model: the resulting model id once the job succeeded.
        trained_tokens: tokens trained so far / in total.
        metadata: server-computed cost / duration / token estimates (``JobMetadataOut``).
        user_metadata: string pairs the creator attached to the job (OpenAI's ``metadata``);
            the identity reconciler tags its jobs with lives there. None on services without.
        events: status events, newest first (detailed form only).
        checkpoints: checkpoints with metrics, newest first (detailed form only).
        classifier_targets: classifier targets (detailed classifier jobs only).
    """

    id: str
    status: str
    model: str
    job_type: str | None = None
    auto_start: bool = False
    created_at: int = 0
    modified_at: int = 0
    training_files: list[str] = Field(default_factory=list)
    validation_files: list[str] = Field(default_factory=list)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    suffix: str | None = None
    integrations: list[dict[str, Any]] = Field(default_factory=list)
    fine_tuned_model: str | None = None
    trained_tokens: int | None = None
    metadata: dict[str, Any] | None = None
    user_metadata: dict[str, str] | None = None
    events: list[dict[str, Any]] = Field(default_factory=list)
    checkpoints: list[dict[str, Any]] = Field(default_factory=list)
    classifier_targets: list[dict[str, Any]] | None = None

    @field_validator("training_files", "validation_files", mode="before")
    @classmethod
    def _file_ids(cls, value: Any) -> Any:
        # The contract says plain ids, but a server that echoes the request form
        # ({file_id, weight}) must not break a refresh: normalise to ids.
        if isinstance(value, list):
            return [v.get("file_id", v.get("id")) if isinstance(v, dict) else v for v in value]
        return value

    @property
    def is_terminal(self) -> bool:
        """True when the status can no longer change (SUCCESS, FAILED, ..., CANCELLED)."""
        status = JobStatus.of(self.status)
        return status is not None and status.is_terminal

    @property
    def is_active(self) -> bool:
        """True for QUEUED/VALIDATING/VALIDATED/STARTED/RUNNING/PAUSED/CANCELLATION_REQUESTED."""
        status = JobStatus.of(self.status)
        return status is not None and status.is_active


class JobEstimate(_Remote):
    """What ``POST /v1/fine_tuning/jobs?dry_run=true`` returns (``LegacyJobMetadataOut``).

    Attributes:
        object: ``"job.metadata"``.
        details: free-text details (the only required field).
        deprecated: the server flags the dry run as deprecated (default true).
        expected_duration_seconds: estimated training time.
        cost: estimated cost, in ``cost_currency``.
        cost_currency: e.g. ``USD`` / ``EUR``.
        train_tokens_per_step: tokens per training step.
        train_tokens: tokens that training will consume.
        data_tokens: tokens in the training data.
        estimated_start_time: unix seconds, if known.
        epochs: epochs the run amounts to.
        training_steps: steps the run amounts to.
    """

    object: str = "job.metadata"
    details: str = ""
    deprecated: bool = True
    expected_duration_seconds: int | None = None
    cost: float | None = None
    cost_currency: str | None = None
    train_tokens_per_step: int | None = None
    train_tokens: int | None = None
    data_tokens: int | None = None
    estimated_start_time: int | None = None
    epochs: float | None = None
    training_steps: int | None = None


class RemoteModel(_Remote):
    """A model card (``FTModelCard`` / ``BaseModelCard``) or fine-tuned model
    (``CompletionFTModelOut`` / ``ClassifierFTModelOut``).

    Attributes:
        id: model id, e.g. ``ft:open-mistral-7b:587a6b29:20240514:7e773925``.
        object: ``"model"``.
        name: user-settable display name.
        description: user-settable description.
        archived: whether the fine-tuned model is archived.
        job: the fine-tuning job that produced it (fine-tuned models only).
        root: the base model it was fine-tuned from.
        created: creation time, unix seconds.
        owned_by: owner, e.g. an organisation id or ``mistralai``.
        type: ``base`` or ``fine-tuned`` (model cards from ``/v1/models``).
        model_type: ``completion`` or ``classifier`` (fine-tuned model objects).
        capabilities: capability flags.
        aliases: alternative names.
        max_context_length: context window.
        classifier_targets: targets of a classifier model.
    """

    id: str
    object: str = "model"
    name: str | None = None
    description: str | None = None
    archived: bool = False
    job: str | None = None
    root: str | None = None
    created: int | None = None
    owned_by: str | None = None
    type: str | None = None
    model_type: str | None = None
    capabilities: dict[str, Any] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    max_context_length: int | None = None
    classifier_targets: list[dict[str, Any]] | None = None

    @field_validator(
        "created",
        "owned_by",
        "root",
        "model_type",
        "capabilities",
        "aliases",
        "max_context_length",
        "classifier_targets",
        mode="wrap",
    )
    @classmethod
    def _descriptive(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        # Nothing in reconciler reads these: a malformed one must not cost the whole card
        # (a base-model card with odd capabilities would otherwise break every refresh).
        try:
            return handler(value)
        except ValidationError:
            assert info.field_name is not None
            return cls.model_fields[info.field_name].get_default(call_default_factory=True)

    @property
    def is_fine_tuned(self) -> bool:
        """True for a fine-tuned model (card type ``fine-tuned``, or a ``job`` reference)."""
        return self.type == "fine-tuned" or self.job is not None or self.id.startswith("ft:")
