"""Receiving and serving file contents, for the files routes of every dialect.

:func:`staged` streams an upload to a temporary file under ``data_dir/tmp`` while hashing it
(never the whole file in memory) and removes it unless the store moved it into place;
:func:`safe_filename` is the name a file is kept under; :func:`download` serves its bytes.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import UploadFile
from fastapi.responses import FileResponse

from reconciler.sandbox.records import FileRecord
from reconciler.sandbox.store import Store
from reconciler.sandbox.validation import MAX_QUOTED_PROBLEMS, UploadCheck

#: Copy uploads in chunks of this size.
CHUNK = 1024 * 1024


class TooLarge(Exception):
    """The upload passed the size limit while being copied (nothing is left behind)."""


@dataclass(frozen=True)
class Staged:
    """An upload copied to disk, not stored yet.

    Attributes:
        path: the temporary file holding its bytes (give it to ``Store.add_file``).
        size: its size in bytes.
        sha256: hex SHA-256 of its bytes.
    """

    path: Path
    size: int
    sha256: str


@contextmanager
def staged(store: Store, upload: UploadFile, limit: int) -> Iterator[Staged]:
    """Copy ``upload`` to a temporary file; raises :class:`TooLarge` over ``limit`` bytes.

    On leaving, the temporary file is removed unless the store moved it into place, so an
    upload refused for any reason (or a failure) leaves nothing behind.
    """
    tmp = store.data_dir / "tmp" / f"upload-{uuid.uuid4().hex}"
    digest = hashlib.sha256()
    size = 0
    try:
        with tmp.open("wb") as out:
            while chunk := upload.file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise TooLarge
                digest.update(chunk)
                out.write(chunk)
        yield Staged(tmp, size, digest.hexdigest())
    finally:
        tmp.unlink(missing_ok=True)


def file_record(
    upload: Staged,
    check: UploadCheck | None,
    *,
    file_id: str,
    filename: str,
    purpose: str,
    created: int,
    content_type: str | None,
    expires_at: int | None,
    visibility: str | None,
    untyped: str,
) -> FileRecord:
    """What the store keeps about a staged upload: its bytes' size and digest, and what its
    check found (``check`` is None for a file that is not training data: its sample type is
    then ``untyped`` and its tokens are estimated from its size)."""
    return FileRecord(
        id=file_id,
        filename=filename,
        bytes=upload.size,
        created_at=created,
        purpose=purpose,
        sample_type=(check.sample_type or "unknown") if check is not None else untyped,
        source="upload",
        num_lines=check.num_lines if check is not None else None,
        mimetype=mimetype(filename, content_type),
        signature=upload.sha256[:16],
        expires_at=expires_at,
        visibility=visibility,
        sha256=upload.sha256,
        samples=check.samples if check is not None else 0,
        invalid=check.invalid if check is not None else 0,
        approx_tokens=max(check.approx_tokens, 1) if check is not None else upload.size // 4,
        problems=(
            tuple(p.render() for p in check.problems[:MAX_QUOTED_PROBLEMS])
            if check is not None
            else ()
        ),
    )


def safe_filename(name: str) -> str:
    """The name an uploaded file is stored and served under: its last path component.

    ``../../x.jsonl`` and ``C:\\data\\x.jsonl`` become ``x.jsonl``; control characters
    (which could split a ``Content-Disposition`` header) are dropped. An empty result (``..``,
    ``dir/``) means the upload has no usable name.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return "" if base in (".", "..") else base


def mimetype(filename: str, declared: str | None) -> str:
    """The content type recorded for an upload: JSON Lines by name, else as declared."""
    if filename.lower().endswith(".jsonl"):
        return "application/jsonl"
    return declared or "application/octet-stream"


def download(store: Store, file: FileRecord) -> FileResponse:
    """A file's bytes as an attachment under its name."""
    # Names are cleaned on upload; cleaned again for files stored by an older sandbox.
    return FileResponse(
        store.file_path(file.id),
        media_type="application/octet-stream",
        filename=safe_filename(file.filename) or file.id,
    )
