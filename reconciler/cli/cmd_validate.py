"""``reconciler validate`` and ``reconciler schema``.

``validate`` loads the specs (every problem of the run with file:line:column), shows what they
expand to (matrix jobs, datasets) and, once the specs are sound enough to know the datasets,
checks the datasets' content. No network. Exit 0 when valid, 1 when not.

``schema`` prints, writes or checks the JSON Schema generated from the spec models, or prints
the Markdown spec reference.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from reconciler.cli.common import OutputFormat, format_option, handle_errors
from reconciler.errors import HasProblems, Problem, Severity, SpecError
from reconciler.spec.loader import check_specs
from reconciler.spec.resolved import SpecSet
from reconciler.spec.schema import (
    SCHEMA_FILENAME,
    schema_drift,
    schema_text,
    spec_reference_markdown,
    write_schema,
)

FORMAT_VERSION = 1
"""Version of ``validate --format json`` output; bumped on incompatible changes."""

commands = typer.Typer()
"""``validate`` and ``schema``."""


@commands.command(
    "validate",
    help="Check specs and the datasets they name, without any network access.\n\n"
    "Reports every problem with file:line:column, the document (Kind/name) and a hint, and "
    "shows the jobs a matrix expands to. Exit code 0 when valid, 1 when not.",
)
@handle_errors
def validate_command(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Spec files or directories (recursive *.yaml/*.yml). Default: the current "
            "directory.",
            show_default=False,
            metavar="PATH",
        ),
    ] = None,
    output_format: OutputFormat = format_option(
        OutputFormat.text,
        OutputFormat.json,
        OutputFormat.github,
        help="text for people, json for tools (format_version 1), github for workflow annotations.",
    ),
    data: Annotated[
        list[Path] | None,
        typer.Option(
            "--data",
            help="Also check this JSONL training file (repeatable). With --data and no PATH, "
            "only the files are checked.",
            show_default=False,
            metavar="FILE",
        ),
    ] = None,
    exact_tokens: Annotated[
        bool,
        typer.Option(
            "--exact-tokens",
            help="Count tokens with the Mistral tokenizer instead of estimating them (slower).",
        ),
    ] = False,
) -> None:
    """``reconciler validate``: load specs, check datasets, print the result; exit 1 if invalid."""
    result = run_validate(paths or [], data or [], exact_tokens=exact_tokens)
    if output_format is OutputFormat.json:
        sys.stdout.write(json.dumps(result.to_json(), indent=2, ensure_ascii=False) + "\n")
    elif output_format is OutputFormat.github:
        sys.stdout.write("".join(github_annotation(p) + "\n" for p in result.problems))
        sys.stdout.write(result.status_line() + "\n")
    else:
        sys.stdout.write(result.to_text())
    if not result.valid:
        raise typer.Exit(1)


class ValidateResult(HasProblems):
    """What ``validate`` found.

    Attributes:
        specs: the loaded specs, or None when they are invalid (or only --data was checked).
        problems: spec and dataset problems, errors and warnings.
        reports: dataset file reports (objects with ``to_dict()`` and ``summary_line()``).
        data_checked: False when dataset checks could not run (invalid specs).
        documents: (kind, name, location) of every document loaded.
    """

    def __init__(
        self,
        specs: SpecSet | None,
        problems: list[Problem],
        reports: Sequence[Any],
        data_checked: bool,
    ) -> None:
        self.specs = specs
        self.problems = problems
        self.reports = list(reports)
        self.data_checked = data_checked

    @property
    def valid(self) -> bool:
        """No error (warnings allowed)."""
        return not self.errors

    def documents(self) -> list[dict[str, Any]]:
        """Every loaded document as kind, name and location."""
        if self.specs is None:
            return []
        loaded: list[Any] = [
            *self.specs.datasets.values(),
            *self.specs.profiles.values(),
            *self.specs.integrations.values(),
            *self.specs.job_documents.values(),
        ]
        if self.specs.provider is not None:
            loaded.append(self.specs.provider)
        rows = [
            {
                "kind": type(d.doc).__name__,
                "name": d.doc.name,
                "file": d.location.file,
                "line": d.location.line,
                "column": d.location.column,
            }
            for d in loaded
        ]
        rows += [
            {
                "kind": kind,
                "name": d.name,
                "file": d.location.file,
                "line": d.location.line,
                "column": d.location.column,
            }
            for kind, declared in (("Import", self.specs.imports), ("Moved", self.specs.moves))
            for d in declared
        ]
        return sorted(rows, key=lambda r: (r["file"], r["line"], r["column"]))

    def jobs(self) -> list[dict[str, Any]]:
        """Every resolved job with its matrix source."""
        if self.specs is None:
            return []
        return [
            {
                "name": job.name,
                "address": job.address,
                "source": job.source,
                "matrix_values": dict(job.matrix_values),
                "model": job.model,
                "job_type": job.job_type,
                "hyperparameters": dict(job.hyperparameters),
                "training_files": [
                    {"dataset": t.dataset, "part": t.part, "weight": t.weight}
                    for t in job.training_files
                ],
                "validation_files": [
                    {"dataset": v.dataset, "part": v.part} for v in job.validation_files
                ],
                "integrations": [i.name for i in job.integrations],
            }
            for job in self.specs.jobs.values()
        ]

    def to_json(self) -> dict[str, Any]:
        """The ``--format json`` document (no secret values: specs hold only references)."""
        provider = None
        if self.specs is not None and self.specs.provider is not None:
            provider = {
                "name": self.specs.provider.doc.name,
                "type": self.specs.provider.doc.type,
            }
        return {
            "format_version": FORMAT_VERSION,
            "valid": self.valid,
            "error_count": len(self.errors),
            "warning_count": len(self.warnings),
            "problems": [p.to_dict() for p in self.problems],
            "provider": provider,
            "documents": self.documents(),
            "jobs": self.jobs(),
            "datasets": [r.to_dict() for r in self.reports],
            "datasets_checked": self.data_checked,
        }

    def status_line(self) -> str:
        """Last line of the output: valid, or how many errors and warnings."""
        warn = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        if self.valid:
            return f"Valid{warn}."
        return f"Invalid: {len(self.errors)} error(s){warn}."

    def to_text(self) -> str:
        """Human output: provider line, problems, expansion summary, dataset summaries."""
        out: list[str] = []
        specs = self.specs
        if specs is not None:
            if specs.provider is None:
                out.append("Provider: embedded sandbox (no Provider document)")
            else:
                out.append(
                    f"Provider: {specs.provider.doc.type} ({specs.provider.subject}, "
                    f"{specs.provider.location})"
                )
        out.extend(p.render() for p in self.problems)
        if specs is not None:
            docs = self.documents()
            kinds = Counter(d["kind"] for d in docs)
            listing = ", ".join(f"{n} {k}" for k, n in kinds.items())
            out.append(
                f"Loaded {len(docs)} document(s) from {len(specs.files)} file(s): {listing}"
                if docs
                else "Loaded 0 documents."
            )
            by_source: dict[str, list[str]] = {}
            for job in specs.jobs.values():
                by_source.setdefault(job.source, []).append(job.name)
            for source, names in by_source.items():
                if specs.job_documents[source].doc.matrix:
                    out.append(f"FineTuningJob/{source} → {len(names)} jobs: {', '.join(names)}")
                else:
                    out.append(f"FineTuningJob/{source} → job.{names[0]}")
            for name, dataset in specs.datasets.items():
                doc = dataset.doc
                extra = " (converted)" if doc.convert is not None else ""
                out.append(
                    f"Dataset/{name}: {', '.join(doc.sources)}{extra} → "
                    f"part(s) {', '.join(doc.parts)}"
                )
            out.extend(f"Moved/{m.name}: {m.source} → {m.address}" for m in specs.moves)
            out.extend(f"Import/{i.name}: {i.remote_id} → {i.address}" for i in specs.imports)
        for report in self.reports:
            out.append(f"Dataset {report.summary_line()}")
        if not self.data_checked and specs is None and self.errors:
            out.append("Dataset contents not checked: fix the spec errors first.")
        out.append(self.status_line())
        return "\n".join(out) + "\n"


def run_validate(
    paths: Sequence[Path], data: Sequence[Path], *, exact_tokens: bool = False
) -> ValidateResult:
    """Load and check specs (unless only ``data`` is given) and the datasets; never raises
    for bad input."""
    problems: list[Problem] = []
    reports: list[Any] = []
    specs: SpecSet | None = None
    data_checked = False
    if paths or not data:
        specs, spec_problems = check_specs(list(paths))
        problems.extend(spec_problems)
        if specs is not None:
            # What plan and apply would refuse, refused here too (no network, nothing read).
            refused = _trust_problems(specs)
            problems.extend(refused)
            # Datasets are only known (and their paths trustworthy) once the specs are valid.
            check = _dataset_checker()
            if check is not None:
                result = check.check_datasets(specs, exact_tokens=exact_tokens)
                # A refused dataset path is reported once, not again by the dataset check.
                problems.extend(p for p in result.problems if p not in refused)
                reports.extend(result.reports)
                data_checked = True
    if data:
        check = _dataset_checker()
        if check is not None:
            result = check.check_files(list(data), exact_tokens=exact_tokens)
            problems.extend(result.problems)
            reports.extend(result.reports)
            data_checked = True
    return ValidateResult(specs, problems, reports, data_checked)


def _trust_problems(specs: SpecSet) -> list[Problem]:
    """The refusals of the operator's trust settings (see ``SECURITY.md``); empty if none.

    Raises:
        InvalidValueError: a trust setting in the environment is malformed.
    """
    from reconciler.workspace import check_trust

    try:
        check_trust(specs)
    except SpecError as exc:
        return exc.problems
    return []


def _dataset_checker() -> Any:
    """The dataset content checker module, or None in a build without it."""
    try:
        from reconciler.data import api
    except ImportError:  # the data package is optional for spec-only use
        return None
    return api


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotation(problem: Problem) -> str:
    """A GitHub workflow command that annotates the problem's file and line."""
    level = "warning" if problem.severity is Severity.WARNING else "error"
    props = []
    loc = problem.location
    if loc is not None:
        props.append(f"file={_escape_property(loc.file)}")
        if loc.line:
            props.append(f"line={loc.line}")
        if loc.column:
            props.append(f"col={loc.column}")
    props.append(f"title={_escape_property(problem.code)}")
    message = f"{problem.subject}: {problem.message}" if problem.subject else problem.message
    if problem.hint:
        message += f"\nhint: {problem.hint}"
    return f"::{level} {','.join(props)}::{_escape_data(message)}"


