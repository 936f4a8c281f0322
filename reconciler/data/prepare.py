"""Preparation of a ``Dataset``: the exact files that get uploaded, deterministically.

A dataset's sources (``path`` or ``paths``, in order; a directory means its ``*.jsonl``
files, recursively, sorted) are validated, converted (``convert``), cleaned
(``on_invalid: skip``) and split (``split``) into parts: ``all`` without a split,
``train`` and ``validation`` with one. Same inputs give byte-identical parts, hence the same
sha256, hence no re-upload.

Where the parts live:

* A single JSONL source with nothing to convert, split or drop is uploaded **as is**: its
  :class:`PreparedFile` points at the source file itself (no copy of a multi-GB file).
* Everything else is written to ``cache_dir/prepared/<sha256>.jsonl`` (content-keyed; written
  to a temporary file and renamed, never in place, never over a source). Samples are written
  as their source line (a converted row: compact JSON, ``ensure_ascii=False``), without a
  byte order mark or ``\\r``, each ending in ``\\n``.

Split: sample indices ``0..n-1`` are shuffled with ``random.Random(seed)``; the first
``round(n * validation_fraction)`` (at least 1 and at most n-1 when n >= 2) go to validation,
skipping any that would push it over ``max_validation_bytes`` (those stay in train). Both
parts keep the source order.

Results (including the reports) are remembered in the cache keyed by the sources' paths,
sizes and mtimes and the dataset's settings, so an unchanged dataset is not prepared again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import random
import stat
import tempfile
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from reconciler.data.cache import DataCache
from reconciler.data.convert import convert_file
from reconciler.data.dialect import ChatRules
from reconciler.data.lines import LineReader
from reconciler.data.report import FileReport
from reconciler.data.validator import LineValidator, validate_path
from reconciler.errors import DataError, Location, Problem, Severity, SpecError
from reconciler.files import NOT_A_FILE_HINT, files_under, kind_of, open_regular
from reconciler.spec.models import Dataset
from reconciler.spec.resolved import LoadedDocument

PREPARE_VERSION = 1
"""Bump when the output format changes, so cached preparations are redone."""
MAX_DROPPED_SHOWN = 20
"""Dropped samples listed one by one in the problems (all are counted)."""


@dataclass
class PreparedFile:
    """One part of a prepared dataset: the file that is uploaded.

    Attributes:
        part: 'all', 'train' or 'validation'.
        path: the file to upload (the source itself, or a file under ``cache_dir/prepared``).
        sha256: hex digest of its bytes.
        bytes: its size.
        num_lines: its lines (one sample each).
        upload_filename: ``{filename or name}[-{part}]-{sha256[:12]}.jsonl``.
        report: the validation report of this file.
        dropped: samples dropped by ``on_invalid: skip`` (counted on the ``all`` or, with a
            split, on the ``train`` part; the sources' total).
        dropped_by_rule: dropped samples per rule code.
    """

    part: str
    path: Path
    sha256: str
    bytes: int
    num_lines: int
    upload_filename: str
    report: FileReport
    dropped: int = 0
    dropped_by_rule: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (cache manifests, ``--format json``)."""
        return {
            "part": self.part,
            "path": str(self.path),
            "sha256": self.sha256,
            "bytes": self.bytes,
            "num_lines": self.num_lines,
            "upload_filename": self.upload_filename,
            "dropped": self.dropped,
            "dropped_by_rule": self.dropped_by_rule,
            "report": self.report.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreparedFile:
        """Inverse of :meth:`to_dict`."""
        return cls(
            part=data["part"],
            path=Path(data["path"]),
            sha256=data["sha256"],
            bytes=data["bytes"],
            num_lines=data["num_lines"],
            upload_filename=data["upload_filename"],
            report=FileReport.from_dict(data["report"]),
            dropped=data["dropped"],
            dropped_by_rule=dict(data["dropped_by_rule"]),
        )


@dataclass
class PreparedDataset:
    """A dataset ready to upload.

    Attributes:
        name: the Dataset document's name.
        parts: prepared files by part ('all', or 'train' and 'validation').
        problems: warnings (dropped samples, size limits, ...); errors raise instead.
        sources: validation reports of the source files as read (before skipping).
    """

    name: str
    parts: dict[str, PreparedFile]
    problems: list[Problem] = field(default_factory=list)
    sources: list[FileReport] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "parts": {k: v.to_dict() for k, v in self.parts.items()},
            "problems": [p.to_dict() for p in self.problems],
            "sources": [r.to_dict() for r in self.sources],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PreparedDataset:
        """Inverse of :meth:`to_dict`."""
        return cls(
            name=data["name"],
            parts={k: PreparedFile.from_dict(v) for k, v in data["parts"].items()},
            problems=[Problem.from_dict(p) for p in data["problems"]],
            sources=[FileReport.from_dict(r) for r in data["sources"]],
        )


def display_path(path: Path) -> str:
    """How a file is named in messages: relative to the working directory when inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def upload_filename(spec: Dataset, part: str, sha256: str) -> str:
    """Remote file name of a part; the content hash makes it unique per content."""
    base = spec.filename or spec.name
    if base.endswith(".jsonl"):
        base = base[: -len(".jsonl")]
    suffix = "" if part == "all" else f"-{part}"
    return f"{base}{suffix}-{sha256[:12]}.jsonl"


def resolve_sources(doc: LoadedDocument[Dataset]) -> list[Path]:
    """The dataset's source files in order (directories expanded); DataError if missing."""
    spec = doc.doc
    problems: list[Problem] = []
    files: list[Path] = []
    for i, rel in enumerate(spec.sources):
        at: tuple[str | int, ...] = ("path",) if spec.path is not None else ("paths", i)
        where = doc.locate(*at)
        path = doc.resolve_path(rel, *at)
        try:
            mode = os.stat(path).st_mode
        except OSError:
            mode = 0
        if stat.S_ISDIR(mode):
            pattern = "*.jsonl"
            if spec.convert is not None and spec.convert.format in ("csv", "json"):
                pattern = f"*.{spec.convert.format}"
            found, others = files_under(path, pattern)
            problems.extend(
                _not_regular(doc, where, f"'{display_path(other)}' (in '{rel}')", kind)
                for other, kind in others
            )
            if not found and not others:
                problems.append(
                    Problem(
                        "READ",
                        f"directory '{rel}' holds no {pattern} file",
                        where,
                        doc.subject,
                        hint="name a data file, or put the data files in this directory",
                    )
                )
            for one in found:
                # A link inside the directory must not lead out of the workspace either.
                try:
                    files.append(doc.resolve_found_file(one, *at))
                except SpecError as exc:
                    problems.extend(exc.problems)
        elif not mode:
            problems.append(
                Problem(
                    "READ",
                    f"data file '{rel}' does not exist ({display_path(path)})",
                    where,
                    doc.subject,
                    hint="paths are relative to the spec file that names them",
                )
            )
        elif not stat.S_ISREG(mode):
            problems.append(_not_regular(doc, where, f"data file '{rel}'", kind_of(mode)))
        else:
            files.append(path)
    if problems:
        raise DataError(problems, summary=f"{doc.subject}: data files missing or unreadable")
    return files


def _not_regular(doc: LoadedDocument[Dataset], where: Location, what: str, kind: str) -> Problem:
    """``NOT_A_FILE`` at the spec: a source is a device, FIFO or socket (never opened)."""
    return Problem(
        "NOT_A_FILE",
        f"{what} is {kind}, not a regular file",
        where,
        doc.subject,
        hint=NOT_A_FILE_HINT,
    )


def cached_validate(
    cache: DataCache,
    path: Path,
    *,
    role: str,
    exact_tokens: bool,
    display_name: str | None = None,
    data_format: str = "chat",
    chat_rules: ChatRules = ChatRules.mistral,
) -> FileReport:
    """:func:`validate_path` answered from the cache when the file is unchanged (and was
    checked with the same format and chat dialect)."""
    name = display_name or display_path(path)
    dialect = chat_rules.name
    report = cache.get_report(
        path,
        role=role,
        exact_tokens=exact_tokens,
        display_name=name,
        data_format=data_format,
        dialect=dialect,
    )
    if report is None:
        report = validate_path(
            path,
            role=role,
            exact_tokens=exact_tokens,
            display_name=name,
            data_format=data_format,
            chat_rules=chat_rules,
        )
        cache.put_report(
            path, report, exact_tokens=exact_tokens, data_format=data_format, dialect=dialect
        )
    return report


def _with_subject(problems: list[Problem], subject: str) -> list[Problem]:
    return [p if p.subject else dataclasses.replace(p, subject=subject) for p in problems]


def prepare_dataset(
    doc: LoadedDocument[Dataset],
    cache_dir: Path,
    *,
    exact_tokens: bool = False,
    cache: DataCache | None = None,
    chat_rules: ChatRules = ChatRules.mistral,
) -> PreparedDataset:
    """Validate, convert, clean and split one dataset into the files to upload.

    Args:
        doc: the Dataset document (paths resolve against its file).
        cache_dir: where prepared files and the hash cache live.
        exact_tokens: count tokens with Mistral's tokenizer in the parts' reports.
        chat_rules: the chat dialect samples are checked with (the Provider's service's).
        cache: a cache shared by several calls (saved by its owner); by default one on
            ``cache_dir``, saved before returning.

    Raises:
        DataError: sources missing or unreadable, invalid samples with ``on_invalid:
            error`` (every problem, with file and line), or nothing left to upload.
    """
    own_cache = cache is None
    store = cache or DataCache(cache_dir)
    try:
        return _prepare(doc, store, exact_tokens, chat_rules)
    finally:
        if own_cache:
            store.save()


def _prepare(
    doc: LoadedDocument[Dataset], cache: DataCache, exact_tokens: bool, chat_rules: ChatRules
) -> PreparedDataset:
    spec = doc.doc
    files = resolve_sources(doc)
    plain = spec.convert is None and spec.split is None and len(files) == 1
    if plain:
        report = cached_validate(
            cache,
            files[0],
            role="training",
            exact_tokens=exact_tokens,
            data_format=spec.format,
            chat_rules=chat_rules,
        )
        if report.ok:
            part = PreparedFile(
                part="all",
                path=files[0],
                sha256=report.sha256,
                bytes=report.bytes,
                num_lines=report.num_lines,
                upload_filename=upload_filename(spec, "all", report.sha256),
                report=report,
            )
            warnings = _with_subject(report.warnings, doc.subject)
            return PreparedDataset(spec.name, {"all": part}, warnings, [report])
        if spec.on_invalid == "error":
            raise _invalid(doc, [report])

    key = _manifest_key(spec, files, exact_tokens, chat_rules)
    manifest = cache.get_prepared(key)
    if manifest is not None:
        try:
            prepared = PreparedDataset.from_dict(manifest)
            if all(
                p.path.is_file() and p.path.stat().st_size == p.bytes
                for p in prepared.parts.values()
            ):
                return prepared
        except (KeyError, TypeError, ValueError, OSError):
            pass
    prepared = _build(doc, cache, files, exact_tokens, chat_rules)
    cache.put_prepared(key, prepared.to_dict())
    return prepared


def _manifest_key(
    spec: Dataset, files: list[Path], exact_tokens: bool, chat_rules: ChatRules
) -> str:
    sources = []
    for f in files:
        st = f.stat()
        sources.append([str(f), st.st_size, st.st_mtime_ns])
    settings = spec.model_dump(
        mode="json", include={"name", "convert", "split", "on_invalid", "filename"}
    )
    if spec.format != "chat":
        # Chat keys stay as they were before formats existed (no needless re-preparation).
        settings["format"] = spec.format
    if chat_rules is not ChatRules.mistral:
        # Likewise for the dialect: a dataset prepared under another's rules is its own entry.
        settings["dialect"] = chat_rules.name
    blob = orjson.dumps(
        {"v": PREPARE_VERSION, "sources": sources, "spec": settings, "exact": exact_tokens},
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(blob).hexdigest()


def _invalid(doc: LoadedDocument[Dataset], reports: list[FileReport]) -> DataError:
    problems: list[Problem] = []
    invalid = 0
    for r in reports:
        problems.extend(r.problems)
        invalid += r.invalid
        hidden = r.problem_count - len(r.problems)
        if hidden > 0:
            problems.append(
                Problem(
                    "MORE",
                    f"{hidden:,} more problem(s) not shown",
                    Location(r.path),
                    severity=Severity.ERROR,
                )
            )
    return DataError(
        _with_subject(problems, doc.subject),
        summary=f"{doc.subject}: {invalid:,} invalid sample(s); fix them, or set "
        "'on_invalid: skip' to drop them from the uploaded file",
    )


class _Writer:
    """Writes sample lines to a temporary file in the prepared dir, hashing as it goes."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".part-", suffix=".tmp", dir=directory)
        self.tmp = Path(name)
        self.fh: IO[bytes] = os.fdopen(fd, "wb", buffering=1 << 20)
        self.hasher = hashlib.sha256()
        self.size = 0
        self.lines = 0

    def write(self, line: bytes) -> None:
        data = line + b"\n"
        self.fh.write(data)
        self.hasher.update(data)
        self.size += len(data)
        self.lines += 1

    def finish(self) -> tuple[Path, str]:
        """Close and move to ``<sha256>.jsonl`` (kept if it exists: same bytes)."""
        self.fh.close()
        sha = self.hasher.hexdigest()
        target = self.tmp.parent / f"{sha}.jsonl"
        if target.is_file() and target.stat().st_size == self.size:
            self.tmp.unlink()
        else:
            os.replace(self.tmp, target)
        return target, sha

    def discard(self) -> None:
        if not self.fh.closed:
            self.fh.close()
        self.tmp.unlink(missing_ok=True)


def _clean(line: bytes) -> bytes:
    """The bytes a kept sample is written as: no BOM, no trailing ``\\r``."""
    if line.startswith(b"\xef\xbb\xbf"):
        line = line[3:]
    return line.rstrip(b"\r")


def _samples(
    path: Path, doc: LoadedDocument[Dataset], validator: LineValidator
) -> Iterator[tuple[bytes, bool, int]]:
    """(line, valid, lineno) for every sample of one source, converted if asked."""
    spec = doc.doc
    if spec.convert is not None:
        for row in convert_file(path, spec.convert, validator.report.path):
            if row.sample is None:
                assert row.problem is not None
                validator.report.samples += 1
                validator.report.invalid += 1
                by = validator.report.invalid_by_rule
                by["CONVERT"] = by.get("CONVERT", 0) + 1
                validator.report.add(row.problem)
                validator.last_issues = [("CONVERT", row.problem.message, None)]
                yield b"", False, row.line
            else:
                yield row.sample, validator.feed(row.sample, row.line), row.line
        return
    try:
        with open_regular(path) as fh:
            for lineno, (line, size, terminated) in enumerate(LineReader(fh), 1):
                if line is None:
                    validator.long_line(lineno, size)
                    yield b"", False, lineno
                    continue
                valid = validator.feed(line, lineno, terminated=terminated)
                if line and not line.isspace():
                    yield line, valid, lineno
                else:
                    validator.last_issues = []  # blank lines are not samples: nothing dropped
    except OSError as exc:
        raise DataError(
            [
                Problem(
                    "READ",
                    f"cannot read the file: {exc.strerror or exc}",
                    Location(validator.report.path),
                    doc.subject,
                )
            ]
        ) from exc


def _build(
    doc: LoadedDocument[Dataset],
    cache: DataCache,
    files: list[Path],
    exact_tokens: bool,
    chat_rules: ChatRules,
) -> PreparedDataset:
    spec = doc.doc
    skip = spec.on_invalid == "skip"
    prepared_dir = cache.prepared_dir
    combined = _Writer(prepared_dir)
    offsets = array("Q", [0])
    dropped_by_rule: dict[str, int] = {}
    dropped_problems: list[Problem] = []
    dropped = 0
    sources: list[FileReport] = []
    try:
        for path in files:
            validator = LineValidator(
                display_path(path),
                role="training",
                data_format=spec.format,
                chat_rules=chat_rules,
            )
            for line, valid, lineno in _samples(path, doc, validator):
                if valid:
                    combined.write(_clean(line))
                    offsets.append(combined.size)
                    continue
                dropped += 1
                for code in {c for c, _, _ in validator.last_issues}:
                    dropped_by_rule[code] = dropped_by_rule.get(code, 0) + 1
                if skip and len(dropped_problems) < MAX_DROPPED_SHOWN:
                    issue = validator.last_issues[0] if validator.last_issues else ("?", "", None)
                    dropped_problems.append(
                        Problem(
                            "SKIPPED",
                            f"sample dropped (on_invalid: skip): {issue[1]} [{issue[0]}]",
                            Location(validator.report.path, lineno),
                            doc.subject,
                            severity=Severity.WARNING,
                        )
                    )
            # Whole-file problems (blank lines, BOM) are fixed by rewriting, not dropped.
            sources.append(validator.finish(size=path.stat().st_size))
        if not skip and (dropped or any(not r.ok for r in sources)):
            raise _invalid(doc, sources)
        n = len(offsets) - 1
        problems: list[Problem] = []
        if dropped:
            by = ", ".join(f"{c}: {k:,}" for c, k in sorted(dropped_by_rule.items()))
            problems.append(
                Problem(
                    "SKIPPED",
                    f"{dropped:,} invalid sample(s) dropped from the uploaded file ({by}); "
                    f"{n:,} kept",
                    doc.locate("on_invalid"),
                    doc.subject,
                    hint="fix the source data to keep them (the source files are unchanged)",
                    severity=Severity.WARNING,
                )
            )
            problems.extend(dropped_problems)
        if n == 0:
            raise DataError(
                [
                    Problem(
                        "EMPTY",
                        "no valid sample left to upload",
                        doc.location,
                        doc.subject,
                        hint="check the data files and the convert settings",
                    )
                ]
            )
        if spec.split is None:
            path, sha = combined.finish()
            parts = {"all": _part(doc, cache, "all", path, sha, exact_tokens, chat_rules)}
        else:
            parts = _split(doc, cache, combined, offsets, exact_tokens, chat_rules)
            combined.discard()
        first = parts.get("all") or parts["train"]
        first.dropped = dropped
        first.dropped_by_rule = dropped_by_rule
        # Warnings about a prepared part (size, few samples) point at the Dataset document:
        # the file itself lives in the cache, which is not where the user can act.
        where = doc.locate("split") if spec.split is not None else doc.location
        for part in parts.values():
            problems.extend(
                dataclasses.replace(
                    p,
                    location=where,
                    subject=doc.subject,
                    message=f"{spec.name}[{part.part}]: {p.message}",
                )
                for p in part.report.problems
                if p.severity is Severity.WARNING
            )
        return PreparedDataset(spec.name, parts, problems, sources)
    except BaseException:
        combined.discard()
        raise


def _part(
    doc: LoadedDocument[Dataset],
    cache: DataCache,
    part: str,
    path: Path,
    sha: str,
    exact_tokens: bool,
    chat_rules: ChatRules,
) -> PreparedFile:
    role = "validation" if part == "validation" else "training"
    report = cached_validate(
        cache,
        path,
        role=role,
        exact_tokens=exact_tokens,
        display_name=f"{display_path(path)} ({doc.doc.name}[{part}])",
        data_format=doc.doc.format,
        chat_rules=chat_rules,
    )
    return PreparedFile(
        part=part,
        path=path,
        sha256=sha,
        bytes=report.bytes,
        num_lines=report.num_lines,
        upload_filename=upload_filename(doc.doc, part, sha),
        report=report,
    )


def split_indices(n: int, fraction: float, seed: int) -> list[int]:
    """Indices (ascending) of the samples that go to validation, before any byte cap.

    Deterministic: ``random.Random(seed)`` shuffles ``0..n-1`` and the first
    ``round(n * fraction)`` (at least 1 and at most n-1 when n >= 2) are taken.
    """
    if n < 2:
        return []
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = min(max(round(n * fraction), 1), n - 1)
    return order[:k]


def _split(
    doc: LoadedDocument[Dataset],
    cache: DataCache,
    combined: _Writer,
    offsets: array[int],
    exact_tokens: bool,
    chat_rules: ChatRules,
) -> dict[str, PreparedFile]:
    split = doc.doc.split
    assert split is not None
    n = len(offsets) - 1
    if n < 2:
        raise DataError(
            [
                Problem(
                    "SPLIT",
                    f"cannot split {n} sample(s) into train and validation",
                    doc.locate("split"),
                    doc.subject,
                    hint="remove 'split' or add samples",
                )
            ]
        )
    combined.fh.close()
    chosen = bytearray(n)
    total = 0
    cap = split.max_validation_bytes
    taken = 0
    for idx in split_indices(n, split.validation_fraction, split.seed):
        size = offsets[idx + 1] - offsets[idx]
        if cap is not None and total + size > cap:
            continue  # over the cap: this sample stays in train
        chosen[idx] = 1
        total += size
        taken += 1
    if taken == 0:
        raise DataError(
            [
                Problem(
                    "SPLIT",
                    f"max_validation_bytes {cap} is smaller than any sample picked for validation",
                    doc.locate("split", "max_validation_bytes"),
                    doc.subject,
                    hint="raise max_validation_bytes",
                )
            ]
        )
    train = _Writer(combined.tmp.parent)
    val = _Writer(combined.tmp.parent)
    try:
        with combined.tmp.open("rb") as fh:
            for i, line in enumerate(LineReader(fh)):
                raw = line[0]
                if i >= n or raw is None:
                    break
                (val if chosen[i] else train).write(raw)
        train_path, train_sha = train.finish()
        val_path, val_sha = val.finish()
    except BaseException:
        train.discard()
        val.discard()
        raise
    return {
        "train": _part(doc, cache, "train", train_path, train_sha, exact_tokens, chat_rules),
        "validation": _part(doc, cache, "validation", val_path, val_sha, exact_tokens, chat_rules),
    }
