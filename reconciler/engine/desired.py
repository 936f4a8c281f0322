"""Desired state: every remote object the specs ask for, with its address and fingerprint.

Built from the resolved specs and the prepared datasets (pure; no network):

* one :class:`DesiredFile` per prepared dataset part, address ``dataset.<name>[<part>]``;
* one :class:`DesiredJob` per resolved job, address ``job.<name>``, whose ``identity`` is the
  create request with files named by content instead of remote id (and the spec's ``rerun``
  token, when set: part of the fingerprint, never sent);
* the ``Import`` and ``Moved`` documents, by the address they adopt into.

The job's create request itself (:meth:`DesiredJob.build_request`) is only assembled at apply
time, once the file ids are known and secrets are resolved.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from reconciler.address import Address
from reconciler.engine import fingerprint
from reconciler.engine.plan import FileContent
from reconciler.errors import Location
from reconciler.spec.models import FineTunedModelSpec, SecretRef
from reconciler.spec.resolved import DeclaredImport, DeclaredMove, ResolvedJob, SpecSet

if TYPE_CHECKING:
    from reconciler.data.prepare import PreparedDataset


class DesiredFile(FileContent):
    """A prepared dataset part to upload: its :class:`~reconciler.engine.plan.FileContent`
    (dataset, part, filename, sha256, bytes, num_lines: what plans and state show of it), and

    Attributes:
        address: ``dataset.<name>[<part>]``.
        samples: how many valid samples it holds.
        path: the prepared file on disk (what gets uploaded).
        fingerprint: :func:`~reconciler.engine.fingerprint.file_fingerprint`.
        approx_tokens: estimated tokens of its valid samples (bytes / 4; cost estimates).
        exact_tokens: tokens by Mistral's tokenizer, when the data was prepared with exact
            counts (``--exact-tokens``); None otherwise.
        labels: the Dataset document's labels (for ``--selector``).
        location: where the Dataset document is (``file:line``), for plans.
    """

    address: Address
    samples: int
    path: Path
    fingerprint: str
    approx_tokens: int = 0
    exact_tokens: int | None = None
    labels: Mapping[str, str] = Field(default_factory=dict)
    location: str | None = None

    def summary(self) -> dict[str, Any]:
        """What plans and state show of this file: its :class:`FileContent` fields (a plan's
        :class:`~reconciler.engine.plan.FileAfter` but ``reuse``, which the planner adds)."""
        return {name: getattr(self, name) for name in FileContent.model_fields}


@dataclass(frozen=True)
class IntegrationSpec:
    """A W&B integration as sent, with its key still a reference.

    Attributes:
        project, name, run_name: as sent (``name`` is the run's display name).
        api_key: the key's reference, resolved at apply; None where the service keeps the
            key itself (openai).
        base_dir: directory of the integration's spec file (a relative ``file`` starts here).
        subject: ``WandbIntegration/<name>``, for messages.
        entity, tags: the W&B team/user and run tags (openai), when set.
        root: the workspace root a ``file`` key must stay in — the one the check at open
            used; None means ``base_dir`` (the narrowest choice).
    """

    project: str
    name: str | None
    run_name: str | None
    api_key: SecretRef | None
    base_dir: Path
    subject: str
    entity: str | None = None
    tags: tuple[str, ...] = ()
    root: Path | None = None

    def identity(self) -> dict[str, Any]:
        """What the create request says about it, without the key (part of the identity).

        ``entity`` and ``tags`` appear only when set, so the identity (and fingerprint) of an
        integration without them is what it was before they existed.
        """
        out: dict[str, Any] = {
            "type": "wandb",
            "project": self.project,
            "name": self.name,
            "run_name": self.run_name,
        }
        if self.entity is not None:
            out["entity"] = self.entity
        if self.tags:
            out["tags"] = list(self.tags)
        return out


@dataclass(frozen=True)
class DesiredJob:
    """A fine-tuning job the specs ask for.

    Attributes:
        address: ``job.<name>``.
        job: the resolved job (lifecycle settings: start, budget, model metadata, on_replace).
        identity: the create request in content form — every field that goes into the
            request, files as ``{"file": <file address>, "filename", "sha256", "weight"}``,
            integrations without their key. Its digest is the fingerprint; comparing two
            identities names the fields that force a replacement.
        fingerprint: :func:`~reconciler.engine.fingerprint.job_fingerprint` of ``identity``.
        depends_on: addresses of the files it trains and validates on.
        integrations: integrations with their key references (resolved at apply).
    """

    address: Address
    job: ResolvedJob
    identity: Mapping[str, Any]
    fingerprint: str
    depends_on: tuple[str, ...]
    integrations: tuple[IntegrationSpec, ...] = field(default=())

    @property
    def labels(self) -> Mapping[str, str]:
        """The FineTuningJob document's labels (for ``--selector``)."""
        return self.job.labels

    @property
    def location(self) -> str:
        """Where the FineTuningJob document is (``file:line``), for plans."""
        return file_line(self.job.location)

    @property
    def model_spec(self) -> FineTunedModelSpec | None:
        """Desired name/description/archived of the resulting model."""
        return self.job.fine_tuned_model

    def build_request(
        self, file_ids: Mapping[str, str], resolve_secret: Callable[[IntegrationSpec], str]
    ) -> dict[str, Any]:
        """The JobIn body: files by remote id, secrets resolved, ``auto_start`` false.

        This is the canonical request every provider takes (Mistral's ``JobIn`` shape, plus
        ``method`` and ``seed`` when the spec sets them); providers of other services map it
        to their own API.
        """
        identity = self.identity
        request: dict[str, Any] = {
            "model": identity["model"],
            "job_type": identity["job_type"],
            "training_files": [
                {"file_id": file_ids[f["file"]], "weight": f["weight"]}
                for f in identity["training_files"]
            ],
            "validation_files": [file_ids[f["file"]] for f in identity["validation_files"]],
            "hyperparameters": dict(identity["hyperparameters"]),
            "auto_start": False,
            "invalid_sample_skip_percentage": identity["invalid_sample_skip_percentage"],
        }
        if identity.get("suffix") is not None:
            request["suffix"] = identity["suffix"]
        if self.integrations:
            request["integrations"] = [
                {**i.identity(), **({"api_key": resolve_secret(i)} if i.api_key else {})}
                for i in self.integrations
            ]
        if identity.get("classifier_targets"):
            request["classifier_targets"] = [dict(t) for t in identity["classifier_targets"]]
        for key in ("method", "seed"):
            if key in identity:
                request[key] = identity[key]
        if identity.get("lora") is not None:
            request["lora"] = dict(identity["lora"])
        return request


@dataclass(frozen=True)
class DesiredState:
    """Everything the specs ask for, by address, files before jobs.

    Attributes:
        files, jobs: the objects, by address.
        imports: ``Import`` documents by the address they adopt into.
        moves: ``Moved`` documents by the address they move to.
    """

    files: Mapping[str, DesiredFile]
    jobs: Mapping[str, DesiredJob]
    imports: Mapping[str, DeclaredImport] = field(default_factory=dict)
    moves: Mapping[str, DeclaredMove] = field(default_factory=dict)

    @property
    def addresses(self) -> list[str]:
        """All addresses, files first, each group sorted."""
        return sorted(self.files) + sorted(self.jobs)


def file_line(location: Location) -> str:
    """``file:line`` of a document (the line alone points reviewers at it)."""
    return f"{location.file}:{location.line}" if location.line else location.file


def build_desired(specs: SpecSet, prepared: Mapping[str, PreparedDataset]) -> DesiredState:
    """Desired state from resolved specs and their prepared datasets."""
    files: dict[str, DesiredFile] = {}
    for name in sorted(prepared):
        document = specs.datasets.get(name)
        for part, pf in sorted(prepared[name].parts.items()):
            address = Address.dataset(name, part)
            files[address] = DesiredFile(
                address=address,
                dataset=name,
                part=part,
                filename=pf.upload_filename,
                sha256=pf.sha256,
                bytes=pf.bytes,
                num_lines=pf.num_lines,
                samples=pf.report.valid if pf.report is not None else pf.num_lines,
                path=pf.path,
                fingerprint=fingerprint.file_fingerprint(pf.upload_filename, pf.sha256),
                approx_tokens=pf.report.approx_tokens if pf.report is not None else 0,
                exact_tokens=pf.report.exact_tokens if pf.report is not None else None,
                labels=dict(document.doc.labels) if document is not None else {},
                location=file_line(document.location) if document is not None else None,
            )
    jobs: dict[str, DesiredJob] = {}
    for job in specs.jobs.values():
        desired = _desired_job(job, files, specs)
        jobs[desired.address] = desired
    return DesiredState(
        files=files,
        jobs=jobs,
        imports={i.address: i for i in specs.imports},
        moves={m.address: m for m in specs.moves},
    )


def _file_ref(files: Mapping[str, DesiredFile], address: str) -> dict[str, Any]:
    f = files[address]
    return {"file": address, "filename": f.filename, "sha256": f.sha256}


def _desired_job(job: ResolvedJob, files: Mapping[str, DesiredFile], specs: SpecSet) -> DesiredJob:
    training = [
        {**_file_ref(files, t.address), "weight": float(t.weight)} for t in job.training_files
    ]
    validation = [_file_ref(files, v.address) for v in job.validation_files]
    integrations = tuple(
        IntegrationSpec(
            project=i.project,
            name=i.run_display_name,
            run_name=i.run_name,
            api_key=i.api_key,
            base_dir=specs.integrations[i.name].base_dir,
            subject=f"WandbIntegration/{i.name}",
            entity=i.entity,
            tags=tuple(i.tags),
            root=specs.integrations[i.name].workspace_root,
        )
        for i in job.integrations
    )
    identity: dict[str, Any] = {
        "model": job.model,
        "job_type": job.job_type,
        "training_files": training,
        "validation_files": validation,
        "hyperparameters": {k: v for k, v in sorted(job.hyperparameters.items())},
        "suffix": job.suffix,
        "invalid_sample_skip_percentage": float(job.invalid_sample_skip_percentage),
        "integrations": [i.identity() for i in integrations],
        "classifier_targets": [t.model_dump(mode="json") for t in job.classifier_targets or ()],
    }
    # Only when they differ from what requests were before these fields existed, so the
    # fingerprints of existing jobs stay as they were.
    if job.method != "supervised":
        identity["method"] = job.method
    if job.seed is not None:
        identity["seed"] = job.seed
    if job.rerun is not None:
        identity["rerun"] = job.rerun
    if job.lora is not None:
        identity["lora"] = job.lora.model_dump(mode="json")
    depends = tuple(dict.fromkeys(f["file"] for f in training + validation))
    return DesiredJob(
        address=job.address,
        job=job,
        identity=identity,
        fingerprint=fingerprint.job_fingerprint(identity),
        depends_on=depends,
        integrations=integrations,
    )
