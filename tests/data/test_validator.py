"""File-level behaviour of the streaming validator: hashing, statistics, chunking, limits,
crash cases (huge lines, garbage), exact token counts, and the report's forms."""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from data_cases import OK, TOOL, USER, call, calls, line, tool_reply

from reconciler.data import lines as line_splitter
from reconciler.data import validator
from reconciler.data.report import MAX_STORED_PROBLEMS, FileReport
from reconciler.data.validator import (
    validate_lines,
    validate_path,
    validate_stream,
)
from reconciler.errors import DataError

TOOL_SAMPLE = {
    "messages": [
        {"role": "system", "content": "s"},
        USER,
        calls(call()),
        tool_reply(),
        {"role": "assistant", "content": "ok"},
    ],
    "tools": [TOOL],
}


def _write(tmp_path: Path, content: bytes, name: str = "d.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_hash_size_lines_and_statistics(tmp_path: Path) -> None:
    content = line(OK) * 3 + line(TOOL_SAMPLE) + line({"messages": [USER]})
    path = _write(tmp_path, content)
    report = validate_path(path)
    assert report.sha256 == hashlib.sha256(content).hexdigest()
    assert report.bytes == len(content)
    assert report.num_lines == 5
    assert (report.samples, report.valid, report.invalid) == (5, 4, 1)
    assert report.invalid_by_rule == {"M3": 1}
    assert report.roles == {"user": 5, "assistant": 5, "system": 1, "tool": 1}
    assert report.sample_type == "instruct"
    assert report.approx_tokens > 0
    assert report.exact_tokens is None
    assert report.path == str(path)


def test_hash_can_be_turned_off(tmp_path: Path) -> None:
    report = validate_path(_write(tmp_path, line(OK)), hash=False)
    assert report.sha256 == "" and report.valid == 1


@pytest.mark.parametrize(
    ("content", "num_lines", "valid"),
    [
        (line(OK).rstrip(b"\n"), 1, 1),  # last line without newline but complete
        (line(OK).replace(b"\n", b"\r\n") * 2, 2, 2),  # CRLF
        (line(OK) * 2 + b"\n", 3, 2),  # trailing blank line
    ],
)
def test_line_endings(tmp_path: Path, content: bytes, num_lines: int, valid: int) -> None:
    report = validate_path(_write(tmp_path, content))
    assert report.num_lines == num_lines
    assert report.valid == valid


def test_chunk_boundaries_do_not_matter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(5)
    lines = [line(OK), line(TOOL_SAMPLE), b"\n", line({"messages": [USER]}), b"{bad\n"]
    content = b"".join(rng.choice(lines) for _ in range(200)) + b'{"messages": ['
    path = _write(tmp_path, content)
    reference = validate_path(path).to_dict()
    for chunk in (1, 7, 64, 4096):
        monkeypatch.setattr(line_splitter, "CHUNK_SIZE", chunk)
        assert validate_path(path).to_dict() == reference, chunk


def test_ten_megabyte_single_line(tmp_path: Path) -> None:
    big = "word " * 2_000_000
    sample = {"messages": [USER, {"role": "assistant", "content": big}]}
    path = _write(tmp_path, line(sample) + line(OK))
    report = validate_path(path)
    assert report.bytes > 10_000_000
    assert (report.samples, report.valid) == (2, 2)
    broken = _write(tmp_path, line(OK) + line(sample)[:-50] + b"\n", "broken.jsonl")
    report = validate_path(broken)
    (problem,) = report.errors
    assert problem.code == "JSON" and problem.location is not None
    assert problem.location.line == 2
    assert len(problem.message) < 300  # the message does not quote 10 MB


def test_long_line_is_skipped_not_buffered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_splitter, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(line_splitter, "CHUNK_SIZE", 256)
    long = line({"messages": [USER, {"role": "assistant", "content": "x" * 5000}]})
    path = _write(tmp_path, line(OK) + long + line(OK) + long.rstrip(b"\n"))
    report = validate_path(path)
    codes = [(p.code, p.location.line if p.location else 0) for p in report.errors]
    assert codes == [("LONG_LINE", 2), ("LONG_LINE", 4)]
    assert (report.samples, report.valid, report.num_lines) == (4, 2, 4)
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_problems_are_capped_but_counted(tmp_path: Path) -> None:
    bad = line({"messages": [USER]})
    path = _write(tmp_path, bad * (MAX_STORED_PROBLEMS + 500))
    report = validate_path(path)
    assert len(report.problems) == MAX_STORED_PROBLEMS
    assert report.problem_count == MAX_STORED_PROBLEMS + 500
    assert report.invalid == report.invalid_by_rule["M3"] == MAX_STORED_PROBLEMS + 500


@pytest.mark.parametrize(
    "content",
    [
        b'{"messages": [], "n": 1' + b"0" * 5000 + b"}\n",  # integer with 5000 digits
        b'{"\xff": 1}\n',
        b"\x00\x01\x02\n",
        b'"just a string"\n',
        b"null\n",
        b"123\n",
        b"{}\n",
        b'{"messages": null}\n',
        b'{"messages": [null, 1, "x", [], {}]}\n',
        b'{"messages": [{"role": "assistant", "tool_calls": [1, null, {"function": 5}]}]}\n',
        b'{"messages": [{"role": "tool"}], "tools": {"a": 1}}\n',
        b'{"messages": [{"role": ["user"], "content": {"x": 1}}]}\n',
        b'{"text": ["a"]}\n',
    ],
)
def test_odd_inputs_are_reported_not_raised(tmp_path: Path, content: bytes) -> None:
    report = validate_path(_write(tmp_path, content))
    assert report.invalid == 1
    assert report.errors and all(p.location and p.location.line == 1 for p in report.errors)


def test_random_garbage_never_crashes() -> None:
    rng = random.Random(7)
    pieces = [
        b"{",
        b"}",
        b"[",
        b"]",
        b'"',
        b":",
        b",",
        b"\\",
        b"\n",
        b"\xff",
        b"\xef\xbb\xbf",
        b"NaN",
        b'"messages"',
        b'"role"',
        b'"user"',
        b"1e999",
        b" ",
        b"\r",
        b"null",
    ]
    for _ in range(300):
        blob = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 60)))
        report = validate_stream(io.BytesIO(blob), "g.jsonl")
        assert report.valid + report.invalid == report.samples


