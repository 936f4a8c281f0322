"""Only regular files are read as data: a FIFO, /dev/zero, a directory or a socket is a clean
``NOT_A_FILE`` problem that says what the path is (never a hang, never a traceback), and an
endless line from any stream is never held in memory."""

from __future__ import annotations

import io
import json
import os
import socket
import stat
import tracemalloc
from pathlib import Path

import pytest
from data_helpers import dataset
from typer.testing import CliRunner

import reconciler.cli.cmd_validate  # noqa: F401  (registers validate on the app)
from reconciler import files
from reconciler.cli.app import app
from reconciler.data import convert
from reconciler.data import lines as line_splitter
from reconciler.data.api import check_files
from reconciler.data.lines import LineReader
from reconciler.data.prepare import prepare_dataset
from reconciler.data.validator import validate_path
from reconciler.errors import DataError, SpecError
from reconciler.files import NotRegularFile, files_under, kind_of, open_regular

# A FIFO without a writer blocks a plain open() forever: these tests must fail, not hang.
pytestmark = pytest.mark.timeout(60)

CHAT = b'{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok"}]}\n'
DEV_ZERO = Path("/dev/zero")
needs_dev_zero = pytest.mark.skipif(not DEV_ZERO.exists(), reason="no /dev/zero")


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


def _not_a_file(exc: pytest.ExceptionInfo[DataError]) -> str:
    (problem,) = exc.value.problems
    assert problem.code == "NOT_A_FILE" and problem.severity == "error"
    return problem.message


def test_a_fifo_is_refused_without_blocking(fifo: Path) -> None:
    with pytest.raises(DataError) as exc:
        validate_path(fifo)
    assert _not_a_file(exc) == "is a FIFO (named pipe), not a regular file"
    assert exc.value.problems[0].location is not None
    assert exc.value.problems[0].location.file == str(fifo)


@needs_dev_zero
def test_dev_zero_is_refused_and_never_read(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        validate_path(DEV_ZERO)
    assert _not_a_file(exc) == "is a character device, not a regular file"
    # The same through a symlink, which Git can carry in a pull request.
    link = tmp_path / "train.jsonl"
    link.symlink_to(DEV_ZERO)
    with pytest.raises(DataError) as exc:
        validate_path(link)
    assert _not_a_file(exc) == "is a character device, not a regular file"


def test_a_directory_and_a_socket_say_what_they_are(tmp_path: Path) -> None:
    with pytest.raises(DataError) as exc:
        validate_path(tmp_path)
    assert _not_a_file(exc) == "is a directory, not a regular file"
    assert "DIR/*.jsonl" in (exc.value.problems[0].hint or "")
    path = tmp_path / "s.jsonl"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        with pytest.raises(DataError) as exc:
            validate_path(path)
    assert _not_a_file(exc) == "is a socket, not a regular file"


def test_a_path_swapped_for_a_fifo_after_the_stat_is_not_waited_for(
    fifo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: the path was a regular file when looked at and is a FIFO when opened.
    regular = tmp_path / "regular.jsonl"
    regular.write_bytes(CHAT)
    real_stat = os.stat
    monkeypatch.setattr(
        files.os, "stat", lambda p, *a, **k: real_stat(regular if p == fifo else p, *a, **k)
    )
    with pytest.raises(NotRegularFile) as exc:
        open_regular(fifo)
    assert exc.value.kind == "a FIFO (named pipe)"


def test_kinds_and_directory_listing(tmp_path: Path, fifo: Path) -> None:
    assert kind_of(stat.S_IFREG) == "a regular file"
    assert kind_of(stat.S_IFBLK) == "a block device"
    (tmp_path / "sub.jsonl").mkdir()  # a directory matching the pattern is skipped
    (tmp_path / "a.jsonl").write_bytes(CHAT)
    (tmp_path / "dangling.jsonl").symlink_to(tmp_path / "nowhere")
    found, others = files_under(tmp_path, "*.jsonl")
    assert found == [tmp_path / "a.jsonl"]
    assert others == [(fifo, "a FIFO (named pipe)")]


@needs_dev_zero
def test_validate_data_on_dev_zero_a_fifo_and_a_folder_with_a_fifo(
    tmp_path: Path, fifo: Path
) -> None:
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "good.jsonl").write_bytes(CHAT * 10)
    os.mkfifo(folder / "x.jsonl")
    check = check_files([DEV_ZERO, fifo, folder])
    assert [(p.code, p.location.file if p.location else "", p.message) for p in check.problems] == [
        ("NOT_A_FILE", "/dev/zero", "is a character device, not a regular file"),
        ("NOT_A_FILE", str(fifo), "is a FIFO (named pipe), not a regular file"),
        ("NOT_A_FILE", str(folder / "x.jsonl"), "is a FIFO (named pipe), not a regular file"),
    ]
    assert [r.path for r in check.reports] == [str(folder / "good.jsonl")]
    assert not check.ok


@needs_dev_zero
def test_the_cli_exits_1_with_the_reason(tmp_path: Path, fifo: Path) -> None:
    runner = CliRunner()
    for target, kind in ((DEV_ZERO, "a character device"), (fifo, "a FIFO (named pipe)")):
        result = runner.invoke(app, ["validate", "--data", str(target)], catch_exceptions=False)
        assert result.exit_code == 1, result.output
        assert f"{target}: error: is {kind}, not a regular file [NOT_A_FILE]" in result.output
        assert "Traceback" not in result.output


@needs_dev_zero
@pytest.mark.parametrize("convert", [None, {"messages": [{"role": "user", "column": "q"}]}])
@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("pipe.jsonl", "it is a FIFO, not a regular file or a directory"),
        ("zero.jsonl", "/dev/zero"),  # a link out of the workspace, to a device
    ],
)
def test_dataset_sources_that_are_not_regular_files(
    tmp_path: Path, fifo: Path, convert: dict[str, object] | None, name: str, reason: str
) -> None:
    """A dataset naming a FIFO or a device is refused where its path is resolved, before
    anything is opened (the data layer's own NOT_A_FILE check, for files found inside a
    directory and for races, is covered below)."""
    (tmp_path / "zero.jsonl").symlink_to(DEV_ZERO)
    extra = {"convert": convert} if convert else {}
    doc = dataset(tmp_path, paths=[name], **extra)
    with pytest.raises(SpecError) as exc:
        prepare_dataset(doc, tmp_path / "cache")
    ((problem,),) = [exc.value.problems]
    assert problem.code == "path-not-allowed"
    assert problem.message.startswith(f"'{name}': ") and reason in problem.message
    assert problem.subject == "Dataset/ds"
    assert problem.location and problem.location.file == "specs.yaml"


