"""Renaming an address in the state: what ``Moved`` documents and ``state mv`` do.

A move changes only the state: the record (remote id, fingerprint, attributes, history) and
any pending create intent of the old address become the new address's. The remote is never
touched, so a renamed job is not trained again.
"""

from __future__ import annotations

from reconciler.address import Address
from reconciler.engine.state_model import ResourceState, State
from reconciler.errors import StateError


def check_move(state: State, source: str, target: str) -> ResourceState:
    """The record that moving ``source`` to ``target`` would move.

    Raises:
        StateError: ``source`` is not recorded, ``target`` is, or their types differ (an
            address must be well formed: ``job.NAME`` or ``dataset.NAME[PART]``).
    """
    try:
        old, new = Address(source), Address(target)
    except ValueError as exc:
        raise StateError(str(exc)) from None
    res = state.resources.get(old)
    if res is None:
        raise StateError(
            f"{old}: no such address in the state, nothing to move. Run 'reconciler state "
            "list' to see the recorded addresses."
        )
    taken = state.resources.get(new)
    if taken is not None:
        raise StateError(
            f"{new}: already recorded (remote {taken.remote_id}), so {old} cannot move there; "
            f"'reconciler state rm {new}' first if that record is the one to drop"
        )
    if old.kind is not new.kind:
        raise StateError(
            f"{old} is a {old.kind} address and {new} a {new.kind} address: a move keeps the type"
        )
    return res


def move_record(state: State, source: str, target: str) -> ResourceState:
    """Move ``source``'s record (and pending intents) to ``target`` in ``state``, in place.

    Returns the moved record. Raises StateError as :func:`check_move` does.
    """
    res = check_move(state, source, target)
    moved = res.model_copy(update={"address": str(Address(target))})
    del state.resources[source]
    state.resources[moved.address] = moved
    for intent in state.intents.values():
        if intent.address == source:
            intent.address = moved.address
    return moved
