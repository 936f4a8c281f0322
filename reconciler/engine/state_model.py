"""The state's data model and the backend interface every state backend implements.

The state records, per address, the remote object the tool manages and the fingerprint of
the request that made it; and the *intents* written before every create, so a crash between
"request sent" and "response recorded" is recovered by looking the object up remotely instead
of creating it again. It never holds a secret.

Backends (``file``: a JSON file beside the specs; ``postgres``: a shared database) store the
same :class:`State` and provide the same locking and compare-and-swap semantics.
"""

from __future__ import annotations

import abc
import getpass
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from reconciler.address import ResourceType
from reconciler.errors import StateError, StateLockedError

STATE_FORMAT_VERSION = 1


class ResourceState(BaseModel):
    """One managed remote object.

    Attributes:
        address: stable address, e.g. ``dataset.ultrachat[train]``, ``job.dumbledore-v1``.
        type: ``file`` or ``job``.
        remote_id: the remote's id (file uuid or job uuid).
        fingerprint: sha256 of the canonical create request (files: of name + content hash).
        attributes: non-secret facts recorded at create/refresh time (filename, sha256,
            bytes, status, fine_tuned_model, model name/description/archived, created_at,
            request summary, ...). Never a secret.
        history: previous remote ids of this address (replaced jobs kept as history).
    """

    model_config = ConfigDict(extra="forbid")

    address: str
    type: ResourceType
    remote_id: str
    fingerprint: str
    attributes: dict[str, Any] = Field(default_factory=dict)
    history: list[dict[str, Any]] = Field(default_factory=list)


