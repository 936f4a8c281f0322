"""Recognising existing remote objects by what they are: files by content, jobs by request.

Used wherever an object made outside this state is adopted — ``reconciler import``,
``reconciler import --discover`` and ``Import`` documents:

* A remote file **is** a prepared dataset part when its content is the part's: same size,
  then the same sha256, whatever its name. The remote reports no content hash, so the content
  is hashed here by streaming it to a scratch file (:class:`ContentHasher`, through the
  provider's ``download_file``; never held in memory, each file read at most once per run). A
  file under the part's own content-addressed name and size — what apply uploads — needs no
  download: its name carries the hash. A service that does not give back the content of
  training files (OpenAI: ``capabilities.file_download`` is false) can only have files
  recognised that way; any other file there cannot be compared, and is never taken for a part
  on a guess (:func:`unreadable_file`).
* A remote job **is** a spec's job when its request matches
  (:func:`reconciler.identity.matches`, the one identity function) with the spec's files named
  by the remote files the job uses, matched by content: a job made from a file uploaded by
  hand under any name is recognised. A job that carries an identity tag (providers with job
  metadata) is the spec's job exactly when its tag names the spec's address and fingerprint.

The records an adopted object gets (:func:`file_record`, :func:`job_record`) carry the spec's
fingerprint, so the next plan shows no change for it. Everything here but
:class:`ContentHasher` is pure.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.address import ResourceType
from reconciler.engine.desired import DesiredFile, DesiredJob
from reconciler.engine.state_model import ResourceState
from reconciler.errors import ReconcilerError
from reconciler.identity import (
    RequestIdentity,
    differences,
    exact_tag,
    job_file_ids,
    matches,
    remote_tag,
)

if TYPE_CHECKING:
    from reconciler.providers.base import Provider


class ContentHasher:
    """sha256 of remote files' content, streamed through the provider.

    Args:
        client: the remote.
        scratch: directory for the temporary download of each file (removed once hashed);
            default: the system's temporary directory.

    Attributes:
        downloads: files downloaded so far (each at most once).
    """

    def __init__(self, client: Provider, scratch: Path | None = None) -> None:
        self._client = client
        self._scratch = scratch
        self._known: dict[str, str] = {}
        self.downloads = 0

    @property
    def available(self) -> bool:
        """Whether the service gives back the content of training files
        (``capabilities.file_download``); without it nothing can be hashed."""
        return self._client.capabilities.file_download

    @property
    def service(self) -> str:
        """The provider's name, for messages."""
        return self._client.capabilities.name

    def sha256(self, file_id: str) -> str:
        """The sha256 (hex) of a remote file's content.

        Raises:
            ReconcilerError: the service does not give back training files' content.
        """
        known = self._known.get(file_id)
        if known is not None:
            return known
        if not self.available:
            raise ReconcilerError(
                f"remote file {file_id}: {self.service} does not give back the content of "
                "training files, so it cannot be compared with a prepared part"
            )
        if self._scratch is not None:
            self._scratch.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self._scratch, prefix="remote-content-") as tmp:
            target = Path(tmp) / "content"
            self._client.download_file(file_id, target)
            with target.open("rb") as fh:
                digest = hashlib.file_digest(fh, "sha256").hexdigest()
        self.downloads += 1
        self._known[file_id] = digest
        return digest

    def hashes(self, file_ids: Iterable[str]) -> dict[str, str]:
        """``file id → sha256`` of each of these files."""
        return {file_id: self.sha256(file_id) for file_id in dict.fromkeys(file_ids)}


def same_size(desired: DesiredFile, remote: Mapping[str, Any]) -> bool:
    """Whether a remote file can hold the part's content (a size it does not report can)."""
    size = remote.get("bytes")
    return size is None or size == desired.bytes


def needs_hash(desired: DesiredFile, remote: Mapping[str, Any]) -> bool:
    """Whether only the content hash can tell if ``remote`` holds the part's content."""
    return same_size(desired, remote) and remote.get("filename") != desired.filename


def file_matches(
    desired: DesiredFile, remote: Mapping[str, Any], content: Mapping[str, str]
) -> bool | None:
    """Whether a remote file (API JSON shape) holds exactly the prepared part's content.

    ``content`` maps remote file ids to the sha256 of their content, as hashed. None when
    the answer needs a hash that ``content`` does not have.
    """
    if not same_size(desired, remote):
        return False
    if remote.get("filename") == desired.filename:
        return True  # the content-addressed name and size: the engine's own dedupe rule
    known = content.get(str(remote.get("id")))
    return None if known is None else known == desired.sha256


