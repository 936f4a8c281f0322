"""The plan: an inert, serializable, immutable value describing what apply will do, and why.

A plan lists, per address, one change — a :class:`FileChange` or a :class:`JobChange` — with
an :class:`Action` and a machine-readable :class:`Reason`; drift (objects changed outside
reconciler) separately; and objects in the state that the specs no longer name. It carries
the state lineage and serial it was made against and a digest of the specs and prepared data,
so a saved plan is refused once either moved on.

Every part of a plan is a frozen model: a plan is built once (by the planner) and only ever
copied with changes (``model_copy(update=...)``), never modified. Apply acts on the action
and the typed fields of a change (``force_new``, ``after.reuse``, ``previous.disposition``,
``blocked``...), never on its reason, which is for people and policies.

The JSON form (``plan --format json`` and ``plan --out FILE``) is versioned by
``format_version`` (``MAJOR.MINOR``: consumers ignore unknown keys within a major version and
reject an unknown major). It never contains a secret: W&B keys appear as their reference
(``{"env": "WANDB_API_KEY"}``). Version history:

* ``1.0``: the first layout.
* ``1.1``: adds ``force_new`` to each change. A 1.0 file still loads: its ``force_new`` is
  derived from the reasons that implied it then (``deleted-remotely``,
  ``replace-by-request``).
* ``1.2``: adds ``labels`` and ``location`` (the document's ``file:line``) to each change,
  ``cancel_first`` to job changes, ``used_by`` to file changes and ``options.selectors``.
  Older files load with their defaults (no labels, no location, ``false``, none).
* ``1.3`` names two layouts made side by side, each 1.2 plus one set of keys; both load:

  - *costs*: cost estimates made locally (``source: local``, with their ``basis`` and
    ``storage_per_month``); the plan's ``errors`` (why apply refuses it: a budget exceeded),
    ``unestimated`` (jobs to pay for without an estimate, and why), ``run_budget``,
    ``options.max_cost`` and the computed ``costs`` totals. (Some 1.2 files already carry
    part of these: they keep them.)
  - *adoption*: the actions ``import``, ``move`` and ``restore`` (state-only: nothing is
    created remotely) and the model disposition ``delete``; each change may carry
    ``moved_from`` and ``import_id``, a job change ``restores`` and ``delete_models``, a job
    request ``rerun`` (each only when set).
* ``1.4``: both sets of keys of 1.3 in one layout. The adoption actions cost nothing: they
  carry no ``cost``, count in no ``costs`` total and no budget.
* ``1.5``: providers other than Mistral's API (OpenAI). A job's ``after`` may carry
  ``starts_at_create`` (the provider starts it as it creates it: no start gate), its request
  ``method`` (other than ``supervised``) and ``seed``, and an integration ``entity`` and
  ``tags``, or no ``api_key`` (the service keeps the key); an update may change ``paused``
  (reason ``paused-changed``); a local estimate's ``basis`` of a provider that bills passes
  over the data has ``epochs_from`` instead of ``steps``, ``steps_from`` and
  ``tokens_per_step`` (each only when it applies).
* ``1.6``: self-hosted training (Ray). A job's request may carry ``lora`` (only when the spec
  sets it); a local estimate's ``basis`` of a provider that bills GPU-hours has
  ``gpu_hours``, ``price_per_gpu_hour`` and ``tokens_per_gpu_second``. Ray jobs start at
  creation (``starts_at_create``, as in 1.5).

Each newer layout only adds keys, so an older file loads with the keys it lacks at their
defaults (no errors, no estimates missing, no budget; no adoption).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from reconciler.address import Address, ResourceType
from reconciler.client.types import JobStatus
from reconciler.engine.output_file import write_output_file
from reconciler.errors import PlanError
from reconciler.redact import scrub

PLAN_FORMAT_VERSION = "1.6"


class Action(StrEnum):
    """What apply does to an address."""

    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    START = "start"
    DELETE = "delete"
    FORGET = "forget"
    IMPORT = "import"
    MOVE = "move"
    RESTORE = "restore"

    @property
    def symbol(self) -> str:
        """Terraform-like one-glyph (or three) marker for text output."""
        return _SYMBOLS[self]

    @property
    def makes_new(self) -> bool:
        """Apply makes a new remote object (an upload or a job create): create or replace."""
        return self in _MAKES_NEW

    @property
    def prunes(self) -> bool:
        """Apply removes the address from management: delete or forget."""
        return self in _PRUNES

    @property
    def adopts(self) -> bool:
        """Apply only records an existing remote object: import, move or restore."""
        return self in _ADOPTS


_MAKES_NEW = frozenset({Action.CREATE, Action.REPLACE})
_PRUNES = frozenset({Action.DELETE, Action.FORGET})
_ADOPTS = frozenset({Action.IMPORT, Action.MOVE, Action.RESTORE})
_SYMBOLS = {
    Action.NOOP: " ",
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.START: ">",
    Action.DELETE: "-",
    Action.FORGET: "-",
    Action.IMPORT: "<=",
    Action.MOVE: "->",
    Action.RESTORE: "<-",
}


class Reason(StrEnum):
    """Why a change is planned (machine-readable; for people and policies, not for apply)."""

    NOT_IN_STATE = "not-in-state"
    EXISTS_REMOTELY_IDENTICAL = "exists-remotely-identical"
    RECOVER_INTENT = "recover-intent"
    CONTENT_CHANGED = "content-changed"
    SPEC_CHANGED = "spec-changed"
    REPLACE_BY_REQUEST = "replace-by-request"
    DELETED_REMOTELY = "deleted-remotely"
    VALIDATED_NOT_STARTED = "validated-not-started"
    AWAITING_VALIDATION = "awaiting-validation"
    MODEL_METADATA_CHANGED = "model-metadata-changed"
    PAUSED_CHANGED = "paused-changed"
    NOT_IN_SPEC = "not-in-spec"
    IN_SYNC = "in-sync"
    IMPORT_DECLARED = "import-declared"
    MOVED = "moved"
    PREVIOUS_JOB_SAME_REQUEST = "previous-job-same-request"
    REPLACEMENT_SUCCEEDED = "replacement-succeeded"


class Disposition(StrEnum):
    """What happens to the previous remote object of a replaced or pruned address."""

    CANCEL = "cancel"
    KEEP = "keep"


class ModelDisposition(StrEnum):
    """What happens to the fine-tuned model of a replaced job.

    ``delete`` deletes it only once the replacement has succeeded: a later plan lists it in
    the address's ``delete_models`` then, never earlier.
    """

    KEEP = "keep"
    ARCHIVE = "archive"
    DELETE = "delete"


class DriftKind(StrEnum):
    """How an object changed outside reconciler."""

    DELETED = "deleted"
    CANCELLED = "cancelled"
    FAILED = "failed"
    FAILED_VALIDATION = "failed-validation"


class CostSource(StrEnum):
    """Where a cost estimate comes from."""

    LOCAL = "local"
    DRY_RUN = "dry_run"
    REMOTE_VALIDATION = "remote-validation"


class PlanPart(BaseModel):
    """Base of every plan value: frozen, no unknown keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PartialPart(PlanPart):
    """A plan value with keys that some values carry and others do not.

    A key named in ``OPTIONAL_KEYS`` appears in the JSON form only when it was given when the
    value was made (or read), as the layout has it.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_absent(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for key in self.OPTIONAL_KEYS - self.model_fields_set:
                data.pop(key, None)
        return data


# -- files ------------------------------------------------------------------------------------


class FileContent(PlanPart):
    """A prepared dataset part as plans and the state show it: what it is prepared from and
    what it holds. The desired state's file (:class:`~reconciler.engine.desired.DesiredFile`)
    and a plan's :class:`FileAfter` are both one.

    Attributes:
        dataset, part: the dataset part it is prepared from.
        filename: the upload name (carries the content hash).
        sha256, bytes, num_lines: content facts.
    """

    dataset: str
    part: str
    filename: str
    sha256: str
    bytes: int
    num_lines: int


class FileAfter(FileContent, PartialPart):
    """The file apply will have uploaded: the prepared part (:class:`FileContent`), and

    Attributes:
        reuse: id of an identical remote file (same content-addressed name and size) that is
            recorded instead of uploading again; only present when there is one.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"reuse"})

    reuse: str | None = None


