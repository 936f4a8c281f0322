"""The API dialects a sandbox speaks: which routers it mounts and how it words its errors.

``mistral`` (the default) implements the Mistral files and fine-tuning API (:mod:`.routes`);
``openai`` the OpenAI files, fine-tuning and models API (:mod:`.openai`). Both run on the
same core — store, lifecycle, gate (auth, rate limit, body limits, faults) and journal — and
differ only in their routers and their :class:`~.wire.Wire`.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import APIRouter

from reconciler.sandbox import openai, routes
from reconciler.sandbox.config import DIALECT_NAMES
from reconciler.sandbox.openai.errors import OpenAIWire
from reconciler.sandbox.routes.common import MistralWire
from reconciler.sandbox.wire import Wire


@dataclass(frozen=True)
class Dialect:
    """One API a sandbox can speak.

    Attributes:
        name: its name (``SandboxConfig.dialect``, ``--dialect``).
        title: what it implements, for the application's description.
        routers: the routers mounted, the sandbox's own hooks included.
        wire: how it words what its routes do not answer.
    """

    name: str
    title: str
    routers: tuple[APIRouter, ...]
    wire: Wire


DIALECTS: dict[str, Dialect] = {
    "mistral": Dialect(
        name="mistral",
        title="the Mistral files and fine-tuning API",
        routers=routes.ROUTERS,
        wire=MistralWire(),
    ),
    "openai": Dialect(
        name="openai",
        title="the OpenAI files, fine-tuning and models API",
        routers=openai.ROUTERS,
        wire=OpenAIWire(),
    ),
}

assert tuple(DIALECTS) == DIALECT_NAMES, "config.DIALECT_NAMES lists every dialect"
