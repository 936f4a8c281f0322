"""The fine-tuning jobs resource: create (and ``dry_run``), list, get, start, cancel.

Creation applies :mod:`..job_rules`; the store enforces the 409 atomically. Responses have
the contract's ``CompletionJobOut``/``ClassifierJobOut`` shapes, ``*DetailedJobOut`` (with
events and checkpoints) for a single job, ``JobsOut`` for lists and ``JobMetadataOut`` for a
dry run.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from reconciler.sandbox import job_rules, lifecycle
from reconciler.sandbox.records import JobRecord
from reconciler.sandbox.routes.common import (
    ConfigDep,
    PageQ,
    PageSizeQ,
    StoreDep,
    detail,
    value_error,
)
from reconciler.sandbox.schemas import JobIn
from reconciler.sandbox.store import Conflict, Store

JobStatus = Literal[
    "QUEUED",
    "STARTED",
    "VALIDATING",
    "VALIDATED",
    "RUNNING",
    "FAILED_VALIDATION",
    "FAILED",
    "SUCCESS",
    "CANCELLED",
    "CANCELLATION_REQUESTED",
]

#: Statuses in which a job has (or had) a run whose trained tokens are reported.
_RAN = frozenset({"RUNNING", "SUCCESS", "FAILED", "CANCELLATION_REQUESTED", "CANCELLED"})

router = APIRouter()


@router.post("/v1/fine_tuning/jobs")
def create_job(store: StoreDep, config: ConfigDep, body: JobIn, dry_run: bool | None = None) -> Any:
    ids, validation_ids = job_rules.file_ids(body)
    job = job_rules.new_job(
        body,
        store.files(ids + validation_ids),
        job_id=str(uuid.uuid4()),
        created=store.clock.now(),
        seed=store.seed,
        faults=config.faults,
    )
    if isinstance(job, job_rules.Refusal):
        if job.loc is None:
            return detail(job.status, job.message)
        return value_error(job.loc, job.message, job.value)
    if dry_run:
        return job_rules.dry_run(job, store.clock.scale)
    try:
        created = store.create_job(job)
    except Conflict as exc:
        return detail(409, job_rules.conflict_detail(exc.job_id, exc.status))
    return render_job(store, created, detailed=False)


@router.get("/v1/fine_tuning/jobs")
def list_jobs(
    store: StoreDep,
    page: PageQ = 0,
    page_size: PageSizeQ = 100,
    model: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    created_by_me: bool = False,
    status: JobStatus | None = None,
    wandb_project: str | None = None,
    wandb_name: str | None = None,
    suffix: str | None = None,
) -> Any:
    # created_by_me narrows to the caller's jobs; the sandbox has one caller, so it is
    # accepted and changes nothing.
    jobs, total = store.list_jobs(
        page=page,
        page_size=page_size,
        model=model,
        created_after=_ts(created_after),
        created_before=_ts(created_before),
        status=status,
        wandb_project=wandb_project,
        wandb_name=wandb_name,
        suffix=suffix,
    )
    return {
        "data": [render_job(store, j, detailed=False) for j in jobs],
        "object": "list",
        "total": total,
    }


def _job_404(job_id: UUID) -> JSONResponse:
    return detail(404, f"Job {job_id} not found.")


@router.get("/v1/fine_tuning/jobs/{job_id}")
def get_job(store: StoreDep, job_id: UUID) -> Any:
    job = store.job(str(job_id))
    if job is None:
        return _job_404(job_id)
    return render_job(store, job, detailed=True)


def _transition(
    store: Store,
    job_id: UUID,
    request: Callable[[str], tuple[JobRecord | None, str | None]],
) -> Any:
    """Start or cancel: 404 for an unknown job, 409 when its status does not allow it."""
    job, problem = request(str(job_id))
    if job is None:
        return _job_404(job_id)
    if problem:
        return detail(409, problem)
    return render_job(store, job, detailed=True)


@router.post("/v1/fine_tuning/jobs/{job_id}/start")
def start_job(store: StoreDep, job_id: UUID) -> Any:
    return _transition(store, job_id, store.start_job)


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(store: StoreDep, job_id: UUID) -> Any:
    return _transition(store, job_id, store.cancel_job)


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def render_job(store: Store, job: JobRecord, *, detailed: bool) -> dict[str, Any]:
    """A job in API shape: ``*JobOut``, or ``*DetailedJobOut`` with events and checkpoints."""
    plan = job.plan
    scale = store.clock.scale
    hp = dict(job.hyperparameters)
    metadata = None
    if job.validated:
        hp["training_steps"] = plan.steps
        hp["epochs"] = job_rules.epochs(job)
        begin = lifecycle.start_time(plan, job.started, scale)
        metadata = {
            **job_rules.estimate(job, scale),
            "estimated_start_time": int(begin) if begin is not None else None,
        }
    trained_tokens = None
    if job.status in _RAN:
        if job.status == "SUCCESS":
            trained_tokens = job_rules.train_tokens(job)
        elif lifecycle.start_time(plan, job.started, scale) is not None:
            done = lifecycle.steps_done(
                plan, job.started, job.cancel_requested, scale, store.clock.now(), job.pauses
            )
            trained_tokens = done * job.tokens_per_step
    out: dict[str, Any] = {
        "id": job.id,
        "auto_start": job.auto_start,
        "model": job.model,
        "status": job.status,
        "created_at": int(plan.created),
        "modified_at": job.modified_at,
        "training_files": list(job.training_files),
        "validation_files": list(job.validation_files),
        "object": "job",
        "fine_tuned_model": job.fine_tuned_model,
        "suffix": job.suffix,
        "integrations": job.integrations,
        "trained_tokens": trained_tokens,
        "metadata": metadata,
        "job_type": job.job_type,
        "hyperparameters": hp,
    }
    if job.job_type == "completion":
        out["repositories"] = job.repositories
    if detailed:
        events, checkpoints = store.job_details(job.id)
        out["events"] = [
            {"name": e.name, "data": e.data, "created_at": e.created_at} for e in events
        ]
        out["checkpoints"] = [
            {
                "metrics": {
                    "train_loss": cp.train_loss,
                    "valid_loss": cp.valid_loss,
                    "valid_mean_token_accuracy": cp.valid_mean_token_accuracy,
                },
                "step_number": cp.step_number,
                "created_at": cp.created_at,
            }
            for cp in checkpoints
        ]
        if job.job_type == "classifier":
            out["classifier_targets"] = job.classifier_targets or []
    return out
