"""The provider interface: what the engine needs from a fine-tuning service.

The engine (refresh, planner, executor, status, import) speaks only to a :class:`Provider`.
A provider turns its service's API into the canonical shapes of :mod:`reconciler.client.types`
(``RemoteFile``, ``RemoteJob`` with a :class:`~reconciler.client.types.JobStatus`,
``RemoteModel``): the Mistral client returns them as they come; other providers translate
(OpenAI's ``succeeded`` becomes ``SUCCESS``, a Ray job's ``STOPPED`` becomes ``CANCELLED``).
What a service cannot do is declared in :class:`Capabilities` (defined with the spec models in
:mod:`reconciler.spec.capabilities`, re-exported here), so the spec checks and the planner
decide up front instead of discovering it in a 4xx at apply time.

Job requests are the canonical (Mistral ``JobIn``-shaped) request bodies the engine builds
from a spec; a provider maps them to its own API. Providers whose service can carry our
identity on the job (OpenAI ``metadata``, Ray ``submission_id``/``metadata``) find jobs by that
identity exactly; the others compare requests.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from reconciler.client.limits import RequestStats
from reconciler.client.types import JobEstimate, RemoteFile, RemoteJob, RemoteModel
from reconciler.identity import TAG_ADDRESS_KEY, TAG_FINGERPRINT_KEY
from reconciler.spec.capabilities import (
    MISTRAL_CAPABILITIES,
    MISTRAL_HYPERPARAMETERS,
    OPENAI_CAPABILITIES,
    RAY_CAPABILITIES,
    Capabilities,
)

IDENTITY_ADDRESS_KEY = TAG_ADDRESS_KEY
"""Job metadata key carrying the address of the spec that created the job."""

IDENTITY_FINGERPRINT_KEY = TAG_FINGERPRINT_KEY
"""Job metadata key carrying the request fingerprint of the spec that created the job."""

IDENTITY_GENERATION_KEY = "reconciler_generation"
"""Job metadata key carrying the replacement generation (see :class:`JobTag`)."""


@dataclass(frozen=True)
class JobTag:
    """Our identity of a job, for services that can carry it (``Capabilities.job_metadata``).

    Attributes:
        address: the spec address that creates the job, e.g. ``job.tone``.
        fingerprint: the request fingerprint of that spec revision.
        generation: how many jobs this address had before (its history length): a
            ``--replace`` of an unchanged spec is a new generation, so a new identity.
    """

    address: str
    fingerprint: str
    generation: int = 0

    def metadata(self) -> dict[str, str]:
        """The job metadata that carries this identity (string values only)."""
        return {
            IDENTITY_ADDRESS_KEY: self.address,
            IDENTITY_FINGERPRINT_KEY: self.fingerprint,
            IDENTITY_GENERATION_KEY: str(self.generation),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> JobTag | None:
        """The tag a job's metadata carries (``RemoteJob.user_metadata``), or None for a job
        without one (made by hand, or by another tool)."""
        if not metadata:
            return None
        address = metadata.get(IDENTITY_ADDRESS_KEY)
        fingerprint = metadata.get(IDENTITY_FINGERPRINT_KEY)
        if not isinstance(address, str) or not isinstance(fingerprint, str):
            return None
        raw = metadata.get(IDENTITY_GENERATION_KEY)
        generation = int(raw) if isinstance(raw, str) and raw.isdigit() else 0
        return cls(address, fingerprint, generation)


@runtime_checkable
class Provider(Protocol):
    """A fine-tuning service as the engine sees it (see the module docstring).

    Every method raises :class:`~reconciler.errors.ApiError` (or a subclass:
    ``NotFoundError``, ``ConflictError``, ...) for a remote failure, already translated; a
    provider never lets a transport library's exception escape. Creates are exactly-once on
    the provider's side too: a create whose answer was lost is resolved by lookup before it is
    sent again.

    Attributes:
        capabilities: what the service supports.
        stats: request counters (refresh reports them; benchmarks read them).
    """

    capabilities: Capabilities
    stats: RequestStats

    def close(self) -> None:
        """Release connections."""

    # -- files ----------------------------------------------------------------------------

    def upload_file(
        self,
        path: Path,
        filename: str,
        *,
        sha256: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RemoteFile:
        """Upload ``path`` as ``filename`` (streaming); return the remote file."""

    def list_files(self) -> list[RemoteFile]:
        """Every training file the key can see (all pages)."""

    def get_file(self, file_id: str) -> RemoteFile:
        """One file by id (``NotFoundError`` when gone)."""

    def delete_file(self, file_id: str) -> None:
        """Delete a file; one already gone counts as deleted."""

    def find_file(self, filename: str, *, size: int | None = None) -> RemoteFile | None:
        """The newest file with this name (and size), or None."""

    def download_file(self, file_id: str, dest: Path) -> None:
        """Stream a file's content to ``dest`` (never held in memory).

        Only when ``capabilities.file_download``; otherwise raises
        :class:`~reconciler.errors.ReconcilerError` saying the service does not give back
        the content of training files.
        """

    # -- jobs -----------------------------------------------------------------------------

    def create_job(
        self,
        request: dict[str, Any],
        *,
        exclude: Collection[str] = (),
        tag: JobTag | None = None,
    ) -> RemoteJob:
        """Create a job from a canonical request; never creates it twice.

        ``exclude`` are ids of jobs a lost-answer lookup must never take for this one (jobs
        that an address holds or held). ``tag`` is our identity of the job; services with
        ``job_metadata`` store it on the job (and find a create whose answer was lost by it),
        the others ignore it.
        """

    def estimate_job(self, request: dict[str, Any]) -> JobEstimate:
        """The service's own cost estimate without creating anything.

        Only when ``capabilities.remote_estimate``; otherwise raises
        :class:`~reconciler.errors.ReconcilerError` saying the provider has none.
        """

    def list_jobs(self) -> list[RemoteJob]:
        """Every job the key can see (all pages), without events or checkpoints."""

    def get_job(self, job_id: str) -> RemoteJob:
        """One job with its events and checkpoints (metrics)."""

    def start_job(self, job_id: str) -> RemoteJob:
        """Start a job created with ``auto_start=false`` (idempotent)."""

    def cancel_job(self, job_id: str) -> RemoteJob:
        """Cancel a job (idempotent; a finished job is left as it is)."""

    def find_jobs(
        self,
        request: dict[str, Any],
        *,
        created_after: datetime | None = None,
        exclude: Collection[str] = (),
        tag: JobTag | None = None,
    ) -> list[RemoteJob]:
        """Jobs this exact request created (never one whose id is in ``exclude``).

        With ``tag`` and ``job_metadata``, by the identity on the job (exact); otherwise by
        comparing the request with what the remote reports.
        """

    # -- fine-tuned models ----------------------------------------------------------------

    def list_models(self) -> list[RemoteModel]:
        """Models visible to the key (base and fine-tuned)."""

    def delete_model(self, model_id: str) -> None:
        """Delete a fine-tuned model; one already gone counts as deleted."""

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> RemoteModel:
        """Set a fine-tuned model's name/description (only with ``model_updates``)."""

    def archive_model(self, model_id: str) -> None:
        """Archive a fine-tuned model (only with ``model_updates``)."""

    def unarchive_model(self, model_id: str) -> None:
        """Unarchive a fine-tuned model (only with ``model_updates``)."""


@runtime_checkable
class Pausable(Protocol):
    """A provider whose jobs can be paused and resumed (``Capabilities.pause``).

    Kept apart from :class:`Provider` so that services without pause need not implement it;
    the engine checks ``capabilities.pause`` and this protocol before it pauses anything.
    """

    def pause_job(self, job_id: str) -> RemoteJob:
        """Pause a running job (idempotent: a paused job is left as it is)."""

    def resume_job(self, job_id: str) -> RemoteJob:
        """Resume a paused job (idempotent: a job that is not paused is left as it is)."""


__all__ = [
    "IDENTITY_ADDRESS_KEY",
    "IDENTITY_FINGERPRINT_KEY",
    "IDENTITY_GENERATION_KEY",
    "MISTRAL_CAPABILITIES",
    "MISTRAL_HYPERPARAMETERS",
    "OPENAI_CAPABILITIES",
    "RAY_CAPABILITIES",
    "Capabilities",
    "JobTag",
    "Pausable",
    "Provider",
]
