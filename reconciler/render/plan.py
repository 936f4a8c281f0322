"""Plan rendering: Terraform-like text, versioned JSON, and Markdown for PR comments.

Rendering reads a :class:`~reconciler.engine.plan.Plan` and nothing else; it never decides.
Plans are for review: errors (a budget exceeded, changes apply will refuse) and warnings come
first in text and Markdown and are never cut; every job to pay for shows its cost estimate and
how it was made, and the headline says "at least" when some have none; a replacement shows
the old and new value of each field that forces it. The Markdown form puts the summary first
and folds details, and stays under GitHub's 65,536-character comment limit however many jobs
the plan has (details are cut, with a note, before the summary, the errors or the warnings
ever are).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from reconciler.engine.plan import (
    MODEL_FIELDS,
    Action,
    CostEstimate,
    Disposition,
    FileChange,
    JobChange,
    ModelDisposition,
    Plan,
)

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

_ADOPTION_VERBS = {
    Action.IMPORT: "to import",
    Action.MOVE: "to move",
    Action.RESTORE: "to restore",
}
"""Actions that only record existing remote objects: counted only when a plan has them."""


def summary_line(plan: Plan) -> str:
    """``Plan: 3 to add, 0 to change, ...`` — or ``No changes.`` — with drift and leftovers.

    ``No changes to apply; 1 drifted, 1 not in spec.`` when apply would do nothing but the
    remote still differs from the specs (what ``--detailed-exitcode`` reports as 2). Then the
    estimated cost (:func:`cost_headline`: ``at least``, with how many jobs have no estimate,
    when some have none) and the monthly storage of the models kept.
    """
    counts = plan.summary()
    attention = _attention(plan)
    if not plan.has_changes:
        if attention:
            text = f"No changes to apply; {attention}."
        else:
            text = "No changes. Remote objects match the specs."
    else:
        parts = [f"{counts[a.value]} {verb}" for a, verb in _VERBS.items()]
        adopting = [f"{counts[a.value]} {v}" for a, v in _ADOPTION_VERBS.items() if counts[a.value]]
        text = "Plan: " + ", ".join(parts)
        text += f"; {', '.join(adopting)} (no cost)." if adopting else "."
        if attention:
            text += f" Also {attention}."
    cost = cost_headline(plan)
    if cost:
        text += f" {cost}"
    # Storage figures only where the provider charges for keeping a model (not openai).
    per_model = plan.storage_cost_per_model
    if plan.models_kept:
        text += f" Fine-tuned models kept: {plan.models_kept}"
        if per_model:
            monthly = plan.models_kept * per_model
            text += f" (storage ~${monthly:.2f}/month at ${per_model:.2f} each)"
        text += "."
    if plan.models_deleted:
        text += f" Previous models deleted: {plan.models_deleted}"
        if per_model:
            text += f" (saves ~${plan.models_deleted * per_model:.2f}/month of storage)"
        text += "."
    return text


def _attention(plan: Plan) -> str:
    """``1 drifted, 2 not in spec`` (empty when neither)."""
    parts = []
    if plan.drift:
        parts.append(f"{len(plan.drift)} drifted")
    if plan.unmanaged_leftovers:
        parts.append(f"{len(plan.unmanaged_leftovers)} not in spec")
    return ", ".join(parts)


def total_cost(plan: Plan) -> str:
    """Sum of cost estimates by currency, e.g. ``4.20 USD``; empty when none."""
    totals = plan.cost_totals()
    return ", ".join(f"{v:,.2f} {k}".strip() for k, v in sorted(totals.items()))


def cost_headline(plan: Plan) -> str:
    """``Estimated cost: 4.20 USD for 2 job(s).`` — ``at least``, with how many are missing,
    when some job has no estimate; the run's cap when there is one. Empty without costs."""
    jobs, missing = len(plan.costly), len(plan.unestimated)
    if not jobs:
        return ""
    total = total_cost(plan) or "0.00"
    if missing:
        text = (
            f"Estimated cost: at least {total} for {jobs} job(s); {missing} job(s) could not "
            "be estimated."
        )
    else:
        text = f"Estimated cost: {total} for {jobs} job(s)."
    if plan.run_budget is not None:
        text += f" Run budget: {plan.run_budget.max_cost:,.2f} USD ({plan.run_budget.source})."
    return text


