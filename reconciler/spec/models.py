"""Spec language v1 as pydantic models: one model per document ``kind``.

These models are the single source of truth for what a spec may contain: the loader validates
documents against them, ``schemas/`` is generated from them, and the README's spec reference
is checked against them. Field names follow the Mistral API where one exists.

Every model forbids unknown fields (typos become errors with a "did you mean" hint, added by
the loader). Secret fields accept only references (:class:`SecretRef`), never literals.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reconciler.address import Address
from reconciler.spec.template import parse_template

NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"
"""Document names: lower-case letters, digits and dashes, not starting or ending with a dash."""

NAME_MAX = 63
API_VERSION = "reconciler/v1"

Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=NAME_MAX)]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENV_NAME_MAX = 64
"""Longest ``{env: NAME}`` accepted; real variable names are far shorter, keys are not."""


def looks_like_secret_value(name: str) -> bool:
    """Whether an ``{env: ...}`` name is more likely a pasted secret than a variable name.

    Anything that is not a valid name, or longer than :data:`ENV_NAME_MAX`. From 32 characters
    on, also the shapes of keys: no ``_`` but digits (hex and base62 tokens); a quarter or more
    digits; or lower case, upper case and digits mixed. Long real names are words joined by
    ``_`` (``MY_TEAM_FINE_TUNING_WANDB_API_KEY``) and pass.
    """
    if not _ENV_NAME.match(name) or len(name) > ENV_NAME_MAX:
        return True
    if len(name) < 32:
        return False
    digits = sum(c.isdigit() for c in name)
    mixed = any(c.islower() for c in name) and any(c.isupper() for c in name) and digits > 0
    return ("_" not in name and digits > 0) or digits * 4 >= len(name) or mixed


class StrictModel(BaseModel):
    """Base of all spec models: unknown fields are errors; values are immutable."""

    # allow_inf_nan=False: '.inf' / '.nan' are valid YAML floats but never a sensible setting.
    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


class SecretRef(StrictModel):
    """A reference to a secret; the value itself never appears in a spec, plan or state.

    Exactly one of ``env`` or ``file`` is set. It is resolved only when needed (at apply),
    so ``validate`` works without the secret being present.
    """

    env: str | None = Field(
        default=None, description="Name of an environment variable holding the secret."
    )
    file: str | None = Field(
        default=None,
        description="Path of a file holding the secret (relative to the spec file); "
        "surrounding whitespace is stripped.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret reference takes exactly one of 'env' or 'file'")
        if self.env is not None and looks_like_secret_value(self.env):
            # The value is never repeated: users sometimes paste the secret itself here, and
            # this message reaches CI logs and pull-request annotations.
            raise ValueError(
                "this looks like a secret value, not a variable name: 'env' takes the name of "
                f"an environment variable ([A-Za-z_][A-Za-z0-9_]*, at most {ENV_NAME_MAX} "
                "characters) that holds the secret. Never write a secret in a spec; if one was "
                "committed, revoke it"
            )
        return self

    def describe(self) -> str:
        """Masked, printable description such as ``env:WANDB_API_KEY``."""
        return f"env:{self.env}" if self.env is not None else f"file:{self.file}"


class DocumentBase(StrictModel):
    """Fields every document has."""

    apiVersion: Literal["reconciler/v1"] | None = Field(  # noqa: N815 - YAML spelling
        default=None, description="Optional; when given it must be 'reconciler/v1'."
    )
    name: Name = Field(description="Unique within its kind: [a-z0-9-], at most 63 characters.")
    labels: dict[str, str] = Field(
        default_factory=dict, description="Free-form string labels, e.g. for selection."
    )
    description: str | None = Field(default=None, description="Free-form description.")


# --------------------------------------------------------------------------- Dataset


class MessageMapping(StrictModel):
    """How one chat message is built from a row of a CSV/JSON/JSONL source.

    Exactly one of ``column``, ``template`` or ``content`` gives the text.
    """

    role: Literal["system", "user", "assistant"] = Field(description="Role of the message.")
    column: str | None = Field(default=None, description="Take the text from this column.")
    template: str | None = Field(
        default=None,
        description="Build the text from columns with {column} placeholders; {{ and }} are "
        "literal braces. Nothing else is allowed: no attribute or item access, format specs, "
        "conversions or positional fields.",
    )
    content: str | None = Field(default=None, description="A fixed text.")
    after: str | None = Field(
        default=None,
        description="Keep only the text after the first occurrence of this marker "
        "(e.g. 'Input:'); a row without the marker is invalid.",
    )
    strip: bool = Field(default=True, description="Strip surrounding whitespace.")

    @field_validator("template")
    @classmethod
    def _plain_placeholders(cls, value: str | None) -> str | None:
        # Specs may be untrusted: only {column} placeholders, never str.format's language.
        if value is not None:
            parse_template(value)
        return value

    @model_validator(mode="after")
    def _one_source(self) -> MessageMapping:
        given = [k for k in ("column", "template", "content") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("a message takes exactly one of 'column', 'template' or 'content'")
        return self


class Conversion(StrictModel):
    """Declarative conversion of tabular/JSON rows into chat samples."""

    format: Literal["csv", "json", "jsonl"] | None = Field(
        default=None,
        description="Source format; by default taken from the file extension "
        "(.csv, .json, .jsonl).",
    )
    system: str | None = Field(
        default=None, description="System prompt added as the first message of every sample."
    )
    messages: list[MessageMapping] = Field(
        min_length=1, description="The messages of each sample, in order."
    )
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="CSV delimiter.")
    records: str | None = Field(
        default=None,
        description="For JSON sources: the key holding the list of records "
        "(default: the document itself is the list).",
    )


class Split(StrictModel):
    """Deterministic split into a train and a validation part."""

    validation_fraction: float = Field(
        gt=0, lt=1, description="Share of samples that go to the validation part."
    )
    seed: int = Field(default=0, description="Seed of the deterministic shuffle.")
    max_validation_bytes: int | None = Field(
        default=None,
        gt=0,
        description="Cap the validation part at this many bytes (the API accepts at most 1 MB "
        "of validation data); samples over the cap go back to train.",
    )


class Dataset(DocumentBase):
    """A training or validation file, optionally converted and split.

    Its prepared parts are uploaded as content-addressed files: ``all`` when there is no
    split, ``train`` and ``validation`` when there is.
    """

    kind: Literal["Dataset"] = "Dataset"
    path: str | None = Field(default=None, description="Source file, relative to this spec.")
    paths: list[str] | None = Field(
        default=None, min_length=1, description="Several source files, concatenated in order."
    )
    format: Literal["chat", "preference"] = Field(
        default="chat",
        description="What the samples are: 'chat' conversations (or pretrain text), or "
        "'preference' comparisons for DPO (OpenAI's format: input, preferred_output, "
        "non_preferred_output).",
    )
    convert: Conversion | None = Field(
        default=None, description="Convert CSV/JSON/JSONL rows into chat samples."
    )
    split: Split | None = Field(default=None, description="Split into train and validation.")
    on_invalid: Literal["error", "skip"] = Field(
        default="error",
        description="'error': invalid samples fail validation; 'skip': they are dropped from "
        "the prepared file and reported.",
    )
    filename: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._-]{1,100}$",
        description="Base of the uploaded file name; the content hash is appended. "
        "Default: the dataset name.",
    )

    @field_validator("convert")
    @classmethod
    def _chat_only_conversion(
        cls, value: Conversion | None, info: ValidationInfo
    ) -> Conversion | None:
        # 'format' is declared before 'convert', so it is validated (and known) here.
        if value is not None and info.data.get("format") == "preference":
            raise ValueError(
                "'convert' builds chat samples and cannot build preference samples: write the "
                "preference data as JSONL (one {input, preferred_output, non_preferred_output} "
                "object per line) and remove 'convert', or set 'format: chat'"
            )
        return value

    @model_validator(mode="after")
    def _path_or_paths(self) -> Dataset:
        if (self.path is None) == (self.paths is None):
            raise ValueError("a Dataset takes exactly one of 'path' or 'paths'")
        return self

    @property
    def sources(self) -> list[str]:
        """The source paths as written, in order."""
        return [self.path] if self.path is not None else list(self.paths or [])

    @property
    def parts(self) -> tuple[str, ...]:
        """Names of the prepared parts: ('train', 'validation') with a split, else ('all',)."""
        return ("train", "validation") if self.split is not None else ("all",)


# --------------------------------------------------------------------------- Hyperparameters


class HyperparameterValues(StrictModel):
    """Training parameters with the API's ranges. Unset fields take the server's defaults.

    Which of them a job may set depends on its Provider's service: ``training_steps``,
    ``learning_rate`` (an absolute rate), ``weight_decay``, ``warmup_fraction``, ``seq_len`` and
    ``fim_ratio`` are Mistral's; ``learning_rate_multiplier``, ``batch_size`` and ``beta`` are
    OpenAI's; ``epochs`` is both (a whole number for OpenAI, sent as ``n_epochs``). ``validate``
    names the ones the Provider does not take.
    """

    training_steps: int | None = Field(default=None, ge=1, description="Number of steps (>= 1).")
    learning_rate: float | None = Field(
        default=None, ge=1e-8, le=1, description="Peak learning rate, 1e-8..1 (server: 1e-4)."
    )
    weight_decay: float | None = Field(
        default=None, ge=0, le=1, description="Weight decay, 0..1 (server default 0.1)."
    )
    warmup_fraction: float | None = Field(
        default=None, ge=0, le=1, description="Warm-up fraction, 0..1 (server default 0.05)."
    )
    epochs: float | None = Field(default=None, gt=0, description="Epochs (> 0).")
    seq_len: int | None = Field(default=None, ge=100, description="Sequence length (>= 100).")
    fim_ratio: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Fill-in-the-middle ratio, 0..1 (completion jobs only; server default 0.9).",
    )
    learning_rate_multiplier: float | None = Field(
        default=None,
        gt=0,
        description="openai: scaling factor of the service's own learning rate (> 0; default "
        "chosen by the service).",
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=256, description="openai: examples per batch, 1..256."
    )
    beta: float | None = Field(
        default=None,
        gt=0,
        le=2,
        description="openai, method: dpo only: weight of the penalty between the policy and "
        "the reference model, 0 < beta <= 2.",
    )

    def set_values(self) -> dict[str, Any]:
        """Only the fields that are set, in field order."""
        return {k: v for k, v in self.model_dump().items() if v is not None and k != "extends"}


HYPERPARAMETER_FIELDS: tuple[str, ...] = tuple(HyperparameterValues.model_fields)


class Hyperparameters(DocumentBase, HyperparameterValues):
    """A reusable hyperparameter profile; may ``extends`` another profile."""

    kind: Literal["Hyperparameters"] = "Hyperparameters"
    extends: str | None = Field(
        default=None, description="Name of a profile whose values this one starts from."
    )


class InlineHyperparameters(HyperparameterValues):
    """Hyperparameters written in a job: inline values, optionally on top of a profile."""

    extends: str | None = Field(
        default=None, description="Profile to start from; the values here override it."
    )


# --------------------------------------------------------------------------- W&B


class WandbIntegration(DocumentBase):
    """A Weights & Biases integration attached to jobs."""

    kind: Literal["WandbIntegration"] = "WandbIntegration"
    project: str = Field(min_length=1, description="W&B project the runs are created under.")
    run_display_name: str | None = Field(
        default=None,
        alias="display_name",
        description="Display name of the run (the API's 'name'); default: the job id.",
    )
    run_name: str | None = Field(default=None, description="W&B run name.")
    api_key: SecretRef | None = Field(
        default=None,
        description="W&B API key (40 characters) as {env: NAME} or {file: PATH}; write-only. "
        "Required by mistral; refused by openai, which keeps the key in the organisation's "
        "settings.",
    )
    entity: str | None = Field(
        default=None,
        min_length=1,
        description="openai: the W&B team or user the run belongs to (default: the key's).",
    )
    tags: list[str] = Field(default_factory=list, description="openai: tags added to the W&B run.")


# --------------------------------------------------------------------------- FineTuningJob


class DatasetRef(StrictModel):
    """A reference to a dataset's prepared part."""

    dataset: str = Field(description="Name of a Dataset document.")
    part: Literal["all", "train", "validation"] | None = Field(
        default=None,
        description="Which prepared part; default 'train' for training files and 'validation' "
        "for validation files when the dataset is split, else 'all'.",
    )


