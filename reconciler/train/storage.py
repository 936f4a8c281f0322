"""Storage shared by the submitting side and the trainer: local paths and fsspec URIs.

A storage location is a local path or any URI fsspec knows (``s3://bucket/prefix``,
``gs://...``, ``file:///...``; the scheme's library, e.g. s3fs, must be installed). Both the
command that submits a job and the cluster that runs it must reach it. Everything here
streams: files are read line by line and copied in chunks, so memory stays flat whatever the
size.

Datasets are content-addressed: :func:`upload_dataset` stores a file as
``STORAGE/datasets/<sha256>.jsonl``. An object of that name can only hold those bytes, so an
upload that finds it is done, and an upload interrupted half-way never leaves a partial object
under the final name.

fsspec is imported on first use, so importing this module costs nothing. Every failure is a
:class:`reconciler.errors.StorageError` naming the location and the cause.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler import install_command
from reconciler.errors import StorageError

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

CHUNK_SIZE = 1 << 20
"""Bytes per read when hashing and copying."""

INSTALL_HINT = f"{install_command('ray')} (and the library of the URI's scheme, e.g. s3fs)"


def join(base: str, *parts: str) -> str:
    """``base/part/...`` for a local path or a URI (no filesystem access)."""
    return "/".join([base.rstrip("/"), *(p.strip("/") for p in parts)])


@contextmanager
def _storage_errors(action: str, uri: str) -> Iterator[None]:
    """Translate fsspec's and the OS's errors about ``uri`` into :class:`StorageError`."""
    try:
        yield
    except StorageError:
        raise
    except ImportError as exc:
        raise StorageError(f"cannot {action} {uri}: {exc}; install it: {INSTALL_HINT}") from exc
    except FileNotFoundError as exc:
        raise StorageError(f"cannot {action} {uri}: it does not exist") from exc
    except PermissionError as exc:
        raise StorageError(
            f"cannot {action} {uri}: permission denied; check the storage credentials"
        ) from exc
    except (OSError, ValueError) as exc:
        raise StorageError(f"cannot {action} {uri}: {type(exc).__name__}: {exc}") from exc


def filesystem(uri: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec filesystem of ``uri`` and the path within it."""
    with _storage_errors("open", uri):
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:
            raise ImportError("the fsspec package is not installed") from exc
        fs, path = url_to_fs(uri)
        return fs, str(path)


def _is_local(fs: AbstractFileSystem) -> bool:
    return "file" in _protocols(fs)


def _protocols(fs: AbstractFileSystem) -> tuple[str, ...]:
    protocol: Any = fs.protocol
    return (protocol,) if isinstance(protocol, str) else tuple(protocol)


def exists(uri: str) -> bool:
    """Whether ``uri`` names an existing file or directory."""
    fs, path = filesystem(uri)
    with _storage_errors("look up", uri):
        return bool(fs.exists(path))


def iter_lines(uri: str) -> Iterator[bytes]:
    """The lines of ``uri`` (with their line ends), streamed."""
    fs, path = filesystem(uri)
    with _storage_errors("read", uri), fs.open(path, "rb") as stream:
        yield from stream


def read_bytes(uri: str) -> bytes:
    """The whole content of a small object (a job description, a result)."""
    fs, path = filesystem(uri)
    with _storage_errors("read", uri):
        return bytes(fs.cat_file(path))


def read_bytes_if_exists(uri: str) -> bytes | None:
    """The content of a small object, or ``None`` when there is none (one request, where
    :func:`exists` then :func:`read_bytes` would take two)."""
    fs, path = filesystem(uri)
    with _storage_errors("read", uri):
        try:
            return bytes(fs.cat_file(path))
        except FileNotFoundError:
            return None


