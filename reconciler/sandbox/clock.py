"""The sandbox's clock: the one place it reads the time.

Every timestamp the sandbox writes (creation times, events, checkpoints, signed-URL expiry,
the journal) and every refill of its rate limit comes from one :class:`Clock`. A clock also
carries the *time scale*, the speed of the simulated job lifecycle: durations of
:mod:`.lifecycle` are divided by it, while timestamps stay ordinary UNIX seconds.

:class:`SystemClock` is real time at a given scale (the default); :class:`ManualClock` only
moves when told to, so tests drive a job from QUEUED to SUCCESS with :meth:`ManualClock.advance`
instead of sleeping.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol


class Clock(Protocol):
    """What the sandbox needs from a clock.

    Attributes:
        scale: speed of simulated time, finite and > 0; 10 makes jobs progress ten times
            faster.
    """

    @property
    def scale(self) -> float: ...

    def now(self) -> float:
        """The current time, UNIX seconds."""
        ...


def check_scale(scale: float) -> float:
    """``scale`` if it is a usable time scale (finite, > 0); else ValueError saying so."""
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(
            f"time scale must be a finite number > 0 (1 is real time, 10 ten times faster), "
            f"got {scale!r}"
        )
    return scale


def parse_time_scale(text: str) -> float:
    """Read a time scale written as text (a flag or an environment variable's value).

    Raises ValueError for anything but a finite number > 0 (``abc``, ``0``, ``-1``, ``inf``,
    ``nan``), saying what to write instead.
    """
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(
            f"time scale {text!r} is not a number; write a finite number > 0 such as 1 "
            "(real time) or 20 (twenty times faster)"
        ) from None
    return check_scale(value)


class SystemClock:
    """Real time (``time.time()``) with a time scale for the simulated lifecycle.

    Attributes:
        scale: speed of simulated time.
    """

    def __init__(self, scale: float = 1.0) -> None:
        self._scale = check_scale(scale)

    @property
    def scale(self) -> float:
        """Speed of simulated time."""
        return self._scale

    def now(self) -> float:
        """``time.time()``."""
        return time.time()

    def __repr__(self) -> str:
        return f"SystemClock(scale={self._scale:g})"


class ManualClock:
    """A clock that stands still until :meth:`advance` moves it.

    Safe to read from the server's threads while a test moves it from another.

    Attributes:
        scale: speed of simulated time (durations are divided by it, as with the real clock).
    """

    def __init__(self, start: float | None = None, scale: float = 1.0) -> None:
        # Default start: the real time now, so timestamps look like ordinary ones.
        self._now = time.time() if start is None else start
        self._scale = check_scale(scale)
        self._lock = threading.Lock()

    @property
    def scale(self) -> float:
        """Speed of simulated time."""
        return self._scale

    def now(self) -> float:
        """The clock's current time, UNIX seconds."""
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0); returns the new time."""
        if not seconds >= 0:
            raise ValueError(f"a clock only moves forward; got {seconds!r} seconds")
        with self._lock:
            self._now += seconds
            return self._now

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now():.3f}, scale={self._scale:g})"
