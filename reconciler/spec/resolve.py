"""Reference resolution and matrix expansion: validated documents → :class:`SpecSet`.

Works on documents that each passed their model's validation; checks what a single document
cannot: names unique per kind, references between documents (jobs → datasets, profiles,
integrations; profiles → ``extends``), ``extends`` cycles, dataset parts, matrix values against
the hyperparameter ranges, collisions of derived matrix job names, and jobs whose requests the
remote cannot tell apart (one remote job would be bound to both). Every problem points at the
field that holds the bad reference.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError as PydanticValidationError

from reconciler.address import Address
from reconciler.errors import Location, Problem
from reconciler.identity import RequestIdentity
from reconciler.spec.adoption import check_adoption
from reconciler.spec.capabilities import capabilities_for
from reconciler.spec.models import (
    NAME_MAX,
    Dataset,
    DatasetRef,
    DocumentBase,
    FineTuningJob,
    Hyperparameters,
    HyperparameterValues,
    Import,
    InlineHyperparameters,
    Moved,
    Provider,
    TrainingFileRef,
    WandbIntegration,
)
from reconciler.spec.provider_checks import provider_problems
from reconciler.spec.resolved import (
    DatasetPart,
    LoadedDocument,
    ResolvedJob,
    SpecSet,
    TrainingInput,
)

D = TypeVar("D", bound=DocumentBase)

MATRIX_ABBREVIATIONS: Mapping[str, str] = {
    "learning_rate": "lr",
    "training_steps": "steps",
    "weight_decay": "wd",
    "warmup_fraction": "warmup",
    "epochs": "epochs",
    "seq_len": "seq",
    "fim_ratio": "fim",
    "learning_rate_multiplier": "lrm",
    "batch_size": "batch",
    "beta": "beta",
    "model": "model",
}
"""Short forms of matrix keys used in derived job names."""

# Keep derived names inside the name limit: 54 characters, '-', 8 hex digits of the full name.
_HASHED_PREFIX = NAME_MAX - 9


def did_you_mean(word: str, candidates: Iterable[str], fallback: str | None = None) -> str | None:
    """A "did you mean 'x'?" hint for ``word`` among ``candidates``, else ``fallback``."""
    options = list(candidates)
    lowered = {c.lower(): c for c in options}
    if word.lower() in lowered and lowered[word.lower()] != word:
        return f"did you mean '{lowered[word.lower()]}'?"
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean '{close[0]}'?"
    return fallback


# --------------------------------------------------------------------------- derived names


def format_matrix_value(value: Any) -> str:
    """A matrix value as it appears in a derived name, before sanitising.

    Integers as written; non-zero floats below 0.01 in shortest scientific form (``1e-4``,
    ``2.5e-5``); other floats in their shortest form (``0.1``); strings as written.
    """
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != 0 and math.isfinite(value) and abs(value) < 0.01:
            for digits in range(17):
                text = f"{value:.{digits}e}"
                if float(text) == value:
                    break
            mantissa, exponent = text.split("e")
            if "." in mantissa:
                mantissa = mantissa.rstrip("0").rstrip(".")
            return f"{mantissa}e{int(exponent)}"
        return repr(value)
    return str(value)


def derive_job_name(base: str, cell: Mapping[str, Any]) -> str:
    """The name of one matrix cell's job: ``{base}-{abbr}-{value}`` per key, in key order.

    Values: see :func:`format_matrix_value`; then '.' → 'p', lower case, anything outside
    ``[a-z0-9-]`` → '-', runs of '-' collapsed. Names over 63 characters keep their first 54
    characters plus '-' and 8 hex digits of the full name's sha256, so they stay unique.
    """
    parts = [base]
    for key, value in cell.items():
        parts.append(MATRIX_ABBREVIATIONS.get(key, key))
        parts.append(format_matrix_value(value))
    name = "-".join(parts).replace(".", "p").lower()
    name = re.sub(r"[^a-z0-9-]", "-", name)
    name = re.sub(r"-{2,}", "-", name).strip("-")
    if len(name) > NAME_MAX:
        digest = hashlib.sha256(name.encode()).hexdigest()[:8]
        name = f"{name[:_HASHED_PREFIX]}-{digest}"
    return name


def expand_matrix(matrix: Mapping[str, Sequence[Any]] | None) -> list[dict[str, Any]]:
    """Cartesian product of a matrix, keys and values in the order written; ``[{}]`` if none."""
    if not matrix:
        return [{}]
    keys = list(matrix)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*matrix.values())]


# --------------------------------------------------------------------------- digest


def spec_digest(documents: Iterable[LoadedDocument[Any]]) -> str:
    """sha256 over the canonical JSON of all documents, sorted by (kind, name)."""
    dumped = sorted(
        (
            (type(d.doc).__name__, d.doc.name, d.doc.model_dump(mode="json", by_alias=True))
            for d in documents
        ),
        key=lambda item: (item[0], item[1]),
    )
    canonical = json.dumps(
        [body for _, _, body in dumped], sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


# --------------------------------------------------------------------------- resolution


class _Resolver:
    """Holds the documents by kind and collects problems while resolving."""

    def __init__(self, documents: Sequence[LoadedDocument[Any]]) -> None:
        self.documents = documents
        self.problems: list[Problem] = []
        self.datasets = self._by_name(Dataset)
        self.profiles = self._by_name(Hyperparameters)
        self.integrations = self._by_name(WandbIntegration)
        self.job_docs = self._by_name(FineTuningJob)
        self.import_docs = self._by_name(Import)
        self.move_docs = self._by_name(Moved)
        providers = [d for d in documents if isinstance(d.doc, Provider)]
        self.provider: LoadedDocument[Provider] | None = providers[0] if providers else None
        for extra in providers[1:]:
            self.problems.append(
                Problem(
                    "duplicate-provider",
                    f"only one Provider document is allowed; another is at {providers[0].location}",
                    extra.location,
                    subject=extra.subject,
                    hint="keep one Provider; use separate spec directories for other targets",
                )
            )
        self.resolved_profiles: dict[str, dict[str, Any] | None] = {}

    def _by_name(self, kind: type[D]) -> dict[str, LoadedDocument[D]]:
        found: dict[str, LoadedDocument[D]] = {}
        for doc in self.documents:
            if not isinstance(doc.doc, kind):
                continue
            first = found.get(doc.doc.name)
            if first is not None:
                self.problems.append(
                    Problem(
                        "duplicate-name",
                        f"{kind.__name__} '{doc.doc.name}' is defined twice; "
                        f"first at {first.location}",
                        doc.locate("name"),
                        subject=doc.subject,
                        hint="names are unique per kind; rename or remove one",
                        extra={"first": str(first.location)},
                    )
                )
                continue
            found[doc.doc.name] = doc
        return found

    def unknown(
        self,
        doc: LoadedDocument[Any],
        path: tuple[str | int, ...],
        kind: str,
        name: str,
        names: Iterable[str],
    ) -> None:
        known = sorted(names)
        fallback = f"known: {', '.join(known)}" if known else f"no {kind} document is loaded"
        self.problems.append(
            Problem(
                "unknown-reference",
                f"{kind} '{name}' does not exist",
                doc.locate(*path),
                subject=doc.subject,
                hint=did_you_mean(name, known, fallback),
            )
        )

    # ------------------------------------------------------------------ profiles

    def check_profile_cycles(self) -> None:
        """Report each ``extends`` cycle once, naming it ``a → b → a``."""
        reported: set[frozenset[str]] = set()
        for start in sorted(self.profiles):
            chain = [start]
            current = self.profiles[start].doc.extends
            while current is not None and current in self.profiles:
                if current in chain:
                    cycle = chain[chain.index(current) :]
                    key = frozenset(cycle)
                    if key not in reported:
                        reported.add(key)
                        first = self.profiles[min(cycle)]
                        ordered = _rotate(cycle, min(cycle))
                        self.problems.append(
                            Problem(
                                "reference-cycle",
                                "Hyperparameters extends cycle: "
                                + " → ".join([*ordered, ordered[0]]),
                                first.locate("extends"),
                                subject=first.subject,
                                hint="remove 'extends' from one profile of the cycle",
                            )
                        )
                    break
                chain.append(current)
                current = self.profiles[current].doc.extends

    def profile_values(self, name: str) -> dict[str, Any] | None:
        """Values of a profile with its ``extends`` chain applied; None on a broken chain."""
        if name in self.resolved_profiles:
            return self.resolved_profiles[name]
        self.resolved_profiles[name] = None  # marks "in progress": a cycle yields None
        loaded = self.profiles[name]
        values: dict[str, Any] = {}
        parent = loaded.doc.extends
        if parent is not None:
            if parent not in self.profiles:
                self.unknown(loaded, ("extends",), "Hyperparameters", parent, self.profiles)
                return None
            base = self.profile_values(parent)
            if base is None:
                return None
            values.update(base)
        values.update(loaded.doc.set_values())
        self.resolved_profiles[name] = values
        return values

    # ------------------------------------------------------------------ jobs

    def dataset_part(
        self,
        job: LoadedDocument[FineTuningJob],
        path: tuple[str | int, ...],
        written: str | DatasetRef,
        default_split_part: str,
    ) -> str | None:
        """The part a training or validation file entry at ``path`` names (as ``written``: a
        dataset name, or a mapping with ``dataset`` and ``part``); None, with a problem, when
        the dataset or the part does not exist."""
        ref = DatasetRef(dataset=written) if isinstance(written, str) else written
        dataset = self.datasets.get(ref.dataset)
        if dataset is None:
            # A plain name is pointed at where it stands; a mapping at its 'dataset' key.
            where = path if isinstance(written, str) else (*path, "dataset")
            self.unknown(job, where, "Dataset", ref.dataset, self.datasets)
            return None
        parts = dataset.doc.parts
        part = ref.part or (default_split_part if dataset.doc.split is not None else "all")
        if part not in parts:
            why = "it has no 'split'" if dataset.doc.split is None else "it is split"
            self.problems.append(
                Problem(
                    "unknown-reference",
                    f"Dataset '{ref.dataset}' has no part '{part}' ({why}; "
                    f"its parts: {', '.join(parts)})",
                    job.locate(*path, "part") if ref.part else job.locate(*path),
                    subject=job.subject,
                    hint=f"use part: {' or '.join(parts)}",
                )
            )
            return None
        return part

    def matrix_problems(self, job: LoadedDocument[FineTuningJob]) -> bool:
        """Type- and range-check every matrix value; True when all are fine."""
        ok = True
        for key, values in (job.doc.matrix or {}).items():
            for index, value in enumerate(values):
                where = job.locate("matrix", key, index)
                if key == "model":
                    if not isinstance(value, str) or not value:
                        ok = False
                        self.problems.append(
                            Problem(
                                "wrong-type",
                                f"'matrix.model[{index}]' should be a model name (a string)",
                                where,
                                subject=job.subject,
                            )
                        )
                    continue
                try:
                    HyperparameterValues.model_validate({key: value})
                except PydanticValidationError as exc:
                    ok = False
                    for err in exc.errors():
                        self.problems.append(
                            Problem(
                                _matrix_code(err["type"]),
                                f"'matrix.{key}[{index}]': {err['msg']} (got {value!r})",
                                where,
                                subject=job.subject,
                            )
                        )
        return ok

    def resolve_job(self, job: LoadedDocument[FineTuningJob]) -> list[ResolvedJob]:
        doc = job.doc
        before = len(self.problems)
        training: list[TrainingInput] = []
        for i, tref in enumerate(doc.training_files):
            ref = tref if isinstance(tref, TrainingFileRef) else TrainingFileRef(dataset=tref)
            part = self.dataset_part(job, ("training_files", i), tref, "train")
            if part is not None:
                training.append(TrainingInput(ref.dataset, part, ref.weight))
        validation: list[DatasetPart] = []
        for i, vref in enumerate(doc.validation_files):
            part = self.dataset_part(job, ("validation_files", i), vref, "validation")
            if part is not None:
                validation.append(
                    DatasetPart(vref if isinstance(vref, str) else vref.dataset, part)
                )
        integrations: list[WandbIntegration] = []
        for i, iname in enumerate(doc.integrations):
            found = self.integrations.get(iname)
            if found is None:
                self.unknown(job, ("integrations", i), "WandbIntegration", iname, self.integrations)
            else:
                integrations.append(found.doc)
        base = self.job_hyperparameters(job)
        matrix_ok = self.matrix_problems(job)
        if len(self.problems) > before or base is None or not matrix_ok:
            return []
        jobs = []
        for cell in expand_matrix(doc.matrix):
            values = dict(base)
            model = doc.model
            for key, value in cell.items():
                if key == "model":
                    model = str(value)
                else:
                    checked = HyperparameterValues.model_validate({key: value})
                    values[key] = getattr(checked, key)
            jobs.append(
                ResolvedJob(
                    name=derive_job_name(doc.name, cell) if cell else doc.name,
                    source=doc.name,
                    matrix_values=dict(cell),
                    model=model,
                    job_type=doc.job_type,
                    training_files=tuple(training),
                    validation_files=tuple(validation),
                    hyperparameters=_field_ordered(values),
                    integrations=tuple(integrations),
                    suffix=doc.suffix,
                    invalid_sample_skip_percentage=doc.invalid_sample_skip_percentage,
                    classifier_targets=(
                        tuple(doc.classifier_targets) if doc.classifier_targets else None
                    ),
                    start=doc.start,
                    budget=doc.budget,
                    fine_tuned_model=doc.fine_tuned_model,
                    on_replace=doc.on_replace,
                    labels=dict(doc.labels),
                    location=job.location,
                    method=doc.method,
                    seed=doc.seed,
                    paused=doc.paused,
                    rerun=doc.rerun,
                    lora=doc.lora,
                )
            )
        return jobs

    def job_hyperparameters(self, job: LoadedDocument[FineTuningJob]) -> dict[str, Any] | None:
        hp = job.doc.hyperparameters
        if isinstance(hp, str):
            if hp not in self.profiles:
                self.unknown(job, ("hyperparameters",), "Hyperparameters", hp, self.profiles)
                return None
            return self.profile_values(hp)
        assert isinstance(hp, InlineHyperparameters)
        values: dict[str, Any] = {}
        if hp.extends is not None:
            if hp.extends not in self.profiles:
                self.unknown(
                    job,
                    ("hyperparameters", "extends"),
                    "Hyperparameters",
                    hp.extends,
                    self.profiles,
                )
                return None
            base = self.profile_values(hp.extends)
            if base is None:
                return None
            values.update(base)
        values.update(hp.set_values())
        return values


def _dataset_key(loaded: LoadedDocument[Dataset]) -> str:
    """What decides a dataset's uploaded files: sources, preparation and upload name.

    Two datasets with equal keys upload the same files (uploads are named by ``filename``
    or the dataset name, plus the content hash), so jobs using them use the same remote files.
    """
    spec = loaded.doc
    base = (spec.filename or spec.name).removesuffix(".jsonl")
    preparation = spec.model_dump(
        mode="json",
        exclude={"apiVersion", "name", "labels", "description", "path", "paths", "filename"},
    )
    sources = [str(loaded.resolve_path(p)) for p in spec.sources]
    return json.dumps([base, sources, preparation], sort_keys=True)


def indistinguishable_jobs(
    jobs: Iterable[ResolvedJob], datasets: Mapping[str, LoadedDocument[Dataset]]
) -> list[Problem]:
    """A problem for each job whose request the remote cannot tell from an earlier job's.

    Compared as :mod:`reconciler.identity` compares requests with what the remote shows
    (hyperparameter defaults filled in; training-file weights and
    ``invalid_sample_skip_percentage`` are never shown), with each dataset named by its
    spec: a create would be answered with the other job (409, or a lookup finding it), and
    one remote job would be bound to two addresses.
    """

    def ref(part: DatasetPart) -> str:
        return f"{_dataset_key(datasets[part.dataset])}[{part.part}]"

    first: dict[Any, ResolvedJob] = {}
    problems: list[Problem] = []
    for job in jobs:
        request = {
            "model": job.model,
            "job_type": job.job_type,
            "training_files": [{"file_id": ref(t), "weight": t.weight} for t in job.training_files],
            "validation_files": [ref(v) for v in job.validation_files],
            "hyperparameters": dict(job.hyperparameters),
            "suffix": job.suffix,
            "integrations": [
                {"project": i.project, "name": i.run_display_name, "run_name": i.run_name}
                for i in job.integrations
            ],
            "classifier_targets": [t.model_dump(mode="json") for t in job.classifier_targets or ()],
        }
        key = RequestIdentity.of_request(request).observable
        other = first.setdefault(key, job)
        if other is job:
            continue
        problems.append(
            Problem(
                "indistinguishable-jobs",
                f"{job.address} ({job.location}) and {other.address} ({other.location}) ask for "
                "the same request as far as the remote can tell (model, data, hyperparameters "
                "with their defaults, suffix, integrations; training-file weights and "
                "invalid_sample_skip_percentage are not readable back): the remote cannot tell "
                "their jobs apart, so one remote job would be bound to both",
                job.location,
                subject=f"FineTuningJob/{job.source}",
                hint=f"give one of them a distinct suffix (e.g. suffix: {job.name[:18]})",
                extra={"other": str(other.location)},
            )
        )
    return problems


def _field_ordered(values: Mapping[str, Any]) -> dict[str, Any]:
    order = list(HyperparameterValues.model_fields)
    return {k: values[k] for k in order if k in values}


def _rotate(cycle: list[str], first: str) -> list[str]:
    i = cycle.index(first)
    return cycle[i:] + cycle[:i]


def _matrix_code(error_type: str) -> str:
    if error_type.startswith(("greater_than", "less_than")) or error_type == "finite_number":
        return "out-of-range"
    if error_type.endswith(("_type", "_parsing")) or error_type in ("int_from_float",):
        return "wrong-type"
    return "invalid-value"


def resolve_documents(
    documents: Sequence[LoadedDocument[Any]], *, root: Path, files: tuple[Path, ...]
) -> tuple[SpecSet | None, list[Problem]]:
    """Check references and expand matrices; ``(SpecSet, [])`` or ``(None, problems)``.

    ``documents`` must each have passed model validation; ``root`` anchors ``.reconciler/``
    and is the workspace root every path named in a document must stay in.
    """
    documents = [dataclasses.replace(d, root=root) for d in documents]
    resolver = _Resolver(documents)
    resolver.check_profile_cycles()
    for name in sorted(resolver.profiles):
        resolver.profile_values(name)
    jobs: dict[str, ResolvedJob] = {}
    job_locations: dict[str, Location] = {}
    for name in sorted(resolver.job_docs):
        loaded = resolver.job_docs[name]
        for job in resolver.resolve_job(loaded):
            if job.name in jobs:
                other = jobs[job.name]
                resolver.problems.append(
                    Problem(
                        "duplicate-name",
                        f"job name '{job.name}' (from FineTuningJob/{job.source}) is also the "
                        f"name of a job from FineTuningJob/{other.source} at "
                        f"{job_locations[job.name]}",
                        loaded.locate("matrix") if job.matrix_values else loaded.locate("name"),
                        subject=loaded.subject,
                        hint="rename one of the FineTuningJob documents",
                    )
                )
                continue
            jobs[job.name] = job
            job_locations[job.name] = loaded.location
    resolver.problems.extend(
        provider_problems(
            resolver.provider,
            resolver.job_docs,
            resolver.profiles,
            resolver.datasets,
            resolver.integrations,
        )
    )
    caps = capabilities_for(resolver.provider.doc.type if resolver.provider else None)
    if caps is None or not caps.job_metadata:
        # Jobs that carry their identity (job metadata) are told apart by it, whatever the
        # remote shows of their requests.
        resolver.problems.extend(indistinguishable_jobs(jobs.values(), resolver.datasets))
    declared = {job.address for job in jobs.values()} | {
        Address.dataset(name, part)
        for name, loaded in resolver.datasets.items()
        for part in loaded.doc.parts
    }
    imports, moves, adoption_problems = check_adoption(
        list(resolver.import_docs.values()), list(resolver.move_docs.values()), declared
    )
    resolver.problems.extend(adoption_problems)
    problems = sorted(
        resolver.problems, key=lambda p: (p.location or Location(""), p.code, p.message)
    )
    if problems:
        return None, problems
    return (
        SpecSet(
            root=root,
            files=files,
            datasets=resolver.datasets,
            profiles=resolver.profiles,
            integrations=resolver.integrations,
            job_documents=resolver.job_docs,
            jobs=jobs,
            provider=resolver.provider,
            digest=spec_digest(documents),
            imports=imports,
            moves=moves,
        ),
        [],
    )
