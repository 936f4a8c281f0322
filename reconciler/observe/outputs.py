"""``reconciler output``: the fine-tuned model id of every job, for downstream configuration.

:func:`outputs` maps each job address in the state to its fine-tuned model id, job id and
status, preferring the refreshed remote job over what the state recorded (a job may have
finished since the last apply). :func:`outputs_json` wraps it in a versioned document and
:func:`render_outputs_text` prints ``job.x = ft:...`` lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.address import ResourceType
from reconciler.engine.state_model import State

OUTPUT_FORMAT_VERSION = 1
"""``format_version`` of :func:`outputs_json` documents."""


def outputs(state: State | None, jobs: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Job address -> ``{"fine_tuned_model", "job_id", "status"}``, sorted by address.

    Args:
        state: the workspace state (``None``: no jobs yet, empty result).
        jobs: refreshed remote jobs (API-shaped dicts) keyed by address or job id; a job
            missing here falls back to the state's recorded attributes.

    ``fine_tuned_model`` is ``None`` until the job succeeded.
    """
    if state is None:
        return {}
    result: dict[str, Any] = {}
    for address, resource in sorted(state.resources.items()):
        if resource.type is not ResourceType.JOB:
            continue
        job = jobs.get(address) or jobs.get(resource.remote_id)
        source: Mapping[str, Any] = job if job is not None else resource.attributes
        model = source.get("fine_tuned_model")
        status = source.get("status")
        result[address] = {
            "fine_tuned_model": model if isinstance(model, str) and model else None,
            "job_id": resource.remote_id,
            "status": status if isinstance(status, str) else None,
        }
    return result


def outputs_json(values: Mapping[str, Any]) -> dict[str, Any]:
    """``{"format_version": 1, "outputs": {address: {...}}}``."""
    return {"format_version": OUTPUT_FORMAT_VERSION, "outputs": dict(values)}


def render_outputs_text(values: Mapping[str, Any]) -> str:
    """One line per job: ``job.x = ft:...``, or ``job.x = (no model yet: RUNNING)``."""
    lines = []
    for address, item in values.items():
        model = item.get("fine_tuned_model")
        if model:
            lines.append(f"{address} = {model}")
        else:
            lines.append(f"{address} = (no model yet: {item.get('status') or 'unknown'})")
    return "\n".join(lines)