class TrainingFileRef(DatasetRef):
    """A training dataset with its sampling weight."""

    weight: float = Field(default=1.0, gt=0, description="Sampling weight (> 0).")


class ClassifierTarget(StrictModel):
    """A classifier head (classifier jobs only)."""

    name: str = Field(min_length=1, description="Target name (the label key in the data).")
    labels: list[str] = Field(min_length=1, description="Possible labels.")
    weight: float = Field(default=1.0, ge=0, description="Loss weight (>= 0).")
    loss_function: Literal["single_class", "multi_class"] | None = Field(
        default=None, description="single_class or multi_class."
    )


class Budget(StrictModel):
    """A job's cost cap: checked at plan time against the local estimate (a job over it is a
    plan error), and again after the remote validated the job, against the remote's own
    estimate, before it is started."""

    max_cost: float = Field(
        gt=0, description="Maximum accepted cost estimate, in the currency the remote reports."
    )


class FineTunedModelSpec(StrictModel):
    """Mutable properties of the resulting fine-tuned model, kept in sync after success."""

    name: str | None = Field(default=None, description="Display name of the model.")
    description: str | None = Field(default=None, description="Description of the model.")
    archived: bool = Field(default=False, description="Archive the model.")


class OnReplace(StrictModel):
    """What happens to the previous job when a spec change forces a new one."""

    active_job: Literal["cancel", "keep"] = Field(
        default="cancel",
        description="A previous job still queued/validated/running: cancel it (default) or "
        "let it finish.",
    )
    previous_model: Literal["keep", "archive", "delete"] = Field(
        default="keep",
        description="The previous job's fine-tuned model: keep it (default), archive it, or "
        "delete it once the replacement has SUCCEEDED (never earlier; a replacement that "
        "fails keeps it).",
    )


