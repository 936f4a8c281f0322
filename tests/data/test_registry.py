"""The rules registry: every code a report carries is declared with that severity, codes
are unique, and only the file-size and sample-count rules are warnings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from data_cases import CASES, CORPUS, PREFERENCE_CASES, PREFERENCE_CORPUS

from reconciler.data.registry import RULES, rule
from reconciler.data.validator import validate_path
from reconciler.errors import Problem, Severity


def test_every_reported_problem_is_a_declared_rule_with_its_severity() -> None:
    seen: set[str] = set()
    corpora = [(CORPUS / f"{name}.jsonl", "chat") for name in CASES]
    corpora += [(PREFERENCE_CORPUS / f"{name}.jsonl", "preference") for name in PREFERENCE_CASES]
    for path, data_format in corpora:
        report = validate_path(path, display_name=path.name, data_format=data_format)
        for problem in report.problems:
            declared = RULES[problem.code]
            assert problem.severity is declared.severity, problem
            seen.add(problem.code)
    assert "FEW_SAMPLES" in seen and "M3" in seen and "D6" in seen


def test_rules_have_titles_and_only_limits_warn() -> None:
    assert all(r.code == code and r.title for code, r in RULES.items())
    warnings = {code for code, r in RULES.items() if r.severity is Severity.WARNING}
    assert warnings == {"VALIDATION_SIZE", "FILE_SIZE", "FEW_SAMPLES"}


def test_a_code_cannot_be_declared_twice() -> None:
    before = dict(RULES)
    with pytest.raises(ValueError, match="F4"):
        rule("F4", "another title")
    assert RULES == before


def test_severity_is_a_string_enum() -> None:
    problem = Problem("X", "m", severity="warning")  # type: ignore[arg-type]
    assert problem.severity is Severity.WARNING and problem.severity == "warning"
    assert problem.render() == "warning: m [X]"
    data = problem.to_dict()
    assert type(data["severity"]) is str and json.loads(json.dumps(data)) == data
    assert Problem.from_dict(data) == problem
    with pytest.raises(ValueError):
        Problem("X", "m", severity="fatal")  # type: ignore[arg-type]


# Problem codes of dataset preparation and file access, documented beside the rules.
PREPARATION_CODES = {
    "CONVERT",
    "MORE",
    "NOT_A_FILE",
    "OVERLAP",
    "READ",
    "SKIPPED",
    "SPLIT",
    "TOKENIZER",
}


def test_the_documentation_lists_exactly_the_registered_codes(repo_root: Path) -> None:
    text = (repo_root / "docs" / "datasets.md").read_text(encoding="utf-8")
    documented: set[str] = set()
    for row in re.finditer(r"^\| `([A-Z0-9_]+)`(?: / `([A-Z0-9_]+)`)? \|", text, re.M):
        documented.update(code for code in row.groups() if code)
    assert documented == set(RULES) | PREPARATION_CODES
