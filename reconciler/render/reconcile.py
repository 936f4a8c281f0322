"""Rendering of ``reconcile`` rounds: one summary line per round, one line per thing to read.

Reads a :class:`~reconciler.engine.rounds.RoundResult` and nothing else. The summary line says
what the round applied, what awaits review and what drifted, e.g.
``round 3: 2 model updates applied; 1 replacement awaits review (job.x); 1 drifted``; the
detail lines below it name each change awaiting review, each drifted object and each failure.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from reconciler.engine.duration import format_duration
from reconciler.engine.outcome import OutcomeStatus
from reconciler.engine.plan import Action
from reconciler.engine.rounds import RoundResult

_NOUNS = {
    Action.CREATE: ("create", "creates"),
    Action.UPDATE: ("model update", "model updates"),
    Action.REPLACE: ("replacement", "replacements"),
    Action.START: ("start", "starts"),
    Action.DELETE: ("delete", "deletes"),
    Action.FORGET: ("forget", "forgets"),
}
"""How a summary counts the changes of each action (singular, plural)."""

REVIEW_HINT = "review with 'reconciler plan', then apply with 'reconciler apply'"


def _count(n: int, singular: str, plural: str) -> str:
    return f"{n} {singular if n == 1 else plural}"


def addresses(items: Sequence[str], limit: int = 3) -> str:
    """``a, b, c`` or ``a, b, c and 2 more``: the addresses a summary names."""
    shown = ", ".join(items[:limit])
    return shown if len(items) <= limit else f"{shown} and {len(items) - limit} more"


def summary_line(result: RoundResult, *, next_round_in: float | None = None) -> str:
    """``round N: ...``: what the round applied, what awaits review, what drifted."""
    head = f"round {result.number}: "
    if result.error is not None:
        text = head + "failed: " + result.error.splitlines()[0]
        if next_round_in is not None:
            text += f"; next round in {format_duration(next_round_in)}"
        return text
    parts: list[str] = []
    applied = result.applied
    if applied is not None:
        done = Counter(
            o.action
            for o in applied.outcomes
            if o.status is OutcomeStatus.APPLIED and o.action is not Action.START
        )
        parts += [f"{_count(n, *_NOUNS[a])} applied" for a, n in done.items()]
        if applied.started_jobs:
            parts.append(_count(len(applied.started_jobs), "job", "jobs") + " started")
        if applied.recovered:
            parts.append(f"{len(applied.recovered)} interrupted create(s) recovered")
        if applied.failures:
            failed = [o.address for o in applied.failures]
            parts.append(f"{len(failed)} failed ({addresses(failed)})")
    by_action: dict[Action, list[str]] = {}
    for pending in result.awaiting_review:
        by_action.setdefault(pending.action, []).append(pending.address)
    for action, names in by_action.items():
        verb = "awaits" if len(names) == 1 else "await"
        parts.append(f"{_count(len(names), *_NOUNS[action])} {verb} review ({addresses(names)})")
    if result.awaiting_validation:
        names = list(result.awaiting_validation)
        verb = "awaits" if len(names) == 1 else "await"
        parts.append(f"{_count(len(names), 'job', 'jobs')} {verb} validation ({addresses(names)})")
    if result.drift:
        parts.append(f"{len(result.drift)} drifted")
    if result.not_in_spec:
        names = list(result.not_in_spec)
        parts.append(f"{len(names)} not in spec ({addresses(names)})")
    text = head + ("; ".join(parts) if parts else "no changes")
    if result.stopped:
        text += "; stopped (what is left is done by the next run)"
    return text


def detail_lines(result: RoundResult) -> list[str]:
    """One indented line per change awaiting review, drifted object, failure; the rest of
    a multi-line error."""
    if result.error is not None:
        return ["  " + line for line in result.error.splitlines()[1:]]
    lines: list[str] = []
    for outcome in result.failures:
        lines.append(f"  failed: {outcome.address}: {outcome.message}")
    for pending in result.awaiting_review:
        lines.append(
            f"  awaits review: {pending.address}: {pending.action.value} ({pending.reason.value})"
        )
    for drift in result.drift:
        lines.append(f"  drifted: {drift.address}: {drift.kind.value}: {drift.message}")
    for address in result.not_in_spec:
        lines.append(f"  not in spec: {address} (--prune plans its removal)")
    if result.awaiting_review:
        lines.append(f"  {REVIEW_HINT} (or run reconcile with --auto-approve)")
    return lines


def render_text(result: RoundResult, *, next_round_in: float | None = None) -> str:
    """The summary line and the detail lines."""
    return "\n".join([summary_line(result, next_round_in=next_round_in), *detail_lines(result)])


def render_json(result: RoundResult, *, next_round_in: float | None = None) -> str:
    """One line of JSON (``--format json`` prints one per round)."""
    data = result.to_dict()
    data["summary"] = summary_line(result)
    data["next_round_in"] = next_round_in
    return json.dumps(data, sort_keys=True)
