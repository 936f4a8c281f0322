"""Streaming training data: sharded, shuffled, weighted, rendered, truncated.

Training files are read line by line from storage and never held whole: each file is an
endless stream (pass after pass) shuffled through a bounded buffer, and every sample is drawn
from the file a weighted random choice picks, as mistral-finetune mixes its data sources.
With several data-parallel processes, process ``rank`` of ``world`` reads every ``world``-th
sample of each file, so the processes see disjoint samples.

Samples are rendered by a :class:`reconciler.train.render.Renderer` and cut to ``seq_len``
tokens; a sample left with no assistant token to train on is skipped and counted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from reconciler.errors import TrainingError
from reconciler.train.job import TrainingFile
from reconciler.train.render import Encoded, Renderer
from reconciler.train.storage import iter_lines


@dataclass(frozen=True)
class Shard:
    """Which samples this process reads: those whose index modulo ``world`` is ``rank``."""

    rank: int = 0
    world: int = 1


def iter_samples(uri: str, shard: Shard = Shard()) -> Iterator[dict[str, Any]]:
    """The samples of one JSONL file in this process's shard, streamed.

    Blank lines are not samples. A line that is not a JSON object is an error naming the
    file and line: the data is validated before it is stored, so this means it was changed.
    """
    index = 0
    for number, line in enumerate(iter_lines(uri), start=1):
        if not line.strip():
            continue
        mine = index % shard.world == shard.rank
        index += 1
        if not mine:
            continue
        try:
            sample = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise TrainingError(f"{uri}:{number}: not valid JSON ({exc})") from exc
        if not isinstance(sample, dict):
            raise TrainingError(f"{uri}:{number}: a sample must be a JSON object")
        yield sample


def count_samples(uri: str) -> int:
    """Samples (non-blank lines) in a file, counted by streaming it."""
    return sum(1 for line in iter_lines(uri) if line.strip())


def truncate(encoded: Encoded, seq_len: int) -> Encoded | None:
    """The first ``seq_len`` tokens; ``None`` if no trained token is left."""
    if len(encoded.tokens) <= seq_len:
        return encoded
    cut = Encoded(tokens=encoded.tokens[:seq_len], targets=encoded.targets[:seq_len])
    return cut if cut.n_targets else None


@dataclass
class SampleStats:
    """Counters of a data stream.

    Attributes:
        used: samples handed out.
        skipped: samples dropped because no assistant token was left to train on.
    """

    used: int = 0
    skipped: int = 0


def _shuffled(items: Iterator[Any], rng: random.Random, size: int) -> Iterator[Any]:
    """``items`` in a random order, holding at most ``size`` of them at a time."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        buffer[j], item = item, buffer[j]
        yield item
    rng.shuffle(buffer)
    yield from buffer


@dataclass
class _FileStream:
    """One training file as an endless stream of rendered samples."""

    uri: str
    index: int
    renderer: Renderer
    seq_len: int
    shard: Shard
    seed: int
    buffer: int
    stats: SampleStats
    passes: int = 0
    _it: Iterator[Encoded] | None = field(default=None, repr=False)

    def _one_pass(self) -> Iterator[Encoded]:
        rng = random.Random(f"{self.seed}:{self.index}:{self.shard.rank}:{self.passes}")
        usable = 0
        for sample in _shuffled(iter_samples(self.uri, self.shard), rng, self.buffer):
            encoded = self.renderer.encode(sample)
            encoded = truncate(encoded, self.seq_len) if encoded is not None else None
            if encoded is None:
                self.stats.skipped += 1
                continue
            usable += 1
            yield encoded
        if not usable:
            raise TrainingError(
                f"{self.uri}: no sample with an assistant message to train on"
                + (
                    f" in process {self.shard.rank} of {self.shard.world}"
                    if self.shard.world > 1
                    else ""
                )
            )

    def next(self) -> Encoded:
        while True:
            if self._it is None:
                self._it = self._one_pass()
            try:
                return next(self._it)
            except StopIteration:
                self._it = None
                self.passes += 1


class TrainingStream:
    """Endless weighted mixture of the training files, as rendered samples."""

    def __init__(
        self,
        files: Sequence[TrainingFile],
        renderer: Renderer,
        *,
        seq_len: int,
        shard: Shard = Shard(),
        seed: int = 0,
        buffer: int = 1000,
    ) -> None:
        self.stats = SampleStats()
        self._streams = [
            _FileStream(f.uri, i, renderer, seq_len, shard, seed, buffer, self.stats)
            for i, f in enumerate(files)
        ]
        self._weights = [f.weight for f in files]
        self._rng = random.Random(f"{seed}:mix:{shard.rank}")

    def batch(self, size: int) -> list[Encoded]:
        """The next ``size`` samples."""
        out = []
        for _ in range(size):
            (stream,) = self._rng.choices(self._streams, weights=self._weights)
            out.append(stream.next())
        self.stats.used += size
        return out


def validation_batches(
    uris: Sequence[str], renderer: Renderer, *, seq_len: int, batch_size: int, shard: Shard
) -> Iterator[list[Encoded]]:
    """Every usable sample of the validation files (this process's shard), in batches."""
    batch: list[Encoded] = []
    for uri in uris:
        for sample in iter_samples(uri, shard):
            encoded = renderer.encode(sample)
            encoded = truncate(encoded, seq_len) if encoded is not None else None
            if encoded is None:
                continue
            batch.append(encoded)
            if len(batch) == batch_size:
                yield batch
                batch = []
    if batch:
        yield batch