class FileBefore(PartialPart):
    """The uploaded file the state records for the address.

    Attributes:
        id: remote file id.
        filename: its upload name.
        sha256, bytes: its content facts (absent for prunes).
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"sha256", "bytes"})

    id: str
    filename: str | None
    sha256: str | None = None
    bytes: int | None = None


class FilePrevious(PlanPart):
    """The file a new upload replaces.

    Attributes:
        id: remote file id.
        disposition: always ``keep`` (old uploads go only with prune).
    """

    id: str
    disposition: Disposition


# -- jobs -------------------------------------------------------------------------------------


class FileRef(PartialPart):
    """A file of a job request, named by content.

    Attributes:
        file: the file's address.
        filename, sha256: its upload name and content hash.
        weight: sampling weight (training files only).
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"weight"})

    file: Address
    filename: str
    sha256: str
    weight: float | None = None


class IntegrationRef(PartialPart):
    """A W&B integration of a job request, its key shown as the reference only.

    Attributes:
        type: ``wandb``.
        project, name, run_name: as sent.
        api_key: where the key comes from, e.g. ``{"env": "WANDB_API_KEY"}``; never a value.
            Absent where the service keeps the key itself (openai).
        entity, tags: the W&B team/user and run tags (openai), present when set.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"api_key", "entity", "tags"})

    type: Literal["wandb"] = "wandb"
    project: str
    name: str | None
    run_name: str | None
    api_key: Mapping[str, str] | None = None
    entity: str | None = None
    tags: tuple[str, ...] = ()


class JobRequest(PartialPart):
    """The create request of a job in content form (files by address and hash, no secret).

    Attributes:
        model, job_type, suffix, invalid_sample_skip_percentage: as sent.
        training_files, validation_files: the files, by content.
        hyperparameters: the values that are set (server defaults are not filled in).
        integrations: W&B integrations.
        classifier_targets: classifier jobs' targets (``name``, ``labels``, ``weight``,
            ``loss_function``).
        method: the training method, present when not ``supervised`` (``dpo``).
        seed: the run's seed, present when set.
        rerun: the spec's ``rerun`` token (part of the request's identity, never sent;
            only present when set).
        lora: the LoRA adapter of a self-hosted (``ray``) job, ``{"rank": N}``; only present
            when the spec sets it.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"method", "seed", "rerun", "lora"})

    model: str
    job_type: str
    training_files: tuple[FileRef, ...]
    validation_files: tuple[FileRef, ...]
    hyperparameters: Mapping[str, int | float]
    suffix: str | None
    invalid_sample_skip_percentage: float
    integrations: tuple[IntegrationRef, ...]
    classifier_targets: tuple[Mapping[str, Any], ...]
    method: str = "supervised"
    seed: int | None = None
    rerun: str | None = None
    lora: Mapping[str, int] | None = None


