"""Declarative conversion of CSV / JSON / JSONL rows into chat samples (the seed's examples)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from data_helpers import dataset

from reconciler.data.convert import convert_file
from reconciler.data.prepare import prepare_dataset
from reconciler.errors import DataError
from reconciler.spec.models import Conversion

MEDICAL_CSV = (
    "Question,Answer\n"
    '"Your goal is to extract structured information ... Input: Randomized trial of asthma '
    "care in adults.\",\"{'conditions': 'Asthma', 'interventions': 'Other: yoga'}\"\n"
    '"Extract it. Input: Losartan, ""the"" drug,\nover two lines.","{\'conditions\': '
    "'Proteinuria'}\"\n"
)

SQL_JSON = [
    {
        "question": "How many heads of the departments are older than 56 ?",
        "context": "CREATE TABLE head (age INTEGER)",
        "answer": "SELECT COUNT(*) FROM head WHERE age > 56",
    },
    {
        "question": "List the names of the heads.",
        "context": "CREATE TABLE head (name VARCHAR)",
        "answer": "SELECT name FROM head",
    },
]

SQL_TEMPLATE = (
    "You are a powerful text-to-SQL model. Your job is to answer questions about a database.\n"
    "### Input:\n{question}\n### Context:\n{context}\n### Response:\n"
)


def _messages(path: Path) -> list[list[dict[str, str]]]:
    return [json.loads(line)["messages"] for line in path.read_text("utf-8").splitlines()]


def test_medical_notes_csv_keeps_text_after_input(tmp_path: Path) -> None:
    (tmp_path / "notes.csv").write_text(MEDICAL_CSV, encoding="utf-8")
    doc = dataset(
        tmp_path,
        path="notes.csv",
        convert={
            "messages": [
                {"role": "user", "column": "Question", "after": "Input:"},
                {"role": "assistant", "column": "Answer"},
            ]
        },
    )
    prepared = prepare_dataset(doc, tmp_path / "cache")
    part = prepared.parts["all"]
    assert part.path.parent == tmp_path / "cache" / "prepared"
    assert _messages(part.path) == [
        [
            {"role": "user", "content": "Randomized trial of asthma care in adults."},
            {
                "role": "assistant",
                "content": "{'conditions': 'Asthma', 'interventions': 'Other: yoga'}",
            },
        ],
        [
            {"role": "user", "content": 'Losartan, "the" drug,\nover two lines.'},
            {"role": "assistant", "content": "{'conditions': 'Proteinuria'}"},
        ],
    ]
    raw = part.path.read_bytes()
    assert b'{"messages":[{"role":"user","content":"Randomized' in raw  # compact JSON
    assert raw.endswith(b"\n") and b"\r" not in raw


def test_text_to_sql_template_from_json_records(tmp_path: Path) -> None:
    (tmp_path / "sql.json").write_text(json.dumps({"data": SQL_JSON}), encoding="utf-8")
    doc = dataset(
        tmp_path,
        path="sql.json",
        convert={
            "records": "data",
            "system": "Answer with SQL only.",
            "messages": [
                {"role": "user", "template": SQL_TEMPLATE, "strip": False},
                {"role": "assistant", "column": "answer"},
            ],
        },
    )
    part = prepare_dataset(doc, tmp_path / "cache").parts["all"]
    first = _messages(part.path)[0]
    assert first[0] == {"role": "system", "content": "Answer with SQL only."}
    assert first[1]["content"].endswith("### Response:\n")
    assert (
        "### Input:\nHow many heads of the departments are older than 56 ?\n" in first[1]["content"]
    )
    assert first[2] == {"role": "assistant", "content": "SELECT COUNT(*) FROM head WHERE age > 56"}


def test_jsonl_source_with_fixed_content_and_unicode(tmp_path: Path) -> None:
    rows = [{"q": "Wie geht's? 你好", "a": "Gut."}]
    (tmp_path / "rows.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=True) for r in rows) + "\n", encoding="utf-8"
    )
    doc = dataset(
        tmp_path,
        path="rows.jsonl",
        convert={
            "messages": [
                {"role": "user", "column": "q"},
                {"role": "assistant", "content": "Always the same answer."},
            ]
        },
    )
    part = prepare_dataset(doc, tmp_path / "cache").parts["all"]
    raw = part.path.read_bytes()
    assert "你好".encode() in raw  # ensure_ascii=False
    assert _messages(part.path)[0][1]["content"] == "Always the same answer."


def test_semicolon_csv(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("q;a\nhello;world\n", encoding="utf-8")
    conv = Conversion.model_validate(
        {
            "delimiter": ";",
            "messages": [{"role": "user", "column": "q"}, {"role": "assistant", "column": "a"}],
        }
    )
    (row,) = list(convert_file(tmp_path / "d.csv", conv, "d.csv"))
    assert row.line == 2 and row.sample is not None
    assert json.loads(row.sample)["messages"][1]["content"] == "world"


@pytest.mark.parametrize(
    ("csv_text", "mapping", "needle", "line"),
    [
        ("Question,Answer\nq,a\n", {"role": "user", "column": "Questions"}, "no column", 2),
        (
            "Question,Answer\nno marker,a\n",
            {"role": "user", "column": "Question", "after": "Input:"},
            "marker 'Input:'",
            2,
        ),
        (
            "Question,Answer\nq,a\n",
            {"role": "user", "template": "{Question} {Missing}"},
            "'Missing'",
            2,
        ),
        (
            "Question,Answer\nq,a\nonly-one-field\n",
            {"role": "user", "column": "Question"},
            "fields",
            3,
        ),
    ],
)
def test_conversion_errors_name_file_and_line(
    tmp_path: Path, csv_text: str, mapping: dict[str, str], needle: str, line: int
) -> None:
    (tmp_path / "d.csv").write_text(csv_text, encoding="utf-8")
    doc = dataset(
        tmp_path,
        path="d.csv",
        convert={"messages": [mapping, {"role": "assistant", "column": "Answer"}]},
    )
    with pytest.raises(DataError) as exc:
        prepare_dataset(doc, tmp_path / "cache")
    problems = [p for p in exc.value.problems if p.code == "CONVERT"]
    assert problems and needle in problems[-1].message
    assert problems[-1].location is not None and problems[-1].location.line == line
    assert problems[-1].location.file.endswith("d.csv")
    assert problems[-1].subject == "Dataset/ds"


def test_json_document_that_is_not_a_list(tmp_path: Path) -> None:
    (tmp_path / "d.json").write_text('{"rows": []}', encoding="utf-8")
    doc = dataset(tmp_path, path="d.json", convert={"messages": [{"role": "user", "column": "q"}]})
    with pytest.raises(DataError) as exc:
        prepare_dataset(doc, tmp_path / "cache")
    assert "records" in (exc.value.problems[0].hint or "")
