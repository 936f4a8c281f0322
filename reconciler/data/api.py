"""Entry points of the data layer for commands: check the datasets of specs, or bare files.

* :func:`check_datasets` prepares (validates, converts, cleans, splits) every dataset the
  specs declare, in the chat dialect of their Provider's service (:func:`specs_chat_rules`),
  reports every problem located at the data file and line with the subject ``Dataset/NAME``,
  and adds checks that need the jobs: validation data over the API's 1 MB limit, and the same
  sample in a training and a validation file of one job.
* :func:`check_files` validates bare JSONL files (``reconciler validate --data FILE...``).
  A directory argument means every ``*.jsonl`` file under it (recursively, sorted), like
  mistral-finetune's data sources; a directory without any is an error, and so is a
  ``*.jsonl`` entry that is not a regular file (a FIFO, a device: never opened).

Neither raises for bad data: problems are returned in :class:`DatasetCheck` so that the
command can print all of them (text, JSON or CI annotations) and pick the exit code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.data.cache import DataCache
from reconciler.data.dialect import ChatRules
from reconciler.data.lines import LineReader
from reconciler.data.prepare import (
    PreparedDataset,
    PreparedFile,
    display_path,
    prepare_dataset,
)
from reconciler.data.report import FileReport
from reconciler.data.validator import VALIDATION_LIMIT_BYTES, sample_fingerprint, validate_path
from reconciler.errors import DataError, HasProblems, Location, Problem, Severity, SpecError
from reconciler.files import files_under, not_a_file, open_regular
from reconciler.spec.capabilities import capabilities_for
from reconciler.spec.resolved import SpecSet

FORMAT_VERSION = 1


@dataclass
class DatasetCheck(HasProblems):
    """The outcome of checking training data.

    Attributes:
        problems: every error and warning, in a stable order (datasets by name, then jobs).
        reports: validation reports of the checked files (bare files, or the prepared parts
            of each dataset).
        prepared: prepared datasets by name (``check_datasets`` only; a dataset whose data
            is invalid is missing here).
    """

    problems: list[Problem] = field(default_factory=list)
    reports: list[FileReport] = field(default_factory=list)
    prepared: dict[str, PreparedDataset] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed): exit code 0."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for ``--format json`` (versioned)."""
        return {
            "format_version": FORMAT_VERSION,
            "ok": self.ok,
            "problems": [p.to_dict() for p in self.problems],
            "files": [
                {k: v for k, v in r.to_dict().items() if k != "problems"} for r in self.reports
            ],
            "datasets": {
                name: {
                    part: {k: v for k, v in f.to_dict().items() if k not in ("report",)}
                    for part, f in ds.parts.items()
                }
                for name, ds in sorted(self.prepared.items())
            },
        }


def check_files(paths: Sequence[Path], *, exact_tokens: bool = False) -> DatasetCheck:
    """Validate bare JSONL files (a directory: every ``*.jsonl`` under it).

    Problems carry the file as given and the 1-based line. Files are not cached: this is
    the command for looking at a file right now.
    """
    check = DatasetCheck()
    for given in paths:
        targets: list[Path]
        if given.is_dir():
            targets, others = files_under(given, "*.jsonl")
            check.problems.extend(not_a_file(str(path), kind) for path, kind in others)
            if not targets and not others:
                check.problems.append(
                    Problem(
                        "NOT_A_FILE",
                        "is a directory without any *.jsonl file",
                        Location(str(given)),
                        hint="name a JSONL file, or a directory that holds .jsonl files",
                    )
                )
                continue
        else:
            targets = [given]
        for path in targets:
            name = str(path)
            try:
                report = validate_path(path, exact_tokens=exact_tokens, display_name=name)
            except DataError as exc:
                check.problems.extend(exc.problems)
                continue
            check.reports.append(report)
            check.problems.extend(report.problems)
            _note_hidden(check, report)
    return check


def _note_hidden(check: DatasetCheck, report: FileReport, subject: str | None = None) -> None:
    hidden = report.problem_count - len(report.problems)
    if hidden > 0:
        check.problems.append(
            Problem(
                "MORE",
                f"{hidden:,} more problem(s) in this file not shown (first "
                f"{len(report.problems):,} listed)",
                Location(report.path),
                subject,
                severity=Severity.ERROR if report.invalid_by_rule else Severity.WARNING,
            )
        )