class BudgetLimit(PlanPart):
    """The budget the start gate checks.

    Attributes:
        max_cost: highest acceptable cost estimate, in the estimate's currency.
    """

    max_cost: float


class ModelMetadata(PlanPart):
    """The wanted name, description and archived flag of a job's fine-tuned model."""

    name: str | None
    description: str | None
    archived: bool


class ReplacePolicy(PlanPart):
    """What a replacement does to the job it replaces.

    Attributes:
        active_job: ``cancel`` or ``keep`` a previous job that is still active.
        previous_model: ``keep``, ``archive`` or ``delete`` (once the replacement has
            succeeded) the previous job's model.
    """

    active_job: Disposition
    previous_model: ModelDisposition


class JobAfter(PartialPart):
    """The job apply will have made, with its lifecycle settings.

    Attributes:
        request: the create request in content form.
        start: start it once validated (else leave it VALIDATED).
        starts_at_create: the provider starts it as soon as it is created (no start gate:
            its budget is checked against the plan's estimate); present only when true.
        budget: the start gate's budget, if any.
        fine_tuned_model: the wanted model metadata, if any.
        on_replace: what a later replacement does to it.
        matrix: the matrix cell's values (empty when not from a matrix).
        source: the FineTuningJob document it comes from.
    """

    request: JobRequest
    start: bool
    budget: BudgetLimit | None
    fine_tuned_model: ModelMetadata | None
    on_replace: ReplacePolicy
    matrix: Mapping[str, Any]
    source: str
    starts_at_create: bool = False

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"starts_at_create"})


