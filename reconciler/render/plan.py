"""Plan rendering: Terraform-like text, versioned JSON, and Markdown for PR comments.

Rendering reads a :class:`~reconciler.engine.plan.Plan` and nothing else; it never decides.
The Markdown form puts the summary first and folds details, and stays under GitHub's
65,536-character comment limit however many jobs the plan has (details are cut, with a
note, before the summary ever is).
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.engine.plan import MODEL_FIELDS, Action, Disposition, FileChange, JobChange, Plan

GITHUB_COMMENT_LIMIT = 65_536
MARKDOWN_BUDGET = 60_000
"""Characters the Markdown plan may use; the rest of the limit is headroom for wrappers."""

_VERBS = {
    Action.CREATE: "to add",
    Action.UPDATE: "to change",
    Action.REPLACE: "to replace",
    Action.START: "to start",
    Action.DELETE: "to destroy",
    Action.FORGET: "to forget",
}


def summary_line(plan: Plan) -> str:
    """``Plan: 3 to add, 0 to change, ...`` — or ``No changes.``"""
    counts = plan.summary()
    if not plan.has_changes:
        text = "No changes. Remote objects match the specs."
    else:
        parts = [f"{counts[a.value]} {verb}" for a, verb in _VERBS.items()]
        text = "Plan: " + ", ".join(parts) + "."
    cost = total_cost(plan)
    if cost:
        text += f" Estimated cost of new jobs: {cost}."
    if plan.models_kept and plan.storage_cost_per_model:
        monthly = plan.models_kept * plan.storage_cost_per_model
        text += (
            f" Fine-tuned models kept: {plan.models_kept} "
            f"(storage ~${monthly:.2f}/month at ${plan.storage_cost_per_model:.2f} each)."
        )
    elif plan.models_kept:
        text += f" Fine-tuned models kept: {plan.models_kept}."
    return text


def total_cost(plan: Plan) -> str:
    """Sum of cost estimates by currency, e.g. ``4.20 USD``; empty when none."""
    totals: dict[str, float] = {}
    for change in plan.changes:
        if change.cost is not None:
            currency = change.cost.currency or ""
            totals[currency] = totals.get(currency, 0.0) + change.cost.amount
    return ", ".join(f"{v:.2f} {k}".strip() for k, v in sorted(totals.items()))


def describe_change(change: FileChange | JobChange) -> list[str]:
    """Detail lines of one change (without the address line)."""
    lines = _describe_file(change) if isinstance(change, FileChange) else _describe_job(change)
    if change.cost is not None:
        lines.append(
            f"cost estimate: {change.cost.amount:.2f} {change.cost.currency or ''}".rstrip()
        )
    if change.blocked:
        lines.append(f"BLOCKED: {change.blocked}")
    return lines


def _describe_file(change: FileChange) -> list[str]:
    lines: list[str] = []
    after, before = change.after, change.before
    if change.action.makes_new and after is not None:
        lines.append(f"upload {after.filename} ({_size(after.bytes)}, {after.num_lines} lines)")
        if after.reuse:
            lines.append(
                f"identical file already on the remote ({after.reuse}): reused, not re-sent"
            )
    elif change.action is Action.DELETE and before is not None:
        lines.append(f"delete remote file {before.id} ({before.filename})")
    elif change.action is Action.FORGET and before is not None:
        lines.append(f"forget {before.id} (already gone remotely)")
    return lines


def _describe_job(change: JobChange) -> list[str]:
    lines: list[str] = []
    after, before, prev = change.after, change.before, change.previous
    if change.action.makes_new and after is not None:
        request = after.request
        hyper = ", ".join(f"{k}={v}" for k, v in request.hyperparameters.items())
        lines.append(
            f"{request.job_type} job on {request.model}" + (f" ({hyper})" if hyper else "")
        )
        lines.append("training: " + ", ".join(f.file for f in request.training_files))
        if request.validation_files:
            lines.append("validation: " + ", ".join(f.file for f in request.validation_files))
        if request.suffix:
            lines.append(f"suffix: {request.suffix}")
        if request.lora:
            lines.append(f"LoRA rank {request.lora['rank']}")
        for integration in request.integrations:
            ref = ", ".join(f"{k}: {v}" for k, v in integration.api_key.items())
            lines.append(f"W&B project {integration.project} (api_key from {{{ref}}})")
        if after.runs_at_once:
            start = "runs as soon as it is submitted"
        elif after.start:
            start = "then start once validated"
        else:
            start = "leave VALIDATED (start: false)"
        if after.budget:
            start += f", if the estimate is within budget {after.budget.max_cost}"
        lines.append(start)
    if change.action is Action.REPLACE:
        if change.replace_paths:
            lines.append("forces new job: " + ", ".join(change.replace_paths))
        else:
            lines.append("replacement requested (--replace)")
        if prev is not None:
            lines.append(f"previous job {prev.id} ({prev.status}): {prev.disposition}")
            if prev.fine_tuned_model:
                lines.append(
                    f"previous model {prev.fine_tuned_model}: {prev.model_disposition or 'keep'}"
                )
    if change.action is Action.START and before is not None:
        lines.append(f"start validated job {before.id}")
    if change.action is Action.UPDATE:
        # In one fixed order: a plan read back from JSON has its keys sorted.
        for key in MODEL_FIELDS:
            diff = change.update_fields.get(key)
            if diff is not None:
                lines.append(f"model {key}: {json.dumps(diff.before)} -> {json.dumps(diff.after)}")
    if change.action is Action.FORGET and before is not None:
        if prev is not None and prev.disposition is Disposition.CANCEL:
            lines.append(f"cancel active job {before.id} ({before.status}), then forget it")
        else:
            lines.append(
                f"forget job {before.id} ({before.status}); it and its model are kept remotely"
            )
    return lines


def _size(n: Any) -> str:
    if not isinstance(n, int):
        return "? bytes"
    if n < 1000:
        return f"{n} B"
    value = float(n)
    for unit in ("kB", "MB", "GB"):
        value /= 1000
        if value < 1000 or unit == "GB":
            break
    return f"{value:.1f} {unit}"


def render_text(plan: Plan, *, show_noop: bool = False) -> str:
    """Human plan, Terraform-like: symbols, reasons, details, drift, summary line."""
    out: list[str] = []
    actionable = plan.actionable
    if actionable:
        out.append("reconciler will perform the following actions:")
        out.append("")
        for change in actionable:
            out.append(
                f"  {change.action.symbol:>3} {change.address}  ({change.action.value}: {change.reason})"
            )
            out.extend(f"        {line}" for line in describe_change(change))
            out.append("")
    if show_noop:
        for change in plan.changes:
            if change.action is Action.NOOP:
                out.append(f"      {change.address}  (in sync)")
    if plan.drift:
        out.append("Objects changed outside reconciler (drift):")
        for d in plan.drift:
            out.append(f"   !  {d.address} [{d.kind}] {d.message}")
        out.append("")
    if plan.not_in_spec:
        acted = {c.address for c in plan.changes if c.action in (Action.DELETE, Action.FORGET)}
        rest = [a for a in plan.not_in_spec if a not in acted]
        if rest:
            out.append("Managed but no longer in the specs (use --prune to act on them):")
            out.extend(f"   ?  {a}" for a in rest)
            out.append("")
    for warning in plan.warnings:
        out.append(f"Warning: {warning}")
    if plan.warnings:
        out.append("")
    out.append(summary_line(plan))
    return "\n".join(out)


def render_json(plan: Plan) -> str:
    """The versioned JSON plan (see README, 'JSON plan format')."""
    return json.dumps(plan.to_json_dict(), indent=2, sort_keys=True)


def _md_escape(text: str) -> str:
    """Keep user text from opening HTML/Markdown constructs in a PR comment."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