def write_bytes(uri: str, data: bytes) -> None:
    """Replace the object at ``uri`` with ``data``; readers never see a partial object.

    On a local filesystem the bytes go to a temporary file that is renamed into place; object
    stores make a written object visible only once complete.
    """
    fs, path = filesystem(uri)
    with _storage_errors("write", uri):
        parent = fs._parent(path)
        if parent:
            fs.makedirs(parent, exist_ok=True)
        if _is_local(fs):
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with open(tmp, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        else:
            fs.pipe_file(path, data)


def remove(uri: str) -> None:
    """Delete the file at ``uri`` if there is one."""
    fs, path = filesystem(uri)
    with _storage_errors("delete", uri):
        if fs.exists(path):
            fs.rm_file(path)


def remove_directory(uri: str) -> None:
    """Delete the directory ``uri`` and everything in it, if there is one."""
    fs, path = filesystem(uri)
    with _storage_errors("delete", uri):
        if fs.exists(path):
            fs.rm(path, recursive=True)


def download(uri: str, dest: Path) -> None:
    """Stream the object at ``uri`` to the local file ``dest`` (never held in memory)."""
    fs, path = filesystem(uri)
    with _storage_errors("read", uri), fs.open(path, "rb") as source, dest.open("wb") as sink:
        while chunk := source.read(CHUNK_SIZE):
            sink.write(chunk)


@dataclass(frozen=True)
class StoredObject:
    """A file in storage, as a listing describes it.

    Attributes:
        uri: its location (the listed directory's URI joined with ``name``).
        name: the file name within the directory.
        size: bytes.
        modified: last modification, unix seconds (0 when the filesystem does not say).
    """

    uri: str
    name: str
    size: int
    modified: float


def _modified(info: dict[str, Any]) -> float:
    """Modification time of an fsspec info record: local files give ``mtime``, object
    stores ``LastModified``/``updated`` (a datetime or an ISO string)."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "created"):
        value = info.get(key)
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, str):
            try:
                return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
            except ValueError:
                continue
    return 0.0


def _object(uri: str, name: str, info: dict[str, Any]) -> StoredObject:
    size = int(info.get("size") or 0)
    return StoredObject(uri=uri, name=name, size=size, modified=_modified(info))


def list_objects(uri: str, suffix: str = "") -> list[StoredObject]:
    """The files directly in the directory ``uri`` whose names end with ``suffix``, by name.

    A directory that does not exist holds nothing (an empty list, not an error).
    """
    fs, path = filesystem(uri)
    with _storage_errors("list", uri):
        if not fs.exists(path):
            return []
        found = []
        for info in fs.ls(path, detail=True):
            if info.get("type") != "file":
                continue
            name = str(info["name"]).rstrip("/").rsplit("/", 1)[-1]
            if name.endswith(suffix):
                found.append(_object(join(uri, name), name, info))
    return sorted(found, key=lambda o: o.name)


def stat_object(uri: str) -> StoredObject | None:
    """The file at ``uri``, or None when there is none."""
    fs, path = filesystem(uri)
    with _storage_errors("look up", uri):
        try:
            info = fs.info(path)
        except FileNotFoundError:
            return None
    if info.get("type") != "file":
        return None
    return _object(uri, path.rstrip("/").rsplit("/", 1)[-1], info)


def put_directory(local_dir: Path, uri: str) -> None:
    """Copy the files of ``local_dir`` (not recursive) into the directory ``uri``."""
    fs, path = filesystem(uri)
    with _storage_errors("write", uri):
        fs.makedirs(path, exist_ok=True)
        for item in sorted(local_dir.iterdir()):
            if item.is_file():
                fs.put_file(str(item), f"{path.rstrip('/')}/{item.name}")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a local file, read in chunks."""
    digest = hashlib.sha256()
    with _storage_errors("read", str(path)), path.open("rb") as stream:
        while chunk := stream.read(CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class StoredDataset:
    """A dataset in storage.

    Attributes:
        uri: ``STORAGE/datasets/<sha256>.jsonl``.
        sha256: hex digest of the content.
        size: bytes.
        uploaded: False when the object was already there (nothing was copied).
    """

    uri: str
    sha256: str
    size: int
    uploaded: bool


def dataset_uri(storage_uri: str, sha256: str) -> str:
    """Where the dataset of this content lives: ``STORAGE/datasets/<sha256>.jsonl``."""
    return join(storage_uri, "datasets", f"{sha256}.jsonl")


def upload_dataset(
    path: Path,
    storage_uri: str,
    sha256: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> StoredDataset:
    """Store the local file ``path`` under its content hash in ``storage_uri``; idempotent.

    Args:
        path: the prepared JSONL file.
        storage_uri: the storage root (a local directory or a URI).
        sha256: the file's digest when already known (it is hashed otherwise).
        progress: called with (bytes copied, total bytes) after each chunk copied.

    An object already at the content-addressed name with the right size is taken as it is.
    Otherwise the file is streamed to a temporary name beside it and moved into place, so an
    interrupted upload leaves no object under the final name.
    """
    digest = sha256 or file_sha256(path)
    size = path.stat().st_size
    uri = dataset_uri(storage_uri, digest)
    fs, target = filesystem(uri)
    with _storage_errors("upload to", uri):
        if fs.exists(target) and fs.size(target) == size:
            return StoredDataset(uri=uri, sha256=digest, size=size, uploaded=False)
        fs.makedirs(fs._parent(target), exist_ok=True)
        tmp = f"{target}.tmp-{uuid.uuid4().hex}"
        try:
            copied = 0
            with path.open("rb") as source, fs.open(tmp, "wb") as sink:
                while chunk := source.read(CHUNK_SIZE):
                    sink.write(chunk)
                    copied += len(chunk)
                    if progress is not None:
                        progress(copied, size)
            fs.mv(tmp, target)
        finally:
            if fs.exists(tmp):
                fs.rm(tmp)
    return StoredDataset(uri=uri, sha256=digest, size=size, uploaded=True)
