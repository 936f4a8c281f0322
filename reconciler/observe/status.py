"""The ``reconciler status`` table: sync and health of every managed object.

Two separate axes (PRODUCT.md §3): *sync* says whether the remote object matches the specs
(``in sync``, ``changes pending``, ``drifted``, ``not in spec``) and comes from the planner;
*health* is the job's own state (queued ... succeeded / failed / cancelled) with its latest
metrics, derived from the refreshed remote job.

:func:`build_rows` joins the state, the refreshed remote objects and the sync classification
into :class:`StatusRow` values; the renderers turn rows into a rich table, a versioned JSON
document or markdown. :func:`provisional_sync` is a state-only stand-in for the planner's
classification.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from rich.table import Table

from reconciler.address import Address, ResourceType
from reconciler.client.types import JobStatus
from reconciler.engine.plan import Action, Plan
from reconciler.engine.state_model import ResourceState, State
from reconciler.observe.progress import (
    JobProgress,
    format_cost,
    format_metric,
    format_steps,
    job_progress,
)

STATUS_FORMAT_VERSION = 1
"""``format_version`` of :func:`status_json` documents."""

SYNC_VALUES = ("in sync", "changes pending", "drifted", "not in spec")
"""The sync classifications, in the order a summary lists them."""

# A job that ended this way while the spec still wants it needs attention (PRODUCT.md §3:
# "a job cancelled or failed outside the tool ... is reported as drift").
_DRIFT_STATUSES = frozenset({JobStatus.CANCELLED, JobStatus.FAILED})


@dataclass(frozen=True)
class StatusRow:
    """One managed (or wanted) object in the status table.

    Attributes:
        address: e.g. ``job.dumbledore-v1`` or ``dataset.ultrachat[train]``.
        kind: ``job`` or ``file``.
        sync: ``in sync``, ``changes pending``, ``drifted`` or ``not in spec``.
        health: jobs: ``queued`` ... ``cancelled`` (see
            :data:`~reconciler.observe.progress.HEALTH_BY_STATUS`); files: ``available``
            when the remote has it, ``missing`` when the refresh did not find it; ``None``
            when there is no remote object (yet) or it was not refreshed.
        remote_id: the remote id, ``None`` when not created yet.
        status: the remote job status (``RUNNING`` ...), from the refresh or else the state.
        step, total_steps, percent: training progress (jobs).
        train_loss, valid_loss, valid_mean_token_accuracy: latest checkpoint metrics (jobs).
        wandb_url: the W&B run link, when there is one.
        fine_tuned_model: the resulting model id (jobs that succeeded).
        cost, cost_currency: the remote's cost estimate (jobs).
        failure_reason: why a job ended without a model.
        filename, bytes: the uploaded file's name and size (files).
    """

    address: str
    kind: ResourceType
    sync: str
    health: str | None = None
    remote_id: str | None = None
    status: str | None = None
    step: int | None = None
    total_steps: int | None = None
    percent: float | None = None
    train_loss: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    wandb_url: str | None = None
    fine_tuned_model: str | None = None
    cost: float | None = None
    cost_currency: str | None = None
    failure_reason: str | None = None
    filename: str | None = None
    bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (every field, ``None`` as null)."""
        return asdict(self)

    def progress_text(self) -> str:
        """``30/100 (30%)`` or ``-``."""
        if self.kind is not ResourceType.JOB:
            return "-"
        return format_steps(
            JobProgress(
                job_id=None,
                status=self.status or "UNKNOWN",
                health=self.health or "unknown",
                step=self.step,
                total_steps=self.total_steps,
                percent=self.percent,
            )
        )


_FROM_PROGRESS = tuple(
    f.name for f in fields(StatusRow) if f.name in {g.name for g in fields(JobProgress)}
)
"""The fields a job's row takes as they are from its :class:`JobProgress` (status, health,
steps, metrics, model, cost, failure reason): the fields both have."""


def _lookup(
    remote: Mapping[str, Mapping[str, Any]], address: str, resource: ResourceState | None
) -> Mapping[str, Any] | None:
    # Callers may key refreshed objects by address or by remote id; accept both.
    found = remote.get(address)
    if found is None and resource is not None:
        found = remote.get(resource.remote_id)
    return found


def _job_row(
    address: str,
    sync: str,
    resource: ResourceState | None,
    job: Mapping[str, Any] | None,
) -> StatusRow:
    if job is None:
        attrs = resource.attributes if resource is not None else {}
        status = attrs.get("status")
        model = attrs.get("fine_tuned_model")
        return StatusRow(
            address=address,
            kind=ResourceType.JOB,
            sync=sync,
            remote_id=resource.remote_id if resource is not None else None,
            status=status if isinstance(status, str) else None,
            fine_tuned_model=model if isinstance(model, str) else None,
        )
    p = job_progress(job)
    return StatusRow(
        address=address,
        kind=ResourceType.JOB,
        sync=sync,
        remote_id=p.job_id or (resource.remote_id if resource is not None else None),
        **{name: getattr(p, name) for name in _FROM_PROGRESS},
    )


