"""The rules of job creation, as plain functions: from a ``JobIn`` request to a job.

:func:`new_job` checks a create request against what the sandbox knows (base models, job
types, uploaded files) and decides everything fixed about the job — step count, whether
validation will fail and why, an injected failure, the key of the "similar active job" rule —
returning a :class:`~.records.JobSpec` or a :class:`Refusal`. :func:`estimate` is the
cost/duration estimate of ``?dry_run=true`` and of a validated job's ``metadata``;
:func:`conflict_detail` words the 409. Nothing here does I/O: the routes look the files up and
the store enforces the 409 atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.sandbox import lifecycle
from reconciler.sandbox.config import FaultSpec
from reconciler.sandbox.database import INT64_MAX
from reconciler.sandbox.lifecycle import JobPlan
from reconciler.sandbox.records import FileRecord, JobSpec
from reconciler.sandbox.schemas import (
    BASE_MODELS,
    SEQUENCES_PER_STEP,
    JobIn,
    TrainingFileIn,
)

#: Training steps when the request gives neither ``training_steps`` nor ``epochs``.
DEFAULT_TRAINING_STEPS = 10
#: Default sequence length; a step trains 4 sequences (the real service's 131072 tokens/step).
DEFAULT_SEQ_LEN = 32768
#: Price used for the cost estimate: USD per million trained tokens, and the minimum fee.
USD_PER_MILLION_TOKENS = 2.0
MINIMUM_FEE_USD = 1.0


@dataclass(frozen=True)
class Refusal:
    """Why a create request is refused.

    Attributes:
        status: the HTTP status (422).
        message: what is wrong and how to fix it.
        loc: where in the request, for FastAPI's list-shaped 422; None for a string detail.
        value: the offending input (list-shaped 422 only).
    """

    status: int
    message: str
    loc: tuple[str | int, ...] | None = None
    value: Any = None


def job_type_of(body: JobIn) -> str:
    """The request's job type (``completion`` when not given)."""
    return body.job_type or "completion"


def file_ids(body: JobIn) -> tuple[list[str], list[str]]:
    """(training file ids, validation file ids) named by the request, in request order."""
    training = [
        item.file_id if isinstance(item, TrainingFileIn) else item for item in body.training_files
    ]
    return [str(t) for t in training], [str(v) for v in body.validation_files or []]


def new_job(
    body: JobIn,
    files: Mapping[str, FileRecord],
    *,
    job_id: str,
    created: float,
    seed: int,
    faults: FaultSpec | None,
) -> JobSpec | Refusal:
    """The job a create request describes, or why it is refused.

    ``files`` holds the live files among :func:`file_ids`; ``seed`` is the server seed (loss
    curves, and injected failures unless the fault spec has its own).
    """
    refusal = _check(body, files)
    if refusal is not None:
        return refusal
    job_type = job_type_of(body)
    ids, validation_ids = file_ids(body)
    hp = body.hyperparameters
    tokens_per_step = (hp.seq_len or DEFAULT_SEQ_LEN) * SEQUENCES_PER_STEP
    data_tokens = max(1, sum(files[f].approx_tokens for f in ids)) if ids else 1
    if hp.training_steps is not None:
        steps = hp.training_steps
    elif hp.epochs is not None:
        wanted = hp.epochs * data_tokens / tokens_per_step
        if not wanted <= INT64_MAX:  # also catches the product overflowing to infinity
            return Refusal(
                422,
                f"epochs {hp.epochs:g} over {data_tokens} tokens would take {wanted:.3g} steps, "
                "more than a job can have; ask for fewer epochs.",
                ("body", "hyperparameters", "epochs"),
                hp.epochs,
            )
        steps = max(1, math.ceil(wanted))
    else:
        steps = DEFAULT_TRAINING_STEPS
    requested_hp = hp.model_dump()
    if job_type == "classifier":
        requested_hp.pop("fim_ratio", None)
    plan = JobPlan(
        job_id=job_id,
        created=created,
        steps=steps,
        auto_start=body.auto_start,
        validation_error=validation_error(body, ids, validation_ids, files),
        fail_step=fail_step(faults, seed, job_id, steps),
        has_validation=bool(validation_ids),
        seed=seed,
    )
    return JobSpec(
        plan=plan,
        model=body.model,
        job_type=job_type,
        suffix=body.suffix,
        training_files=tuple(ids),
        validation_files=tuple(validation_ids),
        hyperparameters=requested_hp,
        integrations=(
            [
                {
                    "type": "wandb",
                    "project": w.project,
                    "name": w.name,
                    "run_name": w.run_name,
                    "url": None,
                }
                for w in body.integrations
            ]
            if body.integrations is not None
            else None
        ),
        repositories=[
            {
                "type": "github",
                "name": r.name,
                "owner": r.owner,
                "ref": r.ref,
                "weight": r.weight,
                # No repository is fetched; a stable fake commit id keeps the shape.
                "commit_id": hashlib.sha1(f"{r.owner}/{r.name}@{r.ref}".encode()).hexdigest(),
            }
            for r in body.repositories or []
        ],
        classifier_targets=(
            [
                {
                    "name": t.name,
                    "labels": t.labels,
                    "weight": t.weight,
                    "loss_function": t.loss_function or "single_class",
                }
                for t in body.classifier_targets or []
            ]
            if job_type == "classifier"
            else None
        ),
        similarity=similarity_key(body, ids, validation_ids, requested_hp),
        tokens_per_step=tokens_per_step,
        data_tokens=data_tokens,
    )


