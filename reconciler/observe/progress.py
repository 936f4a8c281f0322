"""Derive a job's progress, health and latest metrics from its API-shaped dict.

Pure functions over the JSON of ``GET /v1/fine_tuning/jobs/{id}``: nothing here talks to the
network or reads the clock (callers pass ``now`` when they want an ETA that accounts for the
time since the last checkpoint). Missing or ``null`` fields are normal (a job right after
create has no metadata, no checkpoints and no events) and give ``None`` values, never errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from reconciler.client.types import JobStatus

# The API statuses (Mistral's ten, plus OpenAI's PAUSED) folded into the health words users
# see (PRODUCT.md §3, "sync vs health"). STARTED is the short step between /start and RUNNING:
# the job is already committed to training, so it reads as running. CANCELLATION_REQUESTED
# reads as cancelled because nothing will train any more, but it is not terminal
# (JobStatus.is_terminal).
HEALTH_BY_STATUS: Mapping[JobStatus, str] = {
    JobStatus.QUEUED: "queued",
    JobStatus.VALIDATING: "validating",
    JobStatus.VALIDATED: "validated",
    JobStatus.STARTED: "running",
    JobStatus.RUNNING: "running",
    JobStatus.SUCCESS: "succeeded",
    JobStatus.FAILED: "failed",
    JobStatus.FAILED_VALIDATION: "failed",
    JobStatus.CANCELLATION_REQUESTED: "cancelled",
    JobStatus.CANCELLED: "cancelled",
    JobStatus.PAUSED: "paused",
}
"""API status -> health (queued, validating, validated, running, paused, succeeded, failed,
cancelled)."""

_WITHOUT_MODEL = frozenset({JobStatus.FAILED, JobStatus.FAILED_VALIDATION, JobStatus.CANCELLED})
"""Statuses of jobs that ended without a model."""

# Keys under which a failure explanation may appear in an event's ``data``. The API only
# documents ``status``; real servers and the sandbox add a message under one of these.
_REASON_KEYS = ("error", "message", "reason", "detail", "details", "error_message")


@dataclass(frozen=True)
class JobProgress:
    """Progress, health and latest metrics of one job at one moment.

    Attributes:
        job_id: the remote job id (``None`` if the dict has none).
        status: the API status, e.g. ``RUNNING`` (``UNKNOWN`` when missing).
        health: ``queued``, ``validating``, ``validated``, ``running``, ``paused``,
            ``succeeded``, ``failed``, ``cancelled`` (``unknown`` for a status this version does not know).
        step: step of the latest checkpoint (``total_steps`` once succeeded), or ``None``.
        total_steps: ``hyperparameters.training_steps``, or ``None`` when the job is sized
            by epochs and the remote has not reported the steps.
        percent: 0..100, or ``None`` when unknown.
        eta_seconds: estimated seconds until the end of training; ``None`` when finished or
            unknown. From the rate between checkpoints when there are two with different
            times, else from ``metadata.expected_duration_seconds``.
        train_loss, valid_loss, valid_mean_token_accuracy: metrics of the latest checkpoint
            (``valid_*`` only exist when the job has validation files).
        fine_tuned_model: the resulting model id once succeeded.
        wandb_url: link to the W&B run, when the remote reports one.
        failure_reason: why the job failed (from its latest events) for FAILED /
            FAILED_VALIDATION, ``"cancelled"`` for cancelled jobs, else ``None``.
        cost, cost_currency: the remote's cost estimate (after validation).
        trained_tokens: tokens trained so far / in total, when reported.
        modified_at: unix seconds of the job's last change.
    """

    job_id: str | None
    status: str
    health: str
    step: int | None = None
    total_steps: int | None = None
    percent: float | None = None
    eta_seconds: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    fine_tuned_model: str | None = None
    wandb_url: str | None = None
    failure_reason: str | None = None
    cost: float | None = None
    cost_currency: str | None = None
    trained_tokens: int | None = None
    modified_at: int | None = None

    @property
    def job_status(self) -> JobStatus | None:
        """The status as a :class:`JobStatus`; None when unknown to this version."""
        return JobStatus.of(self.status)

    @property
    def terminal(self) -> bool:
        """True when the remote will not change the job any more."""
        status = self.job_status
        return status is not None and status.is_terminal

    @property
    def failed(self) -> bool:
        """True when the job ended without a model: failed, failed validation or cancelled."""
        return self.job_status in _WITHOUT_MODEL

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (all fields, plus ``terminal``)."""
        data = asdict(self)
        data["terminal"] = self.terminal
        return data


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