class LoraSpec(StrictModel):
    """The LoRA adapter a self-hosted job trains (Provider ``type: ray`` only)."""

    rank: int = Field(
        ge=1,
        le=1024,
        description="Rank of the adapter's update matrices (the trainer's default: 16).",
    )


MatrixValue = int | float | str


class FineTuningJob(DocumentBase):
    """A fine-tuning job. Every field that goes into the create request is immutable:
    changing one plans a replacement (a new job)."""

    kind: Literal["FineTuningJob"] = "FineTuningJob"
    model: str = Field(min_length=1, description="Base model, e.g. open-mistral-7b.")
    job_type: Literal["completion", "classifier"] = Field(
        default="completion", description="completion (default) or classifier."
    )
    training_files: list[str | TrainingFileRef] = Field(
        min_length=1,
        description="Training datasets: names, or {dataset, weight, part} mappings.",
    )
    validation_files: list[str | DatasetRef] = Field(
        default_factory=list, description="Validation datasets: names or {dataset, part}."
    )
    hyperparameters: str | InlineHyperparameters = Field(
        default_factory=InlineHyperparameters,
        description="A profile name, inline values, or inline values with 'extends: PROFILE'.",
    )
    integrations: list[str] = Field(
        default_factory=list, description="Names of WandbIntegration documents."
    )
    suffix: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Added to the fine-tuned model name (at most 18 characters for mistral, "
        "64 for openai).",
    )
    invalid_sample_skip_percentage: float = Field(
        default=0, ge=0, le=0.5, description="Share of invalid samples the remote may skip, 0..0.5."
    )
    classifier_targets: list[ClassifierTarget] | None = Field(
        default=None, description="Classifier heads (required for classifier jobs)."
    )
    method: Literal["supervised", "dpo"] = Field(
        default="supervised",
        description="Training method: supervised (default), or dpo (openai: preference "
        "datasets, hyperparameter beta).",
    )
    seed: int | None = Field(
        default=None,
        ge=0,
        le=2147483647,
        description="openai: seed of the run, for reproducibility (default: one the service "
        "draws).",
    )
    start: bool = Field(
        default=True,
        description="Start the job once the remote validated it (false: leave it VALIDATED). "
        "Services that start jobs at once (openai) refuse false.",
    )
    paused: bool = Field(
        default=False,
        description="openai: pause the running job (true), or resume it (back to false); an "
        "update in place, not a new job.",
    )
    budget: Budget | None = Field(default=None, description="Cost gate before starting.")
    fine_tuned_model: FineTunedModelSpec | None = Field(
        default=None, description="Name, description and archived flag of the resulting model."
    )
    on_replace: OnReplace = Field(
        default_factory=OnReplace, description="What happens to the previous job on replace."
    )
    lora: LoraSpec | None = Field(
        default=None,
        description="ray only: the LoRA adapter to train, {rank: N} (default rank 16). Part of "
        "the request: changing it plans a new job.",
    )
    matrix: dict[str, list[MatrixValue]] | None = Field(
        default=None,
        description="Expand into one job per combination, over hyperparameter fields "
        "(and 'model'); derived names such as NAME-lr-1e-4-steps-100.",
    )
    rerun: str | None = Field(
        default=None,
        min_length=1,
        description="Any text; changing it forces a new job with the same request (a re-run "
        "asked for in Git). Part of the request fingerprint, never sent to the remote.",
    )

    @field_validator("matrix")
    @classmethod
    def _matrix_keys(
        cls, value: dict[str, list[MatrixValue]] | None
    ) -> dict[str, list[MatrixValue]] | None:
        if value is None:
            return value
        allowed = set(HYPERPARAMETER_FIELDS) | {"model"}
        for key, values in value.items():
            if key not in allowed:
                raise ValueError(f"matrix key '{key}' is not one of: {', '.join(sorted(allowed))}")
            if not values:
                raise ValueError(f"matrix key '{key}' needs at least one value")
            if len(set(map(repr, values))) != len(values):
                raise ValueError(f"matrix key '{key}' lists a value twice")
        return value

    @model_validator(mode="after")
    def _classifier(self) -> FineTuningJob:
        if self.method == "dpo" and self.job_type == "classifier":
            raise ValueError("method: dpo trains completion models; remove job_type: classifier")
        if self.job_type == "classifier" and not self.classifier_targets:
            raise ValueError("a classifier job needs 'classifier_targets'")
        if self.job_type == "completion" and self.classifier_targets:
            raise ValueError("'classifier_targets' is only for job_type: classifier")
        return self


