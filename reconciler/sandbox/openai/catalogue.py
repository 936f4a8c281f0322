"""The base models the OpenAI dialect offers for fine-tuning, and the methods each takes.

The snapshots OpenAI documents as fine-tunable, each also reachable by its alias (a job made
with ``gpt-4o-mini`` reports the snapshot ``gpt-4o-mini-2024-07-18``, as the service does).
A fine-tuned model can be fine-tuned again: it takes the methods of its base.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass


@dataclass(frozen=True)
class BaseModel:
    """A fine-tunable base model.

    Attributes:
        id: the snapshot's id.
        alias: the name that points at the snapshot.
        released: the snapshot's date, ``YYYY-MM-DD`` (its ``created`` time).
        methods: the fine-tuning methods it takes.
    """

    id: str
    alias: str
    released: str
    methods: frozenset[str]

    @property
    def created(self) -> int:
        """Its ``created`` time: midnight UTC of its release date."""
        year, month, day = (int(x) for x in self.released.split("-"))
        return calendar.timegm((year, month, day, 0, 0, 0))


_CHAT = frozenset({"supervised", "dpo"})

BASE_MODELS: tuple[BaseModel, ...] = (
    BaseModel("gpt-4o-mini-2024-07-18", "gpt-4o-mini", "2024-07-18", _CHAT),
    BaseModel("gpt-4o-2024-08-06", "gpt-4o", "2024-08-06", _CHAT),
    BaseModel("gpt-4.1-2025-04-14", "gpt-4.1", "2025-04-14", _CHAT),
    BaseModel("gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", "2025-04-14", _CHAT),
    BaseModel("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", "2025-04-14", _CHAT),
    BaseModel("gpt-3.5-turbo-0125", "gpt-3.5-turbo", "2024-01-25", frozenset({"supervised"})),
    BaseModel("o4-mini-2025-04-16", "o4-mini", "2025-04-16", frozenset({"reinforcement"})),
)

#: Who owns the base models, in model cards.
OWNER = "system"

_BY_NAME = {name: m for m in BASE_MODELS for name in (m.id, m.alias)}


def base_model(name: str) -> BaseModel | None:
    """The base model a snapshot id or an alias names, or None."""
    return _BY_NAME.get(name)


def model_names() -> list[str]:
    """Every base model name served by ``/v1/models``: snapshots and aliases."""
    return [name for m in BASE_MODELS for name in (m.id, m.alias)]
