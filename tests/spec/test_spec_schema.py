"""JSON Schema and Markdown reference: generated from the models, committed, kept in sync."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from spec_helpers import EXAMPLE_SPECS

from reconciler.spec.models import KINDS
from reconciler.spec.root import MARKER_FILE
from reconciler.spec.schema import (
    SCHEMA_FILENAME,
    schema_drift,
    schema_text,
    spec_reference_markdown,
    spec_schema,
    write_schema,
)
from reconciler.spec.yamlpos import load_yaml_text


def test_committed_schema_equals_the_models(repo_root: Path) -> None:
    committed = (repo_root / "schemas" / SCHEMA_FILENAME).read_text(encoding="utf-8")
    assert committed == schema_text(), (
        "schemas/ is stale: run `reconciler schema --write schemas` and commit it"
    )


def test_schema_is_valid_draft_2020_12_with_one_branch_per_kind() -> None:
    schema = spec_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert [b["$ref"].rsplit("/", 1)[1] for b in schema["oneOf"]] == list(KINDS)
    for kind in KINDS:
        body = schema["$defs"][kind]
        assert body["additionalProperties"] is False
        assert "kind" in body["required"] and "name" in body["required"]
        assert body["description"]


def _documents(text: str) -> list[object]:
    docs, problems = load_yaml_text(text, "x.yaml")
    assert problems == []
    return [d.data for d in docs]


def test_schema_accepts_the_example_set_and_rejects_an_unknown_field() -> None:
    validator = jsonschema.Draft202012Validator(spec_schema())
    for doc in _documents(EXAMPLE_SPECS):
        assert list(validator.iter_errors(doc)) == [], doc
    bad = {"kind": "Dataset", "name": "d", "path": "x", "pathh": "y"}
    assert not validator.is_valid(bad)
    assert not validator.is_valid({"kind": "Nope", "name": "d"})
    assert not validator.is_valid(
        {
            "kind": "FineTuningJob",
            "name": "j",
            "model": "m",
            "training_files": ["a"],
            "matrix": {"batch": [1]},
        }
    )


def test_schema_accepts_the_committed_examples(repo_root: Path) -> None:
    validator = jsonschema.Draft202012Validator(spec_schema())
    # Root markers (reconciler.yaml) mark a workspace and hold no spec documents.
    files = sorted(p for p in (repo_root / "specs").rglob("*.yaml") if p.name != MARKER_FILE)
    if not files:
        pytest.skip("no example specs in this checkout")
    for path in files:
        for doc in _documents(path.read_text(encoding="utf-8")):
            errors = [e.message for e in validator.iter_errors(doc)]
            assert errors == [], path


def test_write_and_drift(tmp_path: Path) -> None:
    assert "does not exist" in (schema_drift(tmp_path) or "")
    target = write_schema(tmp_path / "out")
    assert target.read_text() == schema_text() and schema_text().endswith("}\n")
    assert schema_drift(tmp_path / "out") is None
    data = json.loads(target.read_text())
    data["title"] = "changed"
    target.write_text(json.dumps(data))
    assert "differs" in (schema_drift(tmp_path / "out") or "")


def test_markdown_reference_has_a_table_per_kind_with_every_field() -> None:
    text = spec_reference_markdown()
    for kind, model in KINDS.items():
        assert f"#### `{kind}`" in text
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in text
    assert "#### `SecretRef` (nested)" in text
    assert "| `suffix` | string | — | Added to the fine-tuned model name" in text
    assert '| `on_invalid` | `"error"` or `"skip"` | `"error"` |' in text


START = "<!-- spec-reference:start -->"
END = "<!-- spec-reference:end -->"


def test_readme_spec_reference_matches_the_models(repo_root: Path) -> None:
    readme = repo_root / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if START not in text or END not in text:
        pytest.skip("README has no spec reference markers")
    found = re.search(re.escape(START) + r"\n(.*?)" + re.escape(END), text, re.S)
    assert found is not None, "spec reference markers out of order in README.md"
    assert found.group(1).strip() == spec_reference_markdown().strip(), (
        "README spec reference is stale: replace the text between the markers with "
        "`reconciler schema --markdown`"
    )
