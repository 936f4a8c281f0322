"""The rules registry: every code a report carries is declared with that severity, codes
are unique, and only the file-size and sample-count rules are warnings."""

from __future__ import annotations

import json

import pytest
from data_cases import CASES, CORPUS

from reconciler.data.registry import RULES, rule
from reconciler.data.validator import validate_path
from reconciler.errors import Problem, Severity


def test_every_reported_problem_is_a_declared_rule_with_its_severity() -> None:
    seen: set[str] = set()
    for name in CASES:
        report = validate_path(CORPUS / f"{name}.jsonl", display_name=name)
        for problem in report.problems:
            declared = RULES[problem.code]
            assert problem.severity is declared.severity, problem
            seen.add(problem.code)
    assert "FEW_SAMPLES" in seen and "M3" in seen


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
