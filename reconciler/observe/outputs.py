"""``reconciler output``: the fine-tuned model id of every job, for downstream configuration.

:func:`outputs` maps each job address in the state to its fine-tuned model id, job id and
status, preferring the refreshed remote job over what the state recorded (a job may have
finished since the last apply). :func:`outputs_json` wraps it in a versioned document and
:func:`render_outputs_text` prints ``job.x = ft:...`` lines.

Outputs are stable across a replacement: while the new job of an address has no model yet
(queued, running, or failed), the address keeps the model of its newest previous job that
succeeded (from the state's history, refreshed like the current job), and names the job
that will replace it as ``pending_job`` — downstream configuration never loses its model.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from reconciler.address import ResourceType
from reconciler.engine.state_model import ResourceState, State

OUTPUT_FORMAT_VERSION = 1
"""``format_version`` of :func:`outputs_json` documents."""


def job_ids(state: State | None) -> set[str]:
    """The ids of every job :func:`outputs` may report: current and previous ones."""
    if state is None:
        return set()
    ids: set[str] = set()
    for resource in state.resources.values():
        if resource.type is ResourceType.JOB:
            ids.add(resource.remote_id)
            ids.update(str(h["remote_id"]) for h in resource.history if h.get("remote_id"))
    return ids


def outputs(state: State | None, jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Job address -> ``{"fine_tuned_model", "job_id", "status"}``, sorted by address.

    Args:
        state: the workspace state (``None``: no jobs yet, empty result).
        jobs: refreshed remote jobs (API-shaped dicts) keyed by address or job id; a job
            missing here falls back to the state's recorded attributes (or, for a previous
            job, its history entry).

    ``fine_tuned_model`` is ``None`` until a job of the address succeeded. While the current
    job has no model and a previous one has, the entry describes that previous job
    (``job_id``, ``status``) and adds ``pending_job``: ``{"job_id", "status"}`` of the
    current one.
    """
    if state is None:
        return {}
    result: dict[str, Any] = {}
    for address, resource in sorted(state.resources.items()):
        if resource.type is not ResourceType.JOB:
            continue
        job = jobs.get(address) or jobs.get(resource.remote_id)
        source: Mapping[str, Any] = job if job is not None else resource.attributes
        current = _entry(resource.remote_id, source)
        if current["fine_tuned_model"] is None:
            previous = next(_previous_models(resource, jobs), None)
            if previous is not None:
                pending = {"job_id": current["job_id"], "status": current["status"]}
                current = {**previous, "pending_job": pending}
        result[address] = current
    return result


def _entry(job_id: str, source: Mapping[str, Any]) -> dict[str, Any]:
    model = source.get("fine_tuned_model")
    status = source.get("status")
    return {
        "fine_tuned_model": model if isinstance(model, str) and model else None,
        "job_id": job_id,
        "status": status if isinstance(status, str) else None,
    }


def _previous_models(
    resource: ResourceState, jobs: Mapping[str, Mapping[str, Any]]
) -> Iterator[dict[str, Any]]:
    """Entries of the address's previous jobs that have a model, newest first."""
    for item in reversed(resource.history):
        job_id = item.get("remote_id")
        if not isinstance(job_id, str):
            continue
        job = jobs.get(job_id)
        # The history records the model known when the job was replaced (a model exists
        # only once its job succeeded); a job that succeeded later has it in the refresh.
        entry = _entry(job_id, job if job is not None else {**item, "status": "SUCCESS"})
        if entry["fine_tuned_model"] is not None:
            yield entry


def outputs_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"format_version": 1, "outputs": {address: {...}}}``."""
    return {"format_version": OUTPUT_FORMAT_VERSION, "outputs": dict(values)}


def render_outputs_text(values: Mapping[str, Any]) -> str:
    """One line per job: ``job.x = ft:...``; ``job.x = ft:... (previous; job ID RUNNING)``
    while a replacement has no model yet; ``job.x = (no model yet: RUNNING)``."""
    lines = []
    for address, item in values.items():
        model = item.get("fine_tuned_model")
        pending = item.get("pending_job")
        if model and pending:
            status = pending.get("status") or "unknown"
            lines.append(f"{address} = {model} (previous; job {pending.get('job_id')} {status})")
        elif model:
            lines.append(f"{address} = {model}")
        else:
            lines.append(f"{address} = (no model yet: {item.get('status') or 'unknown'})")
    return "\n".join(lines)