def describe_cost(change: FileChange | JobChange, plan: Plan | None = None) -> list[str]:
    """The cost lines of a change: its estimate and how it was made, why it has none, and
    whether it is over its budget."""
    cost = change.cost
    if cost is None:
        why = plan.unestimated.get(change.address) if plan is not None else None
        return [f"cost estimate: none ({why})"] if why else []
    storage = (
        f" + storage {cost.storage_per_month:.2f} {cost.currency or ''}/month"
        if cost.storage_per_month is not None
        else ""
    )
    lines = [f"cost estimate: {_amount(cost)} ({cost.source}){storage}"]
    basis = cost.basis
    if basis is not None:
        if basis.gpu_hours is not None:  # a cluster of one's own: GPU-hours x their price
            price = (
                f"{basis.train_tokens:,} tokens / {basis.tokens_per_gpu_second:g} tokens per "
                f"GPU-second = {basis.gpu_hours:g} GPU-hours at {basis.price_per_gpu_hour:g} "
                f"{cost.currency or ''}/GPU-hour"
            )
        else:
            minimum = f" (minimum {basis.minimum_fee:g})" if basis.minimum_fee else ""
            price = (
                f"{basis.train_tokens:,} tokens at {basis.price_per_million_tokens:g} "
                f"{cost.currency or ''}/M tokens{minimum}"
            )
        if basis.steps is not None and basis.tokens_per_step is not None:
            lines.append(
                f"  {basis.steps:,} steps ({basis.steps_from}) x {basis.tokens_per_step:,} "
                f"tokens = {price}"
            )
            lines.append(
                f"  {basis.epochs:g} epoch(s) of {basis.data_tokens:,} training tokens "
                f"({basis.token_count})"
            )
        else:  # billed by passes over the data (openai)
            lines.append(
                f"  {basis.epochs:g} epoch(s) ({basis.epochs_from}) x {basis.data_tokens:,} "
                f"training tokens ({basis.token_count}) = {price}"
            )
        if len(basis.training_files) > 1:
            lines.extend(
                f"    {f.file}: {f.tokens:,} tokens, weight {f.weight:g}, {f.epochs:g} epoch(s)"
                for f in basis.training_files
            )
        lines.append(f"  price: {basis.price_source}")
    elif cost.train_tokens is not None:
        lines.append(f"  {cost.train_tokens:,} trained tokens")
    budget = change.after.budget if isinstance(change, JobChange) and change.after else None
    if budget is not None and cost.amount > budget.max_cost:
        lines.append(f"OVER BUDGET: {_amount(cost)} > budget.max_cost {budget.max_cost:g}")
    return lines


def _amount(cost: CostEstimate) -> str:
    return f"{cost.amount:,.2f} {cost.currency or ''}".rstrip()


def describe_change(change: FileChange | JobChange, plan: Plan | None = None) -> list[str]:
    """Detail lines of one change (without the address line); ``plan`` says why a job has
    no cost estimate."""
    lines = _describe_adoption(change)
    lines += _describe_file(change) if isinstance(change, FileChange) else _describe_job(change)
    lines.extend(describe_cost(change, plan))
    if change.blocked:
        lines.append(f"BLOCKED: {change.blocked}")
    return lines


def _describe_adoption(change: FileChange | JobChange) -> list[str]:
    """What an Import or Moved document, or a restore, records first (state only)."""
    lines: list[str] = []
    if change.moved_from:
        lines.append(f"moved from {change.moved_from} (a Moved document): state only, no cost")
    if change.import_id and isinstance(change, FileChange):
        shown = change.before.filename if change.before is not None else None
        lines.append(
            f"import remote file {change.import_id}"
            + (f" ({shown})" if shown else "")
            + ": it holds exactly the prepared content; nothing is uploaded, no cost"
        )
    elif change.import_id and isinstance(change, JobChange):
        status = change.before.status if change.before is not None else None
        lines.append(
            f"import remote job {change.import_id} ({status}): it made exactly this request; "
            "nothing is created, no cost"
        )
    if isinstance(change, JobChange) and change.restores:
        lines.append(
            f"restore: previous job {change.restores} had this exact request and SUCCEEDED; "
            "the address points at it again, no new job, no cost"
        )
        prev = change.previous
        if prev is not None:
            lines.append(f"current job {prev.id} ({prev.status}): {prev.disposition}")
            if prev.fine_tuned_model:
                lines.append(_previous_model(prev.fine_tuned_model, prev.model_disposition))
    return lines


