"""The committed bad-input corpus: one file per rule and crash case, each with its code and
line (``corpus/expected.json``), none crashing the validator."""

from __future__ import annotations

import json

import pytest
from data_cases import CASES, CORPUS

from reconciler.data.validator import RULES, validate_path

EXPECTED = json.loads((CORPUS / "expected.json").read_text())


def test_corpus_matches_the_case_table() -> None:
    files = sorted(p.name for p in CORPUS.glob("*.jsonl"))
    assert files == sorted(f"{name}.jsonl" for name in CASES)
    for name, (content, code, line) in CASES.items():
        assert (CORPUS / f"{name}.jsonl").read_bytes() == content, name
        assert EXPECTED[f"{name}.jsonl"] == {"code": code, "line": line}


def test_every_error_code_has_a_corpus_file() -> None:
    # Warnings and conditions that need special setup are covered in test_validator.
    not_in_corpus = {"CHECK", "LONG_LINE", "VALIDATION_SIZE", "FILE_SIZE", "FEW_SAMPLES"}
    covered = {e["code"] for e in EXPECTED.values()}
    assert set(RULES) - not_in_corpus <= covered


@pytest.mark.parametrize("filename", sorted(EXPECTED))
def test_corpus_file(filename: str) -> None:
    expected = EXPECTED[filename]
    report = validate_path(CORPUS / filename, display_name=filename)
    hits = [
        p
        for p in report.problems
        if p.code == expected["code"]
        and (p.location.line if p.location else 0) == expected["line"]
        and p.severity == "error"
    ]
    assert hits, report.problems
    assert report.sha256 and report.bytes == (CORPUS / filename).stat().st_size
