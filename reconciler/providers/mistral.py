"""The Mistral provider: the Mistral API client, with its capabilities declared.

:class:`~reconciler.client.api.MistralClient` already speaks the canonical shapes (they are
Mistral's own), so the provider is the client plus what the engine must know about the service.
The sandbox's Mistral dialect is served by the same provider.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reconciler.client.api import MistralClient
from reconciler.providers.base import MISTRAL_CAPABILITIES, Capabilities, Provider


class MistralProvider(MistralClient):
    """Mistral's files and fine-tuning API as a :class:`~reconciler.providers.base.Provider`."""

    capabilities: Capabilities = MISTRAL_CAPABILITIES


if TYPE_CHECKING:  # mypy checks that the client really implements the interface
    _conforms: type[Provider] = MistralProvider