def _previous_model(model: str, disposition: ModelDisposition | None) -> str:
    if disposition is ModelDisposition.DELETE:
        return f"previous model {model}: delete once the new job has SUCCEEDED (not before)"
    return f"previous model {model}: {disposition or 'keep'}"


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
        if change.used_by:
            lines.append(
                f"forget {before.id} ({before.filename}); the remote file is kept: still used "
                f"by {', '.join(change.used_by)}"
            )
        else:
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
        if request.method != "supervised":
            lines.append(f"method: {request.method}")
        if request.seed is not None:
            lines.append(f"seed: {request.seed}")
        if request.lora:
            lines.append(f"LoRA rank {request.lora['rank']}")
        for integration in request.integrations:
            if integration.api_key is None:
                lines.append(f"W&B project {integration.project}")
                continue
            ref = ", ".join(f"{k}: {v}" for k, v in integration.api_key.items())
            lines.append(f"W&B project {integration.project} (api_key from {{{ref}}})")
        if after.starts_at_create:
            # No start gate: the plan's own estimate is the only budget check (a plan error).
            start = "starts as soon as it is created"
            if after.budget:
                start += f" (budget {after.budget.max_cost} held against this plan's estimate)"
        else:
            start = "then start once validated" if after.start else "leave VALIDATED (start: false)"
            if after.budget:
                start += f", if the remote's estimate is within budget {after.budget.max_cost}"
        lines.append(start)
    if change.action is Action.REPLACE:
        if change.replace_paths:
            lines.append("forces new job: " + ", ".join(change.replace_paths))
            lines.extend(f"  {line}" for line in _old_to_new(change))
        else:
            lines.append("replacement requested (--replace)")
        if prev is not None and change.cancel_first:
            lines.append(
                f"cancel before create: previous job {prev.id} ({prev.status}) is cancelled "
                "and apply waits until it has stopped before creating the new one (the remote "
                "refuses a similar job while it is active): no job runs in between"
            )
        elif prev is not None:
            lines.append(f"previous job {prev.id} ({prev.status}): {prev.disposition}")
            if prev.fine_tuned_model:
                lines.append(_previous_model(prev.fine_tuned_model, prev.model_disposition))
    if change.action is Action.START and before is not None:
        lines.append(f"start validated job {before.id}")
    for model in change.delete_models:
        lines.append(
            f"delete previous model {model}: replaced under on_replace.previous_model: delete, "
            "and its replacement has SUCCEEDED"
        )
    if change.action is Action.UPDATE:
        # In one fixed order: a plan read back from JSON has its keys sorted.
        for key in MODEL_FIELDS:
            diff = change.update_fields.get(key)
            if diff is None:
                continue
            if key == "paused":
                job_id = before.id if before is not None else "?"
                lines.append(f"{'pause' if diff.after else 'resume'} job {job_id} (in place)")
            else:
                lines.append(f"model {key}: {json.dumps(diff.before)} -> {json.dumps(diff.after)}")
    if change.action is Action.FORGET and before is not None:
        if prev is not None and prev.disposition is Disposition.CANCEL:
            lines.append(f"cancel active job {before.id} ({before.status}), then forget it")
        else:
            lines.append(
                f"forget job {before.id} ({before.status}); it and its model are kept remotely"
            )
    return lines


def _old_to_new(change: JobChange) -> list[str]:
    """``path: old → new`` for each field that forces a replacement (values as JSON)."""
    if change.before is None or change.before.request is None or change.after is None:
        return []
    old, new = change.before.request, change.after.request.model_dump(mode="json")
    lines = []
    for path in change.replace_paths:
        found_old, found_new = value_at(old, path), value_at(new, path)
        if found_old is _MISSING and found_new is _MISSING:
            continue
        lines.append(f"{path}: {_shown(found_old)} → {_shown(found_new)}")
    return lines


_MISSING = object()
_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def value_at(data: Any, path: str) -> Any:
    """The value at a dotted path such as ``training_files[0].weight`` (or a marker)."""
    if path in ("", "."):
        return data
    for name, index in _PATH_PART.findall(path):
        if name and isinstance(data, Mapping) and name in data:
            data = data[name]
        elif index and isinstance(data, list | tuple) and int(index) < len(data):
            data = data[int(index)]
        else:
            return _MISSING
    return data


