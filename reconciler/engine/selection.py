"""Which addresses a command acts on: ``--target`` patterns and ``--selector`` labels.

* A ``--target`` pattern is an address (``job.x``, ``dataset.d[train]``), a dataset without
  its part (``dataset.d``: every part), a job's base name (``job.sweep``: every matrix cell
  ``job.sweep-…``), or a glob where ``*`` and ``?`` are wildcards (brackets are literal, so
  ``dataset.*[train]`` works). A pattern that matches nothing is an error naming the nearest
  addresses: a typo must not silently plan nothing.
* A ``--selector key=value`` matches objects whose document carries that label; several
  selectors must all match (AND). A selector that matches nothing is an error naming the
  values in use.

Pure functions of addresses and labels; the planner and the read-only commands share them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence

from reconciler.address import JOB_PREFIX, Address, ResourceType
from reconciler.errors import InvalidValueError, PlanError

Selector = tuple[str, str]
"""A ``key=value`` label selector."""


def _glob(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts))


def pattern_matches(address: str, pattern: str) -> bool:
    """Whether one ``--target``/``--replace`` pattern selects an address."""
    if address == pattern:
        return True
    if ("*" in pattern or "?" in pattern) and _glob(pattern).fullmatch(address):
        return True
    if not Address.is_valid(address):
        return False
    addr = Address(address)
    if addr.base == pattern:
        return True
    # job.x selects its matrix cells job.x-...
    return (
        addr.kind is ResourceType.JOB
        and pattern.startswith(JOB_PREFIX)
        and address.startswith(pattern + "-")
    )


def matches(address: str, patterns: Iterable[str]) -> bool:
    """Whether an address is selected by any of the patterns."""
    return any(pattern_matches(address, p) for p in patterns)


def parse_selectors(texts: Sequence[str]) -> tuple[Selector, ...]:
    """``key=value`` texts as selectors (an :class:`InvalidValueError` for a malformed one)."""
    out: list[Selector] = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise InvalidValueError(
                f"--selector {text!r}: expected key=value, e.g. --selector team=search"
            )
        out.append((key.strip(), value.strip()))
    return tuple(out)


def labels_match(labels: Mapping[str, str], selectors: Iterable[Selector]) -> bool:
    """Whether labels satisfy every selector."""
    return all(labels.get(key) == value for key, value in selectors)


def check_targets(patterns: Iterable[str], known: Iterable[str]) -> None:
    """Refuse ``--target`` patterns that match none of the ``known`` addresses."""
    candidates = sorted(set(known))
    problems: list[str] = []
    for pattern in patterns:
        if any(pattern_matches(a, pattern) for a in candidates):
            continue
        bases = sorted({Address(a).base for a in candidates if Address.is_valid(a)})
        near = difflib.get_close_matches(pattern, sorted(set(candidates) | set(bases)), n=3)
        hint = f"did you mean {', '.join(near)}?" if near else _some(candidates, "addresses")
        problems.append(f"--target {pattern} matches no address in the specs or the state; {hint}")
    if problems:
        raise PlanError("\n".join(problems))


def check_selectors(selectors: Iterable[Selector], labelled: Iterable[Mapping[str, str]]) -> None:
    """Refuse ``--selector`` labels that no object carries."""
    everything = list(labelled)
    problems: list[str] = []
    for key, value in selectors:
        if any(labels.get(key) == value for labels in everything):
            continue
        values = sorted({labels[key] for labels in everything if key in labels})
        if values:
            near = difflib.get_close_matches(value, values, n=1)
            hint = f"did you mean {key}={near[0]}? " if near else ""
            hint += f"values of {key} in use: {', '.join(values)}"
        else:
            keys = sorted({k for labels in everything for k in labels})
            hint = f"no object has the label {key!r}; " + _some(keys, "labels")
        problems.append(f"--selector {key}={value} matches nothing; {hint}")
    if problems:
        raise PlanError("\n".join(problems))


def select_labelled(
    labels: Mapping[str, Mapping[str, str]], selectors: Sequence[Selector]
) -> set[str]:
    """The addresses whose labels satisfy every selector (an error when there are none)."""
    check_selectors(selectors, labels.values())
    return {address for address, own in labels.items() if labels_match(own, selectors)}


def _some(names: Sequence[str], what: str, limit: int = 8) -> str:
    if not names:
        return f"there are no {what}"
    shown = ", ".join(names[:limit])
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return f"{what} in use: {shown}{more}"