def _number(value: Any) -> float | None:
    # bool is an int subclass; a boolean is never a metric.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _int(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def checkpoints_by_step(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The job's checkpoints, oldest step first (the API lists them newest first)."""
    points = [c for c in _sequence(job.get("checkpoints")) if isinstance(c, Mapping)]
    points = [c for c in points if _int(c.get("step_number")) is not None]
    return sorted(points, key=lambda c: _int(c.get("step_number")) or 0)


def events_newest_first(job: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The job's events, newest first (stable for equal times, as the API lists them)."""
    events = [e for e in _sequence(job.get("events")) if isinstance(e, Mapping)]
    return sorted(events, key=lambda e: -(_number(e.get("created_at")) or 0.0))


def metric_series(job: Mapping[str, Any]) -> dict[str, list[tuple[int, float]]]:
    """Per metric (``train_loss``, ``valid_loss``, ``valid_mean_token_accuracy``), the
    (step, value) points of the checkpoints that carry it, in step order."""
    series: dict[str, list[tuple[int, float]]] = {
        "train_loss": [],
        "valid_loss": [],
        "valid_mean_token_accuracy": [],
    }
    for point in checkpoints_by_step(job):
        step = _int(point.get("step_number")) or 0
        metrics = _mapping(point.get("metrics"))
        for name, values in series.items():
            value = _number(metrics.get(name))
            if value is not None:
                values.append((step, value))
    return series


def failure_reason(job: Mapping[str, Any]) -> str | None:
    """Why a job ended without a model, from its latest events; ``None`` if it did not."""
    status = JobStatus.of(job.get("status"))
    if status is JobStatus.CANCELLED:
        return "cancelled"
    if status is None or not status.is_failed:
        return None
    for event in events_newest_first(job):
        data = _mapping(event.get("data"))
        for key in _REASON_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, list | dict) and value:
                return str(value)
    # No message anywhere: an event other than a status change may still name the cause.
    for event in events_newest_first(job):
        name = event.get("name")
        if isinstance(name, str) and name and name != "status-updated":
            return name
    what = "validation failed" if status is JobStatus.FAILED_VALIDATION else "training failed"
    return f"{what} (the remote gave no reason; see the job's events)"


def _wandb_url(job: Mapping[str, Any]) -> str | None:
    for integration in _sequence(job.get("integrations")):
        integration = _mapping(integration)
        if integration.get("type", "wandb") == "wandb":
            url = integration.get("url")
            if isinstance(url, str) and url:
                return url
    return None


def _eta(
    job: Mapping[str, Any],
    status: JobStatus | None,
    step: int | None,
    total: int | None,
    now: float | None,
) -> float | None:
    # A VALIDATED job waits for /start (or stays held by its spec), a PAUSED one for
    # /resume: no ETA until it runs.
    if status is not None and (
        status.is_terminal
        or status.is_cancelled
        or status is JobStatus.VALIDATED
        or status.is_paused
    ):
        return None
    points = checkpoints_by_step(job)
    if total is not None and step is not None and len(points) >= 2:
        first, last = points[0], points[-1]
        steps = (_int(last.get("step_number")) or 0) - (_int(first.get("step_number")) or 0)
        seconds = (_number(last.get("created_at")) or 0.0) - (
            _number(first.get("created_at")) or 0.0
        )
        # Integer timestamps on a fast (sandbox) time scale can be equal: no usable rate then.
        if steps > 0 and seconds > 0:
            remaining = max(total - step, 0) * seconds / steps
            if now is not None:
                remaining -= max(now - (_number(last.get("created_at")) or now), 0.0)
            return max(remaining, 0.0)
    expected = _number(_mapping(job.get("metadata")).get("expected_duration_seconds"))
    if expected is None:
        return None
    fraction = (step / total) if (step is not None and total) else 0.0
    return max(expected * (1.0 - min(fraction, 1.0)), 0.0)


