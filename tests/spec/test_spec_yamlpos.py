"""YAML reading with positions: floats, duplicate keys, syntax errors, unreadable bytes."""

from __future__ import annotations

import pytest

from reconciler.errors import Location
from reconciler.spec.yamlpos import decode_text, load_yaml_text


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