def _file_row(
    address: str,
    sync: str,
    resource: ResourceState | None,
    remote_file: Mapping[str, Any] | None,
    refreshed: bool,
) -> StatusRow:
    attrs = resource.attributes if resource is not None else {}
    source: Mapping[str, Any] = remote_file if remote_file is not None else attrs
    filename = source.get("filename")
    size = source.get("bytes", source.get("size_bytes"))
    health: str | None = None
    if resource is not None and refreshed:
        health = "available" if remote_file is not None else "missing"
    return StatusRow(
        address=address,
        kind=ResourceType.FILE,
        sync=sync,
        health=health,
        remote_id=resource.remote_id if resource is not None else None,
        filename=filename if isinstance(filename, str) else None,
        bytes=size if isinstance(size, int) and not isinstance(size, bool) else None,
    )


def build_rows(
    state: State | None,
    jobs: Mapping[str, Mapping[str, Any]],
    files: Mapping[str, Mapping[str, Any]],
    sync: Mapping[str, str],
    *,
    files_refreshed: bool | None = None,
) -> list[StatusRow]:
    """One row per address in the state or in ``sync``, sorted by address.

    Args:
        state: the workspace state (``None``: nothing created yet).
        jobs: refreshed remote jobs (API-shaped dicts), keyed by address or by job id.
        files: refreshed remote files (API-shaped dicts), keyed by address or by file id.
        sync: address -> sync classification (from the planner, or
            :func:`provisional_sync`). Addresses here but not in the state are wanted objects
            that do not exist yet; addresses in neither are not shown.
        files_refreshed: whether ``files`` is a complete refresh (then a file in the state but
            not in ``files`` is ``missing``); default: true when ``files`` is non-empty.
    """
    resources = dict(state.resources) if state is not None else {}
    refreshed = bool(files) if files_refreshed is None else files_refreshed
    rows = []
    for address in sorted(set(resources) | set(sync)):
        resource = resources.get(address)
        kind = resource.type if resource is not None else Address(address).kind
        row_sync = sync.get(address, "in sync" if resource is not None else "changes pending")
        if kind is ResourceType.JOB:
            rows.append(_job_row(address, row_sync, resource, _lookup(jobs, address, resource)))
        else:
            remote_file = _lookup(files, address, resource)
            rows.append(_file_row(address, row_sync, resource, remote_file, refreshed))
    return rows


def provisional_sync(
    state: State | None,
    spec_addresses: Collection[str],
    jobs: Mapping[str, Mapping[str, Any]],
) -> dict[str, str]:
    """A state-only sync classification, used until the planner's answer is wired in.

    It does not compare specs with the remote field by field (only the planner does), so
    it never says ``changes pending`` for an object that exists. Rules:

    * in the state but not in the specs -> ``not in spec``;
    * in the specs but not in the state -> ``changes pending`` (to be created);
    * a job the specs still want whose remote status is CANCELLED or FAILED -> ``drifted``;
    * otherwise ``in sync``.

    Args:
        state: the workspace state.
        spec_addresses: every address the specs declare (jobs and dataset parts).
        jobs: refreshed remote jobs keyed by address or job id.
    """
    resources = dict(state.resources) if state is not None else {}
    wanted = set(spec_addresses)
    result: dict[str, str] = {}
    for address in sorted(set(resources) | wanted):
        resource = resources.get(address)
        if resource is None:
            result[address] = "changes pending"
        elif address not in wanted:
            result[address] = "not in spec"
        else:
            job = _lookup(jobs, address, resource) if resource.type is ResourceType.JOB else None
            status = JobStatus.of(job.get("status")) if job is not None else None
            result[address] = "drifted" if status in _DRIFT_STATUSES else "in sync"
    return result


def sync_from_plan(plan: Plan) -> dict[str, str]:
    """The planner's classification as address -> sync string.

    Precedence when an address appears several times: ``not in spec`` > ``drifted`` >
    ``changes pending`` > ``in sync``; a change whose action is ``no-op`` is in sync, any
    other is pending.
    """
    rank = {name: index for index, name in enumerate(SYNC_VALUES)}
    result: dict[str, str] = {}

    def put(address: str, value: str) -> None:
        if address not in result or rank[value] > rank[result[address]]:
            result[address] = value

    for change in plan.changes:
        put(change.address, "in sync" if change.action is Action.NOOP else "changes pending")
    for drift in plan.drift:
        put(drift.address, "drifted")
    for address in plan.not_in_spec:
        put(address, "not in spec")
    return result


