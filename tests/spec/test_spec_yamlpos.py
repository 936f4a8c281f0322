"""YAML reading with positions: floats, duplicate keys, syntax errors, unreadable bytes.

Every test runs with the pure-Python loader and, where PyYAML has it, libyaml's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import Location
from reconciler.spec import yamlpos
from reconciler.spec.yamlpos import decode_text, load_yaml_text

REPO = Path(__file__).resolve().parents[2]
LOADERS = [yamlpos.PurePositionLoader]
if yamlpos.LIBYAML:
    LOADERS.append(yamlpos.CPositionLoader)


@pytest.fixture(autouse=True, params=LOADERS, ids=lambda loader: loader.__name__)
def position_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Run the test with this loader class."""
    monkeypatch.setattr(yamlpos, "PositionLoader", request.param)
    return request.param


def _repository_yaml_texts() -> list[Any]:
    """(path, text) of every YAML file of the repository's specs, examples and corpus."""
    found = []
    for root in ("specs", "examples", "tests/spec/corpus"):
        for path in sorted((REPO / root).rglob("*.y*ml")):
            name = str(path.relative_to(REPO))
            text, _ = decode_text(path.read_bytes(), name)
            if text is not None:  # the corpus holds binary files on purpose
                found.append(pytest.param(name, text, id=name))
    return found


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("v: 1e-4", 1e-4),
        ("v: 1E-5", 1e-5),
        ("v: -2e+3", -2000.0),
        ("v: 1.0e-4", 1e-4),
        ("v: 2.5e-5", 2.5e-5),
        ("v: 0.1", 0.1),
        ("v: 10", 10),
        ("v: '1e-4'", "1e-4"),
        ("v: 1e", "1e"),
        ("v: e5", "e5"),
    ],
)
def test_scalars_resolve_like_users_expect(text: str, expected: object) -> None:
    docs, problems = load_yaml_text(text + "\n", "f.yaml")
    assert problems == []
    value = docs[0].data["v"]
    assert value == expected
    assert type(value) is type(expected)


def test_positions_of_keys_values_and_items_are_one_based() -> None:
    text = "kind: FineTuningJob\ntraining_files:\n  - dataset: a\n    weight: 2\n  - b\n"
    docs, problems = load_yaml_text(text, "job.yaml")
    assert problems == []
    doc = docs[0]
    assert doc.location == Location("job.yaml", 1, 1)
    assert doc.key_locations[("kind",)] == Location("job.yaml", 1, 1)
    assert doc.value_locations[("kind",)] == Location("job.yaml", 1, 7)
    assert doc.key_locations[("training_files", 0)] == Location("job.yaml", 3, 5)
    assert doc.key_locations[("training_files", 0, "weight")] == Location("job.yaml", 4, 5)
    assert doc.value_locations[("training_files", 0, "weight")] == Location("job.yaml", 4, 13)
    assert doc.value_locations[("training_files", 1)] == Location("job.yaml", 5, 5)


def test_multi_document_files_skip_empty_documents_and_keep_indexes() -> None:
    text = "a: 1\n---\n---\n# only a comment\n---\nb: 2\n"
    docs, problems = load_yaml_text(text, "m.yaml")
    assert problems == []
    assert [d.data for d in docs] == [{"a": 1}, {"b": 2}]
    assert [d.index for d in docs] == [0, 3]
    assert docs[1].location == Location("m.yaml", 6, 1)


def test_duplicate_keys_are_errors_with_both_positions() -> None:
    docs, problems = load_yaml_text("x:\n  a: 1\n  b: 2\n  a: 3\n", "d.yaml")
    assert [p.code for p in problems] == ["duplicate-key"]
    assert problems[0].location == Location("d.yaml", 4, 3)
    assert "line 2, column 3" in problems[0].message
    # The first value wins; the duplicate is reported, not silently applied.
    assert docs[0].data == {"x": {"a": 1, "b": 2}}


def test_syntax_error_keeps_earlier_documents_and_names_the_position() -> None:
    docs, problems = load_yaml_text("a: 1\n---\nb: [1, 2\nc: 3\n", "s.yaml")
    assert [d.data for d in docs] == [{"a": 1}]
    assert [p.code for p in problems] == ["yaml-syntax"]
    assert problems[0].location is not None and problems[0].location.line == 4


def test_tab_indentation_is_a_syntax_error() -> None:
    _, problems = load_yaml_text("a:\n\tb: 1\n", "t.yaml")
    assert problems[0].code == "yaml-syntax"
    assert problems[0].location == Location("t.yaml", 2, 1)