def job_progress(job: Mapping[str, Any], now: float | None = None) -> JobProgress:
    """The :class:`JobProgress` of one job dict.

    Args:
        job: the API-shaped job (``RemoteJob.model_dump()`` or the raw JSON).
        now: unix seconds; when given, the ETA subtracts the time since the last checkpoint.
    """
    status = str(job.get("status") or "UNKNOWN").upper()
    known = JobStatus.of(status)
    health = HEALTH_BY_STATUS[known] if known is not None else "unknown"
    hyper = _mapping(job.get("hyperparameters"))
    metadata = _mapping(job.get("metadata"))
    total = _int(hyper.get("training_steps")) or _int(metadata.get("training_steps"))
    points = checkpoints_by_step(job)
    latest = points[-1] if points else None
    step = _int(latest.get("step_number")) if latest is not None else None
    if known is JobStatus.SUCCESS and total is not None:
        step = total
    percent: float | None = None
    if known is JobStatus.SUCCESS:
        percent = 100.0
    elif step is not None and total:
        percent = min(100.0, 100.0 * step / total)
    elif known is not None and (known.awaits_start or known is JobStatus.STARTED) and total:
        percent = 0.0

    metrics = metric_series(job)

    def last(name: str) -> float | None:
        values = metrics[name]
        return values[-1][1] if values else None

    model = job.get("fine_tuned_model")
    job_id = job.get("id")
    currency = metadata.get("cost_currency")
    return JobProgress(
        job_id=str(job_id) if job_id is not None else None,
        status=status,
        health=health,
        step=step,
        total_steps=total,
        percent=percent,
        eta_seconds=_eta(job, known, step, total, now),
        train_loss=last("train_loss"),
        valid_loss=last("valid_loss"),
        valid_mean_token_accuracy=last("valid_mean_token_accuracy"),
        fine_tuned_model=model if isinstance(model, str) and model else None,
        wandb_url=_wandb_url(job),
        failure_reason=failure_reason(job),
        cost=_number(metadata.get("cost")),
        cost_currency=currency if isinstance(currency, str) else None,
        trained_tokens=_int(job.get("trained_tokens")),
        modified_at=_int(job.get("modified_at")),
    )


def failed(progress: Mapping[str, JobProgress]) -> list[tuple[str, str]]:
    """(address, reason) of every job that ended without a model, in address order.

    A cancelled job counts: whoever waited for it did not get a model.
    """
    return [
        (address, p.failure_reason or p.status.lower())
        for address, p in sorted(progress.items())
        if p.failed
    ]


def format_duration(seconds: float | None) -> str:
    """``1h02m``, ``4m05s``, ``12s``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"


def format_metric(value: float | None, digits: int = 4) -> str:
    """A metric with ``digits`` decimals; ``-`` for missing."""
    return "-" if value is None else f"{value:.{digits}f}"


def format_steps(progress: JobProgress) -> str:
    """``30/100 (30%)``, ``30/?``, or ``-``."""
    if progress.step is None and progress.percent is None:
        return "-"
    step = "0" if progress.step is None else str(progress.step)
    total = "?" if progress.total_steps is None else str(progress.total_steps)
    pct = "" if progress.percent is None else f" ({progress.percent:.0f}%)"
    return f"{step}/{total}{pct}"


def format_cost(progress: JobProgress) -> str:
    """``2.62 USD`` or ``-``."""
    if progress.cost is None:
        return "-"
    return f"{progress.cost:.2f} {progress.cost_currency or ''}".rstrip()