def _shown(value: Any, limit: int = 80) -> str:
    if value is _MISSING:
        return "(absent)"
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


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
    """Human plan, Terraform-like: errors and warnings first, then symbols, reasons,
    details, drift, and the summary line."""
    out: list[str] = []
    errors = plan.all_errors
    if errors:
        scope = "this plan" if plan.errors else "these changes"
        out.append(f"Errors (apply will refuse {scope}):")
        out.extend(f"   x  {e}" for e in errors)
        out.append("")
    for warning in plan.warnings:
        out.append(f"Warning: {warning}")
    if plan.warnings:
        out.append("")
    actionable = plan.actionable
    if actionable:
        out.append("reconciler will perform the following actions:")
        out.append("")
        for change in actionable:
            out.append(
                f"  {change.action.symbol:>3} {change.address}  ({change.action.value}: {change.reason})"
            )
            out.extend(f"        {line}" for line in describe_change(change, plan))
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
    rest = plan.unmanaged_leftovers
    if rest:
        out.append("Managed but no longer in the specs (use --prune to act on them):")
        out.extend(f"   ?  {a}" for a in rest)
        out.append("")
    out.append(summary_line(plan))
    return "\n".join(out)


def render_json(plan: Plan) -> str:
    """The versioned JSON plan (see README, 'JSON plan format')."""
    return json.dumps(plan.to_json_dict(), indent=2, sort_keys=True)


def _md_escape(text: str) -> str:
    """Keep user text from opening HTML/Markdown constructs in a PR comment."""
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")


UNESTIMATED_NAMED = 5
"""Addresses named per reason in the Markdown list of jobs without an estimate."""


def _unestimated_lines(plan: Plan) -> list[str]:
    """One line per reason a job has no estimate, naming the first jobs and counting all (a
    thousand jobs of an unpriced model make one line, and the comment stays short)."""
    by_reason: dict[str, list[str]] = {}
    for address, why in plan.unestimated.items():
        by_reason.setdefault(why, []).append(address)
    lines = []
    for why, addresses in by_reason.items():
        named = ", ".join(f"`{a}`" for a in addresses[:UNESTIMATED_NAMED])
        more = len(addresses) - UNESTIMATED_NAMED
        named += f" and {more} more" if more > 0 else ""
        lines.append(f"- {named}: {_md_escape(why)}")
    return lines


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
    # Errors come first, then the counts; errors and warnings come before any detail and are
    # never cut.
    blocked = [c for c in plan.changes if c.blocked]
    if plan.errors:
        count = len(plan.errors) + len(blocked)
        head.append(f":x: **{count} error(s): apply will refuse this plan.**")
    elif blocked:
        head.append(f"**:x: Errors: apply will refuse {len(blocked)} change(s)**")
    if plan.errors or blocked:
        head.append("")
        head.extend(f"- {_md_escape(e)}" for e in plan.errors)
        head.extend(f"- `{c.address}`: {_md_escape(str(c.blocked))}" for c in blocked)
        head.append("")
    head.append("| action | count |")
    head.append("| --- | ---: |")
    for action in Action:
        if action is not Action.NOOP and counts[action.value]:
            head.append(f"| {action.value} | {counts[action.value]} |")
    head.append(f"| no-op | {counts['no-op']} |")
    head.append("")
    if plan.unestimated:
        head.append(
            f":warning: {len(plan.unestimated)} job(s) have no cost estimate, so the estimated "
            "cost is a lower bound:"
        )
        head.append("")
        head.extend(_unestimated_lines(plan))
        head.append("")
    if plan.warnings:
        head.append(f"**:warning: Warnings ({len(plan.warnings)})**")
        head.append("")
        head.extend(f"- {_md_escape(w)}" for w in plan.warnings)
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
        body = "\n".join(describe_change(change, plan))
        sections.append(
            f"<details><summary><code>{_md_escape(change.action.symbol)} {change.address}</code> "
            f"{change.action.value} ({change.reason})</summary>\n\n```\n{body}\n```\n</details>"
        )
    if plan.drift:
        drift = "\n".join(f"- `{d.address}` **{d.kind}**: {d.message}" for d in plan.drift)
        sections.append(
            f"<details><summary>Drift ({len(plan.drift)})</summary>\n\n{drift}\n</details>"
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