class Intent(BaseModel):
    """A create that was about to be sent: written (and persisted) before the request.

    Attributes:
        id: random id of the intent.
        address: the address being created.
        operation: ``upload`` or ``create_job``.
        fingerprint: fingerprint of the request.
        lookup: what identifies the object remotely (files: filename, sha256, bytes; jobs:
            the request without secrets, and the identity tag the job is created with on
            providers whose jobs carry one) so recovery can find it.
        created_at: unix seconds when the intent was recorded (jobs are searched from here).
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    address: str
    operation: Literal["upload", "create_job"]
    fingerprint: str
    lookup: dict[str, Any] = Field(default_factory=dict)
    created_at: float


class StateTarget(BaseModel):
    """The remote a state belongs to: its remote ids mean something only there.

    No account identity is recorded: the remotes this tool talks to expose none short of a
    fine-tuned model's ``workspace_id``, and never the key itself belongs in a state.

    Attributes:
        provider: the Provider's type, ``mistral``, ``openai``, ``sandbox`` or ``ray``.
        endpoint: the API base URL (scheme and host lower-cased, no trailing ``/``; a ray
            Provider's ``address``), or :data:`EMBEDDED` for the embedded sandbox, which
            lives beside the state.
        storage: a ray Provider's storage (its files' ids mean something only there and its
            jobs' outputs are there); absent for the other types.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    endpoint: str
    storage: str | None = None

    @model_serializer(mode="wrap")
    def _omit_no_storage(self, handler: SerializerFunctionWrapHandler) -> Any:
        # States of the types without storage keep the layout they always had.
        data = handler(self)
        if isinstance(data, dict) and self.storage is None:
            data.pop("storage", None)
        return data

    def describe(self) -> str:
        """E.g. ``mistral https://api.mistral.ai``, ``embedded sandbox`` or
        ``ray http://127.0.0.1:8265 (storage /data/ft)``."""
        if self.endpoint == EMBEDDED:
            return "embedded sandbox"
        storage = f" (storage {self.storage})" if self.storage is not None else ""
        return f"{self.provider} {self.endpoint}{storage}"


EMBEDDED = "embedded"
"""The :attr:`StateTarget.endpoint` of the embedded sandbox."""


class State(BaseModel):
    """The whole state of one workspace.

    Attributes:
        format_version: version of this document's layout.
        lineage: random id fixed when the state is first created; a saved plan made against
            another lineage is refused.
        serial: incremented on every write that changes content; a saved plan made at another
            serial is refused.
        target: the remote the state is bound to, recorded at the first write (and at the
            next write for a state written before targets were recorded); None until then.
        resources: managed objects by address.
        intents: unresolved creates by intent id.
    """

    model_config = ConfigDict(extra="forbid")

    format_version: int = STATE_FORMAT_VERSION
    lineage: str = Field(default_factory=lambda: str(uuid.uuid4()))
    serial: int = 0
    target: StateTarget | None = None
    resources: dict[str, ResourceState] = Field(default_factory=dict)
    intents: dict[str, Intent] = Field(default_factory=dict)

    def content_equal(self, other: State) -> bool:
        """True when target, resources and intents are the same (serial is not compared)."""
        return (
            self.target == other.target
            and self.resources == other.resources
            and self.intents == other.intents
        )

    def job_bindings(self) -> tuple[dict[str, str], frozenset[str]]:
        """(remote job id → the address that holds it, every job id any address holds or held).

        The ids held before (history) are jobs replaced under an address: their record says
        which request made them, so they are never taken for another request's job.
        """
        bound: dict[str, str] = {}
        held: set[str] = set()
        for res in self.resources.values():
            if res.type is ResourceType.JOB:
                bound[res.remote_id] = res.address
                held.add(res.remote_id)
                held.update(str(h.get("remote_id")) for h in res.history)
        return bound, frozenset(held)

    def check_bindings(self) -> None:
        """Refuse a state in which two addresses hold one remote job (names both).

        Each address plans, replaces and cancels its job on its own, so a job bound to two
        addresses would be cancelled by one address's change while the other counts on it.
        (Files may be shared: an upload is content-addressed and never changes.)

        Raises:
            StateError: with every shared job, its addresses, and the ``state rm`` fix.
        """
        owners: dict[str, list[str]] = {}
        for res in self.resources.values():
            if res.type is ResourceType.JOB:
                owners.setdefault(res.remote_id, []).append(res.address)
        shared = sorted((jid, sorted(a)) for jid, a in owners.items() if len(a) > 1)
        if not shared:
            return
        lines = [f"  remote job {jid}: held by {' and '.join(a)}" for jid, a in shared]
        addresses = shared[0][1]
        raise StateError(
            "the state binds one remote job to several addresses, but a remote job belongs to "
            "exactly one:\n"
            + "\n".join(lines)
            + f"\nKeep it under one address and forget it under the others, e.g. 'reconciler "
            f"state rm {addresses[-1]}' to keep it as {addresses[0]} (the remote job is "
            "untouched), then plan again."
        )


class LockInfo(BaseModel):
    """Who holds a state lock.

    Attributes:
        id: lock id (give it to ``reconciler state unlock``).
        operation: the command that holds it, e.g. ``apply``.
        who: ``user@host``.
        host, pid, user: the holder process.
        created: unix seconds.
        path: what is locked (file path or ``postgres:workspace``).
    """

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    operation: str
    who: str
    host: str
    pid: int
    user: str
    created: float
    path: str

    @classmethod
    def for_this_process(cls, operation: str, path: str) -> LockInfo:
        """A new lock record naming this process as the holder."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for the uid (some containers)
            user = f"uid{os.getuid()}"
        host = socket.gethostname()
        return cls(
            operation=operation,
            who=f"{user}@{host}",
            host=host,
            pid=os.getpid(),
            user=user,
            created=time.time(),
            path=path,
        )

    def describe(self) -> str:
        """Multi-line Lock Info as printed in lock errors."""
        import datetime as _dt

        when = _dt.datetime.fromtimestamp(self.created, _dt.UTC).isoformat(timespec="seconds")
        return (
            f"  ID:        {self.id}\n  Path:      {self.path}\n  Operation: {self.operation}\n"
            f"  Who:       {self.who} (pid {self.pid})\n  Created:   {when}"
        )


def check_target(
    state: State | None, target: StateTarget, where: str, *, rebind: bool = False
) -> bool:
    """Refuse to use a state bound to another remote; True when ``rebind`` moves it.

    A state without a recorded target (none yet, or written before targets were recorded)
    is accepted: it is bound at its next write.

    Args:
        state: the stored state (None: none yet).
        target: the remote this run acts on.
        where: the state's description for the message (e.g. ``.reconciler/state.json``).
        rebind: the user moved the workspace to ``target`` on purpose.

    Raises:
        StateError: the state is bound to another target and ``rebind`` is False.
    """
    if state is None or state.target is None or state.target == target:
        return False
    if rebind:
        return True
    raise StateError(
        f"the state ({where}) belongs to {state.target.describe()}, but the specs now "
        f"target {target.describe()}: its remote ids mean nothing there, and planning would "
        "treat every object as deleted remotely. If the workspace moved on purpose, run "
        "'reconciler plan --rebind' to review and 'reconciler apply --rebind' to bind the "
        "state to the new target; otherwise fix the Provider (endpoint, type; a ray Provider's "
        "address, storage) or use the "
        "state of that target."
    )


def locked_error(
    holder: LockInfo | None, where: str, timeout: float, unlock_note: str
) -> StateLockedError:
    """The error for a lock a backend could not get: the holder and both ways out.

    Args:
        holder: the current holder, or None when it released the lock just now.
        where: what is locked (file path, ``postgres:workspace``).
        timeout: how long we waited (0: not at all).
        unlock_note: the backend's advice on ``reconciler state unlock`` (how a dead holder
            is detected, what unlocking does).
    """
    if holder is None:
        # Released between our last attempt and the look-up: rare; a retry will get it.
        return StateLockedError(
            f"state is locked ({where}); the holder released it just now: re-run."
        )
    import datetime as _dt

    since = _dt.datetime.fromtimestamp(holder.created, _dt.UTC).isoformat(timespec="seconds")
    waited = f" after waiting {timeout:g}s" if timeout > 0 else ""
    return StateLockedError(
        f"state is locked by {holder.who} (pid {holder.pid}, operation {holder.operation}, "
        f"since {since}), lock ID {holder.id}{waited}; wait with --lock-timeout 5m{unlock_note}\n"
        f"Lock Info:\n{holder.describe()}",
        holder=holder.model_dump(mode="json"),
    )


class StateBackend(abc.ABC):
    """Interface of a state backend.

    Semantics every backend guarantees:

    * ``read()`` returns ``None`` when no state exists yet.
    * ``write(state, expected_serial)`` is a compare-and-swap: it raises
      :class:`~reconciler.errors.StateError` if the stored serial is not ``expected_serial``
      (``None`` = no state stored yet); it stores ``state`` with ``serial = expected + 1``
      and returns the stored state. Writes are atomic (never a half-written state).
    * ``lock(operation, timeout)`` is held for the duration of a write-capable command; it is
      released by the operating system / database when the holder dies; when held by another
      live process it waits up to ``timeout`` seconds, then raises
      :class:`~reconciler.errors.StateLockedError` naming the holder.
    * ``write`` records the target given to :meth:`bind` in a state that has none (or, after
      ``bind(..., rebind=True)``, in place of the recorded one); :meth:`store_target` is the
      one place that decides it.
    """

    bound_target: StateTarget | None = None
    """The remote this run acts on (see :meth:`bind`); None: writes record no target."""

    rebinding: bool = False
    """Whether writes replace a state's recorded target with :attr:`bound_target`."""

    def bind(self, target: StateTarget | None, *, rebind: bool = False) -> None:
        """Tell the backend which remote this run acts on, for the writes to record.

        ``rebind`` replaces a recorded target (after an intended move, checked by the caller
        with :func:`check_target`); without it a recorded target is never changed.
        """
        self.bound_target = target
        self.rebinding = rebind

    def store_target(self, state: State) -> State:
        """``state`` with the bound target recorded, when the state has none (or on rebind).

        Every backend's ``write`` passes the state through here.
        """
        target = self.bound_target
        if target is None or state.target == target:
            return state
        if state.target is not None and not self.rebinding:
            return state
        return state.model_copy(update={"target": target})

    @abc.abstractmethod
    def describe(self) -> str:
        """Human description, e.g. ``file .reconciler/state.json``."""

    @abc.abstractmethod
    def read(self) -> State | None:
        """The stored state, or None."""

    @abc.abstractmethod
    def write(self, state: State, expected_serial: int | None) -> State:
        """Compare-and-swap write; see class docstring."""

    @abc.abstractmethod
    def acquire_lock(self, operation: str, timeout: float) -> LockInfo:
        """Take the lock (waiting up to ``timeout`` seconds) and return its info."""

    @abc.abstractmethod
    def release_lock(self, info: LockInfo) -> None:
        """Release a lock this process holds."""

    @abc.abstractmethod
    def lock_info(self) -> LockInfo | None:
        """The current holder, if any."""

    @abc.abstractmethod
    def force_unlock(self, lock_id: str) -> None:
        """Remove a lock by id (the id must match the current holder)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; default: nothing."""

    @contextmanager
    def lock(self, operation: str, timeout: float = 0.0) -> Iterator[LockInfo]:
        """Context manager around acquire_lock/release_lock."""
        info = self.acquire_lock(operation, timeout)
        try:
            yield info
        finally:
            self.release_lock(info)
