"""The LoRA training loop: one :class:`reconciler.train.job.TrainJob` from start to result.

A causal language model is loaded with ``transformers``, wrapped in a peft LoRA adapter and
trained with AdamW on the assistant tokens of the training stream (linear warm-up, then linear
decay to zero, gradient clipping). At each checkpoint the validation files are evaluated
(loss and mean token accuracy over assistant tokens), the adapter is written with peft's
``save_pretrained`` (safetensors) and a line is added to ``metrics.jsonl``. The run ends with
the final adapter and ``result.json``; a failure or a stop signal (Ray's stop sends SIGTERM)
still writes ``result.json``, with the reason.

**Data parallelism.** Started under ``torchrun`` (``WORLD_SIZE`` > 1 in the environment), each
process trains on its own shard of every file, gradients are averaged by
``DistributedDataParallel``, validation sums are reduced across processes, and only rank 0
writes to storage. A single process (CPU or one GPU) needs nothing of this.

Secrets: the W&B key is read by wandb from ``WANDB_API_KEY``; nothing here prints the
environment.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import math
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import torch
from torch import nn

from reconciler.errors import ReconcilerError, TrainingError
from reconciler.train.data import Shard, TrainingStream, count_samples, validation_batches
from reconciler.train.job import (
    CheckpointMetrics,
    CheckpointRecord,
    RunLayout,
    RunStatus,
    TrainJob,
    TrainResult,
)
from reconciler.train.render import (
    ChatTemplateRenderer,
    Encoded,
    MistralCommonRenderer,
    Renderer,
    find_mistral_tokenizer,
)
from reconciler.train.storage import put_directory, remove, write_bytes

log = logging.getLogger("reconciler.train")

IGNORE = -100
"""Label of positions that do not count in the loss (the convention of transformers)."""


class Cancelled(Exception):
    """Raised in the training loop when the process is asked to stop (SIGTERM/SIGINT)."""


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (``torchrun`` environment)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls) -> Dist:
        """Read ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (all default to one process).

        Raises:
            TrainingError: a value is not a whole number, or they do not fit together
                (``WORLD_SIZE`` >= 1, 0 <= ``RANK`` < ``WORLD_SIZE``, ``LOCAL_RANK`` >= 0);
                the message names the variable.
        """
        rank, world, local_rank = (
            _env_int(name, default)
            for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0))
        )
        if world < 1 or not 0 <= rank < world or local_rank < 0:
            raise TrainingError(
                f"environment variables RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local_rank} "
                "do not describe a process of a data-parallel run (WORLD_SIZE >= 1, "
                "0 <= RANK < WORLD_SIZE, LOCAL_RANK >= 0); start the trainer with torchrun, or "
                "unset them for one process"
            )
        return cls(rank=rank, world=world, local_rank=local_rank)

    @property
    def is_main(self) -> bool:
        """Rank 0 writes outputs and logs metrics."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise TrainingError(
            f"environment variable {name}: {raw[:40]!r} is not a whole number; set it to one "
            "(torchrun does) or unset it"
        ) from None


def _device(job: TrainJob, dist: Dist) -> torch.device:
    if job.device == "cuda" or (job.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise TrainingError("device 'cuda' was asked for but no CUDA device is available")
        return torch.device("cuda", dist.local_rank)
    return torch.device("cpu")


def _dtype(job: TrainJob, device: torch.device) -> torch.dtype:
    if job.dtype != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[
            job.dtype
        ]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def build_renderer(job: TrainJob) -> Renderer:
    """The renderer ``job.chat_format`` asks for (see :class:`TrainJob`)."""
    source = job.tokenizer or job.base_model
    if job.chat_format != "chat_template":
        found = find_mistral_tokenizer(Path(source))
        wanted = job.chat_format == "mistral_common"
        if found is not None and (wanted or importlib.util.find_spec("mistral_common")):
            return MistralCommonRenderer(found)
        if wanted:
            raise TrainingError(
                f"chat_format mistral_common: no tekken.json or tokenizer.model.v* in {source}; "
                "it needs a local tokenizer directory"
            )
    try:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=job.trust_remote_code)
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load the tokenizer {source!r}: {exc}") from exc
    return ChatTemplateRenderer(tokenizer)