# --------------------------------------------------------------------------- schema


@commands.command("schema")
@handle_errors
def schema_command(
    directory: Annotated[
        Path,
        typer.Argument(help="Directory of the schema file for --write and --check."),
    ] = Path("schemas"),
    write: Annotated[
        bool, typer.Option("--write", help=f"Write DIRECTORY/{SCHEMA_FILENAME}.")
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Exit 1 when DIRECTORY's schema differs from the spec models."
        ),
    ] = False,
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the Markdown spec reference instead.")
    ] = False,
) -> None:
    """Print the JSON Schema of spec documents (for yaml-language-server and other editors).

    Point an editor at it with a first line such as
    '# yaml-language-server: $schema=schemas/reconciler-v1.schema.json'.
    """
    if markdown:
        sys.stdout.write(spec_reference_markdown())
        return
    if check:
        drift = schema_drift(directory)
        if drift is not None:
            print(f"Error: {drift}", file=sys.stderr)
            raise typer.Exit(1)
        sys.stdout.write(f"{directory / SCHEMA_FILENAME} is up to date.\n")
        return
    if write:
        try:
            target = write_schema(directory)
        except OSError as exc:
            print(
                f"Error: cannot write {directory / SCHEMA_FILENAME}: {exc.strerror or exc}. "
                "Choose a writable directory.",
                file=sys.stderr,
            )
            raise typer.Exit(1) from None
        sys.stdout.write(f"Wrote {target}\n")
        return
    sys.stdout.write(schema_text())
