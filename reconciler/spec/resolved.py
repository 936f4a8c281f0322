"""The loaded, checked and resolved spec set: what the loader hands to everything above it.

Values here are inert: documents as validated models with their source positions, jobs with
matrix expansion and hyperparameter profiles already applied, and a digest of everything
loaded (used to refuse stale saved plans).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from reconciler.address import Address
from reconciler.errors import Location
from reconciler.spec.models import (
    Budget,
    ClassifierTarget,
    Dataset,
    DocumentBase,
    FineTunedModelSpec,
    FineTuningJob,
    Hyperparameters,
    LoraSpec,
    OnReplace,
    Provider,
    WandbIntegration,
)

D = TypeVar("D", bound=DocumentBase)


@dataclass(frozen=True)
class LoadedDocument(Generic[D]):
    """One validated document and where it came from.

    Attributes:
        doc: the validated model.
        location: file:line:column of the document's first key.
        base_dir: directory of the file that holds it; relative paths in the document are
            relative to it.
        field_locations: positions of fields by path, e.g. ``("training_files", 0, "dataset")``.
    """

    doc: D
    location: Location
    base_dir: Path
    field_locations: Mapping[tuple[str | int, ...], Location] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        """``Kind/name``, as used in messages."""
        return f"{type(self.doc).__name__}/{self.doc.name}"

    def locate(self, *path: str | int) -> Location:
        """Best position for a field path: the deepest known prefix, else the document."""
        for end in range(len(path), 0, -1):
            loc = self.field_locations.get(tuple(path[:end]))
            if loc is not None:
                return loc
        return self.location

    def resolve_path(self, relative: str) -> Path:
        """A path named in this document, made absolute against the document's file."""
        return (self.base_dir / relative).resolve()


@dataclass(frozen=True)
class DatasetPart:
    """A reference to one prepared part of a dataset: ``all``, ``train`` or ``validation``."""

    dataset: str
    part: str

    @property
    def address(self) -> Address:
        """State address of the uploaded file, e.g. ``dataset.ultrachat[train]``."""
        return Address.dataset(self.dataset, self.part)


@dataclass(frozen=True)
class TrainingInput(DatasetPart):
    """A training part with its sampling weight."""

    weight: float = 1.0


@dataclass(frozen=True)
class ResolvedJob:
    """A job ready for planning: one per FineTuningJob document, or one per matrix cell.

    Attributes:
        name: the job's name (derived for matrix cells, e.g. ``sweep-lr-1e-4-steps-100``).
        source: name of the FineTuningJob document it comes from.
        matrix_values: the matrix cell's values (empty when not from a matrix).
        model, job_type, suffix, invalid_sample_skip_percentage, classifier_targets: as in
            the create request.
        training_files / validation_files: dataset parts (weights resolved).
        hyperparameters: resolved values (profile chain, inline overrides, matrix cell), only
            the fields that are set; server defaults are not filled in.
        integrations: the W&B integration documents, in the order the job names them.
        start, budget, fine_tuned_model, on_replace: lifecycle settings (not sent to the API).
        location: position of the FineTuningJob document.
        lora: the LoRA adapter settings (self-hosted ``ray`` jobs; None: not set).
    """

    name: str
    source: str
    matrix_values: Mapping[str, Any]
    model: str
    job_type: str
    training_files: tuple[TrainingInput, ...]
    validation_files: tuple[DatasetPart, ...]
    hyperparameters: Mapping[str, Any]
    integrations: tuple[WandbIntegration, ...]
    suffix: str | None
    invalid_sample_skip_percentage: float
    classifier_targets: tuple[ClassifierTarget, ...] | None
    start: bool
    budget: Budget | None
    fine_tuned_model: FineTunedModelSpec | None
    on_replace: OnReplace
    labels: Mapping[str, str]
    location: Location
    lora: LoraSpec | None = None

    @property
    def address(self) -> Address:
        """State address, e.g. ``job.dumbledore-v1``."""
        return Address.job(self.name)


@dataclass(frozen=True)
class SpecSet:
    """Everything loaded from the PATHs of one command, checked and resolved.

    Attributes:
        root: directory that anchors ``.reconciler/`` (the first PATH if it is a directory,
            else the directory of the first file).
        files: every spec file read, in load order.
        datasets / profiles / integrations: documents by name.
        jobs: resolved jobs by (derived) name, in a stable order.
        provider: the Provider document, or None for the embedded sandbox.
        digest: sha256 over the canonical form of every document (spec digest of saved plans).
    """

    root: Path
    files: tuple[Path, ...]
    datasets: Mapping[str, LoadedDocument[Dataset]]
    profiles: Mapping[str, LoadedDocument[Hyperparameters]]
    integrations: Mapping[str, LoadedDocument[WandbIntegration]]
    job_documents: Mapping[str, LoadedDocument[FineTuningJob]]
    jobs: Mapping[str, ResolvedJob]
    provider: LoadedDocument[Provider] | None
    digest: str
