"""Conversion templates take ``{column}`` placeholders and ``{{``/``}}`` escapes only: anything
else is a located ``validate`` error, good templates render exactly as ``str.format`` did, and
the converted example datasets stay byte-identical."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest
from data_helpers import dataset
from typer.testing import CliRunner

import reconciler.cli.cmd_validate  # noqa: F401  (registers validate on the app)
from reconciler.cli.app import app
from reconciler.data.api import check_datasets
from reconciler.data.prepare import prepare_dataset
from reconciler.errors import DataError
from reconciler.spec.loader import load_specs
from reconciler.spec.models import MessageMapping
from reconciler.spec.template import (
    Column,
    TemplateError,
    parse_template,
    render_template,
    template_columns,
)

ROW = {"question": "Q?", "context": "CREATE TABLE t (x)", " spaced ": "S", "-1": "minus", "é": "e"}


@pytest.mark.parametrize(
    ("template", "parts"),
    [
        ("", ()),
        ("plain text", ("plain text",)),
        ("{question}", (Column("question"),)),
        ("Q: {question}\nC: {context}", ("Q: ", Column("question"), "\nC: ", Column("context"))),
        ("{{literal}} {question}", ("{literal} ", Column("question"))),
        ("}}{{", ("}{",)),
        ("{{{question}}}", ("{", Column("question"), "}")),
        ("{ spaced }{-1}{é}", (Column(" spaced "), Column("-1"), Column("é"))),
    ],
)
def test_good_templates_parse_into_literal_and_column_parts(
    template: str, parts: tuple[object, ...]
) -> None:
    assert parse_template(template) == parts
    assert render_template(parse_template(template), ROW.__getitem__) == template.format_map(ROW)


def test_every_accepted_template_renders_as_str_format_did() -> None:
    rng = random.Random(7)
    pieces = ["{", "}", "question", "context", " spaced ", "x", ".", "[", "0", "!r", ":>3", "\n"]
    accepted = 0
    for _ in range(20_000):
        template = "".join(rng.choice(pieces) for _ in range(rng.randrange(0, 8)))
        try:
            parts = parse_template(template)
        except TemplateError:
            continue
        accepted += 1
        try:
            expected: object = template.format_map(ROW)
        except KeyError:
            expected = KeyError
        try:
            got: object = render_template(parts, ROW.__getitem__)
        except KeyError:
            got = KeyError
        assert got == expected, template
    assert accepted > 1000


BAD = [
    ("{col.attr}", "attribute access ('.attr')", 1),
    ("{col[x]}", "item access ('[x]')", 1),
    ("Answer: {q.__class__}", "attribute access ('.__class__')", 9),
    ("{q.__class__.__init__.__globals__}", "attribute access", 1),
    ("{x!r}", "a conversion ('!r')", 1),
    ("{x:>10}", "a format spec (':>10')", 1),
    ("{}", "empty placeholder '{}'", 1),
    ("{0}", "positional placeholder '{0}'", 1),
    ("{ }", "empty placeholder", 1),
    ("ab {question", "'{' at template line 1, column 4 is never closed", 4),
    ("a } b", "single '}' at template line 1, column 3", 3),
    ("{a{b}}", "placeholders cannot nest", 1),
]


@pytest.mark.parametrize(("template", "needle", "column"), BAD)
def test_bad_templates_are_rejected_with_the_position(
    template: str, needle: str, column: int
) -> None:
    with pytest.raises(TemplateError) as exc:
        parse_template(template)
    assert needle in str(exc.value)
    assert f"template line 1, column {column}" in str(exc.value)
    assert exc.value.offset == column - 1


def test_positions_count_lines_inside_the_template() -> None:
    with pytest.raises(TemplateError, match="template line 3, column 6"):
        parse_template("one {question}\ntwo\nthree{q.attr}")


def test_the_model_rejects_bad_templates_and_keeps_good_ones() -> None:
    good = MessageMapping(role="user", template="{question} {{x}}")
    assert good.template == "{question} {{x}}"
    assert template_columns(parse_template("{a}{b}{a}")) == ["a", "b"]
    with pytest.raises(ValueError, match="attribute access"):
        MessageMapping(role="user", template="{q.__class__}")


def _spec(template: str) -> str:
    return (
        "kind: Dataset\n"
        "name: ds\n"
        "path: rows.csv\n"
        "convert:\n"
        "  messages:\n"
        "    - role: user\n"
        f"      template: {json.dumps(template)}\n"
        "    - role: assistant\n"
        "      column: a\n"
    )


@pytest.mark.parametrize(("template", "needle", "column"), BAD)
def test_validate_reports_a_bad_template_at_its_spec_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, needle: str, column: int
) -> None:
    (tmp_path / "specs.yaml").write_text(_spec(template), encoding="utf-8")
    (tmp_path / "rows.csv").write_text("q,a\nx,y\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # catch_exceptions=False: an exception would fail the test instead of becoming output.
    result = CliRunner().invoke(
        app, ["validate", "specs.yaml", "--format", "json"], catch_exceptions=False
    )
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    data = json.loads(result.stdout)
    (problem,) = [p for p in data["problems"] if p["severity"] == "error"]
    assert (problem["file"], problem["line"], problem["column"]) == ("specs.yaml", 7, 17)
    assert "convert.messages[0].template" in problem["message"]
    assert needle in problem["message"]


def test_a_missing_column_is_a_conversion_error_per_row(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("q,a\nx,y\n", encoding="utf-8")
    doc = dataset(
        tmp_path,
        path="d.csv",
        convert={
            "messages": [
                {"role": "user", "template": "{q} {nope}"},
                {"role": "assistant", "column": "a"},
            ]
        },
    )
    with pytest.raises(DataError) as exc:
        prepare_dataset(doc, tmp_path / "cache")
    assert [p.message for p in exc.value.problems if p.code == "CONVERT"] == [
        "row 1 cannot be converted: template names column 'nope' that the row does not have"
    ]


# sha256 of the prepared files of the example datasets that are converted (two of them with
# templates): converting must not change a byte, or every user re-uploads and re-trains.
CONVERTED_EXAMPLES = {
    "fmt-medical-notes": "05a4d0467e99d3e23f97f0328fd40404f1687921af4a0b1d10986b04a7815ba4",
    "style-news-refined": "a7ad39523c5f4327749a56241b554b577acc63757bdd308c38c5eb644b172b4d",
    "sql-create-context": "a4089e5bb70fe43f781de34994a88a69e1aba70a5238d2ec1a7fdde44812a3ce",
    "rag-handbook-qa": "aa996f46b89a6bcd6d698f73653240c49bd269b9600fca29c8f3227b4af5f0df",
    "distill-teacher-labels": "62c4bf4e7cc2228027690ca2b982f5561f294887f59297b2ac95f0907bd81d0e",
}


def test_converted_example_datasets_are_byte_identical(repo_root: Path, tmp_path: Path) -> None:
    specs_dir = tmp_path / "specs"
    for example in (
        "02-format-medical-notes",
        "03-style-news",
        "04-coding-text-to-sql",
        "05-domain-rag",
        "06-knowledge-distillation",
    ):
        shutil.copytree(repo_root / "specs" / example, specs_dir / example)
    result = check_datasets(load_specs([specs_dir]), cache_dir=tmp_path / "cache")
    digests = {name: ds.parts["all"].sha256 for name, ds in result.prepared.items()}
    assert digests == CONVERTED_EXAMPLES