def total_steps(job: TrainJob, world: int) -> int:
    """Optimizer steps of the run: ``training_steps``, or ``epochs`` over the data."""
    hp = job.hyperparameters
    if hp.training_steps is not None:
        return hp.training_steps
    samples = sum(count_samples(f.uri) for f in job.training_files)
    if not samples:
        raise TrainingError("the training files hold no sample")
    assert hp.epochs is not None  # the model requires one of the two
    return max(1, math.ceil(hp.epochs * samples / (hp.batch_size * world)))


def lr_factor(step: int, total: int, warmup_fraction: float) -> float:
    """Learning-rate multiplier before optimizer step ``step`` (0-based): linear warm-up
    over the first ``warmup_fraction`` of the steps, then linear decay to 0 at ``total``."""
    warmup = math.ceil(warmup_fraction * total)
    if step < warmup:
        return (step + 1) / warmup
    return max(0.0, (total - step) / max(1, total - warmup))


def collate(batch: list[Encoded], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (``IGNORE`` where no
    loss is taken) of a batch."""
    width = max(len(e.tokens) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.tokens)
        tokens = torch.tensor(e.tokens, dtype=torch.long)
        ids[row, :n] = tokens
        attention[row, :n] = 1
        targets = torch.tensor(e.targets, dtype=torch.bool)
        labels[row, :n] = torch.where(targets, tokens, torch.full_like(tokens, IGNORE))
    return {
        "input_ids": ids.to(device),
        "attention_mask": attention.to(device),
        "labels": labels.to(device),
    }


def _next_token_sums(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """[loss sum, correct predictions, target tokens] of one batch, next-token style."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1, :].float()
    labels = batch["labels"][:, 1:]
    mask = labels != IGNORE
    loss = nn.functional.cross_entropy(
        logits.reshape(-1, logits.size(-1)),
        labels.reshape(-1),
        ignore_index=IGNORE,
        reduction="sum",
    )
    correct = ((logits.argmax(-1) == labels) & mask).sum()
    return torch.stack([loss.detach(), correct.float(), mask.sum().float()])


class _Run:
    """State of one run: what is written to storage comes from here."""

    def __init__(self, job: TrainJob, dist: Dist) -> None:
        self.job = job
        self.dist = dist
        self.layout = RunLayout(job.output_uri)
        self.started = time.time()
        self.train_started = self.started
        self.steps = 0
        self.total = 0
        self.tokens = 0
        self.skipped = 0
        self.records: list[CheckpointRecord] = []
        self.wandb: Any = None

    def write_result(
        self, status: RunStatus, message: str | None, adapter_uri: str | None
    ) -> TrainResult:
        finished = time.time()
        result = TrainResult(
            status=status,
            message=message,
            adapter_uri=adapter_uri,
            training_steps=self.total,
            steps_completed=self.steps,
            trained_tokens=self.tokens,
            skipped_samples=self.skipped,
            processes=self.dist.world,
            metrics=self.records[-1].metrics if self.records else CheckpointMetrics(),
            started_at=int(self.started),
            finished_at=int(finished),
            elapsed_seconds=round(finished - self.started, 3),
            metadata=self.job.metadata,
        )
        if self.dist.is_main:
            write_bytes(self.layout.result, result.model_dump_json(indent=2).encode() + b"\n")
        return result

    def save_adapter(self, model: Any, uri: str) -> None:
        """Write the peft model's adapter (safetensors) to ``uri`` (rank 0 only)."""
        if not self.dist.is_main:
            return
        with tempfile.TemporaryDirectory(prefix="reconciler-adapter-") as tmp:
            model.save_pretrained(tmp)
            put_directory(Path(tmp), uri)

    def begin(self) -> None:
        """Clear what an earlier run on the same output left: its result and metrics."""
        if self.dist.is_main:
            remove(self.layout.result)
            write_bytes(self.layout.metrics, b"")

    def add_record(self, record: CheckpointRecord) -> None:
        self.records.append(record)
        if not self.dist.is_main:
            return
        # Object stores cannot append: the whole (small) file is rewritten each time.
        lines = b"".join(orjson.dumps(r.model_dump(mode="json")) + b"\n" for r in self.records)
        write_bytes(self.layout.metrics, lines)
        if self.wandb is not None:
            metrics = {k: v for k, v in record.metrics.model_dump().items() if v is not None}
            self.wandb.log(
                {**metrics, "learning_rate": record.learning_rate}, step=record.step_number
            )


@contextmanager
def _stop_signals() -> Iterator[None]:
    """Turn SIGTERM/SIGINT into :class:`Cancelled` in the main thread, for this block."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise Cancelled(f"stopped by signal {signal.Signals(signum).name}")

    previous = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _start_wandb(job: TrainJob) -> Any:
    assert job.wandb is not None
    try:
        wandb = importlib.import_module("wandb")
    except ImportError as exc:
        raise TrainingError(
            "the job asks for W&B logging but the wandb package is not installed in the job's "
            "environment (add it to the runtime environment's pip packages)"
        ) from exc
    wandb.init(
        project=job.wandb.project,
        name=job.wandb.name,
        id=job.wandb.run_name,
        resume="allow" if job.wandb.run_name else None,
        config={
            "base_model": job.base_model,
            **job.hyperparameters.model_dump(exclude_none=True),
            "lora_rank": job.lora.rank,
        },
    )
    return wandb


def _load_model(job: TrainJob, device: torch.device) -> nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    try:
        base = AutoModelForCausalLM.from_pretrained(
            job.base_model, dtype=_dtype(job, device), trust_remote_code=job.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        raise TrainingError(f"cannot load the model {job.base_model!r}: {exc}") from exc
    config = LoraConfig(
        r=job.lora.rank,
        lora_alpha=job.lora.scaled_alpha,
        lora_dropout=job.lora.dropout,
        target_modules=job.lora.target_modules or "all-linear",
        task_type="CAUSAL_LM",
    )
    model: nn.Module = get_peft_model(base, config)
    return model.to(device)


class Trainer:
    """Runs one job. ``run()`` returns the result it also wrote to storage."""

    def __init__(self, job: TrainJob, dist: Dist | None = None) -> None:
        self.job = job
        self.dist = dist or Dist.from_env()
        self.run_state = _Run(job, self.dist)

    def run(self) -> TrainResult:
        """Train, checkpoint, write the result; failures are written as a failed result and
        raised again (:class:`TrainingError` for known causes)."""
        state = self.run_state
        try:
            with _stop_signals():
                adapter = self._train()
        except Cancelled as exc:
            log.warning("%s after %d steps", exc, state.steps)
            return state.write_result("cancelled", str(exc), None)
        except Exception as exc:
            message = (
                str(exc) if isinstance(exc, ReconcilerError) else f"{type(exc).__name__}: {exc}"
            )
            try:
                state.write_result("failed", message, None)
            except ReconcilerError as write_error:
                # The cause of the failure matters more than the missing result file.
                log.error("could not write the result: %s", write_error)
            raise
        finally:
            if state.wandb is not None:
                state.wandb.finish()
        return state.write_result("succeeded", None, adapter)

    def _train(self) -> str:
        job, dist, state = self.job, self.dist, self.run_state
        hp = job.hyperparameters
        distributed = dist.world > 1
        device = _device(job, dist)
        if distributed:
            torch.distributed.init_process_group(
                backend="nccl" if device.type == "cuda" else "gloo"
            )
            if device.type == "cuda":
                torch.cuda.set_device(device)
        torch.manual_seed(job.seed)

        state.begin()
        renderer = build_renderer(job)
        state.total = total_steps(job, dist.world)
        checkpoints = set(job.checkpoint_steps(state.total))
        log.info(
            "training %s: %d steps, batch %d x %d process(es), checkpoints at %s",
            job.base_model,
            state.total,
            hp.batch_size,
            dist.world,
            sorted(checkpoints),
        )
        if job.wandb is not None and dist.is_main:
            state.wandb = _start_wandb(job)

        model = _load_model(job, device)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(
            trainable, lr=hp.learning_rate, weight_decay=hp.weight_decay, betas=(0.9, 0.95)
        )
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, state.total, hp.warmup_fraction)
        )
        wrapped: nn.Module = model
        if distributed:
            wrapped = nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )

        shard = Shard(dist.rank, dist.world)
        stream = TrainingStream(
            job.training_files,
            renderer,
            seq_len=hp.seq_len,
            shard=shard,
            seed=job.seed,
            buffer=job.shuffle_buffer,
        )
        losses: list[float] = []
        state.train_started = time.time()
        log_every = max(1, state.total // 50)
        for step in range(1, state.total + 1):
            wrapped.train()
            batch = collate(stream.batch(hp.batch_size), renderer.pad_id, device)
            loss = wrapped(**batch).loss
            loss.backward()
            if hp.max_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(trainable, hp.max_grad_norm)
            lr = schedule.get_last_lr()[0]
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            tokens = torch.tensor(
                [float(batch["attention_mask"].sum()), float(loss.detach())], device=device
            )
            if distributed:
                torch.distributed.all_reduce(tokens)
                tokens[1] /= dist.world
            state.steps = step
            state.tokens += int(tokens[0])
            state.skipped = stream.stats.skipped
            losses.append(float(tokens[1]))
            if step % log_every == 0 or step in checkpoints:
                log.info("step %d/%d loss %.4f lr %.3g", step, state.total, losses[-1], lr)
            if step in checkpoints:
                metrics = CheckpointMetrics(train_loss=sum(losses) / len(losses))
                losses = []
                if job.validation_files:
                    metrics = self._validate(wrapped, renderer, device, metrics)
                uri = state.layout.checkpoint(step)
                state.save_adapter(model, uri)
                state.add_record(
                    CheckpointRecord(
                        step_number=step,
                        created_at=int(time.time()),
                        metrics=metrics,
                        elapsed_seconds=round(time.time() - state.train_started, 3),
                        learning_rate=lr,
                        trained_tokens=state.tokens,
                        adapter_uri=uri,
                    )
                )
                log.info("checkpoint %d: %s", step, metrics.model_dump_json(exclude_none=True))
        state.save_adapter(model, state.layout.adapter)
        if distributed:
            torch.distributed.destroy_process_group()
        return state.layout.adapter

    def _validate(
        self, model: nn.Module, renderer: Renderer, device: torch.device, metrics: CheckpointMetrics
    ) -> CheckpointMetrics:
        hp = self.job.hyperparameters
        model.eval()
        sums = torch.zeros(3, device=device)
        with torch.no_grad():
            for batch in validation_batches(
                [f.uri for f in self.job.validation_files],
                renderer,
                seq_len=hp.seq_len,
                batch_size=hp.batch_size,
                shard=Shard(self.dist.rank, self.dist.world),
            ):
                sums += _next_token_sums(model, collate(batch, renderer.pad_id, device))
        if self.dist.world > 1:
            torch.distributed.all_reduce(sums)
        loss, correct, count = (float(x) for x in sums)
        if not count:
            return metrics
        return CheckpointMetrics(
            train_loss=metrics.train_loss,
            valid_loss=loss / count,
            valid_mean_token_accuracy=correct / count,
        )
