"""The OpenAI dialect's objects: files, jobs, events, checkpoints and models as the API shows
them (``OpenAIFile``, ``FineTuningJob``, ``FineTuningJobEvent``, ``FineTuningJobCheckpoint``,
``Model`` of the reference document).

The shared lifecycle's statuses map to OpenAI's (:data:`STATUS`): ``QUEUED`` and
``VALIDATING`` are ``validating_files``, ``VALIDATED`` and ``STARTED`` (waiting for a worker)
are ``queued``, a cancellation is ``cancelled`` from the moment it is requested.

Events and checkpoints are derived from the job's lifecycle (the same pure functions the
store materialises them from, cut at what the store has materialised), with ids derived from
the job's id, so every read shows the same objects under the same ids. Lists are newest
first and paged by cursor (:func:`page`).
"""

from __future__ import annotations

from typing import Any

from reconciler.sandbox import job_rules, lifecycle
from reconciler.sandbox.lifecycle import Checkpoint, Transition
from reconciler.sandbox.openai import catalogue
from reconciler.sandbox.openai.errors import invalid
from reconciler.sandbox.openai.naming import derived_id, organization_id
from reconciler.sandbox.records import FileRecord, JobRecord, ModelRecord
from reconciler.sandbox.routes.files import file_basics
from reconciler.sandbox.store import Store

#: OpenAI's status for each status of the shared lifecycle.
STATUS = {
    "QUEUED": "validating_files",
    "VALIDATING": "validating_files",
    "VALIDATED": "queued",
    "STARTED": "queued",
    "RUNNING": "running",
    "PAUSED": "paused",
    "SUCCESS": "succeeded",
    "FAILED": "failed",
    "FAILED_VALIDATION": "failed",
    "CANCELLATION_REQUESTED": "cancelled",
    "CANCELLED": "cancelled",
}
#: OpenAI statuses after which a job has a ``finished_at``.
FINISHED = frozenset({"succeeded", "failed", "cancelled"})
#: Hyperparameters every method has (the job's top-level ``hyperparameters``).
SHARED_HYPERPARAMETERS = ("batch_size", "learning_rate_multiplier", "n_epochs")
#: The ``error`` of a job whose run failed (an injected fault).
RUN_FAILED = "The training run failed (injected fault). Create the job again."
#: The full validation set's loss, relative to the sampled validation loss.
FULL_VALID_RATIO = 0.98


def file_out(file: FileRecord) -> dict[str, Any]:
    """A file as ``OpenAIFile``."""
    out: dict[str, Any] = {**file_basics(file), "status": "processed"}
    if file.expires_at is not None:
        out["expires_at"] = file.expires_at
    return out


def job_out(store: Store, job: JobRecord) -> dict[str, Any]:
    """A job as ``FineTuningJob``: hyperparameters as requested until its files are
    validated, resolved (no ``auto`` left) from then on."""
    plan = job.plan
    status = STATUS[job.status]
    method = job.extra["resolved_method" if job.validated else "method"]
    hyperparameters = method[method["type"]]["hyperparameters"]
    error = None
    if job.status == "FAILED_VALIDATION":
        error = {**job.extra["error"], "message": plan.validation_error}
    elif job.status == "FAILED":
        error = {"code": "training_failed", "message": RUN_FAILED, "param": None}
    return {
        "object": "fine_tuning.job",
        "id": job.id,
        "model": job.model,
        "created_at": int(plan.created),
        "finished_at": _finished_at(job) if status in FINISHED else None,
        "fine_tuned_model": job.fine_tuned_model,
        "organization_id": organization_id(store.org_id),
        "result_files": [],
        "status": status,
        "validation_file": job.validation_files[0] if job.validation_files else None,
        "training_file": job.training_files[0],
        "hyperparameters": {k: hyperparameters[k] for k in SHARED_HYPERPARAMETERS},
        "trained_tokens": job_rules.train_tokens(job) if status == "succeeded" else None,
        "integrations": job.integrations or [],
        "seed": job.extra["seed"],
        "estimated_finish": _finish(store, job) if status in ("queued", "running") else None,
        "method": method,
        "metadata": job.metadata,
        "error": error,
    }


def _finished_at(job: JobRecord) -> int:
    """When a finished job finished: a cancelled one when the cancel was asked (it shows
    ``cancelled`` from then on), any other at its last status change."""
    return int(job.cancel_requested) if job.cancel_requested is not None else job.modified_at


def _timeline(store: Store, job: JobRecord) -> list[Transition]:
    """The job's status transitions so far (those the store has materialised)."""
    return lifecycle.timeline(
        job.plan, job.started, job.cancel_requested, store.clock.scale, job.pauses
    )[: job.n_events]


def _checkpoints(store: Store, job: JobRecord) -> list[Checkpoint]:
    """The job's checkpoints so far (those the store has materialised)."""
    return lifecycle.checkpoints(
        job.plan, job.started, job.cancel_requested, store.clock.scale, job.pauses
    )[: job.n_checkpoints]


def _finish(store: Store, job: JobRecord) -> int | None:
    """When the run is due to end, or None (not started, or paused)."""
    last = lifecycle.timeline(
        job.plan, job.started, job.cancel_requested, store.clock.scale, job.pauses
    )[-1]
    return int(last.at) if last.status in ("SUCCESS", "FAILED") else None


