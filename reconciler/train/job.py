"""The trainer's contract: the job description it reads and the records it writes.

A Ray job runs ``python -m reconciler.train JOB`` where ``JOB`` is a path or storage URI of a
JSON document of :class:`TrainJob` (written by whoever submits the job). The trainer writes
everything it produces under the job's ``output_uri``, laid out by :class:`RunLayout`:

=================================  ==========================================================
``OUTPUT/metrics.jsonl``           one :class:`CheckpointRecord` per checkpoint, oldest first
``OUTPUT/checkpoints/step-NNNNNN/``  the LoRA adapter at that step (peft ``save_pretrained``:
                                   ``adapter_config.json``, ``adapter_model.safetensors``)
``OUTPUT/adapter/``                the final adapter: the "fine-tuned model"
``OUTPUT/result.json``             :class:`TrainResult`, written once the run has ended
=================================  ==========================================================

A checkpoint record has the shape of a Mistral API checkpoint (``step_number``,
``created_at``, ``metrics`` with ``train_loss``, ``valid_loss``,
``valid_mean_token_accuracy``), so the commands that show a hosted job's checkpoints read
these lines unchanged; the extra fields (elapsed time, learning rate, tokens, adapter URI)
are additions.

This module imports neither torch nor any other training library: the side that submits jobs
and reads their results uses it with the base install.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from reconciler.train.storage import join

JOB_VERSION = 1
"""Version of the job description format; a trainer refuses versions it does not know."""

RESULT_VERSION = 1
"""Version of :class:`TrainResult` and :class:`CheckpointRecord`."""


RunStatus = Literal["succeeded", "failed", "cancelled"]
"""How a run ended (``TrainResult.status``)."""


class _Model(BaseModel):
    """Base of the job models: unknown fields are errors (a typo must not be ignored)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class _Record(BaseModel):
    """Base of the records the trainer writes: readers keep fields they do not know."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class TrainingFile(_Model):
    """A training file and its sampling weight.

    Attributes:
        uri: path or storage URI of a JSONL file of chat samples (``messages`` with system,
            user, assistant and tool roles, as ``reconciler validate`` accepts them).
        weight: relative sampling weight (> 0): a file of weight 2 is drawn from twice as
            often as one of weight 1, whatever their sizes.
    """

    uri: str = Field(min_length=1)
    weight: float = Field(default=1.0, gt=0)


class ValidationFile(_Model):
    """A validation file.

    Attributes:
        uri: path or storage URI of a JSONL file of chat samples; every sample is evaluated
            at each checkpoint.
    """

    uri: str = Field(min_length=1)


class Hyperparameters(_Model):
    """How long and how hard to train. Exactly one of ``training_steps`` and ``epochs``.

    Attributes:
        training_steps: optimizer steps.
        epochs: passes over the training data (all files, weights aside); converted to steps
            from the number of samples and the batch size.
        learning_rate: peak learning rate (AdamW), reached after the warm-up.
        warmup_fraction: share of the steps with a linear warm-up from 0; after it the rate
            decays linearly to 0 at the last step.
        weight_decay: AdamW weight decay.
        seq_len: longest sequence in tokens; longer samples are truncated.
        batch_size: samples per step and process (data-parallel processes multiply it).
        max_grad_norm: gradient clipping norm; 0 turns clipping off.
    """

    training_steps: int | None = Field(default=None, ge=1)
    epochs: float | None = Field(default=None, gt=0)
    learning_rate: float = Field(default=1e-4, gt=0, le=1)
    warmup_fraction: float = Field(default=0.05, ge=0, le=1)
    weight_decay: float = Field(default=0.1, ge=0, le=1)
    seq_len: int = Field(default=2048, ge=8)
    batch_size: int = Field(default=1, ge=1)
    max_grad_norm: float = Field(default=1.0, ge=0)

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> Hyperparameters:
        if (self.training_steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'training_steps' and 'epochs'")
        return self


class LoraSettings(_Model):
    """The LoRA adapter.

    Attributes:
        rank: rank of the update matrices.
        alpha: scaling numerator (the update is scaled by ``alpha / rank``); default
            ``2 * rank``, the scaling mistral-finetune uses.
        dropout: dropout on the adapter's input.
        target_modules: module names to adapt; default every linear layer of the attention
            and feed-forward blocks (peft's ``all-linear``, output head excluded), as
            mistral-finetune does.
    """

    rank: int = Field(default=16, ge=1)
    alpha: int | None = Field(default=None, gt=0)
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | None = None

    @property
    def scaled_alpha(self) -> int:
        """``alpha``, or ``2 * rank`` when not given."""
        return self.alpha if self.alpha is not None else 2 * self.rank


class WandbSettings(_Model):
    """Weights & Biases logging (needs the ``wandb`` package in the job's environment).

    The API key is never part of the job: it comes from the job's environment variable
    ``WANDB_API_KEY`` (set through the Ray runtime environment).

    Attributes:
        project: W&B project.
        name: display name of the run.
        run_name: W&B run id, so a rerun of the same job continues the same run.
    """

    project: str = Field(min_length=1)
    name: str | None = None
    run_name: str | None = None


class TrainJob(_Model):
    """One training run: the document ``python -m reconciler.train`` reads.

    Attributes:
        version: format version, :data:`JOB_VERSION`.
        base_model: a local directory or a model id the cluster can load
            (``transformers.AutoModelForCausalLM``).
        tokenizer: directory or id of the tokenizer; default: ``base_model``.
        chat_format: how chat samples become tokens. ``chat_template``: the tokenizer's chat
            template; ``mistral_common``: Mistral's own tokenizer from mistral-common (the
            exact sequences mistral-finetune trains on), found as ``tekken.json`` or
            ``tokenizer.model.v*`` in the tokenizer directory; ``auto``: mistral_common when
            both the file and the package are there, else chat_template.
        training_files: training data with sampling weights (at least one file).
        validation_files: validation data, evaluated at each checkpoint.
        hyperparameters: steps or epochs, learning rate, schedule, sequence length.
        lora: the adapter.
        checkpoint_interval: steps between checkpoints; default every 10% of the steps with
            at least 10 steps in between (the hosted API's rule). The last step is always one.
        seed: seeds sampling, shuffling and adapter initialisation.
        shuffle_buffer: samples held per training file for shuffling while streaming.
        output_uri: directory or storage URI that receives metrics, adapters and the result.
        dtype: weights' dtype; ``auto`` is bfloat16 on a GPU that supports it, else float32.
        device: ``auto`` uses CUDA when available.
        trust_remote_code: allow model code shipped with the model (off by default).
        wandb: optional Weights & Biases logging.
        metadata: free-form strings copied into the result (e.g. the address and the request
            fingerprint of the job that asked for this run).
    """

    version: Literal[1] = 1
    base_model: str = Field(min_length=1)
    tokenizer: str | None = None
    chat_format: Literal["auto", "chat_template", "mistral_common"] = "auto"
    training_files: list[TrainingFile] = Field(min_length=1)
    validation_files: list[ValidationFile] = Field(default_factory=list)
    hyperparameters: Hyperparameters
    lora: LoraSettings = Field(default_factory=LoraSettings)
    checkpoint_interval: int | None = Field(default=None, ge=1)
    seed: int = 0
    shuffle_buffer: int = Field(default=1000, ge=1)
    output_uri: str = Field(min_length=1)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    trust_remote_code: bool = False
    wandb: WandbSettings | None = None
    metadata: dict[str, str] = Field(default_factory=dict)

    def checkpoint_steps(self, total_steps: int) -> list[int]:
        """The steps at which checkpoints are taken, ending with ``total_steps``."""
        interval = self.checkpoint_interval or max(10, math.ceil(total_steps / 10))
        steps = list(range(interval, total_steps, interval))
        return [*steps, total_steps]


class CheckpointMetrics(_Record):
    """Metrics of one checkpoint (the hosted API's ``MetricOut``).

    Attributes:
        train_loss: mean training loss over the steps since the previous checkpoint.
        valid_loss: mean loss per assistant token on the validation files.
        valid_mean_token_accuracy: share of assistant tokens the model predicts exactly.
    """

    train_loss: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None


class CheckpointRecord(_Record):
    """One line of ``metrics.jsonl``: a checkpoint, shaped as the hosted API's
    ``CheckpointOut`` plus run details.

    Attributes:
        step_number: optimizer steps done.
        created_at: unix seconds.
        metrics: the metrics at this step.
        elapsed_seconds: since training started (model loading excluded).
        learning_rate: the rate of the last step.
        trained_tokens: tokens seen by the model so far (all processes).
        adapter_uri: where this checkpoint's adapter was written.
    """

    step_number: int
    created_at: int
    metrics: CheckpointMetrics
    elapsed_seconds: float = 0.0
    learning_rate: float | None = None
    trained_tokens: int = 0
    adapter_uri: str | None = None


class TrainResult(_Record):
    """``result.json``: how a run ended.

    Attributes:
        version: :data:`RESULT_VERSION`.
        status: ``succeeded``, ``failed`` or ``cancelled`` (stopped by a signal).
        message: why it failed or was cancelled; ``None`` on success.
        adapter_uri: the final adapter (the fine-tuned model) on success.
        training_steps: steps the run was to make.
        steps_completed: steps made.
        trained_tokens: tokens seen (all processes).
        skipped_samples: samples left out because no assistant token was left to train on.
        processes: data-parallel processes that trained (``torchrun``'s world size).
        metrics: the last checkpoint's metrics.
        started_at, finished_at: unix seconds.
        elapsed_seconds: wall time of the whole run, model loading included.
        metadata: the job's ``metadata``.
    """

    version: int = RESULT_VERSION
    status: RunStatus
    message: str | None = None
    adapter_uri: str | None = None
    training_steps: int = 0
    steps_completed: int = 0
    trained_tokens: int = 0
    skipped_samples: int = 0
    processes: int = 1
    metrics: CheckpointMetrics = Field(default_factory=CheckpointMetrics)
    started_at: int = 0
    finished_at: int = 0
    elapsed_seconds: float = 0.0
    metadata: dict[str, str] = Field(default_factory=dict)


class RunLayout:
    """Where a run's outputs live under its ``output_uri`` (see the module docstring)."""

    def __init__(self, output_uri: str) -> None:
        self.output_uri = output_uri.rstrip("/")

    @property
    def job(self) -> str:
        """The conventional place of the job description itself: ``OUTPUT/job.json``."""
        return join(self.output_uri, "job.json")

    @property
    def metrics(self) -> str:
        """``OUTPUT/metrics.jsonl``."""
        return join(self.output_uri, "metrics.jsonl")

    @property
    def result(self) -> str:
        """``OUTPUT/result.json``."""
        return join(self.output_uri, "result.json")

    @property
    def adapter(self) -> str:
        """``OUTPUT/adapter``: the final adapter."""
        return join(self.output_uri, "adapter")

    def checkpoint(self, step: int) -> str:
        """``OUTPUT/checkpoints/step-NNNNNN``."""
        return join(self.output_uri, "checkpoints", f"step-{step:06d}")
