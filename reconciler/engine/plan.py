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
from reconciler.errors import PlanError

PLAN_FORMAT_VERSION = "1.1"


class Action(StrEnum):
    """What apply does to an address."""

    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    START = "start"
    DELETE = "delete"
    FORGET = "forget"

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


_MAKES_NEW = frozenset({Action.CREATE, Action.REPLACE})
_PRUNES = frozenset({Action.DELETE, Action.FORGET})
_SYMBOLS = {
    Action.NOOP: " ",
    Action.CREATE: "+",
    Action.UPDATE: "~",
    Action.REPLACE: "-/+",
    Action.START: ">",
    Action.DELETE: "-",
    Action.FORGET: "-",
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
    NOT_IN_SPEC = "not-in-spec"
    IN_SYNC = "in-sync"


class Disposition(StrEnum):
    """What happens to the previous remote object of a replaced or pruned address."""

    CANCEL = "cancel"
    KEEP = "keep"


class ModelDisposition(StrEnum):
    """What happens to the fine-tuned model of a replaced job."""

    KEEP = "keep"
    ARCHIVE = "archive"


class DriftKind(StrEnum):
    """How an object changed outside reconciler."""

    DELETED = "deleted"
    CANCELLED = "cancelled"
    FAILED = "failed"
    FAILED_VALIDATION = "failed-validation"


class CostSource(StrEnum):
    """Where a cost estimate comes from."""

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


class FileAfter(PartialPart):
    """The file apply will have uploaded.

    Attributes:
        dataset, part: the dataset part it is prepared from.
        filename: the upload name (carries the content hash).
        sha256, bytes, num_lines: content facts.
        reuse: id of an identical remote file (same content-addressed name and size) that is
            recorded instead of uploading again; only present when there is one.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"reuse"})

    dataset: str
    part: str
    filename: str
    sha256: str
    bytes: int
    num_lines: int
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


class IntegrationRef(PlanPart):
    """A W&B integration of a job request, its key shown as the reference only.

    Attributes:
        type: ``wandb``.
        project, name, run_name: as sent.
        api_key: where the key comes from, e.g. ``{"env": "WANDB_API_KEY"}``; never a value.
    """

    type: Literal["wandb"] = "wandb"
    project: str
    name: str | None
    run_name: str | None
    api_key: Mapping[str, str]


class JobRequest(PartialPart):
    """The create request of a job in content form (files by address and hash, no secret).

    Attributes:
        model, job_type, suffix, invalid_sample_skip_percentage: as sent.
        training_files, validation_files: the files, by content.
        hyperparameters: the values that are set (server defaults are not filled in).
        integrations: W&B integrations.
        classifier_targets: classifier jobs' targets (``name``, ``labels``, ``weight``,
            ``loss_function``).
        lora: the LoRA adapter of a self-hosted (``ray``) job, ``{"rank": N}``; only present
            when the spec sets it.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"lora"})

    model: str
    job_type: str
    training_files: tuple[FileRef, ...]
    validation_files: tuple[FileRef, ...]
    hyperparameters: Mapping[str, int | float]
    suffix: str | None
    invalid_sample_skip_percentage: float
    integrations: tuple[IntegrationRef, ...]
    classifier_targets: tuple[Mapping[str, Any], ...]
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
        previous_model: ``keep`` or ``archive`` the previous job's model.
    """

    active_job: Disposition
    previous_model: ModelDisposition


class JobAfter(PartialPart):
    """The job apply will have made, with its lifecycle settings.

    Attributes:
        request: the create request in content form.
        start: start it once validated (else leave it VALIDATED).
        budget: the start gate's budget, if any.
        fine_tuned_model: the wanted model metadata, if any.
        on_replace: what a later replacement does to it.
        matrix: the matrix cell's values (empty when not from a matrix).
        source: the FineTuningJob document it comes from.
        runs_at_once: the provider runs a job as soon as it is created (Ray), so there is no
            start gate; only present (true) for such providers.
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset({"runs_at_once"})

    request: JobRequest
    start: bool
    budget: BudgetLimit | None
    fine_tuned_model: ModelMetadata | None
    on_replace: ReplacePolicy
    matrix: Mapping[str, Any]
    source: str
    runs_at_once: bool = False


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
        model_disposition: ``keep`` or ``archive`` the model (None when there is none).
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


ModelField = Literal["name", "description", "archived"]
"""The fine-tuned model fields an update changes in place."""

MODEL_FIELDS: tuple[ModelField, ...] = ("name", "description", "archived")
"""Every :data:`ModelField`, in the order plans list them."""


class CostEstimate(PartialPart):
    """A cost estimate for a new or validated job.

    Attributes:
        amount: the estimated cost.
        currency: its currency, when the remote says.
        source: ``dry_run`` (asked before create) or ``remote-validation`` (the validated
            job's metadata).
        train_tokens, expected_duration_seconds: what the dry run also reports (dry runs
            only).
    """

    OPTIONAL_KEYS: ClassVar[frozenset[str]] = frozenset(
        {"train_tokens", "expected_duration_seconds"}
    )

    amount: float
    currency: str | None
    source: CostSource
    train_tokens: int | None = None
    expected_duration_seconds: int | None = None


# -- changes ----------------------------------------------------------------------------------


class Change(PlanPart):
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
    """

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


class FileChange(Change):
    """A planned change of an uploaded file.

    Attributes:
        before: the recorded file (None for creates of unrecorded files).
        after: the file to upload (None for prunes).
        previous: for replaces, the old upload (kept).
    """

    type: Literal[ResourceType.FILE] = ResourceType.FILE
    before: FileBefore | None = None
    after: FileAfter | None = None
    previous: FilePrevious | None = None


class JobChange(Change):
    """A planned change of a fine-tuning job.

    Attributes:
        before: the recorded job, as refreshed (None for creates of unrecorded jobs).
        after: the job the specs ask for (None for prunes).
        previous: for replaces and prunes, the old job and what happens to it.
    """

    type: Literal[ResourceType.JOB] = ResourceType.JOB
    before: JobBefore | None = None
    after: JobAfter | None = None
    previous: JobPrevious | None = None


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
        replace: ``--replace`` patterns.
        prune: ``--prune``.
    """

    targets: tuple[str, ...] = ()
    replace: tuple[str, ...] = ()
    prune: bool = False


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
        options: targets / replace / prune the plan was made with.
        models_kept: fine-tuned models kept after apply (for the storage-cost line).
        storage_cost_per_model: monthly storage cost of one fine-tuned model (USD).
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

    @property
    def actionable(self) -> list[FileChange | JobChange]:
        """Changes that do something (not no-ops)."""
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        """True when apply would change anything."""
        return bool(self.actionable)

    def summary(self) -> dict[str, int]:
        """Counts per action (all actions present, zeros included)."""
        counts = {a.value: 0 for a in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        return counts

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
        return data

    def save(self, path: Path) -> None:
        """Write the plan file (JSON)."""
        payload = {"kind": "reconciler-plan", **self.to_json_dict()}
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")

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
        for key in ("kind", "summary", "has_changes"):
            data.pop(key, None)
        if version == "1.0":
            data = _upgrade_1_0(data)
        try:
            return cls.model_validate(data)
        except Exception as exc:  # pydantic.ValidationError: a damaged or edited file
            raise PlanError(f"{path}: damaged plan file ({exc.__class__.__name__})") from exc


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
