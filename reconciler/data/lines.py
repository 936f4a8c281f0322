"""The one line splitter of the data package: the lines of a binary stream, in flat memory.

Every reader of JSONL goes through :class:`LineReader` (validation, preparation and split,
train/validation overlap): the stream is read in chunks of :data:`CHUNK_SIZE`, each chunk
optionally feeds a hasher (so hashing and reading are one pass), lines are cut out of it one
at a time with ``bytes.find`` (a chunk's lines are never all held at once) and only a line
that spans chunks is joined. A line longer than :data:`MAX_LINE_BYTES` is not buffered at
all: it is yielded as ``None`` with its size, so a file without newlines cannot exhaust
memory.

Only the standard library is used: the sandbox server imports the validator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO, Protocol

CHUNK_SIZE = 1 << 20
"""Bytes read per call; memory use is about one chunk whatever the file size."""
MAX_LINE_BYTES = 256 << 20
"""Longest line kept in memory; a longer one is yielded as ``None`` (``LONG_LINE``). Only
lines that span chunks are measured, so this must not be below :data:`CHUNK_SIZE`."""

Line = tuple[bytes | None, int, bool]
"""One line: (its bytes without ``\\n`` or None when over :data:`MAX_LINE_BYTES`, its size
in bytes, whether a ``\\n`` ended it: only a file's last line may have none)."""


class Hasher(Protocol):
    """What :class:`LineReader` feeds every chunk to, e.g. ``hashlib.sha256()``."""

    def update(self, data: bytes, /) -> None: ...


class LineReader:
    """Iterates the lines of a binary stream, chunk by chunk (see the module docstring).

    Iterating yields :data:`Line` tuples, one per ``\\n``-terminated line plus a last line
    without ``\\n`` when the stream does not end with one; an empty stream has no line.
    Lines are plain ``bytes``, including any ``\\r`` or byte order mark.

    Args:
        stream: a binary stream, read to its end once.
        hasher: gets every chunk read (the whole stream's bytes, in order), or None.

    Attributes:
        size: bytes read so far: the stream's size once iterated to the end.
    """

    def __init__(self, stream: IO[bytes], hasher: Hasher | None = None) -> None:
        self._stream = stream
        self._hasher = hasher
        self.size = 0

    def __iter__(self) -> Iterator[Line]:
        read = self._stream.read
        hasher = self._hasher
        # The start of a line that continues in the next chunk, and its size; once it is
        # over the limit only the size is kept.
        pending: list[bytes] = []
        pending_size = 0
        too_long = False
        while chunk := read(CHUNK_SIZE):
            self.size += len(chunk)
            if hasher is not None:
                hasher.update(chunk)
            find = chunk.find
            nl = find(b"\n")
            pos = 0
            if nl >= 0 and (pending or too_long):
                size = pending_size + nl
                if too_long or size > MAX_LINE_BYTES:
                    yield None, size, True
                else:
                    pending.append(chunk[:nl])
                    yield b"".join(pending), size, True
                pending = []
                pending_size = 0
                too_long = False
                pos = nl + 1
                nl = find(b"\n", pos)
            # The hot loop of validation: one find and one slice per line.
            while nl >= 0:
                yield chunk[pos:nl], nl - pos, True
                pos = nl + 1
                nl = find(b"\n", pos)
            if pos < len(chunk):
                pending_size += len(chunk) - pos
                if too_long or pending_size > MAX_LINE_BYTES:
                    too_long = True
                    pending = []
                else:
                    pending.append(chunk[pos:] if pos else chunk)
        if pending or too_long:
            yield (None if too_long else b"".join(pending)), pending_size, False