def test_validation_role_warns_over_one_megabyte(tmp_path: Path) -> None:
    sample = {"messages": [USER, {"role": "assistant", "content": "x" * 1_100_000}]}
    path = _write(tmp_path, line(sample))
    report = validate_path(path, role="validation")
    assert report.ok
    (warning,) = report.problems
    assert warning.code == "VALIDATION_SIZE" and warning.severity == "warning"
    assert not [p for p in validate_path(path).problems if p.code == "VALIDATION_SIZE"]


def test_few_samples_warning_only_for_training(tmp_path: Path) -> None:
    path = _write(tmp_path, line(OK) * 3)
    assert [p.code for p in validate_path(path).problems] == ["FEW_SAMPLES"]
    assert validate_path(path, role="validation").problems == []
    assert validate_path(_write(tmp_path, line(OK) * 10, "ten.jsonl")).problems == []


def test_pretrain_file(tmp_path: Path) -> None:
    report = validate_path(_write(tmp_path, line({"text": "hello"}) * 10 + line({"text": ""})))
    assert report.sample_type == "pretrain" and report.ok and report.valid == 11
    assert report.roles == {}


def test_empty_file_has_no_sample_type(tmp_path: Path) -> None:
    report = validate_path(_write(tmp_path, b""))
    assert report.sample_type is None and [p.code for p in report.errors] == ["EMPTY"]


def test_directory_and_missing_file_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        validate_path(tmp_path)
    assert exc.value.problems[0].code == "NOT_A_FILE"
    with pytest.raises(DataError) as exc:
        validate_path(tmp_path / "nope.jsonl")
    assert exc.value.problems[0].code == "READ"
    assert "nope.jsonl" in str(exc.value)


def test_report_round_trips_through_json(tmp_path: Path) -> None:
    path = _write(tmp_path, line(OK) + b"{oops\n" + line({"messages": [USER]}))
    report = validate_path(path)
    data = json.loads(json.dumps(report.to_dict()))
    again = FileReport.from_dict(data)
    assert again.to_dict() == report.to_dict()
    assert again.problems == report.problems
    assert data["problems"][0]["sample_index"] == 1


def test_summary_line(tmp_path: Path) -> None:
    path = _write(tmp_path, line(OK) * 10 + line({"messages": [USER]}))
    text = validate_path(path, display_name="train.jsonl").summary_line()
    assert text.startswith("train.jsonl: 11 samples (instruct), 10 valid, 1 invalid [M3: 1]")
    assert "sha256 " in text and "tokens" in text


def test_validate_lines() -> None:
    report = validate_lines([line(OK).rstrip(b"\n"), b"", b"[]"], "mem.jsonl")
    assert (report.samples, report.valid, report.invalid) == (2, 1, 1)
    assert sorted(report.invalid_by_rule) == ["BLANK", "F17"]


def test_exact_tokens(tmp_path: Path) -> None:
    pytest.importorskip("sentencepiece")
    path = _write(tmp_path, line(OK) + line({"messages": [USER]}))
    report = validate_path(path, exact_tokens=True)
    # [user "hi", assistant "ok"] is 6 tokens with the v3 tokenizer (reference §2.3);
    # invalid samples are not counted.
    assert report.exact_tokens == 6
    tools = validate_path(_write(tmp_path, line(TOOL_SAMPLE), "t.jsonl"), exact_tokens=True)
    assert tools.exact_tokens is not None and tools.exact_tokens > 30
    pretrain = validate_path(
        _write(tmp_path, line({"text": "hello world"}), "p.jsonl"), exact_tokens=True
    )
    assert pretrain.exact_tokens == 5  # BOS, 3 pieces, EOS


def test_exact_tokens_without_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # As if mistral-common were not installed: its import fails.
    monkeypatch.setitem(sys.modules, "mistral_common.tokens.tokenizers.mistral", None)
    with pytest.raises(DataError) as exc:
        validate_path(_write(tmp_path, line(OK)), exact_tokens=True)
    assert "pip install 'finetune-reconciler[tokens]'" in str(exc.value)


def test_file_over_the_upload_limit_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(validator, "FILE_LIMIT_BYTES", 500)
    report = validate_path(_write(tmp_path, line(OK) * 20))
    assert [p.code for p in report.problems] == ["FILE_SIZE"]
    assert report.problems[0].severity == "warning" and report.ok


def test_validator_imports_only_what_the_sandbox_may_use() -> None:
    code = (
        "import sys, reconciler.data.validator; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pydantic', 'yaml', 'httpx', 'mistral_common', 'jsonschema') "
        "or m.startswith(('reconciler.spec', 'reconciler.engine', 'reconciler.cli'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.strip() == "[]"
