"""The state apply works on: one thread-safe copy, persisted with group-committed writes.

Every change the executor makes to the state goes through :class:`StateRecorder`. Intents
(rule 1 of the executor: intent before create) are on disk before :meth:`add_intents`
returns; results are written with the next flush, at most ``flush_interval`` seconds later
and always at the end of each stage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from reconciler.address import ResourceType
from reconciler.engine.moves import move_record
from reconciler.engine.state_model import Intent, ResourceState, State, StateBackend
from reconciler.errors import StateError


class StateRecorder:
    """Thread-safe holder of the working state; persists it with compare-and-swap writes.

    Writes are group-committed: a thread that needs its intent on disk waits for the one
    write in progress, and the next write carries every change made meanwhile, so N
    parallel creates cost far fewer than N state writes while each intent is still on disk
    before its request is sent.

    Args:
        backend: where the state is stored.
        state: the state read under the lock (None: none stored yet).
        clock: monotonic seconds (tests pass a fake one to drive :meth:`maybe_flush`).
    """

    def __init__(
        self,
        backend: StateBackend,
        state: State | None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._clock = clock
        self._lock = threading.RLock()  # guards self.state and the counters
        self._io = threading.Lock()  # one backend write at a time
        self._stored_serial = state.serial if state is not None else None
        self.state = state.model_copy(deep=True) if state is not None else State()
        self._version = 0  # bumped by every change
        self._persisted = 0  # version covered by the last write
        self._last_flush = clock()

    @property
    def serial(self) -> int | None:
        """Serial of the last stored state."""
        return self._stored_serial

    def _changed(self) -> int:
        self._version += 1
        return self._version

    def _write_if_behind(self, needed: int) -> None:
        """Persist unless a write already covered version ``needed``."""
        with self._io:
            with self._lock:
                if self._persisted >= needed:
                    return
                version = self._version
                snapshot = self.state.model_copy(deep=True)
                expected = self._stored_serial
            stored = self._backend.write(snapshot, expected)
            with self._lock:
                self._stored_serial = stored.serial
                self.state.serial = stored.serial
                self._persisted = version
                self._last_flush = self._clock()

    def intents(self) -> list[Intent]:
        """The unresolved intents (copies)."""
        with self._lock:
            return [i.model_copy(deep=True) for i in self.state.intents.values()]

    def add_intents(self, intents: list[Intent]) -> None:
        """Record intents and persist them before returning (rule 1)."""
        if not intents:
            return
        with self._lock:
            for intent in intents:
                self.state.intents[intent.id] = intent
            needed = self._changed()
        self._write_if_behind(needed)

    def drop_intent(self, intent_id: str) -> None:
        """Forget a resolved intent (persisted with the next flush)."""
        with self._lock:
            if self.state.intents.pop(intent_id, None) is not None:
                self._changed()

    def put(self, resource: ResourceState, *, intent_id: str | None = None) -> None:
        """Record a resource (and drop the intent that created it).

        Raises:
            StateError: the resource is a job another address holds (a remote job belongs
                to one address; nothing is recorded).
        """
        with self._lock:
            if resource.type is ResourceType.JOB:
                owner = self._holder(resource.address, resource.remote_id)
                if owner is not None:
                    raise StateError(
                        f"{resource.address}: remote job {resource.remote_id} is already "
                        f"{owner}'s; a remote job belongs to one address, so it is not "
                        "recorded twice"
                    )
            self.state.resources[resource.address] = resource
            if intent_id is not None:
                self.state.intents.pop(intent_id, None)
            self._changed()

    def update_attributes(self, address: str, **attributes: Any) -> None:
        """Merge attributes into a recorded resource."""
        with self._lock:
            res = self.state.resources.get(address)
            if res is not None:
                res.attributes.update(attributes)
                self._changed()

    def move(self, source: str, target: str) -> bool:
        """Move ``source``'s record (and intents) to ``target``; False when already moved.

        Already moved: ``source`` is not recorded and ``target`` is.

        Raises:
            StateError: see :func:`~reconciler.engine.moves.check_move`.
        """
        with self._lock:
            if source not in self.state.resources and target in self.state.resources:
                return False
            move_record(self.state, source, target)
            self._changed()
            return True

    def remove(self, address: str) -> None:
        """Forget an address."""
        with self._lock:
            if self.state.resources.pop(address, None) is not None:
                self._changed()

    def get(self, address: str) -> ResourceState | None:
        """A copy of a recorded resource."""
        with self._lock:
            res = self.state.resources.get(address)
            return res.model_copy(deep=True) if res is not None else None

    def job_bindings(self) -> tuple[dict[str, str], frozenset[str]]:
        """:meth:`State.job_bindings` of the working state."""
        with self._lock:
            return self.state.job_bindings()

    def managed_elsewhere(self, address: str, remote_id: str) -> str | None:
        """Another address that records this remote object, if any."""
        with self._lock:
            return self._holder(address, remote_id)

    def _holder(self, address: str, remote_id: str) -> str | None:
        for other, res in self.state.resources.items():
            if other != address and res.remote_id == remote_id:
                return other
        return None

    def maybe_flush(self, interval: float) -> None:
        """Persist pending results if the last write is older than ``interval`` seconds."""
        with self._lock:
            due = self._clock() - self._last_flush >= interval
            version = self._version
        if due:
            self._write_if_behind(version)

    def flush(self) -> None:
        """Persist pending results now."""
        with self._lock:
            version = self._version
        self._write_if_behind(version)
