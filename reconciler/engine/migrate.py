"""Moving a state between backends (``reconciler state migrate``) without losing anything.

A migration copies the whole :class:`~reconciler.engine.state_model.State` — lineage, serial,
resources and pending intents — exactly, so the state's identity and history continue (saved
plans are checked against lineage and serial), and an unresolved intent is still recovered by
the next apply. The source is left untouched; the user switches the Provider's ``state``
section afterwards.

Backends' ``write`` always stores ``expected + 1`` as the new serial. To keep the serial, the
destination is written through :func:`store_exact`: a backend that offers ``store_exact``
(PostgreSQL) does it itself; the file backend is written with its own atomic writer while the
caller holds its lock.
"""

from __future__ import annotations

from reconciler.engine.state_model import State, StateBackend
from reconciler.errors import StateError


def _summary(state: State) -> str:
    return (
        f"lineage {state.lineage}, serial {state.serial}, {len(state.resources)} resource(s), "
        f"{len(state.intents)} pending intent(s)"
    )


def _is_empty(state: State) -> bool:
    return not state.resources and not state.intents


def store_exact(dst: StateBackend, state: State, expected_serial: int | None) -> State:
    """Store ``state`` in ``dst`` keeping its lineage and serial, if the stored serial is
    ``expected_serial`` (None: nothing stored).

    Raises:
        StateError: the destination changed meanwhile, or cannot be written.
    """
    exact = getattr(dst, "store_exact", None)
    if callable(exact):
        result = exact(state, expected_serial)
        if not isinstance(result, State):
            raise StateError(f"{dst.describe()}: store_exact returned {type(result).__name__}")
        return result

    from reconciler.engine.state_file import FileStateBackend, atomic_write_text, render_state

    if isinstance(dst, FileStateBackend):
        current = dst.read()
        current_serial = None if current is None else current.serial
        if current_serial != expected_serial:
            raise StateError(
                f"{dst.path}: state changed while migrating (serial {current_serial}, expected "
                f"{expected_serial}); nothing was written: re-run the migration."
            )
        try:
            dst.path.parent.mkdir(parents=True, exist_ok=True)
            if dst.path.exists():
                # Same safety net as a normal write: the previous version stays readable.
                atomic_write_text(dst.backup_path, dst.path.read_text(encoding="utf-8"))
            atomic_write_text(dst.path, render_state(state))
        except OSError as exc:
            raise StateError(
                f"{dst.path}: cannot write the migrated state: {exc.strerror or exc}. Fix the "
                "cause (permissions, disk space) and re-run the migration."
            ) from exc
        return state.model_copy(deep=True)

    # Unknown backend: the generic compare-and-swap is all there is; the serial moves on.
    return dst.write(state, expected_serial)


def migrate_state(src: StateBackend, dst: StateBackend, *, force: bool = False) -> State:
    """Copy the state of ``src`` into ``dst`` exactly and return what ``dst`` now holds.

    The caller should hold both backends' locks (:func:`migrate_locked` does). Running it
    again after a successful migration is a no-op.

    Args:
        src: where the state is now; it is only read.
        dst: where it goes.
        force: overwrite a destination that already holds a different, non-empty state.

    Raises:
        StateError: ``src`` holds no state; ``dst`` holds a different non-empty state and
            ``force`` is false; the copy read back from ``dst`` differs from the source.
    """
    if src.describe() == dst.describe():
        raise StateError(
            f"source and destination are the same backend ({src.describe()}); "
            "choose another destination"
        )
    state = src.read()
    if state is None:
        raise StateError(
            f"nothing to migrate: {src.describe()} holds no state yet. Point the Provider's "
            "state section at the new backend directly; it starts empty."
        )
    current = dst.read()
    if current is not None:
        if current == state:
            return current  # already migrated: idempotent
        if not _is_empty(current) and not force:
            raise StateError(
                f"{dst.describe()} already holds a different state ({_summary(current)}); "
                f"refusing to overwrite it with the state of {src.describe()} "
                f"({_summary(state)}). Check the destination, or pass --force to replace it."
            )
    stored = store_exact(dst, state, None if current is None else current.serial)
    back = dst.read()
    if back is None or not back.content_equal(state) or back.lineage != state.lineage:
        raise StateError(
            f"the state read back from {dst.describe()} differs from the source "
            f"({src.describe()}); the source is unchanged. Do not switch backends; report this."
        )
    return stored if back.serial == stored.serial else back


def migrate_locked(
    src: StateBackend,
    dst: StateBackend,
    *,
    force: bool = False,
    lock_timeout: float = 0.0,
    operation: str = "state migrate",
) -> State:
    """:func:`migrate_state` while holding the source's and the destination's locks.

    The source is locked first, then the destination, always in that order.

    Raises:
        StateLockedError: either lock is held by another run past ``lock_timeout``.
    """
    with src.lock(operation, lock_timeout), dst.lock(operation, lock_timeout):
        return migrate_state(src, dst, force=force)