def _messages(job: JobRecord, transition: Transition, resumed: bool) -> list[tuple[str, str]]:
    """(level, message) of the events a status transition shows (none for some)."""
    match transition.status:
        case "QUEUED":
            return [("info", f"Created fine-tuning job: {job.id}")]
        case "VALIDATING":
            text = f"Validating training file: {job.training_files[0]}"
            if job.validation_files:
                text += f" and validation file: {job.validation_files[0]}"
            return [("info", text)]
        case "VALIDATED":
            return [("info", "Files validated, moving job to queued state")]
        case "FAILED_VALIDATION":
            return [("error", job.plan.validation_error or "Validating the files failed.")]
        case "STARTED":
            return [("info", "Fine-tuning job resumed" if resumed else "Fine-tuning job started")]
        case "PAUSED":
            return [("info", "Fine-tuning job paused")]
        case "SUCCESS":
            return [
                ("info", f"New fine-tuned model created: {job.fine_tuned_model}"),
                ("info", "The job has successfully completed"),
            ]
        case "FAILED":
            return [("error", RUN_FAILED)]
        case "CANCELLATION_REQUESTED":
            return [("info", "Fine-tuning job cancelled")]
    return []  # RUNNING and CANCELLED show no event of their own


def metrics(job: JobRecord, cp: Checkpoint) -> dict[str, Any]:
    """The metrics at a checkpoint: training loss and accuracy, and with a validation file
    the validation ones (sampled and full)."""
    out: dict[str, Any] = {
        "step": cp.step,
        "train_loss": cp.train_loss,
        "train_mean_token_accuracy": lifecycle.token_accuracy(cp.train_loss),
    }
    if cp.valid_loss is not None:
        full = round(cp.valid_loss * FULL_VALID_RATIO, 6)
        out |= {
            "valid_loss": cp.valid_loss,
            "valid_mean_token_accuracy": cp.valid_mean_token_accuracy,
            "full_valid_loss": full,
            "full_valid_mean_token_accuracy": lifecycle.token_accuracy(full),
        }
    return out


def _event(
    job: JobRecord, key: str, at: float, level: str, message: str, kind: str, data: Any
) -> dict[str, Any]:
    return {
        "object": "fine_tuning.job.event",
        "id": derived_id("ftevent-", job.id, key),
        "created_at": int(at),
        "level": level,
        "message": message,
        "type": kind,
        "data": data,
    }


def events(store: Store, job: JobRecord) -> list[dict[str, Any]]:
    """The job's events, oldest first: one or two per status change, one per checkpoint."""
    entries: list[tuple[float, int, dict[str, Any]]] = []
    starts = 0
    for i, transition in enumerate(_timeline(store, job)):
        for k, (level, message) in enumerate(_messages(job, transition, starts > 0)):
            event = _event(job, f"s{i}.{k}", transition.at, level, message, "message", {})
            entries.append((transition.at, 1, event))
        starts += transition.status == "STARTED"
    for cp in _checkpoints(store, job):
        data = {**metrics(job, cp), "total_steps": job.plan.steps}
        text = f"Step {cp.step}/{job.plan.steps}: training loss={cp.train_loss:.2f}"
        if cp.valid_loss is not None:
            text += f", validation loss={cp.valid_loss:.2f}"
        entries.append((cp.at, 0, _event(job, f"c{cp.step}", cp.at, "info", text, "metrics", data)))
    # By time; a checkpoint before the status change of the same moment (the last step's
    # checkpoint comes before "completed"); otherwise in the order added.
    entries.sort(key=lambda e: (e[0], e[1]))
    return [event for _, _, event in entries]


def checkpoints(store: Store, job: JobRecord) -> list[dict[str, Any]]:
    """The job's checkpoints, oldest first, as ``FineTuningJobCheckpoint``."""
    return [
        {
            "object": "fine_tuning.job.checkpoint",
            "id": derived_id("ftckpt_", job.id, str(cp.step)),
            "created_at": int(cp.at),
            "fine_tuned_model_checkpoint": f"{job.model_name}:ckpt-step-{cp.step}",
            "step_number": cp.step,
            "metrics": metrics(job, cp),
            "fine_tuning_job_id": job.id,
        }
        for cp in _checkpoints(store, job)
    ]


def page(
    items: list[dict[str, Any]], after: str | None, limit: int
) -> tuple[list[dict[str, Any]], bool]:
    """Newest first, up to ``limit`` of ``items`` (oldest first) after the one with id
    ``after``, and whether more follow. An ``after`` that names none of them is a 400."""
    newest = items[::-1]
    start = 0
    if after is not None:
        ids = [item["id"] for item in newest]
        if after not in ids:
            raise invalid(f"No object with id {after} in this list to page after.", "after")
        start = ids.index(after) + 1
    return newest[start : start + limit], start + limit < len(newest)


def id_list(data: list[dict[str, Any]], more: bool) -> dict[str, Any]:
    """A page of a list that names its first and last ids (files, checkpoints)."""
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": more,
    }


def base_card(name: str) -> dict[str, Any]:
    """A base model (snapshot or alias) as ``Model``."""
    model = catalogue.base_model(name)
    assert model is not None
    return {"id": name, "object": "model", "created": model.created, "owned_by": catalogue.OWNER}


def model_card(store: Store, model: ModelRecord) -> dict[str, Any]:
    """A fine-tuned model as ``Model``, owned by the sandbox's organisation."""
    return {
        "id": model.id,
        "object": "model",
        "created": model.created,
        "owned_by": organization_id(store.org_id),
    }
