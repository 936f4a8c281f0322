"""Declarative conversion of CSV / JSON / JSONL rows into chat samples (``Dataset.convert``).

This is the seed's pandas snippets as data: each row becomes
``{"messages": [{"role": "system", ...}?, {"role": ..., "content": ...}, ...]}`` where every
message takes its text from a ``column``, a ``template`` (``{column}`` placeholders, rendered
by :mod:`reconciler.spec.template`, never by ``str.format``) or a fixed ``content``,
optionally keeping only the text ``after`` a marker (the seed's
``row["Question"].split("Input:")[1]``) and stripping whitespace.

Output is deterministic: compact JSON (no spaces, as ``json.dumps(separators=(",", ":"),
ensure_ascii=False)`` would write it), keys in a fixed order, UTF-8, one sample per line.
A row that cannot be converted (missing column, missing marker) is reported with its source
line (CSV/JSONL) or record index (JSON) and yields no sample.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson

from reconciler.data import lines as line_splitter
from reconciler.data.lines import LineReader
from reconciler.errors import DataError, Location, Problem
from reconciler.files import NotRegularFile, not_a_file, open_regular
from reconciler.spec.models import Conversion, MessageMapping
from reconciler.spec.template import parse_template, render_template

# Long text cells (medical notes, documents) exceed csv's default 128 kB field limit; a cell
# longer than a sample line may be is refused (a quoted cell can span lines).
csv.field_size_limit(line_splitter.MAX_LINE_BYTES)

MAX_JSON_BYTES = 512 * 1024 * 1024
"""Largest ``.json`` source: a JSON document is parsed whole (JSONL sources stream)."""


@dataclass(frozen=True)
class ConvertedRow:
    """One converted row.

    Attributes:
        line: 1-based line in the source where the row starts (JSON: 0).
        record: 0-based row index in the source.
        sample: the sample as one compact JSON line (no ``\\n``), or None when the row
            could not be converted.
        problem: why the row could not be converted, if it could not.
    """

    line: int
    record: int
    sample: bytes | None
    problem: Problem | None = None


def source_format(path: Path, conversion: Conversion) -> str:
    """The declared format, or the one the extension implies."""
    if conversion.format:
        return conversion.format
    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".json":
        return "json"
    return "jsonl"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value).lower() if isinstance(value, bool) else str(value)
    return orjson.dumps(value).decode()


def _message_text(mapping: MessageMapping, row: dict[str, Any]) -> str:
    """The text of one message for one row; ValueError says what is missing."""
    if mapping.column is not None:
        if mapping.column not in row:
            raise ValueError(f"no column '{mapping.column}'")
        text = _cell(row[mapping.column])
    elif mapping.template is not None:
        # The model validated the template, so parsing cannot fail here (and is cached).
        parts = parse_template(mapping.template)
        try:
            text = render_template(parts, lambda name: _cell(row[name]))
        except KeyError as exc:
            raise ValueError(f"template names column {exc} that the row does not have") from None
    else:
        text = mapping.content or ""
    if mapping.after is not None:
        head, sep, tail = text.partition(mapping.after)
        if not sep:
            raise ValueError(
                f"the {mapping.role} text does not contain the marker {mapping.after!r}"
            )
        text = tail
    if mapping.strip:
        text = text.strip()
    return text


def convert_row(conversion: Conversion, row: dict[str, Any]) -> bytes:
    """One row as a compact JSON sample line; ValueError when it cannot be converted."""
    messages: list[dict[str, str]] = []
    if conversion.system is not None:
        messages.append({"role": "system", "content": conversion.system})
    for mapping in conversion.messages:
        messages.append({"role": mapping.role, "content": _message_text(mapping, row)})
    return orjson.dumps({"messages": messages})


def _bounded_lines(fh: IO[str]) -> Iterator[str]:
    """The lines of a text stream, as iterating it gives them, but never one longer than
    :data:`~reconciler.data.lines.MAX_LINE_BYTES` characters in memory (csv.Error)."""
    limit = line_splitter.MAX_LINE_BYTES
    while line := fh.readline(limit + 1):
        if len(line) > limit and not line.endswith(("\n", "\r")):
            raise csv.Error(f"a line is longer than {limit:,} characters")
        yield line


def _rows_csv(path: Path, conversion: Conversion) -> Iterator[tuple[int, Any]]:
    with io.TextIOWrapper(open_regular(path), encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(_bounded_lines(fh), delimiter=conversion.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        line = reader.line_num + 1
        for values in reader:
            if values:
                if len(values) != len(header):
                    yield (
                        line,
                        ValueError(
                            f"row has {len(values)} fields but the header has {len(header)}"
                        ),
                    )
                else:
                    yield line, dict(zip(header, values, strict=True))
            line = reader.line_num + 1


def _rows_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    with open_regular(path) as fh:
        for lineno, (raw, size, _) in enumerate(LineReader(fh), 1):
            if raw is None:
                yield (
                    lineno,
                    ValueError(
                        f"line of {size:,} bytes is over the "
                        f"{line_splitter.MAX_LINE_BYTES:,}-byte limit"
                    ),
                )
                continue
            if not raw.strip():
                continue
            try:
                yield lineno, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                yield lineno, ValueError(f"invalid JSON: {exc}")


def _rows_json(path: Path, conversion: Conversion, name: str) -> Iterator[tuple[int, Any]]:
    # A JSON document has to be parsed whole; JSONL is the streaming format.
    with open_regular(path) as fh:
        blob = fh.read(MAX_JSON_BYTES + 1)
    if len(blob) > MAX_JSON_BYTES:
        raise DataError(
            [
                Problem(
                    "CONVERT",
                    f"the JSON document is over {MAX_JSON_BYTES // (1 << 20):,} MB; a .json "
                    "source is read whole",
                    Location(name),
                    hint="write the records as JSONL (one JSON object per line), which streams",
                )
            ]
        )
    try:
        data = orjson.loads(blob)
    except orjson.JSONDecodeError as exc:
        raise DataError(
            [
                Problem(
                    "JSON",
                    f"invalid JSON: {exc}",
                    Location(name),
                    hint="a .json source must be one JSON document (use .jsonl for lines)",
                )
            ]
        ) from exc
    if conversion.records is not None:
        if not isinstance(data, dict) or conversion.records not in data:
            raise DataError(
                [
                    Problem(
                        "CONVERT",
                        f"the JSON document has no key '{conversion.records}'",
                        Location(name),
                        hint="set convert.records to the key holding the "
                        "list of records, or omit it when the document is the list",
                    )
                ]
            )
        data = data[conversion.records]
    if not isinstance(data, list):
        raise DataError(
            [
                Problem(
                    "CONVERT",
                    "the JSON document is not a list of records",
                    Location(name),
                    hint="set convert.records to the key holding the list",
                )
            ]
        )
    for record in data:
        yield 0, record


def convert_file(path: Path, conversion: Conversion, name: str) -> Iterator[ConvertedRow]:
    """Convert every row of one source file, in order.

    Args:
        path: the source file.
        conversion: the spec's ``convert`` block.
        name: how the file is named in problems.

    Raises:
        DataError: the file cannot be read, or is not the declared format at all.
    """
    fmt = source_format(path, conversion)
    try:
        if fmt == "csv":
            rows: Iterator[tuple[int, Any]] = _rows_csv(path, conversion)
        elif fmt == "json":
            rows = _rows_json(path, conversion, name)
        else:
            rows = _rows_jsonl(path)
        for index, (line, row) in enumerate(rows):
            if isinstance(row, ValueError):
                yield ConvertedRow(line, index, None, _problem(name, line, index, str(row)))
                continue
            if not isinstance(row, dict):
                yield ConvertedRow(
                    line,
                    index,
                    None,
                    _problem(name, line, index, f"record is not an object ({type(row).__name__})"),
                )
                continue
            try:
                yield ConvertedRow(line, index, convert_row(conversion, row))
            except ValueError as exc:
                yield ConvertedRow(line, index, None, _problem(name, line, index, str(exc)))
    except UnicodeDecodeError as exc:
        raise DataError(
            [
                Problem(
                    "UTF8",
                    f"not valid UTF-8 ({exc.reason} at byte {exc.start})",
                    Location(name),
                    hint="save the file as UTF-8",
                )
            ]
        ) from exc
    except csv.Error as exc:
        raise DataError([Problem("CONVERT", f"CSV error: {exc}", Location(name))]) from exc
    except NotRegularFile as exc:
        raise DataError([not_a_file(name, exc.kind)]) from exc
    except OSError as exc:
        raise DataError(
            [Problem("READ", f"cannot read the file: {exc.strerror or exc}", Location(name))]
        ) from exc


def _problem(name: str, line: int, index: int, message: str) -> Problem:
    return Problem(
        "CONVERT",
        f"row {index + 1} cannot be converted: {message}",
        Location(name, line),
        hint="check the column names in convert.messages against the file's header",
        extra={"record_index": index},
    )
