"""A multipart/form-data upload body streamed from disk in constant memory.

httpx's own ``files=`` support works, but it decides by itself how to read the file and (for
some file objects) measures or buffers it. For a 500 MB training file we want a hard
guarantee: the body is an iterator that reads ``chunk_size`` bytes at a time, the total length
is computed up front from the file size (so the request carries ``Content-Length`` and no
chunked encoding, which some gateways reject for uploads), progress is reported in bytes, and
a file that changes while it is being sent aborts the request *before* the closing boundary,
so the server never commits a torn upload.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

from reconciler.errors import DataError, Location, Problem

CHUNK_SIZE = 1024 * 1024
"""Bytes read from disk per chunk: large enough for throughput, small enough for memory."""


def _quote(value: str) -> str:
    # Same escaping as browsers / httpx for a quoted form-data parameter value.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _content_type(filename: str) -> str:
    if filename.endswith(".jsonl"):
        return "application/jsonl"
    if filename.endswith(".json"):
        return "application/json"
    return "application/octet-stream"


class MultipartFileBody:
    """One upload body: form fields first, then the file part, read lazily from disk.

    Iterate it (once per attempt: every ``__iter__`` reopens the file) to get the bytes;
    :attr:`content_length` and :attr:`content_type` are the request headers to send.

    Args:
        path: the file on disk.
        filename: the name to upload it under.
        fields: plain form fields sent before the file (e.g. ``purpose``).
        sha256: if given, the hex digest the file must have; checked while streaming.
        progress: called with ``(file_bytes_sent, file_size)`` after every chunk.
        on_bytes: called with the size of every file chunk sent (for accounting).
        chunk_size: bytes per read.
    """

    def __init__(
        self,
        path: Path,
        filename: str,
        *,
        fields: dict[str, str] | None = None,
        sha256: str | None = None,
        progress: Callable[[int, int], None] | None = None,
        on_bytes: Callable[[int], None] | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> None:
        self.path = path
        self.filename = filename
        self.sha256 = sha256.lower() if sha256 else None
        self.progress = progress
        self.on_bytes = on_bytes
        self.chunk_size = chunk_size
        self.size = os.stat(path).st_size
        boundary = secrets.token_hex(16)
        self.content_type = f"multipart/form-data; boundary={boundary}"
        head = b"".join(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(k)}"\r\n\r\n'.encode()
            + v.encode()
            + b"\r\n"
            for k, v in (fields or {}).items()
        )
        head += (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="file"; filename="{_quote(filename)}"\r\n'
            f"Content-Type: {_content_type(filename)}\r\n\r\n"
        ).encode()
        self._head = head
        self._tail = f"\r\n--{boundary}--\r\n".encode()
        self.content_length = len(self._head) + self.size + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        digest = hashlib.sha256() if self.sha256 else None
        sent = 0
        if self.progress:
            self.progress(0, self.size)
        with open(self.path, "rb") as fh:
            while sent < self.size:
                chunk = fh.read(min(self.chunk_size, self.size - sent))
                if not chunk:
                    # Shorter than when we measured it: the declared Content-Length would be
                    # a lie; stop before the closing boundary so nothing is committed.
                    raise self._changed("became shorter while it was being uploaded")
                if digest is not None:
                    digest.update(chunk)
                sent += len(chunk)
                yield chunk
                if self.on_bytes:
                    self.on_bytes(len(chunk))
                if self.progress:
                    self.progress(sent, self.size)
            if fh.read(1):
                raise self._changed("grew while it was being uploaded")
        if digest is not None and digest.hexdigest() != self.sha256:
            raise self._changed("does not match its expected sha256 (changed since it was hashed)")
        yield self._tail

    def _changed(self, what: str) -> DataError:
        return DataError(
            [
                Problem(
                    code="changed-on-disk",
                    message=f"{self.filename}: the file {what}; the upload was aborted "
                    "before completion, so nothing was stored remotely",
                    location=Location(str(self.path)),
                    hint="do not modify prepared dataset files while reconciler runs; "
                    "run the command again",
                )
            ],
            summary="upload aborted: the file changed on disk",
        )
