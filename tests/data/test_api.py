"""check_datasets on specs loaded from real YAML files, and check_files on bare files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_cases import USER, line

from reconciler.data.api import check_datasets, check_files
from reconciler.spec.loader import load_specs


def chat(i: int, tag: str = "") -> bytes:
    return line(
        {
            "messages": [
                {"role": "user", "content": f"{tag}question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
    )


SPECS = """\
kind: Dataset
name: train
path: data/train.jsonl
---
kind: Dataset
name: val
path: data/val.jsonl
---
kind: Dataset
name: chunk
path: data/chunk.jsonl
split:
  validation_fraction: 0.2
  seed: 3
---
kind: FineTuningJob
name: job-a
model: open-mistral-7b
training_files: [train]
validation_files: [val]
---
kind: FineTuningJob
name: job-b
model: open-mistral-7b
training_files: [chunk]
validation_files: [chunk]
"""


def project(tmp_path: Path, *, train: bytes, val: bytes) -> Path:
    root = tmp_path / "project"
    (root / "data").mkdir(parents=True)
    (root / "specs.yaml").write_text(SPECS, encoding="utf-8")
    (root / "data" / "train.jsonl").write_bytes(train)
    (root / "data" / "val.jsonl").write_bytes(val)
    (root / "data" / "chunk.jsonl").write_bytes(b"".join(chat(i, "c") for i in range(50)))
    return root


def test_valid_project(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        train=b"".join(chat(i) for i in range(20)),
        val=b"".join(chat(i, "v") for i in range(5)),
    )
    check = check_datasets(load_specs([root]))
    assert check.ok and check.problems == []
    assert sorted(check.prepared) == ["chunk", "train", "val"]
    assert set(check.prepared["chunk"].parts) == {"train", "validation"}
    assert len(check.reports) == 4
    assert (root / ".reconciler" / "cache" / "hashes.json").is_file()
    data = json.loads(json.dumps(check.to_dict()))
    assert data["format_version"] == 1 and data["ok"] is True
    assert data["datasets"]["train"]["all"]["upload_filename"].startswith("train-")


def test_invalid_dataset_is_reported_and_others_still_prepared(tmp_path: Path) -> None:
    root = project(
        tmp_path,
        train=chat(0) + line({"messages": [USER]}) + chat(1),
        val=b"".join(chat(i, "v") for i in range(5)),
    )
    check = check_datasets(load_specs([root]), cache_dir=tmp_path / "cache")
    assert not check.ok
    (error,) = check.errors
    assert (error.code, error.subject) == ("M3", "Dataset/train")
    assert error.location is not None and error.location.line == 2
    assert error.location.file.endswith("train.jsonl")
    assert "train" not in check.prepared and "val" in check.prepared
    assert not (root / ".reconciler").exists()  # the cache_dir argument was used


def test_same_sample_in_training_and_validation_is_a_warning(tmp_path: Path) -> None:
    train = b"".join(chat(i) for i in range(20))
    # Formatting differs (spacing, key order) but the samples are the same.
    reformatted = (
        json.dumps(
            {
                "messages": [
                    {"content": "question 4", "role": "user"},
                    {"content": "answer 4", "role": "assistant"},
                ]
            },
            separators=(" ,", " : "),
        ).encode()
        + b"\n"
    )
    root = project(tmp_path, train=train, val=chat(3) + reformatted + chat(99, "v"))
    check = check_datasets(load_specs([root]))
    assert check.ok
    (overlap,) = [p for p in check.problems if p.code == "OVERLAP"]
    assert overlap.severity == "warning"
    assert overlap.message.startswith(
        "2 sample(s) of dataset.train[all] also appear in dataset.val[all] (job.job-a)"
    )
    assert overlap.subject == "FineTuningJob/job-a"
    # The split of job-b has no overlap; the answer is cached by content hashes.
    again = check_datasets(load_specs([root]))
    assert [p.message for p in again.problems] == [p.message for p in check.problems]


def test_validation_file_over_the_api_limit(tmp_path: Path) -> None:
    big = line({"messages": [USER, {"role": "assistant", "content": "x" * 1_050_000}]})
    root = project(tmp_path, train=b"".join(chat(i) for i in range(20)), val=big)
    check = check_datasets(load_specs([root]))
    (warning,) = [p for p in check.problems if p.code == "VALIDATION_SIZE"]
    assert "dataset.val[all]" in warning.message and "1 MB" in warning.message
    assert check.ok


def test_check_files(tmp_path: Path) -> None:
    good = tmp_path / "good.jsonl"
    good.write_bytes(b"".join(chat(i) for i in range(10)))
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "b.jsonl").write_bytes(chat(0) * 10)
    (folder / "sub" / "a.jsonl").write_bytes(line({"messages": [USER]}))
    empty = tmp_path / "empty-dir"
    empty.mkdir()
    check = check_files([good, folder, empty, tmp_path / "missing.jsonl"])
    assert [Path(r.path).name for r in check.reports] == ["good.jsonl", "b.jsonl", "a.jsonl"]
    codes = [
        (p.code, Path(p.location.file).name if p.location else None, p.severity)
        for p in check.problems
    ]
    assert ("M3", "a.jsonl", "error") in codes
    assert ("NOT_A_FILE", "empty-dir", "error") in codes
    assert ("READ", "missing.jsonl", "error") in codes
    assert not check.ok
    assert check_files([good]).ok


@pytest.mark.parametrize("example", ["02-format-medical-notes", "04-coding-text-to-sql"])
def test_example_conversions(tmp_path: Path, example: str) -> None:
    specs_dir = Path(__file__).resolve().parents[2] / "specs" / example
    if not specs_dir.is_dir():
        pytest.skip("example specs not present")
    check = check_datasets(load_specs([specs_dir]), cache_dir=tmp_path / "cache")
    assert check.ok, [p.render() for p in check.errors]
    for prepared in check.prepared.values():
        for part in prepared.parts.values():
            assert part.path.is_file() and part.report.valid == part.num_lines
