"""Dataset preparation: as-is uploads, skip reports, concatenation, deterministic split and
the content-keyed caches."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from data_cases import OK, USER, line
from data_helpers import dataset

from reconciler.data.cache import DataCache
from reconciler.data.prepare import prepare_dataset, split_indices
from reconciler.errors import DataError


def chat(i: int) -> bytes:
    return line(
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
    )


def write(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def test_valid_single_file_is_uploaded_as_is(tmp_path: Path) -> None:
    content = b"".join(chat(i) for i in range(12))
    src = write(tmp_path / "data" / "train.jsonl", content)
    prepared = prepare_dataset(dataset(tmp_path, path="data/train.jsonl"), tmp_path / "cache")
    (part,) = prepared.parts.values()
    sha = hashlib.sha256(content).hexdigest()
    assert part.part == "all" and part.path == src.resolve()
    assert (part.sha256, part.bytes, part.num_lines) == (sha, len(content), 12)
    assert part.upload_filename == f"ds-{sha[:12]}.jsonl"
    assert part.report.valid == 12 and part.dropped == 0
    assert prepared.problems == []
    named = prepare_dataset(
        dataset(tmp_path, path="data/train.jsonl", filename="train.jsonl"), tmp_path / "cache"
    )
    assert named.parts["all"].upload_filename == f"train-{sha[:12]}.jsonl"


def test_invalid_samples_fail_with_every_location(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", chat(0) + line({"messages": [USER]}) + chat(1) + b"{x\n")
    with pytest.raises(DataError) as exc:
        prepare_dataset(dataset(tmp_path, path="d.jsonl"), tmp_path / "cache")
    errors = [p for p in exc.value.problems if p.severity == "error"]
    assert [(p.code, p.location.line) for p in errors if p.location] == [("M3", 2), ("JSON", 4)]
    assert all(p.subject == "Dataset/ds" for p in errors)
    assert "on_invalid: skip" in str(exc.value)
    assert not (tmp_path / "cache" / "prepared").exists() or not any(
        (tmp_path / "cache" / "prepared").iterdir()
    )


def test_skip_writes_a_cleaned_copy_and_reports_drops(tmp_path: Path) -> None:
    original = (
        b"\xef\xbb\xbf"
        + chat(0).replace(b"\n", b"\r\n")
        + line({"messages": [USER]})
        + b"\n"
        + chat(1)
        + b"[1]\n"
        + chat(2)
    )
    src = write(tmp_path / "d.jsonl", original)
    prepared = prepare_dataset(
        dataset(tmp_path, path="d.jsonl", on_invalid="skip"), tmp_path / "cache"
    )
    part = prepared.parts["all"]
    assert src.read_bytes() == original  # never in place
    assert part.path != src and part.path.parent == tmp_path / "cache" / "prepared"
    assert part.path.name == f"{part.sha256}.jsonl"
    assert part.path.read_bytes() == chat(0) + chat(1) + chat(2)  # no BOM, CRLF, blank
    assert part.dropped == 2 and part.dropped_by_rule == {"M3": 1, "F17": 1}
    summary, *dropped = [p for p in prepared.problems if p.code == "SKIPPED"]
    assert summary.code == "SKIPPED" and summary.severity == "warning"
    assert "2 invalid sample(s) dropped" in summary.message and "3 kept" in summary.message
    assert summary.location is not None and summary.location.line == 5  # on_invalid field
    assert [(p.location.line if p.location else 0) for p in dropped] == [2, 5]
    assert all(p.severity == "warning" for p in prepared.problems)
    assert {p.code for p in prepared.problems} == {"SKIPPED", "FEW_SAMPLES"}


def test_nothing_left_after_skip_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", line({"messages": [USER]}))
    with pytest.raises(DataError) as exc:
        prepare_dataset(dataset(tmp_path, path="d.jsonl", on_invalid="skip"), tmp_path / "c")
    assert exc.value.problems[0].code == "EMPTY"


def test_paths_are_concatenated_in_order_and_directories_expand(tmp_path: Path) -> None:
    write(tmp_path / "b.jsonl", chat(1))
    write(tmp_path / "a.jsonl", chat(0))
    write(tmp_path / "dir" / "z.jsonl", chat(3))
    write(tmp_path / "dir" / "sub" / "y.jsonl", chat(2))
    write(tmp_path / "dir" / "ignored.txt", b"not data")
    doc = dataset(tmp_path, paths=["b.jsonl", "a.jsonl", "dir"])
    part = prepare_dataset(doc, tmp_path / "cache").parts["all"]
    assert part.path.read_bytes() == chat(1) + chat(0) + chat(2) + chat(3)
    assert [
        r.path.rsplit("/", 1)[-1] for r in prepare_dataset(doc, tmp_path / "cache").sources
    ] == ["b.jsonl", "a.jsonl", "y.jsonl", "z.jsonl"]


def test_missing_source_is_located_at_the_spec(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        prepare_dataset(dataset(tmp_path, paths=["nope.jsonl"]), tmp_path / "cache")
    (problem,) = exc.value.problems
    assert problem.code == "READ" and "nope.jsonl" in problem.message
    assert problem.location is not None and problem.location.file == "specs.yaml"


def _split(tmp_path: Path, cache: str, n: int = 40, **split: object) -> dict[str, bytes]:
    write(tmp_path / "d.jsonl", b"".join(chat(i) for i in range(n)))
    doc = dataset(tmp_path, path="d.jsonl", split={"validation_fraction": 0.1, **split})
    prepared = prepare_dataset(doc, tmp_path / cache)
    return {k: v.path.read_bytes() for k, v in prepared.parts.items()}


def test_split_is_byte_identical_across_runs(tmp_path: Path) -> None:
    first = _split(tmp_path, "cache1", seed=7)
    second = _split(tmp_path, "cache2", seed=7)
    assert first == second
    other_seed = _split(tmp_path, "cache3", seed=8)
    assert other_seed["validation"] != first["validation"]
    lines = set(b"".join(first.values()).splitlines())
    assert lines == {chat(i).rstrip(b"\n") for i in range(40)}
    assert len(first["validation"].splitlines()) == 4  # round(40 * 0.1)
    # Both parts keep the source order.
    train = [json.loads(x)["messages"][0]["content"] for x in first["train"].splitlines()]
    assert train == sorted(train, key=lambda s: int(s.split()[1]))


def test_split_parts_and_names(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", b"".join(chat(i) for i in range(30)))
    doc = dataset(tmp_path, path="d.jsonl", split={"validation_fraction": 0.2, "seed": 1})
    prepared = prepare_dataset(doc, tmp_path / "cache")
    train, val = prepared.parts["train"], prepared.parts["validation"]
    assert train.upload_filename == f"ds-train-{train.sha256[:12]}.jsonl"
    assert val.upload_filename == f"ds-validation-{val.sha256[:12]}.jsonl"
    assert (train.num_lines, val.num_lines) == (24, 6)
    assert val.report.role == "validation" and train.report.role == "training"
    assert val.sha256 == hashlib.sha256(val.path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("n", "fraction", "expected"), [(2, 0.01, 1), (3, 0.99, 2), (10, 0.25, 2), (1, 0.5, 0)]
)
def test_split_counts(n: int, fraction: float, expected: int) -> None:
    picked = split_indices(n, fraction, seed=0)
    assert len(picked) == expected and len(set(picked)) == expected
    assert split_indices(n, fraction, seed=0) == picked


def test_max_validation_bytes_keeps_the_rest_in_train(tmp_path: Path) -> None:
    size = len(chat(10))
    parts = _split(tmp_path, "cache", n=100, max_validation_bytes=3 * size)
    assert len(parts["validation"]) <= 3 * size
    assert len(parts["validation"].splitlines()) == 3
    assert len(parts["train"].splitlines()) == 97


def test_split_needs_two_samples(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", chat(0))
    doc = dataset(tmp_path, path="d.jsonl", split={"validation_fraction": 0.5})
    with pytest.raises(DataError) as exc:
        prepare_dataset(doc, tmp_path / "cache")
    assert exc.value.problems[0].code == "SPLIT"


def test_unchanged_file_is_not_read_again(tmp_path: Path) -> None:
    src = write(tmp_path / "d.jsonl", b"".join(chat(i) for i in range(10)))
    doc = dataset(tmp_path, path="d.jsonl")
    first = prepare_dataset(doc, tmp_path / "cache").parts["all"]
    assert (tmp_path / "cache" / "hashes.json").is_file()
    # Same size and mtime, different bytes: answered from the cache, so not read again.
    stat = src.stat()
    src.write_bytes(src.read_bytes().replace(b"question 1", b"question X"))
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    cached = prepare_dataset(doc, tmp_path / "cache").parts["all"]
    assert cached.sha256 == first.sha256
    # A new mtime invalidates the entry.
    os.utime(src, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    fresh = prepare_dataset(doc, tmp_path / "cache").parts["all"]
    assert fresh.sha256 == hashlib.sha256(src.read_bytes()).hexdigest() != first.sha256


def test_prepared_datasets_are_remembered(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", b"".join(chat(i) for i in range(20)) + line(OK)[:-2] + b"\n")
    doc = dataset(tmp_path, path="d.jsonl", on_invalid="skip", split={"validation_fraction": 0.1})
    cache = DataCache(tmp_path / "cache")
    first = prepare_dataset(doc, tmp_path / "cache", cache=cache)
    hits = cache.hits
    second = prepare_dataset(doc, tmp_path / "cache", cache=cache)
    assert cache.hits == hits + 1
    assert second.to_dict() == first.to_dict()
    # A prepared file that disappeared is rebuilt, byte-identical.
    first.parts["train"].path.unlink()
    third = prepare_dataset(doc, tmp_path / "cache", cache=cache)
    assert third.parts["train"].path.read_bytes()
    assert third.parts["train"].sha256 == first.parts["train"].sha256


def test_corrupt_cache_is_ignored(tmp_path: Path) -> None:
    write(tmp_path / "d.jsonl", chat(0) * 10)
    write(tmp_path / "cache" / "hashes.json", b"{not json")
    part = prepare_dataset(dataset(tmp_path, path="d.jsonl"), tmp_path / "cache").parts["all"]
    assert part.report.valid == 10
    assert json.loads((tmp_path / "cache" / "hashes.json").read_text())["version"] == 1
