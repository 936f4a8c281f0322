"""Client-side throttling and request accounting shared by every thread using one client.

:class:`RateLimiter` spaces requests to at most ``rate`` per second and lets a 429 pause *all*
threads at once (one thread's ``Retry-After`` applies to the whole organisation's quota, so the
other workers must not keep hammering). :class:`RequestStats` counts what was sent; tests and
benchmarks read it to check that listing costs pages, not objects, and that nothing was
retried or re-posted behind their back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class RateLimiter:
    """A thread-safe token bucket with a burst of one, plus a shared pause.

    The burst is one on purpose: servers enforce their limit over short windows, and a bucket
    that lets ``rate`` requests out at once after an idle spell would trip a per-second window
    exactly when a parallel apply starts. Spacing requests ``1/rate`` apart runs at the limit
    without exceeding it.

    Args:
        rate: requests per second, or ``None`` for no cap (the pause still works).
        clock: monotonic clock (injectable for tests).
        sleep: how to wait (injectable for tests).
    """

    def __init__(
        self,
        rate: float | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("rate must be positive or None")
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_free = 0.0
        self._paused_until = 0.0

    def acquire(self) -> float:
        """Wait for this caller's turn; return the seconds waited.

        The slot is reserved under the lock and the wait happens outside it, so many threads
        queue up in order without serialising on the lock itself.
        """
        with self._lock:
            now = self._clock()
            start = max(now, self._next_free, self._paused_until)
            if self.rate is not None:
                self._next_free = start + 1.0 / self.rate
            wait = start - now
        if wait > 0:
            self._sleep(wait)
        return max(wait, 0.0)

    def adopt(self, rate: float) -> bool:
        """Lower the rate to ``rate`` (e.g. the server's advertised limit); True if lowered.

        Used after a 429 that says what the limit is: without it, every worker released at the
        end of a shared pause would fire at once and all but one would be refused again.
        """
        if rate <= 0:
            return False
        with self._lock:
            if self.rate is not None and self.rate <= rate:
                return False
            self.rate = rate
            return True

    def pause(self, seconds: float) -> None:
        """Hold every caller of :meth:`acquire` for ``seconds`` from now (e.g. a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(seconds, 0.0))


@dataclass
class RequestStats:
    """Counters of what a client sent (thread-safe; read them, do not write them).

    Attributes:
        requests: HTTP requests sent, including retries and lookups.
        by_method: requests per HTTP method, e.g. ``{"GET": 3, "POST": 1}``.
        by_operation: requests per operation name, e.g. ``{"list_files": 3}``.
        retries: attempts that were repeats of a failed attempt.
        lookups: lost-response resolutions (a create whose answer was lost, looked up).
        bytes_uploaded: file bytes streamed in upload bodies (all attempts).
        waited_seconds: time spent in backoff and throttling.
        skipped_objects: objects in answers that did not parse and were left out (model
            cards of ``GET /v1/models``; each is logged as a warning).
    """

    requests: int = 0
    by_method: dict[str, int] = field(default_factory=dict)
    by_operation: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    lookups: int = 0
    bytes_uploaded: int = 0
    waited_seconds: float = 0.0
    skipped_objects: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self, method: str, operation: str, *, retry: bool) -> None:
        """Record one request about to be sent."""
        with self._lock:
            self.requests += 1
            self.by_method[method] = self.by_method.get(method, 0) + 1
            self.by_operation[operation] = self.by_operation.get(operation, 0) + 1
            if retry:
                self.retries += 1

    def add(
        self,
        *,
        lookups: int = 0,
        bytes_uploaded: int = 0,
        waited_seconds: float = 0.0,
        skipped_objects: int = 0,
    ) -> None:
        """Add to the other counters."""
        with self._lock:
            self.lookups += lookups
            self.bytes_uploaded += bytes_uploaded
            self.waited_seconds += waited_seconds
            self.skipped_objects += skipped_objects

    def mutating_requests(self) -> int:
        """Requests with a method that can change remote state (POST, PATCH, PUT, DELETE)."""
        with self._lock:
            return sum(n for m, n in self.by_method.items() if m not in ("GET", "HEAD"))