# --------------------------------------------------------------------------- Provider


class StateConfig(StrictModel):
    """Where the state lives."""

    backend: Literal["file", "postgres"] = Field(default="file", description="file or postgres.")
    path: str | None = Field(
        default=None,
        description="file backend: state file path, relative to the spec "
        "(default .reconciler/state.json at the workspace root).",
    )
    dsn: SecretRef | None = Field(
        default=None, description="postgres backend: connection string as a secret reference."
    )
    workspace: Name = Field(default="default", description="postgres backend: workspace name.")

    @model_validator(mode="after")
    def _backend_fields(self) -> StateConfig:
        if self.backend == "postgres" and self.dsn is None:
            raise ValueError(
                "the postgres state backend needs 'dsn', e.g. {env: RECONCILER_PG_DSN}"
            )
        if self.backend == "file" and self.dsn is not None:
            raise ValueError("'dsn' is only for backend: postgres")
        return self


_MEMORY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_MEMORY_UNITS = {
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


class RayResources(StrictModel):
    """What every job of a ``type: ray`` Provider asks Ray for (the entrypoint's resources)."""

    gpus: float = Field(
        default=1,
        ge=0,
        description="GPUs per job (Ray's entrypoint_num_gpus; 0 trains on the CPU). A whole "
        "number above 1 runs the trainer under torchrun, one process per GPU.",
    )
    cpus: float | None = Field(
        default=None, ge=0, description="CPUs per job (Ray's entrypoint_num_cpus; Ray's default 1)."
    )
    memory: int | str | None = Field(
        default=None,
        description="Memory per job for Ray's scheduler: bytes, or a size such as 64GiB or 16GB.",
    )

    @field_validator("memory")
    @classmethod
    def _memory_bytes(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str):
            found = _MEMORY.match(value)
            if found is None:
                raise ValueError(
                    f"memory {value!r} is not a size: write bytes (17179869184) or a number "
                    "with a unit (16GiB, 16GB, 512MiB)"
                )
            value = int(float(found.group(1)) * _MEMORY_UNITS[(found.group(2) or "B").upper()])
        if value is not None and value <= 0:
            raise ValueError("memory must be more than 0 bytes")
        return value

    @field_validator("gpus")
    @classmethod
    def _whole_gpus_above_one(cls, value: float) -> float:
        if value > 1 and value != int(value):
            raise ValueError(
                "more than one GPU must be a whole number (one trainer process per GPU); "
                "a fraction is only possible below 1"
            )
        return value

    @property
    def memory_bytes(self) -> int | None:
        """``memory`` in bytes (a size written with a unit is converted when validated)."""
        return int(self.memory) if self.memory is not None else None


class ModelPrice(StrictModel):
    """The price of fine-tuning one base model, in USD."""

    train_per_million_tokens: float = Field(
        ge=0, description="Training price per million trained tokens (USD)."
    )
    storage_per_month: float | None = Field(
        default=None,
        ge=0,
        description="Monthly storage price of each fine-tuned model (USD); default: the "
        "built-in table's.",
    )
    minimum_fee: float | None = Field(
        default=None,
        ge=0,
        description="Minimum charge per job (USD); default: the built-in table's.",
    )


class RunBudget(StrictModel):
    """A cost cap for a whole run: the sum of the estimates of the jobs one apply creates or
    starts."""

    max_cost: float = Field(
        gt=0,
        description="Maximum total estimated cost (USD) of the jobs one plan or apply creates "
        "or starts; over it, plan reports an error and apply refuses.",
    )


class Provider(DocumentBase):
    """Where to reconcile. Without a Provider document the embedded sandbox is used."""

    kind: Literal["Provider"] = "Provider"
    type: Literal["mistral", "openai", "sandbox", "ray"] = Field(
        description="mistral, openai, sandbox, or ray (LoRA training as jobs on your own Ray "
        "cluster)."
    )
    endpoint: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="API base URL. mistral: default https://api.mistral.ai; openai: default "
        "https://api.openai.com/v1; sandbox: a running 'reconciler sandbox' server. Without "
        "it, sandbox and openai use an embedded sandbox (openai: in its OpenAI dialect).",
    )
    api_key: SecretRef | None = Field(
        default=None,
        description="Bearer key; mistral default {env: MISTRAL_API_KEY}, openai default "
        "{env: OPENAI_API_KEY}.",
    )
    organization: str | None = Field(
        default=None,
        min_length=1,
        description="openai: the organisation requests are made for (OpenAI-Organization header).",
    )
    project: str | None = Field(
        default=None,
        min_length=1,
        description="openai: the project requests are made for (OpenAI-Project header).",
    )
    state: StateConfig = Field(default_factory=StateConfig, description="State backend.")
    parallelism: int = Field(default=8, ge=1, le=64, description="Concurrent API operations.")
    rate_limit: float | None = Field(
        default=None, gt=0, description="Client-side cap in requests per second."
    )
    prices: dict[str, ModelPrice] = Field(
        default_factory=dict,
        description="Fine-tuning prices by base model, overriding the built-in price table "
        "(e.g. a negotiated rate, or a model the table does not know).",
    )
    budget: RunBudget | None = Field(
        default=None,
        description="Cap on the estimated cost of everything one plan or apply starts.",
    )
    address: str | None = Field(
        default=None,
        pattern=r"^https?://",
        description="ray: the cluster's Jobs API (the Ray dashboard's address), e.g. "
        "http://127.0.0.1:8265. api_key, if set, is the cluster's token.",
    )
    storage: str | None = Field(
        default=None,
        min_length=1,
        description="ray: a directory or URI (s3://bucket/prefix, gs://...) that both this "
        "command and the cluster reach; datasets, job descriptions, metrics and adapters go "
        "there. A relative path is relative to this spec file.",
    )
    resources: RayResources | None = Field(
        default=None, description="ray: GPUs, CPUs and memory of each job (default: 1 GPU)."
    )
    python: str | None = Field(
        default=None,
        min_length=1,
        description="ray: the Python command jobs run the trainer with on the cluster (default "
        "python); reconciler with its train extra must be installed there.",
    )
    runtime_env: dict[str, Any] | None = Field(
        default=None,
        description="ray: the Ray runtime environment of every job (env_vars, pip, "
        "working_dir, ...). Never a secret: a W&B key is added from its integration.",
    )
    price_per_gpu_hour: float | None = Field(
        default=None, gt=0, description="ray: what one GPU-hour costs (USD), for cost estimates."
    )
    tokens_per_gpu_second: float | None = Field(
        default=None,
        gt=0,
        description="ray: training throughput of one GPU in tokens per second, to turn a job's "
        "tokens into GPU-hours for cost estimates.",
    )

    @field_validator("runtime_env")
    @classmethod
    def _plain_env_vars(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        env = (value or {}).get("env_vars")
        if env is None:
            return value
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ValueError("runtime_env.env_vars must map names to strings")
        if "WANDB_API_KEY" in env:
            raise ValueError(
                "runtime_env.env_vars must not hold WANDB_API_KEY: give the key to the job's "
                "WandbIntegration as api_key: {env: WANDB_API_KEY}"
            )
        return value

    @model_validator(mode="after")
    def _ray_fields(self) -> Provider:
        # Fields of other types are refused at their line by the provider checks
        # (reconciler.spec.provider_checks); what ray cannot do without is refused here.
        if self.type == "ray":
            missing = [f for f in ("address", "storage") if getattr(self, f) is None]
            if missing:
                raise ValueError(
                    f"type: ray needs {' and '.join(repr(f) for f in missing)}: the Ray Jobs "
                    "API address (e.g. http://127.0.0.1:8265) and a storage directory or URI "
                    "both this command and the cluster reach"
                )
        return self


# --------------------------------------------------------------------------- adoption


def _address(value: str) -> str:
    """``value`` when it is a well-formed address (``job.NAME``, ``dataset.NAME[PART]``)."""
    if not Address.is_valid(value):
        raise ValueError(
            "not an address: expected job.NAME or dataset.NAME[PART] (PART: all, train or "
            "validation)"
        )
    return value


class Import(DocumentBase):
    """Adopt an existing remote job or file under an address of the specs, reviewed like any
    other change: the plan shows it as ``import`` (no cost) and apply records it; nothing is
    created remotely. A job is adopted when its request is the one the spec asks for (its
    files are adopted with it, by content); a file when its content is the prepared part's.
    Harmless once applied: an Import whose object the address holds (or held) does nothing."""

    kind: Literal["Import"] = "Import"
    to: str = Field(
        description="The address to adopt it under, declared in the specs: job.NAME or "
        "dataset.NAME[PART]."
    )
    id: str = Field(min_length=1, description="Id of the remote job or file.")

    @field_validator("to")
    @classmethod
    def _to_address(cls, value: str) -> str:
        return _address(value)


class Moved(DocumentBase):
    """Rename an address without touching the remote: the state's record of ``from`` becomes
    the record of ``to`` (the plan shows ``move``, no cost; a renamed job is not trained
    again). Harmless once applied: when ``from`` is gone and ``to`` is recorded, it does
    nothing."""

    kind: Literal["Moved"] = "Moved"
    from_: str = Field(
        alias="from",
        description="The old address, no longer declared in the specs: job.NAME or "
        "dataset.NAME[PART].",
    )
    to: str = Field(description="The new address, declared in the specs (same type).")

    @field_validator("from_", "to")
    @classmethod
    def _addresses(cls, value: str) -> str:
        return _address(value)


Document = Annotated[
    Dataset | Hyperparameters | WandbIntegration | FineTuningJob | Provider | Import | Moved,
    Field(discriminator="kind"),
]
"""Any spec document, discriminated on ``kind``."""

KINDS: dict[str, type[DocumentBase]] = {
    "Dataset": Dataset,
    "Hyperparameters": Hyperparameters,
    "WandbIntegration": WandbIntegration,
    "FineTuningJob": FineTuningJob,
    "Provider": Provider,
    "Import": Import,
    "Moved": Moved,
}