_SYNC_STYLE = {
    "in sync": "green",
    "changes pending": "yellow",
    "drifted": "red",
    "not in spec": "magenta",
}
_HEALTH_STYLE = {
    "succeeded": "green",
    "available": "green",
    "running": "cyan",
    "failed": "red",
    "missing": "red",
    "cancelled": "yellow",
}


def _health_text(row: StatusRow) -> str:
    return row.health or "-"


def status_problems(rows: list[StatusRow]) -> list[str]:
    """One line per job that ended without a model, with its reason, e.g.
    ``job.a: failed validation: File ... is used for both training and validation``.

    Shown under the table rather than in it: reasons are long and would wreck the columns.
    """
    lines = []
    for row in rows:
        if row.kind is not ResourceType.JOB or row.health not in {"failed", "cancelled"}:
            continue
        what = "failed validation" if row.status == JobStatus.FAILED_VALIDATION else row.health
        reason = row.failure_reason if row.failure_reason not in (None, "cancelled") else None
        lines.append(f"{row.address}: {what}" + (f": {reason}" if reason else ""))
    return lines


def _cost_text(row: StatusRow) -> str:
    return format_cost(
        JobProgress(
            job_id=None,
            status="",
            health="",
            cost=row.cost,
            cost_currency=row.cost_currency,
        )
    )


def render_status_table(rows: list[StatusRow]) -> Table:
    """A rich table: address, sync, health, progress, latest metrics, cost, model, W&B."""
    from rich.markup import escape

    # The W&B column only when some job has a run link: most workspaces have none, and the
    # table is wide enough already.
    with_wandb = any(row.wandb_url for row in rows)
    table = Table(show_lines=False, expand=False)
    headers = ["ADDRESS", "SYNC", "HEALTH", "PROGRESS", "TRAIN LOSS", "VALID LOSS", "ACC"]
    headers += ["COST", "MODEL / FILE"] + (["W&B"] if with_wandb else [])
    for header in headers:
        table.add_column(header, overflow="fold", no_wrap=header in {"SYNC", "HEALTH"})
    for row in rows:
        detail = row.fine_tuned_model if row.kind is ResourceType.JOB else row.filename
        cells = [
            escape(row.address),
            f"[{_SYNC_STYLE.get(row.sync, 'white')}]{escape(row.sync)}[/]",
            f"[{_HEALTH_STYLE.get(row.health or '', 'white')}]{escape(_health_text(row))}[/]",
            row.progress_text(),
            format_metric(row.train_loss),
            format_metric(row.valid_loss),
            format_metric(row.valid_mean_token_accuracy),
            _cost_text(row),
            escape(detail or "-"),
        ]
        if with_wandb:
            cells.append(escape(row.wandb_url or "-"))
        table.add_row(*cells)
    return table


def status_summary(rows: list[StatusRow]) -> dict[str, Any]:
    """Counts by sync and by health, e.g. ``{"total": 3, "sync": {...}, "health": {...}}``."""
    return {
        "total": len(rows),
        "sync": dict(sorted(Counter(r.sync for r in rows).items())),
        "health": dict(sorted(Counter(r.health or "unknown" for r in rows).items())),
    }


def status_json(
    rows: list[StatusRow], target: str | None = None, notes: Sequence[str] = ()
) -> dict[str, Any]:
    """The versioned JSON document of ``reconciler status --format json``.

    Shape: ``{"format_version": 1, "target": ..., "summary": {...}, "resources": [row...],
    "notes": [...]}`` where each resource has every :class:`StatusRow` field and ``notes``
    says when something is approximate. Never contains a secret.
    """
    return {
        "format_version": STATUS_FORMAT_VERSION,
        "target": target,
        "summary": status_summary(rows),
        "resources": [row.to_dict() for row in rows],
        "notes": list(notes),
    }


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_status_markdown(rows: list[StatusRow]) -> str:
    """A markdown table (for a PR comment), with a one-line summary first."""
    summary = status_summary(rows)
    parts = ", ".join(f"{count} {name}" for name, count in summary["sync"].items())
    lines = [
        f"**{summary['total']} object(s)**: {parts or 'none'}",
        "",
        "| address | sync | health | progress | train loss | valid loss | acc | model / file |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        detail = row.fine_tuned_model if row.kind is ResourceType.JOB else row.filename
        model = f"`{_md(detail)}`" if detail else "-"
        if row.wandb_url:
            model += f" ([W&B]({row.wandb_url}))"
        lines.append(
            f"| `{_md(row.address)}` | {row.sync} | {_md(_health_text(row))} | "
            f"{row.progress_text()} | {format_metric(row.train_loss)} | "
            f"{format_metric(row.valid_loss)} | {format_metric(row.valid_mean_token_accuracy)} "
            f"| {model} |"
        )
    problems = status_problems(rows)
    if problems:
        lines += ["", "**Jobs without a model:**", ""] + [f"- {_md(p)}" for p in problems]
    return "\n".join(lines)
