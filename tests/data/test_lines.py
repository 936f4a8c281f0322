"""The one line splitter: the same lines, sizes and flags whatever the chunk size, the
whole stream hashed and counted, overlong lines reported by size and never buffered."""

from __future__ import annotations

import hashlib
import io
import random

import pytest

from reconciler.data import lines as line_splitter
from reconciler.data.lines import Line, LineReader


def _reference(blob: bytes) -> list[Line]:
    """What splitting the whole blob at once gives (no length limit)."""
    parts = blob.split(b"\n")
    last = parts.pop()
    found: list[Line] = [(p, len(p), True) for p in parts]
    if last:
        found.append((last, len(last), False))
    return found


def test_lines_sizes_and_flags_do_not_depend_on_the_chunk_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(11)
    pieces = [b"\n", b"\r\n", b"{}", b"a" * 7, b"\xef\xbb\xbf", b" ", b"x" * 300]
    for _ in range(200):
        blob = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 40)))
        for chunk in (1, 2, 7, 64, 1 << 20):
            monkeypatch.setattr(line_splitter, "CHUNK_SIZE", chunk)
            hasher = hashlib.sha256()
            reader = LineReader(io.BytesIO(blob), hasher)
            assert list(reader) == _reference(blob), (blob, chunk)
            assert reader.size == len(blob)
            assert hasher.hexdigest() == hashlib.sha256(blob).hexdigest()


def test_empty_stream_has_no_line() -> None:
    reader = LineReader(io.BytesIO(b""))
    assert list(reader) == [] and reader.size == 0


@pytest.mark.parametrize("chunk", [1, 3, 16, 50])  # at most MAX_LINE_BYTES, as required
def test_overlong_lines_are_yielded_as_none_with_their_size(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    monkeypatch.setattr(line_splitter, "MAX_LINE_BYTES", 50)
    monkeypatch.setattr(line_splitter, "CHUNK_SIZE", chunk)
    blob = b"short\n" + b"L" * 51 + b"\n" + b"x" * 50 + b"\n" + b"T" * 120
    assert list(LineReader(io.BytesIO(blob))) == [
        (b"short", 5, True),
        (None, 51, True),
        (b"x" * 50, 50, True),
        (None, 120, False),
    ]
