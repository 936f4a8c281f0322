"""The committed bad-input corpus: one file per rule and crash case, each with its code and
line (``corpus/expected.json``), none crashing the validator; the preference format's cases
are in ``corpus/preference/``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_cases import CASES, CORPUS, PREFERENCE_CASES, PREFERENCE_CORPUS

from reconciler.data.validator import RULES, validate_path

# corpus directory -> (its cases, the data format its files are validated as)
CORPORA = {CORPUS: (CASES, "chat"), PREFERENCE_CORPUS: (PREFERENCE_CASES, "preference")}
EXPECTED = {
    (directory, name): expected
    for directory in CORPORA
    for name, expected in json.loads((directory / "expected.json").read_text()).items()
}


@pytest.mark.parametrize("directory", CORPORA, ids=lambda d: d.name)
def test_corpus_matches_the_case_table(directory: Path) -> None:
    cases, _ = CORPORA[directory]
    files = sorted(p.name for p in directory.glob("*.jsonl"))
    assert files == sorted(f"{name}.jsonl" for name in cases)
    for name, (content, code, line) in cases.items():
        assert (directory / f"{name}.jsonl").read_bytes() == content, name
        assert EXPECTED[directory, f"{name}.jsonl"] == {"code": code, "line": line}


def test_every_error_code_has_a_corpus_file() -> None:
    # Warnings and conditions that need special setup are covered in test_validator.
    not_in_corpus = {"CHECK", "LONG_LINE", "VALIDATION_SIZE", "FILE_SIZE", "FEW_SAMPLES"}
    covered = {e["code"] for e in EXPECTED.values()}
    assert set(RULES) - not_in_corpus <= covered


@pytest.mark.parametrize(
    ("directory", "filename"), sorted(EXPECTED), ids=lambda x: getattr(x, "name", x)
)
def test_corpus_file(directory: Path, filename: str) -> None:
    expected = EXPECTED[directory, filename]
    report = validate_path(
        directory / filename, display_name=filename, data_format=CORPORA[directory][1]
    )
    hits = [
        p
        for p in report.problems
        if p.code == expected["code"]
        and (p.location.line if p.location else 0) == expected["line"]
        and p.severity == "error"
    ]
    assert hits, report.problems
    assert report.sha256 and report.bytes == (directory / filename).stat().st_size
