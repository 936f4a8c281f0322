"""The OpenAI fine-tuning jobs resource: create, list, retrieve, events, checkpoints, cancel,
pause, resume.

Creation applies :mod:`.rules`; a job starts at once. Lists are newest first and paged by
cursor (``after``, ``limit``, ``has_more``); jobs can be filtered by metadata
(``metadata[k]=v``, every pair must match; ``metadata=null`` for jobs without any).
Cancel, pause and resume answer the job as it is after the request, or 400 when its status
does not allow the request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from reconciler.sandbox.openai import render, rules
from reconciler.sandbox.openai.errors import APIError, invalid
from reconciler.sandbox.openai.files import LIMIT_MAX
from reconciler.sandbox.openai.naming import random_id
from reconciler.sandbox.openai.schemas import CreateJob
from reconciler.sandbox.records import JobRecord
from reconciler.sandbox.routes.common import ConfigDep, StoreDep
from reconciler.sandbox.store import Outcome, Store, UnknownCursor

router = APIRouter()

Limit = Annotated[int, Query(ge=1, le=LIMIT_MAX)]


@router.post("/v1/fine_tuning/jobs")
def create_job(store: StoreDep, config: ConfigDep, body: CreateJob) -> Any:
    parent = store.model(body.model) if body.model.startswith("ft:") else None
    wanted = [body.training_file, *([body.validation_file] if body.validation_file else [])]
    job = rules.new_job(
        body,
        store.files(wanted),
        parent=parent,
        job_id=random_id("ftjob-"),
        created=store.clock.now(),
        seed=store.seed,
        faults=config.faults,
    )
    return render.job_out(store, store.create_job(job))


def _metadata_filter(request: Request) -> dict[str, str] | None:
    """The ``metadata[k]=v`` pairs of the query (``{}`` for ``metadata=null``), or None."""
    pairs: dict[str, str] = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("metadata[") and key.endswith("]"):
            pairs[key[len("metadata[") : -1]] = value
        elif key == "metadata":
            if value != "null":
                raise invalid(
                    "Filter on metadata with metadata[KEY]=VALUE, or metadata=null for jobs "
                    "without metadata.",
                    "metadata",
                )
            return {}
    return pairs or None


@router.get("/v1/fine_tuning/jobs")
def list_jobs(
    request: Request, store: StoreDep, after: str | None = None, limit: Limit = 20
) -> Any:
    try:
        jobs, more = store.jobs_after(after=after, limit=limit, metadata=_metadata_filter(request))
    except UnknownCursor:
        raise invalid(f"No fine-tuning job with id {after} to page after.", "after") from None
    return {"object": "list", "data": [render.job_out(store, j) for j in jobs], "has_more": more}


def _job(store: Store, job_id: str) -> JobRecord:
    job = store.job(job_id)
    if job is None:
        raise _not_found(job_id)
    return job


def _not_found(job_id: str) -> APIError:
    return APIError(
        404,
        f"Could not find fine-tuning job {job_id}.",
        param="fine_tuning_job_id",
        code="fine_tuning_job_not_found",
    )


@router.get("/v1/fine_tuning/jobs/{job_id}")
def retrieve_job(store: StoreDep, job_id: str) -> Any:
    return render.job_out(store, _job(store, job_id))


@router.get("/v1/fine_tuning/jobs/{job_id}/events")
def list_events(store: StoreDep, job_id: str, after: str | None = None, limit: Limit = 20) -> Any:
    events, more = render.page(render.events(store, _job(store, job_id)), after, limit)
    return {"object": "list", "data": events, "has_more": more}


@router.get("/v1/fine_tuning/jobs/{job_id}/checkpoints")
def list_checkpoints(
    store: StoreDep, job_id: str, after: str | None = None, limit: Limit = 10
) -> Any:
    checkpoints, more = render.page(render.checkpoints(store, _job(store, job_id)), after, limit)
    return render.id_list(checkpoints, more)


def _act(store: Store, job_id: str, request: Callable[[str], Outcome], allowed: str) -> Any:
    """Cancel, pause or resume: 404 for an unknown job, 400 when its status forbids it."""
    job, problem = request(job_id)
    if job is None:
        raise _not_found(job_id)
    if problem:
        raise invalid(f"Job {job_id} is {render.STATUS[job.status]}; only {allowed}.")
    return render.job_out(store, job)


@router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
def cancel_job(store: StoreDep, job_id: str) -> Any:
    return _act(store, job_id, store.cancel_job, "a job that has not finished can be cancelled")


@router.post("/v1/fine_tuning/jobs/{job_id}/pause")
def pause_job(store: StoreDep, job_id: str) -> Any:
    return _act(store, job_id, store.pause_job, "a running job can be paused")


@router.post("/v1/fine_tuning/jobs/{job_id}/resume")
def resume_job(store: StoreDep, job_id: str) -> Any:
    return _act(store, job_id, store.resume_job, "a paused job can be resumed")