def _check(body: JobIn, files: Mapping[str, FileRecord]) -> Refusal | None:
    """The request-level rules pydantic cannot express, in the order the service applies them."""
    job_type = job_type_of(body)
    base = BASE_MODELS.get(body.model)
    if base is None or job_type not in base[1]:
        usable = sorted(m for m, (_, types, _) in BASE_MODELS.items() if job_type in types)
        return Refusal(
            422,
            f"Model {body.model!r} not available for this type of fine-tuning ({job_type}). "
            f"Use one of: {', '.join(usable)}.",
        )
    ids, validation_ids = file_ids(body)
    if not ids and not body.repositories:
        return Refusal(
            422, "At least one training file or repository is required.", ("body", "job_in")
        )
    if job_type == "classifier" and not body.classifier_targets:
        return Refusal(
            422,
            "classifier_targets are required for a classifier job.",
            ("body", "classifier_targets"),
        )
    for field, group in (("training_files", ids), ("validation_files", validation_ids)):
        for i, fid in enumerate(group):
            if fid not in files:
                loc: tuple[str | int, ...] = ("body", field, i)
                if field == "training_files":
                    loc += ("file_id",)
                return Refusal(
                    422,
                    f"File {fid} does not exist (never uploaded, or deleted). Upload it "
                    "with POST /v1/files and use the id it returns.",
                    loc,
                    fid,
                )
    return None


def similarity_key(
    body: JobIn, ids: list[str], validation_ids: list[str], requested_hp: dict[str, Any]
) -> str:
    """Jobs with the same key are *similar*: a second one while the first is active is a 409.

    Same model, job type, training and validation files, hyperparameters and suffix; the
    form of ``training_files`` (objects or plain ids) and weights do not count.
    """
    return hashlib.sha256(
        json.dumps(
            {
                "model": body.model,
                "job_type": job_type_of(body),
                "training_files": ids,
                "validation_files": validation_ids,
                "hyperparameters": requested_hp,
                "suffix": body.suffix,
            },
            sort_keys=True,
        ).encode()
    ).hexdigest()


def conflict_detail(job_id: str, status: str) -> str:
    """The 409 detail when a similar job ``job_id`` is still ``status``."""
    return (
        f"A similar job is already {status} (id {job_id}): same model, files, hyperparameters, "
        "suffix and job type. Cancel it or change the request."
    )


def validation_error(
    body: JobIn, ids: list[str], validation_ids: list[str], files: Mapping[str, FileRecord]
) -> str | None:
    """Why the job will end in FAILED_VALIDATION, or None."""
    limit = body.invalid_sample_skip_percentage
    for fid in ids + validation_ids:
        file = files[fid]
        samples, invalid = file.samples, file.invalid
        if samples and invalid / samples > limit:
            return (
                f"File {file.filename} ({fid}) has {invalid} invalid sample(s) of {samples} "
                f"({invalid / samples:.1%}), more than invalid_sample_skip_percentage {limit}."
            )
    overlap = sorted(set(ids) & set(validation_ids))
    if overlap:
        return (
            f"File {overlap[0]} is used for both training and validation; the same data should "
            "not be present in both."
        )
    return None


def fail_step(faults: FaultSpec | None, seed: int, job_id: str, steps: int) -> int | None:
    """Where an injected job failure happens (deterministic per seed and job id), or None."""
    if faults is None or faults.job_failure <= 0:
        return None
    rng = random.Random(f"{faults.seed if faults.seed is not None else seed}:job_failure:{job_id}")
    if rng.random() >= faults.job_failure:
        return None
    return rng.randint(1, max(1, steps))


def cost_estimate(train_tokens: int) -> float:
    """USD estimate for training ``train_tokens`` tokens (rate plus a minimum fee)."""
    return round(max(MINIMUM_FEE_USD, train_tokens / 1e6 * USD_PER_MILLION_TOKENS), 4)


def train_tokens(job: JobSpec) -> int:
    """Tokens the whole run trains on."""
    return job.plan.steps * job.tokens_per_step


def epochs(job: JobSpec) -> float:
    """Passes over the training data the run makes."""
    return round(train_tokens(job) / job.data_tokens, 4)


def estimate(job: JobSpec, scale: float) -> dict[str, Any]:
    """Duration and cost estimate, as in ``JobMetadataOut`` (without the start time)."""
    return {
        "expected_duration_seconds": math.ceil(lifecycle.run_duration(job.plan, scale)),
        "cost": cost_estimate(train_tokens(job)),
        "cost_currency": "USD",
        "train_tokens_per_step": job.tokens_per_step,
        "train_tokens": train_tokens(job),
        "data_tokens": job.data_tokens,
    }


def dry_run(job: JobSpec, scale: float) -> dict[str, Any]:
    """The ``?dry_run=true`` answer: the estimate of a job that is not created."""
    return {
        "object": "job.metadata",
        "details": "Dry run: the job was not created. These are the sandbox's estimates.",
        "deprecated": True,
        **estimate(job, scale),
        "estimated_start_time": None,
        "epochs": epochs(job),
        "training_steps": job.plan.steps,
    }
