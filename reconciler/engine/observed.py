"""What the remote holds, read with list calls (pages, not one request per object).

The refresh reads three listings — files, fine-tuning jobs, models — and keeps them as the
API's own JSON shapes, so the planner is a pure function testable with plain dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.providers.base import Provider


@dataclass
class Observed:
    """Remote objects by id, as API-shaped dicts.

    Attributes:
        files: file id → File object.
        jobs: job id → Job object (list form: no events/checkpoints).
        models: fine-tuned model id → model card (``archived``, ``name``, ``description``).
        requests: HTTP requests the refresh took.
        content: file id → sha256 of its content, for the remote files whose content was
            hashed (only where adopting by content needs it: the listings carry no hash).
    """

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: int = 0
    content: dict[str, str] = field(default_factory=dict)

    def file_by_name(self, filename: str, size: int | None = None) -> dict[str, Any] | None:
        """An uploaded file with this name (and size), newest first.

        A file listed without a size (``bytes: null``) matches by name alone: the names we
        upload under carry the content hash.
        """
        matches = [
            f
            for f in self.files.values()
            if f.get("filename") == filename
            and (size is None or f.get("bytes") is None or f.get("bytes") == size)
        ]
        matches.sort(key=lambda f: f.get("created_at") or 0, reverse=True)
        return matches[0] if matches else None

    def identical_file(self, filename: str, sha256: str, size: int) -> dict[str, Any] | None:
        """A remote file with these bytes: by the content-addressed upload name (and size),
        or by a content hash already known (:attr:`content`: a remote that names files by
        their content reports it, as a Ray provider's storage does)."""
        by_name = self.file_by_name(filename, size)
        if by_name is not None:
            return by_name
        for file_id, digest in self.content.items():
            found = self.files.get(file_id)
            if digest == sha256 and found is not None and found.get("bytes") == size:
                return found
        return None


def refresh(client: Provider) -> Observed:
    """Read files, jobs and models with paginated list calls."""
    before = client.stats.requests
    files = {f.id: f.model_dump(mode="json", by_alias=True) for f in client.list_files()}
    # A remote that reports its files' content hash spares downloading them to compare.
    content = {i: f["sha256"] for i, f in files.items() if isinstance(f.get("sha256"), str)}
    jobs = {j.id: j.model_dump(mode="json") for j in client.list_jobs()}
    models = {
        m.id: m.model_dump(mode="json")
        for m in client.list_models()
        if m.model_dump().get("type", "fine-tuned") != "base"
    }
    return Observed(
        files=files,
        jobs=jobs,
        models=models,
        requests=client.stats.requests - before,
        content=content,
    )
