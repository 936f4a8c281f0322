"""The loaded, checked and resolved spec set: what the loader hands to everything above it.

Values here are inert: documents as validated models with their source positions, jobs with
matrix expansion and hyperparameter profiles already applied, and a digest of everything
loaded (used to refuse stale saved plans).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from reconciler.address import Address
from reconciler.errors import Location, Problem, SpecError
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
    SecretRef,
    WandbIntegration,
)
from reconciler.spec.root import RootDiscovery
from reconciler.spec.secrets import resolve_secret
from reconciler.spec.trust import PathRefused, TrustSettings, confine_path

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
        root: the workspace root that paths named in the document must stay in; None means
            ``base_dir`` (the narrowest choice), for documents built outside a spec set.
    """

    doc: D
    location: Location
    base_dir: Path
    field_locations: Mapping[tuple[str | int, ...], Location] = field(default_factory=dict)
    root: Path | None = None

    @property
    def subject(self) -> str:
        """``Kind/name``, as used in messages."""
        return f"{type(self.doc).__name__}/{self.doc.name}"

    @property
    def workspace_root(self) -> Path:
        """The directory paths named in this document must stay in."""
        return self.root if self.root is not None else self.base_dir

    def locate(self, *path: str | int) -> Location:
        """Best position for a field path: the deepest known prefix, else the document."""
        for end in range(len(path), 0, -1):
            loc = self.field_locations.get(tuple(path[:end]))
            if loc is not None:
                return loc
        return self.location

    def resolve_path(
        self,
        relative: str,
        *at: str | int,
        environ: Mapping[str, str] | None = None,
    ) -> Path:
        """A path named in this document: made absolute against the document's file, every
        symbolic link resolved, and confined to the workspace.

        The one place where spec paths become file system paths. The path must stay inside
        the workspace root (or a directory the operator allows with
        ``RECONCILER_ALLOWED_PATHS``) lexically and after resolving links, and name a regular
        file or a directory if it exists (:func:`~reconciler.spec.trust.confine_path`).

        Args:
            relative: the path as written.
            at: the field that holds it, for the error's position; by default found among a
                Dataset's ``path``/``paths``.
            environ: environment holding the operator's settings (default ``os.environ``).

        Raises:
            SpecError: the path is refused, located at the field that names it.
        """
        return self._confined(relative, at or self._field_of(relative), True, environ)

    def resolve_found_file(
        self,
        path: Path,
        *at: str | int,
        environ: Mapping[str, str] | None = None,
    ) -> Path:
        """A file found inside a directory this document names (the files of a directory
        dataset), held to the rules of :meth:`resolve_path`: a link in the directory that
        leads out of the workspace is refused, and so is anything but a regular file.

        Args:
            path: the file as found (absolute).
            at: the field that names the directory, for the error's position.
            environ: environment holding the operator's settings (default ``os.environ``).

        Raises:
            SpecError: the file is refused, located at ``at``.
        """
        return self._confined(os.path.relpath(path, self.base_dir), at, False, environ)

    def _confined(
        self,
        written: str,
        at: tuple[str | int, ...],
        directories: bool,
        environ: Mapping[str, str] | None,
    ) -> Path:
        settings = TrustSettings.from_environ(environ)
        try:
            return confine_path(
                written,
                self.base_dir,
                self.workspace_root,
                allowed=settings.paths,
                directories=directories,
            )
        except PathRefused as exc:
            raise SpecError(
                [
                    Problem(
                        "path-not-allowed",
                        f"'{written}': {exc.reason}; nothing was read",
                        self.locate(*at),
                        subject=self.subject,
                        hint=exc.hint,
                    )
                ],
                summary=f"{self.subject}: a path is not allowed",
            ) from None

    def _field_of(self, written: str) -> tuple[str | int, ...]:
        sources = getattr(self.doc, "paths", None)
        if getattr(self.doc, "path", None) == written or not isinstance(sources, list):
            return ("path",)
        return ("paths", sources.index(written)) if written in sources else ()

    def secret_ref(self, *at: str | int) -> SecretRef:
        """The secret reference at field path ``at``, e.g. ``("state", "dsn")``."""
        value: Any = self.doc
        for part in at:
            value = getattr(value, str(part))
        if not isinstance(value, SecretRef):
            raise TypeError(f"{self.subject}: {'.'.join(map(str, at))} is not a secret reference")
        return value

    def resolve_secret(
        self, *at: str | int, ref: SecretRef | None = None, environ: Mapping[str, str] | None = None
    ) -> str:
        """The value of the secret reference at ``at`` (or ``ref``, a default for that field).

        Raises:
            SecretError: refused, unset, missing or unreadable
                (see :func:`~reconciler.spec.secrets.resolve_secret`).
        """
        return resolve_secret(
            ref or self.secret_ref(*at),
            self.base_dir,
            purpose=f"{self.subject} {'.'.join(map(str, at))}",
            root=self.workspace_root,
            location=self.locate(*at),
            environ=environ,
        )


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
        method: the training method (``supervised`` or ``dpo``), as in the create request.
        seed: the run's seed, when set (as in the create request).
        paused: keep the job paused (a lifecycle setting, applied in place).
        rerun: the document's ``rerun`` token (part of the request fingerprint, never sent).
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
    method: str = "supervised"
    seed: int | None = None
    paused: bool = False
    rerun: str | None = None
    lora: LoraSpec | None = None

    @property
    def address(self) -> Address:
        """State address, e.g. ``job.dumbledore-v1``."""
        return Address.job(self.name)


@dataclass(frozen=True, kw_only=True)
class Declaration:
    """What an ``Import`` or a ``Moved`` document declares for one of the specs' addresses.

    Attributes:
        address: the declared address it acts on (adopts into, or renames to).
        location: where the document is.
        name: the document's name.
    """

    address: Address
    location: Location
    name: str = ""


@dataclass(frozen=True, kw_only=True)
class DeclaredImport(Declaration):
    """An ``Import`` document: adopt remote object ``remote_id`` under ``address``.

    Attributes:
        remote_id: the remote job or file id.
    """

    remote_id: str


@dataclass(frozen=True, kw_only=True)
class DeclaredMove(Declaration):
    """A ``Moved`` document: the state's record of ``source`` becomes ``address``'s.

    Attributes:
        source: the old address (no longer declared).
    """

    source: Address


@dataclass(frozen=True)
class SpecSet:
    """Everything loaded from the PATHs of one command, checked and resolved.

    Attributes:
        root: the workspace root: the directory that anchors ``.reconciler/``, found from the
            PATHs like git finds a repository (:mod:`reconciler.spec.root`).
        files: every spec file read, in load order.
        datasets / profiles / integrations: documents by name.
        jobs: resolved jobs by (derived) name, in a stable order.
        provider: the Provider document, or None for the embedded sandbox.
        digest: sha256 over the canonical form of every document (spec digest of saved plans).
        imports: the ``Import`` documents, checked against the declared addresses.
        moves: the ``Moved`` documents, checked likewise.
        discovery: how ``root`` was found and which other workspaces the PATHs reach; None
            for a spec set not made by the loader (its root is then taken as given).
        warnings: the loader's warnings (entries of a spec directory that were skipped).
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
    imports: tuple[DeclaredImport, ...] = ()
    moves: tuple[DeclaredMove, ...] = ()
    discovery: RootDiscovery | None = None
    warnings: tuple[Problem, ...] = ()