def test_recursive_alias_is_reported_not_followed_forever() -> None:
    _, problems = load_yaml_text("x: &a [1, *a]\n", "r.yaml")
    assert [p.code for p in problems] == ["yaml-syntax"]
    assert "recursive" in problems[0].message


def test_alias_bomb_is_refused() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 7):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    _, problems = load_yaml_text("\n".join(lines) + "\n", "bomb.yaml")
    assert [p.code for p in problems] == ["yaml-syntax"]
    assert "alias" in problems[0].message


def test_merge_keys_work() -> None:
    docs, problems = load_yaml_text("base: &b {x: 1}\nc: {<<: *b, y: 2}\n", "m.yaml")
    assert problems == []
    assert docs[0].data["c"] == {"x": 1, "y": 2}


@pytest.mark.parametrize(
    ("raw", "code", "location"),
    [
        (b"a: 1\nb: \x00\x01", "binary-file", Location("b.yaml", 2, 4)),
        (b"a: caf\xe9\n", "invalid-encoding", Location("b.yaml", 1, 7)),
        (b"\xef\xbb\xbfa: \xff\n", "invalid-encoding", Location("b.yaml", 1, 7)),
    ],
)
def test_undecodable_bytes_are_problems(raw: bytes, code: str, location: Location) -> None:
    text, problem = decode_text(raw, "b.yaml")
    assert text is None
    assert problem is not None
    assert (problem.code, problem.location) == (code, location)


def test_bom_is_accepted_and_control_characters_are_reported() -> None:
    text, problem = decode_text(b"\xef\xbb\xbfa: 1\n", "b.yaml")
    assert problem is None and text == "a: 1\n"
    _, problems = load_yaml_text("a: 1\nb: \x07\n", "c.yaml")
    assert [(p.code, p.location) for p in problems] == [("binary-file", Location("c.yaml", 2, 4))]


def test_non_string_keys_are_kept_and_complex_keys_reported() -> None:
    docs, problems = load_yaml_text("1: a\n? [x]\n: b\n", "k.yaml")
    assert docs[0].data == {1: "a"}
    assert [p.code for p in problems] == ["yaml-syntax"]


def test_non_printable_character_is_located_by_character_not_byte() -> None:
    # libyaml reports the offset in UTF-8 bytes; the column must count characters.
    docs, problems = load_yaml_text("a: 1\nb: ééé😀\x07\n", "u.yaml")
    assert docs == []
    assert [(p.code, p.location) for p in problems] == [("binary-file", Location("u.yaml", 2, 8))]
    assert "#x0007" in problems[0].message


def test_columns_count_characters_after_non_ascii_text() -> None:
    docs, problems = load_yaml_text("name: é😀\nx: [ça, 1]\n", "c.yaml")
    assert problems == []
    assert docs[0].value_locations[("x", 1)] == Location("c.yaml", 2, 9)


def test_unknown_tags_are_syntax_problems_and_known_ones_construct() -> None:
    docs, problems = load_yaml_text("a: !!binary aGk=\nb: 2001-12-14\nc: ~\nd: yes\n", "t.yaml")
    assert problems == []
    assert docs[0].data["a"] == b"hi" and str(docs[0].data["b"]) == "2001-12-14"
    assert docs[0].data["c"] is None and docs[0].data["d"] is True
    _, problems = load_yaml_text("a: !custom x\n", "t.yaml")
    assert [(p.code, p.location) for p in problems] == [("yaml-syntax", Location("t.yaml", 1, 4))]


def test_libyaml_is_used_when_available() -> None:
    # The fast path must not silently fall back when PyYAML has libyaml.
    assert yamlpos.LIBYAML == hasattr(__import__("yaml"), "CSafeLoader")
    if yamlpos.LIBYAML:
        assert issubclass(yamlpos.CPositionLoader, __import__("yaml").CSafeLoader)


@pytest.mark.skipif(not yamlpos.LIBYAML, reason="PyYAML without libyaml")
@pytest.mark.parametrize(("name", "text"), _repository_yaml_texts())
def test_both_loaders_read_the_repository_specs_alike(
    name: str, text: str, position_loader: Any
) -> None:
    # Same data and locations; only syntax error wording is the parser's own.
    docs, problems = load_yaml_text(text, name)
    other = (
        yamlpos.CPositionLoader
        if position_loader is yamlpos.PurePositionLoader
        else yamlpos.PurePositionLoader
    )
    yamlpos.PositionLoader = other  # restored by the autouse fixture
    other_docs, other_problems = load_yaml_text(text, name)
    assert docs == other_docs
    assert [(p.code, p.location) for p in problems] == [
        (p.code, p.location) for p in other_problems
    ]
