"""Durations as users write them on the command line: ``30s``, ``5m``, ``1h30m``, ``90``.

Used for ``--lock-timeout`` and other waits. A bare number is seconds. Units: ``ms``, ``s``,
``m``, ``h``, ``d``; parts may be combined largest first (``1h30m``, ``2m30s``) and may
carry decimals (``1.5h``). Parsing errors are :class:`~reconciler.errors.InvalidValueError` (a
:class:`ReconcilerError` and a :class:`ValueError`) whose message says what was wrong and
shows valid examples, so callers and command-line callbacks can show it as is.
"""

from __future__ import annotations

import math
import re

from reconciler.errors import InvalidValueError

_UNITS: dict[str, float] = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_ORDER = ["d", "h", "m", "s", "ms"]
_PART = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|d|h|m|s)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")
_EXAMPLES = "e.g. 30s, 5m, 1h30m, 90 (seconds) or 0 (do not wait)"


def parse_duration(text: str) -> float:
    """Seconds in ``text``.

    Raises:
        InvalidValueError: empty, negative, unknown unit, units out of order or repeated.
    """
    value = text.strip().lower()
    if not value:
        raise InvalidValueError(f"empty duration; give one such as {_EXAMPLES}")
    if _NUMBER.fullmatch(value):
        return _finite(float(value), text)
    total = 0.0
    position = 0
    last_rank = -1
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        rank = _ORDER.index(match.group(2))
        if rank <= last_rank:
            raise InvalidValueError(
                f"invalid duration {text!r}: units must go from largest to smallest, each "
                f"once ({_EXAMPLES})"
            )
        last_rank = rank
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or position == 0:
        raise InvalidValueError(
            f"invalid duration {text!r}: expected a number with a unit (d, h, m, s, ms), "
            f"{_EXAMPLES}"
        )
    return _finite(total, text)


def _finite(seconds: float, text: str) -> float:
    if not math.isfinite(seconds):
        raise InvalidValueError(f"invalid duration {text!r}: too large ({_EXAMPLES})")
    return seconds


def format_duration(seconds: float) -> str:
    """Compact form for messages: ``1h30m``, ``5m``, ``30s``, ``1.5s``, ``0s``."""
    if seconds < 60:
        return f"{seconds:g}s"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [
        f"{hours}h" if hours else "",
        f"{minutes}m" if minutes else "",
        f"{secs}s" if secs else "",
    ]
    return "".join(parts)