def test_a_fifo_inside_a_dataset_directory_is_named(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a.jsonl").write_bytes(CHAT * 10)
    os.mkfifo(tmp_path / "dir" / "b.jsonl")
    with pytest.raises(DataError) as exc:
        prepare_dataset(dataset(tmp_path, path="dir"), tmp_path / "cache")
    ((code, message),) = [(p.code, p.message) for p in exc.value.problems]
    assert code == "NOT_A_FILE"
    assert message.endswith("b.jsonl' (in 'dir') is a FIFO (named pipe), not a regular file")


class _Zeros(io.RawIOBase):
    """An endless stream of NUL bytes (like /dev/zero), cut off after ``total`` bytes so
    that the test ends; every read returns the same preallocated chunk."""

    def __init__(self, chunk: int, total: int) -> None:
        self._chunk = b"\0" * chunk
        self._left = total

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        self._left -= len(self._chunk)
        return self._chunk


def test_an_endless_line_from_a_stream_is_never_buffered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(line_splitter, "MAX_LINE_BYTES", 1 << 20)
    total = 64 << 20
    tracemalloc.start()
    try:
        reader = LineReader(_Zeros(line_splitter.CHUNK_SIZE, total))
        got = list(reader)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got == [(None, total, False)] and reader.size == total
    # Buffering the line would take 64 MB; the reader holds about one chunk (1 MB).
    assert peak < 8 << 20, peak


def test_overlong_lines_in_conversion_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(line_splitter, "MAX_LINE_BYTES", 100)
    monkeypatch.setattr(line_splitter, "CHUNK_SIZE", 16)  # at most MAX_LINE_BYTES
    row = json.dumps({"q": "x" * 200, "a": "y"}).encode()
    (tmp_path / "rows.jsonl").write_bytes(row + b"\n" + b'{"q": "ok", "a": "fine"}\n')
    mapping = {
        "messages": [{"role": "user", "column": "q"}, {"role": "assistant", "column": "a"}],
    }
    doc = dataset(tmp_path, path="rows.jsonl", convert=mapping)
    with pytest.raises(DataError) as exc:
        prepare_dataset(doc, tmp_path / "cache")
    messages = [p.message for p in exc.value.problems if p.code == "CONVERT"]
    assert messages == [
        f"row 1 cannot be converted: line of {len(row)} bytes is over the 100-byte limit"
    ]

    (tmp_path / "rows.csv").write_text("q,a\n" + "x" * 200 + ",y\n", encoding="utf-8")
    doc = dataset(tmp_path, path="rows.csv", convert=mapping)
    with pytest.raises(DataError) as exc:
        prepare_dataset(doc, tmp_path / "cache")
    ((code, message),) = [(p.code, p.message) for p in exc.value.problems]
    assert code == "CONVERT" and message == "CSV error: a line is longer than 100 characters"


def test_csv_lines_are_read_as_before(tmp_path: Path) -> None:
    # Quoted newlines, CRLF and a BOM: line numbers and cells as csv gives them.
    text = '\ufeffq,a\r\n"multi\nline",one\r\nsecond,two\r\n'
    (tmp_path / "d.csv").write_text(text, encoding="utf-8", newline="")
    conv = convert.Conversion.model_validate(
        {"messages": [{"role": "user", "column": "q"}, {"role": "assistant", "column": "a"}]}
    )
    rows = list(convert.convert_file(tmp_path / "d.csv", conv, "d.csv"))
    assert [(r.line, json.loads(r.sample or b"null")["messages"][0]["content"]) for r in rows] == [
        (2, "multi\nline"),
        (4, "second"),
    ]