class JobBefore(PartialPart):
    """The job the state records for the address, as refreshed.

    Attributes:
        id: remote job id.
        status: its remote status (None when the remote no longer has it); see
            :attr:`job_status`.
        fine_tuned_model: its model, once it has one.
        request: the create request recorded when it was made (content form, as written by
            the version that made it; absent for prunes).
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"request"})

    id: str
    status: str | None
    fine_tuned_model: str | None
    request: Mapping[str, Any] | None = None

    @property
    def job_status(self) -> JobStatus | None:
        """The status as a :class:`JobStatus` (None when missing or unknown)."""
        return JobStatus.of(self.status)


class JobPrevious(PartialPart):
    """The job a replacement or prune leaves behind, and what happens to it.

    Attributes:
        id: remote job id.
        status: its remote status.
        disposition: ``cancel`` (still active and the policy says so) or ``keep``.
        fine_tuned_model: its model, if any (absent for prunes).
        model_disposition: ``keep``, ``archive`` or ``delete`` the model (None when there is
            none); ``delete`` waits until the replacement has succeeded.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"fine_tuned_model"})

    id: str
    status: str | None
    disposition: Disposition
    fine_tuned_model: str | None = None
    model_disposition: ModelDisposition | None


class FieldUpdate(PlanPart):
    """One model field updated in place."""

    before: str | bool | None
    after: str | bool | None


ModelField = Literal["name", "description", "archived", "paused"]
"""The fields an update changes in place: the fine-tuned model's name, description and
archived flag, and whether the job is paused (providers with pause)."""

MODEL_FIELDS: tuple[ModelField, ...] = ("name", "description", "archived", "paused")
"""Every :data:`ModelField`, in the order plans list them."""


class FileTokens(PlanPart):
    """One training file of a local estimate: how much of the run it makes up.

    Attributes:
        file: the file's address.
        tokens: its tokens (approximate or exact, as the basis says).
        weight: its sampling weight.
        epochs: passes the run makes over it: its share of the trained tokens (its weight
            over the sum of the weights) divided by its tokens.
    """

    file: Address
    tokens: int
    weight: float
    epochs: float


