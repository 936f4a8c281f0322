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

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

from reconciler.client.limits import RequestStats
from reconciler.client.types import JobEstimate, RemoteFile, RemoteJob, RemoteModel
from reconciler.errors import ReconcilerError
from reconciler.identity import (
    TAG_ADDRESS_KEY,
    TAG_FINGERPRINT_KEY,
    TAG_GENERATION_KEY,
    JobLookup,
    JobTag,
)
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

IDENTITY_GENERATION_KEY = TAG_GENERATION_KEY
"""Job metadata key carrying the replacement generation (see :class:`JobTag`)."""


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

    def create_job(self, request: dict[str, Any], lookup: JobLookup = JobLookup()) -> RemoteJob:
        """Create a job from a canonical request; never creates it twice.

        A create whose answer was lost is resolved by ``find_jobs`` with ``lookup`` (its
        ``exclude``: jobs never to take for this one; its ``tag``: our identity of the job,
        which services with ``job_metadata`` store on the job, and the others ignore).
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
        self, request: dict[str, Any], lookup: JobLookup = JobLookup()
    ) -> list[RemoteJob]:
        """Jobs this exact request created, as :class:`JobLookup` narrows them.

        With ``lookup.tag`` and ``job_metadata``, by the identity on the job (exact); otherwise
        by comparing the request with what the remote reports.
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


class WithoutModelUpdates:
    """The model operations of a service whose fine-tuned models cannot be renamed, described
    or archived (``capabilities.model_updates`` is false): each one refuses.

    The planner never plans them for such a service (the spec checks refuse
    ``fine_tuned_model`` first); they refuse all the same, with :attr:`model_updates_refusal`.
    """

    model_updates_refusal: ClassVar[str]
    """The refusal's message: what the service cannot do and what to change in the spec."""

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> RemoteModel:
        """Not supported (``capabilities.model_updates`` is false)."""
        raise ReconcilerError(self.model_updates_refusal)

    def archive_model(self, model_id: str) -> None:
        """Not supported (``capabilities.model_updates`` is false)."""
        raise ReconcilerError(self.model_updates_refusal)

    def unarchive_model(self, model_id: str) -> None:
        """Not supported (``capabilities.model_updates`` is false)."""
        raise ReconcilerError(self.model_updates_refusal)


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
    "JobLookup",
    "JobTag",
    "Pausable",
    "Provider",
    "WithoutModelUpdates",
]