def job_files(
    job: DesiredJob,
    remote_job: Mapping[str, Any],
    files: Mapping[str, DesiredFile],
    remote_files: Mapping[str, Mapping[str, Any]],
    content: Mapping[str, str],
    recorded: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The remote file each of the job's files is, among the files ``remote_job`` uses.

    A file address is named by the remote file the state records for it (``recorded``,
    address → id, when the job uses that one), else by a file of the job holding its content
    (:func:`file_matches`). Addresses without such a file are left out: the job is made from
    the spec's files only when every address of ``job.depends_on`` is named.

    Args:
        job: the spec's job.
        remote_job: the remote job (API JSON shape).
        files: the spec's files by address.
        remote_files: the remote's files by id (a file the job uses that is gone can only be
            named through ``recorded``).
        content: remote file id → sha256 of its content, as hashed.
        recorded: address → the remote file the state records with the spec's content.
    """
    used = job_file_ids(remote_job)
    found: dict[str, str] = {}
    for address in job.depends_on:
        own = (recorded or {}).get(address)
        if own is not None and own in used:
            found[address] = own
            continue
        desired = files[address]
        match = next(
            (
                file_id
                for file_id in used
                if file_id in remote_files
                and file_matches(desired, remote_files[file_id], content) is True
            ),
            None,
        )
        if match is not None:
            found[address] = match
    return found


def recorded_files(
    files: Mapping[str, DesiredFile], resources: Mapping[str, ResourceState]
) -> dict[str, str]:
    """Address → remote id of the spec's files the state records with the spec's content."""
    return {
        address: res.remote_id
        for address, f in files.items()
        if (res := resources.get(address)) is not None and res.fingerprint == f.fingerprint
    }


def made_from_spec_files(job: DesiredJob, file_ids: Mapping[str, str]) -> bool:
    """Whether :func:`job_files` named every file of the job."""
    return all(address in file_ids for address in job.depends_on)


def job_differences(
    job: DesiredJob, remote_job: Mapping[str, Any], file_ids: Mapping[str, str]
) -> list[str]:
    """The request fields a remote job shows differently from the spec's job.

    ``file_ids`` names the spec's files by remote id (see :func:`job_files`); a file without
    one is reported as ``training_files``.
    """
    identity = RequestIdentity.of_content(job.identity, file_ids)
    if identity is None:
        return ["training_files"]
    return differences(identity, remote_job)


def job_matches(
    job: DesiredJob, remote_job: Mapping[str, Any], file_ids: Mapping[str, str]
) -> bool:
    """Whether ``remote_job`` is what the spec's job asks for (:func:`reconciler.identity.matches`;
    a job carrying an identity tag is decided by its tag)."""
    identity = RequestIdentity.of_content(job.identity, file_ids)
    tag = exact_tag(job.address, job.fingerprint)
    return identity is not None and matches(identity, remote_job, exact_tag=tag)


def tagged_for(job: DesiredJob, remote_job: Mapping[str, Any]) -> bool:
    """Whether ``remote_job`` carries the identity tag of this very spec (address and
    fingerprint): it was created for it, exactly."""
    return remote_tag(remote_job) == exact_tag(job.address, job.fingerprint)


def unreadable_file(desired: DesiredFile, remote: Mapping[str, Any], service: str) -> str:
    """Why a remote file that may hold a part's content cannot be taken for it on a service
    that does not give back training files' content (see the module docstring)."""
    return (
        f"remote file {remote.get('id')} ({remote.get('filename')}, {remote.get('bytes')} bytes) "
        f"may hold the prepared content of {desired.address}, but {service} does not give back "
        "the content of training files, so it cannot be compared; there a file is recognised "
        f"only under the part's own content-addressed name ({desired.filename}, "
        f"{desired.bytes} bytes), as apply uploads it. Leave it unmanaged and let apply upload "
        "the part (and train its jobs)"
    )


def file_record(
    desired: DesiredFile, remote_id: str, remote_filename: str | None, **attributes: Any
) -> ResourceState:
    """The record of a remote file adopted for a part whose content it holds (``attributes``
    are added, e.g. ``imported=True``).

    Its fingerprint is the part's, so the plan shows no change; ``filename`` is the name the
    remote file has (it may differ from the part's content-addressed name).
    """
    return ResourceState(
        address=desired.address,
        type=ResourceType.FILE,
        remote_id=remote_id,
        fingerprint=desired.fingerprint,
        attributes={
            **desired.summary(),
            "filename": remote_filename or desired.filename,
            "labels": dict(desired.labels),
            **attributes,
        },
    )


def job_record(job: DesiredJob, remote_job: Mapping[str, Any], **attributes: Any) -> ResourceState:
    """The record of a remote job adopted for a spec whose request it matches (``attributes``
    are added, e.g. ``imported=True``).

    It records the spec's request (its fingerprint and identity): the remote cannot show
    training-file weights or ``invalid_sample_skip_percentage``, so they are taken as the
    spec sets them.
    """
    facts: dict[str, Any] = {
        "identity": dict(job.identity),
        "labels": dict(job.labels),
        "status": remote_job.get("status"),
        "created_at": remote_job.get("created_at"),
    }
    if remote_job.get("fine_tuned_model"):
        facts["fine_tuned_model"] = remote_job["fine_tuned_model"]
    return ResourceState(
        address=job.address,
        type=ResourceType.JOB,
        remote_id=str(remote_job["id"]),
        fingerprint=job.fingerprint,
        attributes={**facts, **attributes},
    )