class CostBasis(PartialPart):
    """How a local estimate was computed: the training cost is ``max(minimum_fee,
    train_tokens / 1e6 * price_per_million_tokens)``.

    Providers bill trained tokens counted one of two ways: by steps (Mistral, the sandbox:
    ``steps``, ``steps_from`` and ``tokens_per_step`` are present) or by passes over the data
    (OpenAI: ``epochs_from`` is present instead). A cluster of one's own (Ray) costs GPU-hours:
    steps as above, plus ``gpu_hours``, ``price_per_gpu_hour`` and ``tokens_per_gpu_second``;
    its ``price_per_million_tokens`` is the same price per trained token, for comparison.

    Attributes:
        train_tokens: tokens the run trains on: ``steps * tokens_per_step``, or
            ``epochs * data_tokens``.
        steps: training steps (given, derived from ``epochs``, or the provider's default);
            step-billed only.
        steps_from: where ``steps`` comes from: ``training_steps``, ``epochs`` or
            ``default``; step-billed only.
        tokens_per_step: tokens one step trains on (``seq_len`` times the sequences of a
            step); step-billed only.
        data_tokens: tokens of the training files (unweighted sum).
        token_count: ``approx`` (bytes / 4 of the valid samples) or ``exact`` (Mistral's
            tokenizer, with the ``tokens`` extra).
        epochs: passes over the training data the run amounts to
            (``train_tokens / data_tokens``).
        epochs_from: where ``epochs`` comes from when the provider bills passes over the
            data: ``epochs`` (the job sets them) or ``default`` (the service's rule);
            epoch-billed only.
        training_files: per training file, its tokens, weight and passes (only when the job
            has several: with one, ``data_tokens`` and ``epochs`` are its own).
        price_per_million_tokens, minimum_fee: the price applied.
        price_source: where the price comes from (the built-in table and its source, or the
            Provider's ``prices``).
        gpu_hours: GPU time the run takes (``train_tokens / tokens_per_gpu_second / 3600``,
            summed over its GPUs); GPU-hour-billed only.
        price_per_gpu_hour, tokens_per_gpu_second: the Provider's price and throughput;
            GPU-hour-billed only.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset(
        {
            "training_files",
            "steps",
            "steps_from",
            "tokens_per_step",
            "epochs_from",
            "gpu_hours",
            "price_per_gpu_hour",
            "tokens_per_gpu_second",
        }
    )

    train_tokens: int
    steps: int | None = None
    steps_from: Literal["training_steps", "epochs", "default"] | None = None
    tokens_per_step: int | None = None
    data_tokens: int
    token_count: Literal["approx", "exact"]
    epochs: float
    epochs_from: Literal["epochs", "default"] | None = None
    training_files: tuple[FileTokens, ...] = ()
    price_per_million_tokens: float
    minimum_fee: float
    price_source: str
    gpu_hours: float | None = None
    price_per_gpu_hour: float | None = None
    tokens_per_gpu_second: float | None = None


class CostEstimate(PartialPart):
    """A cost estimate for a new or validated job.

    Attributes:
        amount: the estimated cost of training (storage is separate).
        currency: its currency, when known.
        source: ``local`` (computed from the prepared data and a price table, sending
            nothing), ``dry_run`` (asked of the remote with ``plan --remote-estimate``) or
            ``remote-validation`` (the validated job's metadata).
        train_tokens: tokens the run trains on (local estimates and dry runs).
        expected_duration_seconds: what a dry run also reports (dry runs only).
        basis: how a local estimate was computed (local estimates only).
        storage_per_month: monthly storage of the fine-tuned model it makes (local estimates
            only).
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"train_tokens", "expected_duration_seconds", "basis", "storage_per_month"}
    )

    amount: float
    currency: str | None
    source: CostSource
    train_tokens: int | None = None
    expected_duration_seconds: int | None = None
    basis: CostBasis | None = None
    storage_per_month: float | None = None


# -- changes ----------------------------------------------------------------------------------


