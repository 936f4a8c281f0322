"""The Mistral provider: the Mistral API client, with its capabilities declared.

:class:`~reconciler.client.api.MistralClient` already speaks the canonical shapes (they are
Mistral's own), so the provider is the client plus what the engine must know about the service.
The sandbox's Mistral dialect is served by the same provider.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.client.api import MistralClient
from reconciler.client.types import RemoteJob
from reconciler.providers.base import MISTRAL_CAPABILITIES, Capabilities, JobTag, Provider


class MistralProvider(MistralClient):
    """Mistral's files and fine-tuning API as a :class:`~reconciler.providers.base.Provider`."""

    capabilities: Capabilities = MISTRAL_CAPABILITIES

    def create_job(
        self,
        request: dict[str, Any],
        *,
        exclude: Collection[str] = (),
        tag: JobTag | None = None,
    ) -> RemoteJob:
        """Create a job; Mistral jobs cannot carry ``tag`` (identity is the request)."""
        return super().create_job(request, exclude=exclude)

    def find_jobs(
        self,
        request: dict[str, Any],
        *,
        created_after: datetime | None = None,
        exclude: Collection[str] = (),
        tag: JobTag | None = None,
    ) -> list[RemoteJob]:
        """Jobs whose reported request equals ``request`` (``tag`` cannot be matched here)."""
        return super().find_jobs(request, created_after=created_after, exclude=exclude)


if TYPE_CHECKING:  # mypy checks that the client really implements the interface
    _conforms: type[Provider] = MistralProvider