def render_markdown(plan: Plan, *, budget: int = MARKDOWN_BUDGET) -> str:
    """A PR comment: summary first, details folded, always under ``budget`` characters."""
    counts = plan.summary()
    head = [
        "### reconciler plan",
        "",
        f"**{summary_line(plan)}**",
        "",
        f"Target: `{plan.target}`",
        "",
    ]
    head.append("| action | count |")
    head.append("| --- | ---: |")
    for action in Action:
        if action is not Action.NOOP and counts[action.value]:
            head.append(f"| {action.value} | {counts[action.value]} |")
    head.append(f"| no-op | {counts['no-op']} |")
    head.append("")
    blocked = [c for c in plan.changes if c.blocked]
    if blocked:
        head.append(
            f":warning: {len(blocked)} change(s) blocked as possible duplicates; see details."
        )
        head.append("")
    if plan.drift:
        head.append(f":warning: {len(plan.drift)} object(s) drifted outside reconciler.")
        head.append("")
    tail = [
        "",
        f"<sub>plan format {plan.format_version} · "
        + (f"state serial {plan.serial}" if plan.serial is not None else "no state yet")
        + f" · specs {plan.spec_digest[:12]}</sub>",
    ]
    text = "\n".join(head)
    sections: list[str] = []
    for change in plan.actionable:
        body = "\n".join(describe_change(change))
        sections.append(
            f"<details><summary><code>{_md_escape(change.action.symbol)} {change.address}</code> "
            f"{change.action.value} ({change.reason})</summary>\n\n```\n{body}\n```\n</details>"
        )
    if plan.drift:
        drift = "\n".join(f"- `{d.address}` **{d.kind}**: {d.message}" for d in plan.drift)
        sections.append(
            f"<details><summary>Drift ({len(plan.drift)})</summary>\n\n{drift}\n</details>"
        )
    if plan.warnings:
        notes = "\n".join(f"- {_md_escape(w)}" for w in plan.warnings)
        sections.append(
            f"<details><summary>Warnings ({len(plan.warnings)})</summary>\n\n{notes}\n</details>"
        )
    if plan.not_in_spec:
        rest = "\n".join(f"- `{a}`" for a in plan.not_in_spec)
        sections.append(
            f"<details><summary>Not in spec ({len(plan.not_in_spec)})</summary>\n\n{rest}\n</details>"
        )
    used = len(text) + sum(len(t) + 1 for t in tail)
    shown = 0
    parts: list[str] = []
    for section in sections:
        note_room = 200
        if used + len(section) + 2 + note_room > budget:
            break
        parts.append(section)
        used += len(section) + 2
        shown += 1
    if shown < len(sections):
        parts.append(
            f"\n_{len(sections) - shown} more section(s) not shown to stay under GitHub's comment "
            "limit; run `reconciler plan --format text` or see the CI log for the full plan._"
        )
    return text + "\n" + "\n\n".join(parts) + "\n".join(tail) + "\n"