def check_datasets(
    specs: SpecSet,
    *,
    exact_tokens: bool = False,
    cache_dir: Path | None = None,
    chat_rules: ChatRules | None = None,
) -> DatasetCheck:
    """Prepare and check every dataset of the specs, plus the job-level data checks.

    Args:
        specs: the loaded spec set.
        exact_tokens: count tokens with Mistral's tokenizer (optional extra).
        cache_dir: hash cache and prepared files; default ``specs.root/.reconciler/cache``.
        chat_rules: the chat dialect samples are checked with; default: the one of the
            specs' Provider's service (OpenAI's for ``type: openai``, else Mistral's).
    """
    rules = chat_rules or specs_chat_rules(specs)
    cache = DataCache(cache_dir or specs.root / ".reconciler" / "cache")
    check = DatasetCheck()
    # A dataset that jobs only use for validation may well be small.
    for_training = {t.dataset for job in specs.jobs.values() for t in job.training_files}
    for_validation = {v.dataset for job in specs.jobs.values() for v in job.validation_files}
    try:
        for name in sorted(specs.datasets):
            doc = specs.datasets[name]
            try:
                prepared = prepare_dataset(
                    doc,
                    cache.cache_dir,
                    exact_tokens=exact_tokens,
                    cache=cache,
                    chat_rules=rules,
                )
            except (DataError, SpecError) as exc:  # SpecError: a path the workspace refuses
                check.problems.extend(
                    p if p.subject else dataclasses.replace(p, subject=doc.subject)
                    for p in exc.problems
                )
                continue
            check.prepared[name] = prepared
            validation_only = name in for_validation and name not in for_training
            check.problems.extend(
                p for p in prepared.problems if not (validation_only and p.code == "FEW_SAMPLES")
            )
            for part in prepared.parts.values():
                check.reports.append(part.report)
        _job_checks(specs, check, cache)
    finally:
        cache.save()
    return check


def specs_chat_rules(specs: SpecSet) -> ChatRules:
    """The chat dialect of the specs' Provider's service (Mistral's without a Provider)."""
    caps = capabilities_for(specs.provider.doc.type if specs.provider else None)
    return ChatRules.named(caps.chat_dialect) if caps is not None else ChatRules.mistral


def _job_checks(specs: SpecSet, check: DatasetCheck, cache: DataCache) -> None:
    """Checks that need to know how jobs use datasets."""
    warned_size: set[str] = set()
    done_pairs: set[tuple[str, str]] = set()
    for job in specs.jobs.values():
        val_files: list[tuple[str, PreparedFile]] = []
        for ref in job.validation_files:
            pf = _part(check, ref.dataset, ref.part)
            if pf is None:
                continue
            val_files.append((ref.address, pf))
            # A split's validation part is already checked with its role; 'all' parts are not.
            if (
                ref.part == "all"
                and pf.bytes > VALIDATION_LIMIT_BYTES
                and (ref.address not in warned_size)
            ):
                warned_size.add(ref.address)
                check.problems.append(
                    Problem(
                        "VALIDATION_SIZE",
                        f"{ref.address} is {pf.bytes:,} bytes, used as validation data by "
                        f"job.{job.name}; the API accepts at most 1 MB",
                        job.location,
                        f"FineTuningJob/{job.source}",
                        hint="split the dataset (split.validation_fraction with "
                        "max_validation_bytes: 1000000)",
                        severity=Severity.WARNING,
                    )
                )
        for tref in job.training_files:
            tf = _part(check, tref.dataset, tref.part)
            if tf is None:
                continue
            for vaddr, vf in val_files:
                if (tf.sha256, vf.sha256) in done_pairs:
                    continue
                done_pairs.add((tf.sha256, vf.sha256))
                count = _overlap(cache, tf, vf)
                if count:
                    check.problems.append(
                        Problem(
                            "OVERLAP",
                            f"{count:,} sample(s) of {tref.address} also appear in {vaddr} "
                            f"(job.{job.name}); validation loss will look better than it is",
                            job.location,
                            f"FineTuningJob/{job.source}",
                            hint="remove the shared samples from one of the files, or use one "
                            "dataset with 'split'",
                            severity=Severity.WARNING,
                        )
                    )


def _part(check: DatasetCheck, dataset: str, part: str) -> PreparedFile | None:
    prepared = check.prepared.get(dataset)
    return prepared.parts.get(part) if prepared else None


def _overlap(cache: DataCache, train: PreparedFile, val: PreparedFile) -> int:
    """Training samples that also occur in the validation file (cached by the two hashes)."""
    cached = cache.get_overlap(train.sha256, val.sha256)
    if cached is not None:
        return cached
    # The validation file is small (API limit 1 MB); the training file is streamed.
    try:
        with open_regular(val.path) as fh:
            seen = {sample_fingerprint(line) for line, _, _ in LineReader(fh) if line}
        count = 0
        with open_regular(train.path) as fh:
            for line, _, _ in LineReader(fh):
                if line and sample_fingerprint(line) in seen:
                    count += 1
    except OSError:
        return 0
    cache.put_overlap(train.sha256, val.sha256, count)
    return count


__all__ = [
    "DatasetCheck",
    "PreparedDataset",
    "PreparedFile",
    "check_datasets",
    "check_files",
    "display_path",
    "specs_chat_rules",
]