class Change(PartialPart):
    """One planned change (a :class:`FileChange` or a :class:`JobChange`).

    Attributes:
        address: e.g. ``job.dumbledore-v1``.
        type: ``file`` or ``job``.
        action: what apply does.
        reason: why (see :class:`Reason`). For people and policies; apply does not read it.
        replace_paths: request fields whose change forces a new object.
        update_fields: for model updates, field → before/after.
        depends_on: addresses that must be applied first.
        cost: cost estimate, where the remote gives one.
        blocked: why apply will refuse this change (e.g. a possible duplicate), with a hint.
        force_new: make a new object even though the state records one with this exact
            fingerprint (it was deleted remotely, or ``--replace`` asked for it): the record
            does not count as "already made".
        labels: the labels of the document the address comes from (for selectors and
            policies; empty for prunes of records made before labels were recorded).
        location: ``file:line`` of that document (None for prunes).
        moved_from: a ``Moved`` document renames this address: apply first moves the
            state's record of this address there (only present when set).
        import_id: an ``Import`` document (or the import of the job that uses this file)
            adopts this remote object: apply first records it for the address (only present
            when set).
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"moved_from", "import_id"})

    address: Address
    type: ResourceType
    action: Action
    reason: Reason
    replace_paths: tuple[str, ...] = ()
    update_fields: Mapping[ModelField, FieldUpdate] = Field(default_factory=dict)
    depends_on: tuple[Address, ...] = ()
    cost: CostEstimate | None = None
    blocked: str | None = None
    force_new: bool = False
    labels: Mapping[str, str] = Field(default_factory=dict)
    location: str | None = None
    moved_from: Address | None = None
    import_id: str | None = None


class FileChange(Change):
    """A planned change of an uploaded file.

    Attributes:
        before: the recorded file (None for creates of unrecorded files).
        after: the file to upload (None for prunes).
        previous: for replaces, the old upload (kept).
        used_by: for prunes, the addresses that still use the remote file (another dataset
            address recording it, or a job trained on it, current or in history): the file
            is then only forgotten (action ``forget``), never deleted.
    """

    type: Literal[ResourceType.FILE] = ResourceType.FILE
    before: FileBefore | None = None
    after: FileAfter | None = None
    previous: FilePrevious | None = None
    used_by: tuple[Address, ...] = ()


class JobChange(Change):
    """A planned change of a fine-tuning job.

    Attributes:
        before: the recorded job, as refreshed (None for creates of unrecorded jobs).
        after: the job the specs ask for (None for prunes).
        previous: for replaces and prunes, the old job and what happens to it.
        cancel_first: for replaces: the remote refuses a second *similar* job while the
            previous one is active (409), so apply cancels the previous job, waits until it
            has stopped, and only then creates the new one — the address has no active job
            in between.
        restores: for ``restore``: the job of this address's history, SUCCEEDED with exactly
            this request, that apply re-points the address to (nothing is created; the
            current job is the ``previous``). Only present when set.
        delete_models: fine-tuned models of this address's previous jobs that apply
            deletes: replaced under ``on_replace.previous_model: delete``, and the job that
            replaced them has SUCCEEDED. Only present when set.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = Change.OPTIONAL_KEYS | frozenset(
        {"restores", "delete_models"}
    )

    type: Literal[ResourceType.JOB] = ResourceType.JOB
    before: JobBefore | None = None
    after: JobAfter | None = None
    previous: JobPrevious | None = None
    cancel_first: bool = False
    restores: str | None = None
    delete_models: tuple[str, ...] = ()


AnyChange = Annotated[FileChange | JobChange, Field(discriminator="type")]
"""A change read from a plan: a file or a job change, told apart by ``type``."""


class Drift(PlanPart):
    """An object that changed outside reconciler.

    Attributes:
        address: the managed address.
        remote_id: the remote object.
        kind: ``deleted``, ``cancelled``, ``failed``, ``failed-validation``.
        message: one line for humans, with what to do about it.
    """

    address: Address
    remote_id: str | None
    kind: DriftKind
    message: str


class PlanSettings(PlanPart):
    """The command-line options a plan was made with.

    Attributes:
        targets: ``--target`` patterns.
        selectors: ``--selector`` labels, as ``key=value``.
        replace: ``--replace`` patterns.
        prune: ``--prune``.
        max_cost: ``--max-cost`` (None: not given).
    """

    targets: tuple[str, ...] = ()
    selectors: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    prune: bool = False
    max_cost: float | None = None


class RunBudgetLimit(PlanPart):
    """The cap on the whole plan's cost that was checked.

    Attributes:
        max_cost: the highest acceptable sum of the estimates of the jobs the plan creates or
            starts (USD).
        source: where it comes from: ``--max-cost`` or ``Provider budget``.
    """

    max_cost: float
    source: str


