"""Intents: what apply writes before every create, and how an interrupted create is found.

An intent names the address being created and how to recognise the object remotely — a file
by its content-addressed name and size, a job by its exact request without secrets and, on
providers whose jobs carry metadata, by the identity tag the job is created with (exact). It is
persisted before the request is sent (the executor's rule 1) and replaced by the result once
that is recorded. :func:`recover_intents` resolves the intents an earlier run left behind
(rule 2) before anything new is created.

A job is recognised by :mod:`reconciler.identity` and :func:`find_created_job` binds only a
job created after the intent was written that no address holds or held: the remote cannot
show training-file weights or ``invalid_sample_skip_percentage``, so a job an address holds
(e.g. the one a replacement replaces, whose readable request may be the same) is never taken
for the one the intent was about.
"""

from __future__ import annotations

import datetime as _dt
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from reconciler.address import ResourceType
from reconciler.engine.desired import DesiredFile, DesiredJob
from reconciler.engine.outcome import ApplyHooks
from reconciler.engine.recorder import StateRecorder
from reconciler.engine.state_model import Intent, ResourceState
from reconciler.errors import ApiError
from reconciler.providers.base import JobLookup, JobTag

if TYPE_CHECKING:
    from reconciler.client.types import RemoteJob
    from reconciler.providers.base import Provider

RECOVERY_SLACK_SECONDS = 300.0
"""Jobs are searched from this long before an intent's time (clock skew with the remote)."""


def job_lookup(request: Mapping[str, Any]) -> dict[str, Any]:
    """A job request without secrets: what an intent stores to find the job again."""
    lookup = {k: v for k, v in request.items() if k != "integrations"}
    lookup["integrations"] = [
        {k: v for k, v in i.items() if k != "api_key"} for i in request.get("integrations") or []
    ]
    return lookup


def upload_intent(f: DesiredFile) -> Intent:
    """The intent of uploading a desired file."""
    return Intent(
        address=f.address,
        operation="upload",
        fingerprint=f.fingerprint,
        lookup={
            "filename": f.filename,
            "bytes": f.bytes,
            "sha256": f.sha256,
            "attributes": {**f.summary(), "labels": dict(f.labels)},
        },
        created_at=time.time(),
    )


def job_intent(job: DesiredJob, request: Mapping[str, Any], tag: JobTag | None = None) -> Intent:
    """The intent of creating a job with ``request`` (its secrets are not stored), and the
    identity ``tag`` it is created with on providers whose jobs carry one."""
    lookup: dict[str, Any] = {
        "request": job_lookup(request),
        "attributes": {"identity": dict(job.identity), "labels": dict(job.labels)},
    }
    if tag is not None:
        lookup["tag"] = tag.metadata()
    return Intent(
        address=job.address,
        operation="create_job",
        fingerprint=job.fingerprint,
        lookup=lookup,
        created_at=time.time(),
    )


def intent_tag(intent: Intent) -> JobTag | None:
    """The identity tag a job intent recorded (None: the provider's jobs carry none)."""
    raw = intent.lookup.get("tag")
    return JobTag.from_metadata(raw) if isinstance(raw, Mapping) else None


def find_created_job(client: Provider, recorder: StateRecorder, intent: Intent) -> RemoteJob | None:
    """The job an intent's create made, if the remote has it.

    A job matching the intent's request (:func:`reconciler.identity.matches`) — or, when the
    intent recorded an identity tag, carrying that tag (exact) — created since shortly before
    the intent was written, that no address holds or held; the earliest.
    """
    since = _dt.datetime.fromtimestamp(intent.created_at - RECOVERY_SLACK_SECONDS, _dt.UTC)
    _, held = recorder.job_bindings()
    jobs = client.find_jobs(
        dict(intent.lookup["request"]),
        JobLookup(tag=intent_tag(intent), exclude=held, created_after=since),
    )
    return min(jobs, key=lambda j: j.created_at) if jobs else None


def job_history(res: ResourceState | None, new_id: str) -> list[dict[str, Any]]:
    """A job address's history once ``new_id`` is recorded for it.

    The job it held before is kept there (with its model, the fingerprint of the request
    that made it — so a revert to that request can point back at it — and whether this tool
    cancelled it): a job an address held is never taken for another request's job. ``new_id``
    itself leaves the history (a job an address points back at is its current job again).
    """
    if res is None:
        return []
    history = [dict(h) for h in res.history if h.get("remote_id") != new_id]
    if res.remote_id != new_id:
        entry: dict[str, Any] = {
            "remote_id": res.remote_id,
            "replaced_at": time.time(),
            "fine_tuned_model": res.attributes.get("fine_tuned_model"),
            "fingerprint": res.fingerprint,
        }
        if res.attributes.get("cancelled_by_reconciler"):
            entry["cancelled_by_reconciler"] = True
        history.append(entry)
    return history


def refused(exc: ApiError) -> bool:
    """Whether an error answer means the remote created nothing: a 4xx other than 409/429.

    Transport errors and 5xx do not: the create may have happened, so its intent stays.
    """
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in (409, 429)


def recover_intents(client: Provider, recorder: StateRecorder, hooks: ApplyHooks) -> list[str]:
    """Resolve the intents of earlier runs by looking their objects up remotely (rule 2).

    An object that exists is recorded (its intent dropped); an intent whose object the remote
    never received is dropped. Returns the addresses recovered; the state is flushed.
    """
    recovered: list[str] = []
    for intent in recorder.intents():
        found_id = _find(client, recorder, intent)
        if found_id is None:
            recorder.drop_intent(intent.id)
            hooks.note(intent.address, "interrupted create was never received remotely")
        else:
            recovered.append(intent.address)
            hooks.note(intent.address, f"recovered interrupted create: {found_id}")
    recorder.flush()
    return recovered


def _find(client: Provider, recorder: StateRecorder, intent: Intent) -> str | None:
    """Look the intent's object up; record it when found. Returns its remote id."""
    previous = recorder.get(intent.address)
    attributes = dict(intent.lookup.get("attributes") or {})
    if intent.operation == "upload":
        found_file = client.find_file(
            str(intent.lookup["filename"]), size=intent.lookup.get("bytes")
        )
        if found_file is None:
            return None
        remote_id, kind = found_file.id, ResourceType.FILE
        history = list(previous.history) if previous is not None else []
    else:
        found_job = find_created_job(client, recorder, intent)
        if found_job is None:
            return None
        remote_id, kind = found_job.id, ResourceType.JOB
        attributes["status"] = found_job.status
        history = job_history(previous, remote_id)
    recorder.put(
        ResourceState(
            address=intent.address,
            type=kind,
            remote_id=remote_id,
            fingerprint=intent.fingerprint,
            attributes=attributes,
            history=history,
        ),
        intent_id=intent.id,
    )
    return remote_id