class Plan(PlanPart):
    """The whole plan. See the module docstring for the compatibility rules.

    Attributes:
        format_version: ``MAJOR.MINOR`` of this layout.
        tool_version: reconciler version that made it.
        created_at: unix seconds.
        target: where it applies (``embedded sandbox (...)``, ``mistral https://...``).
        spec_paths: the spec paths it was made from, relative to the working directory.
        lineage / serial: of the state it was made against (None: no state yet).
        spec_digest: digest of the specs and the prepared data contents.
        changes: every change, in execution order (no-ops included, action ``no-op``).
        drift: objects changed outside reconciler.
        not_in_spec: managed addresses the specs no longer name (acted on only with prune).
        warnings: other things worth reading.
        options: targets / replace / prune / max_cost the plan was made with.
        models_kept: fine-tuned models kept after apply (for the storage-cost line).
        storage_cost_per_model: monthly storage cost of one fine-tuned model (USD).
        errors: why apply refuses this plan as a whole (a job over its budget, the run over
            its cap). With the changes apply refuses one by one (``blocked``: a possible
            duplicate, a job the remote cannot tell from another's) they are the plan's
            :attr:`all_errors`: listed first, and ``plan`` exits 1 when there is any.
        unestimated: new jobs without a cost estimate, and why (the cost totals are then a
            lower bound).
        run_budget: the cap on the whole plan's cost that was checked, if any.
    """

    format_version: str = PLAN_FORMAT_VERSION
    tool_version: str
    created_at: float
    target: str
    spec_paths: tuple[str, ...]
    lineage: str | None
    serial: int | None
    spec_digest: str
    changes: tuple[AnyChange, ...]
    drift: tuple[Drift, ...] = ()
    not_in_spec: tuple[Address, ...] = ()
    warnings: tuple[str, ...] = ()
    options: PlanSettings = PlanSettings()
    models_kept: int = 0
    storage_cost_per_model: float = 2.0
    errors: tuple[str, ...] = ()
    unestimated: Mapping[Address, str] = Field(default_factory=dict)
    run_budget: RunBudgetLimit | None = None

    @property
    def actionable(self) -> list[FileChange | JobChange]:
        """Changes that do something (not no-ops)."""
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        """True when apply would change anything."""
        return bool(self.actionable)

    @property
    def all_errors(self) -> list[str]:
        """Everything apply refuses: the plan's :attr:`errors`, then each blocked change
        (``address: why``)."""
        return [*self.errors, *(f"{c.address}: {c.blocked}" for c in self.changes if c.blocked)]

    @property
    def models_deleted(self) -> int:
        """Fine-tuned models apply deletes (``delete_models`` of every change)."""
        return sum(len(c.delete_models) for c in self.changes if isinstance(c, JobChange))

    @property
    def unmanaged_leftovers(self) -> tuple[Address, ...]:
        """Addresses the specs no longer name that this plan does not act on."""
        acted = {c.address for c in self.changes if c.action.prunes}
        return tuple(a for a in self.not_in_spec if a not in acted)

    @property
    def differs(self) -> bool:
        """The remote differs from the specs: changes, drift, or objects no longer in spec.

        What ``plan --detailed-exitcode`` reports as 2: a drift check in CI must fail on a
        job cancelled outside the tool or a leftover the specs dropped, even when apply
        would not act on them.
        """
        return self.has_changes or bool(self.drift) or bool(self.unmanaged_leftovers)

    def summary(self) -> dict[str, int]:
        """Counts per action (all actions present, zeros included)."""
        counts = {a.value: 0 for a in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        return counts

    @property
    def costly(self) -> list[JobChange]:
        """The changes that cost money: jobs the plan creates, replaces or starts."""
        return [
            c
            for c in self.changes
            if isinstance(c, JobChange) and (c.action.makes_new or c.action is Action.START)
        ]

    def cost_totals(self) -> dict[str, float]:
        """Sum of the estimates of :attr:`costly` changes, by currency (``""``: unknown)."""
        totals: dict[str, float] = {}
        for change in self.costly:
            if change.cost is not None:
                currency = change.cost.currency or ""
                totals[currency] = totals.get(currency, 0.0) + change.cost.amount
        return totals

    def only(self, actions: Collection[Action]) -> Plan:
        """A copy of this plan with only the changes of these actions."""
        return self.model_copy(
            update={"changes": tuple(c for c in self.changes if c.action in actions)}
        )

    def to_json_dict(self) -> dict[str, Any]:
        """The documented JSON form (adds ``summary``)."""
        data: dict[str, Any] = self.model_dump(mode="json")
        data["summary"] = self.summary()
        data["has_changes"] = self.has_changes
        data["costs"] = {
            "totals": {k: round(v, 4) for k, v in sorted(self.cost_totals().items())},
            "complete": not self.unestimated,
            "unestimated": len(self.unestimated),
        }
        return data

    def save(self, path: Path) -> None:
        """Write the plan file (JSON), whole or not at all, scrubbed of every secret of the run.

        Raises:
            StorageError: ``path`` cannot take the file (the message says why and the fix).
        """
        payload = {"kind": "reconciler-plan", **self.to_json_dict()}
        text = scrub(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        write_output_file(path, text, what="the plan")

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read a plan file; a file that is not one is a PlanError."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: not a readable plan file ({exc})") from exc
        if not isinstance(data, dict) or data.get("kind") != "reconciler-plan":
            raise PlanError(f"{path}: not a reconciler plan file (made by 'reconciler plan --out')")
        version = str(data.get("format_version", ""))
        if version.split(".")[0] != PLAN_FORMAT_VERSION.split(".")[0]:
            raise PlanError(
                f"{path}: plan format {data.get('format_version')} is not supported by this "
                f"version (expects {PLAN_FORMAT_VERSION}); re-run 'reconciler plan'"
            )
        for key in ("kind", "summary", "has_changes", "costs"):
            data.pop(key, None)
        if version == "1.0":
            data = _upgrade_1_0(data)
        try:
            return cls.model_validate(data)
        except Exception as exc:  # pydantic.ValidationError: a damaged or edited file
            raise PlanError(f"{path}: damaged plan file ({exc.__class__.__name__})") from exc


APPROVAL_IGNORED = frozenset({"cost", "before.status", "previous.status"})
"""Change keys :func:`approval_differences` does not compare: the cost (an estimate, not an
action) and the remote statuses shown for information (what apply does with a previous job
is its ``disposition``, which is compared)."""


def approval_differences(saved: Plan, fresh: Plan) -> list[str]:
    """Where a plan made now differs from a saved (approved) one, per address and field.

    Empty when apply would do what the reviewer approved: every change that does something in
    either plan has the same action and the same fields in both, costs and informational
    statuses aside (:data:`APPROVAL_IGNORED`). Lines read ``address: field: saved → now``.
    """

    def flat(change: FileChange | JobChange | None) -> dict[str, Any]:
        if change is None:
            return {}
        out: dict[str, Any] = {}
        _flatten(change.model_dump(mode="json"), "", out)
        return {k: v for k, v in out.items() if not _ignored(k)}

    old = {c.address: c for c in saved.changes}
    new = {c.address: c for c in fresh.changes}
    acting = sorted({c.address for c in saved.actionable} | {c.address for c in fresh.actionable})
    lines: list[str] = []
    for address in acting:
        before, after = flat(old.get(address)), flat(new.get(address))
        if address not in old or address not in new:
            where = "the saved plan" if address in old else "the plan made now"
            action = (old.get(address) or new[address]).action
            lines.append(f"{address}: only in {where} ({action})")
            continue
        for key in sorted(set(before) | set(after)):
            if before.get(key) != after.get(key):
                lines.append(
                    f"{address}: {key}: {json.dumps(before.get(key))} → {json.dumps(after.get(key))}"
                )
    return lines


def _ignored(key: str) -> bool:
    return any(key == k or key.startswith(k + ".") for k in APPROVAL_IGNORED)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            _flatten(item, f"{prefix}[{index}]", out)
    else:
        out[prefix] = value


_FORCE_NEW_REASONS_1_0 = frozenset({Reason.DELETED_REMOTELY, Reason.REPLACE_BY_REQUEST})
"""The reasons that meant "make it again although the state records it" in layout 1.0."""


def _upgrade_1_0(data: dict[str, Any]) -> dict[str, Any]:
    """A 1.0 plan's data with the 1.1 ``force_new`` of each change filled in."""
    changes = data.get("changes")
    if isinstance(changes, list):
        data["changes"] = [
            {**c, "force_new": c.get("reason") in _FORCE_NEW_REASONS_1_0}
            if isinstance(c, dict)
            else c
            for c in changes
        ]
    return data
