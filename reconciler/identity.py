"""Job identity: whether a remote job is the job a create request would make.

One definition serves every place that recognises a remote job — the planner's
possible-duplicate check, recovery of an interrupted or lost create, the 409 handler,
``import`` — and the ``validate`` check that no two jobs of the specs ask for requests the
remote cannot tell apart. Like :mod:`reconciler.address`, it depends on nothing else in the
package (it reads API-shaped mappings), so every layer can use it.

**The field set** (:class:`RequestIdentity`):

* ``model``; ``job_type`` (absent means ``completion``);
* the training files with their weights and the validation files, as multisets (the remote
  echoes plain ids and does not promise their order);
* ``hyperparameters`` with the remote's documented defaults filled in
  (:data:`HYPERPARAMETER_DEFAULTS`), so a request without ``warmup_fraction`` is the request
  with ``warmup_fraction: 0.05``, and matches a job reporting 0.05 but not one reporting 0.2;
* the W&B integrations by ``(type, project, name, run_name)`` (the key is write-only);
* ``suffix``; the classifier targets (``name``, ``labels``, ``weight``, ``loss_function``);
* ``invalid_sample_skip_percentage``.

``auto_start`` is not part of it: it decides when a job starts, not what it trains. Numbers
compare with one tolerance (:data:`REL_TOLERANCE`): the remote may echo ``1e-4`` as
``0.00010000000000000002``.

**Observable and recorded fields.** The remote never returns training-file weights or
``invalid_sample_skip_percentage`` (:data:`UNOBSERVABLE`). :func:`matches` compares everything
the remote shows; what it cannot show is compared only between requests, through the record
of the request that made a job (the state or an intent). Callers that *bind* a remote job
therefore bind only jobs that no address holds or held (their record says which request made
them) and that were created after their own intent was written; a job outside both cannot be
told apart from one with other weights, so it is never bound silently (``import`` binds it on
the user's word and says so).

A provider that can tag jobs (job metadata) makes identity exact: ``matches(...,
exact_tag=exact_tag(address, fingerprint))`` decides by the tag when the remote job carries
one — the address and request fingerprint that created it, in its metadata
(:data:`TAG_ADDRESS_KEY`, :data:`TAG_FINGERPRINT_KEY`; the canonical job's ``user_metadata``).
That tag is a :class:`JobTag`; a :class:`JobLookup` carries it, with the jobs never to take
and a time bound, to a provider's ``create_job`` and ``find_jobs``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

REL_TOLERANCE = 1e-9
"""Relative tolerance of every number comparison (absolute: :data:`ABS_TOLERANCE`)."""

ABS_TOLERANCE = 1e-15
"""Absolute tolerance, far below the smallest meaningful value (learning rates ≥ 1e-8)."""

HYPERPARAMETER_DEFAULTS: Mapping[str, Mapping[str, float]] = {
    "completion": {
        "learning_rate": 0.0001,
        "weight_decay": 0.1,
        "warmup_fraction": 0.05,
        "fim_ratio": 0.9,
    },
    "classifier": {"learning_rate": 0.0001, "weight_decay": 0.1, "warmup_fraction": 0.05},
}
"""Values the remote fills in for hyperparameters a request leaves out, per job type.

From the API reference (``CompletionTrainingParametersIn`` / ``ClassifierTrainingParametersIn``;
classifier jobs have no ``fim_ratio``), as the sandbox applies them. ``training_steps`` and
``epochs`` have no default: the remote derives the one not given (and reports it), so a value
the request did not set is not compared; nor is ``seq_len`` when not set (no documented
default)."""

UNOBSERVABLE = ("training_files[].weight", "invalid_sample_skip_percentage")
"""Request fields the remote never returns: compared only through a record of the request."""

TAG_ADDRESS_KEY = "reconciler_address"
"""Job metadata key carrying the address of the spec that created the job."""

TAG_FINGERPRINT_KEY = "reconciler_fingerprint"
"""Job metadata key carrying the request fingerprint of the spec that created the job."""

TAG_GENERATION_KEY = "reconciler_generation"
"""Job metadata key carrying the replacement generation (see :class:`JobTag`)."""

DEFAULT_JOB_TYPE = "completion"

Number = int | float
FileRef = tuple[str, float]
Integration = tuple[str, str, str, str]
Target = tuple[str, tuple[str, ...], float, str | None]


def same_number(a: Any, b: Any) -> bool:
    """Equal numbers within the one tolerance; booleans and other values exactly."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(float(a), float(b), rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)
    return bool(a == b)


@dataclass(frozen=True)
class RequestIdentity:
    """What a create request asks the remote to make, in comparable form.

    Files are named by a reference the caller chooses: the remote file id (requests, remote
    jobs), or a content key (the specs, before anything is uploaded). Two identities are
    comparable when their files are named the same way.

    Attributes:
        model: the base model.
        job_type: ``completion`` or ``classifier``.
        training_files: ``(file reference, weight)`` pairs, sorted.
        validation_files: file references, sorted.
        hyperparameters: the requested values with the remote's defaults filled in, sorted.
        requested: the hyperparameter names the request sets itself.
        suffix: the model-name suffix (None when not set).
        integrations: ``(type, project, name, run_name)`` of each W&B integration, sorted.
        classifier_targets: ``(name, labels, weight, loss_function)`` of each target, sorted.
        invalid_sample_skip_percentage: as requested (0 when not set).
    """

    model: str
    job_type: str
    training_files: tuple[FileRef, ...]
    validation_files: tuple[str, ...]
    hyperparameters: tuple[tuple[str, Number], ...]
    requested: frozenset[str]
    suffix: str | None
    integrations: tuple[Integration, ...]
    classifier_targets: tuple[Target, ...]
    invalid_sample_skip_percentage: float

    @classmethod
    def of_request(cls, request: Mapping[str, Any]) -> RequestIdentity:
        """The identity of a ``JobIn`` body (files by id; plain-id training files allowed)."""
        job_type = str(request.get("job_type") or DEFAULT_JOB_TYPE)
        training: list[FileRef] = []
        for item in request.get("training_files") or []:
            if isinstance(item, Mapping):
                weight = item.get("weight")
                training.append((str(item.get("file_id")), 1.0 if weight is None else weight))
            else:
                training.append((str(item), 1.0))
        set_values = {
            str(k): v for k, v in (request.get("hyperparameters") or {}).items() if v is not None
        }
        filled = {**HYPERPARAMETER_DEFAULTS.get(job_type, {}), **set_values}
        skip = request.get("invalid_sample_skip_percentage")
        return cls(
            model=str(request.get("model")),
            job_type=job_type,
            training_files=tuple(sorted(training)),
            validation_files=tuple(sorted(str(v) for v in request.get("validation_files") or [])),
            hyperparameters=tuple(sorted(filled.items())),
            requested=frozenset(set_values),
            suffix=request.get("suffix") or None,
            integrations=_integrations(request.get("integrations") or []),
            classifier_targets=_targets(request.get("classifier_targets") or []),
            invalid_sample_skip_percentage=float(skip or 0.0),
        )

    @classmethod
    def of_content(
        cls, identity: Mapping[str, Any], file_ref: Mapping[str, str] | None = None
    ) -> RequestIdentity | None:
        """The identity of a request in content form (as the state and plans record it).

        Files there are ``{"file": address, "filename", "sha256", "weight"}``. With
        ``file_ref`` (address → remote file id) they are named by id, and None is returned
        when one of them has no id yet (no remote job can use it); without it, by content
        (``filename:sha256``), which names one remote file (uploads are content-addressed).
        """

        def ref(entry: Mapping[str, Any]) -> str | None:
            if file_ref is None:
                return content_key(entry)
            return file_ref.get(str(entry.get("file")))

        training: list[dict[str, Any]] = []
        for entry in identity.get("training_files") or []:
            found = ref(entry)
            if found is None:
                return None
            training.append({"file_id": found, "weight": entry.get("weight")})
        validation: list[str] = []
        for entry in identity.get("validation_files") or []:
            found = ref(entry)
            if found is None:
                return None
            validation.append(found)
        return cls.of_request(
            {**identity, "training_files": training, "validation_files": validation}
        )

    @property
    def observable(self) -> tuple[Any, ...]:
        """Every field the remote shows: requests equal here cannot be told apart remotely."""
        return (
            self.model,
            self.job_type,
            tuple(sorted(f for f, _ in self.training_files)),
            self.validation_files,
            self.hyperparameters,
            self.suffix,
            self.integrations,
            self.classifier_targets,
        )

    def hyperparameter(self, name: str) -> Number | None:
        """A hyperparameter's value, default filled in (None when neither set nor defaulted)."""
        return dict(self.hyperparameters).get(name)


def content_key(entry: Mapping[str, Any]) -> str:
    """A file of a content-form request named by its content: ``filename:sha256``."""
    return f"{entry.get('filename')}:{entry.get('sha256')}"


def _integrations(items: Sequence[Any]) -> tuple[Integration, ...]:
    return tuple(
        sorted(
            (
                str(i.get("type") or "wandb"),
                str(i.get("project") or ""),
                str(i.get("name") or ""),
                str(i.get("run_name") or ""),
            )
            for i in items
            if isinstance(i, Mapping)
        )
    )


def _targets(items: Sequence[Any]) -> tuple[Target, ...]:
    out: list[Target] = []
    for t in items:
        if not isinstance(t, Mapping):
            continue
        weight = t.get("weight")
        loss = t.get("loss_function")
        out.append(
            (
                str(t.get("name")),
                tuple(sorted(str(label) for label in t.get("labels") or [])),
                1.0 if weight is None else float(weight),
                str(loss) if loss is not None else None,
            )
        )
    return tuple(sorted(out, key=lambda t: t[0]))


# -- comparing with a remote job -------------------------------------------------------------


def differences(identity: RequestIdentity, remote: Mapping[str, Any]) -> list[str]:
    """The fields a remote job (API JSON shape, list or detailed form) shows differently.

    Empty when the remote job is what the request would make, as far as the remote shows:
    :data:`UNOBSERVABLE` fields are never among the differences. Classifier targets are
    compared only when the remote job carries them (the detailed form).
    """
    diff: list[str] = []
    if remote.get("model") != identity.model:
        diff.append("model")
    if str(remote.get("job_type") or DEFAULT_JOB_TYPE) != identity.job_type:
        diff.append("job_type")
    if (remote.get("suffix") or None) != identity.suffix:
        diff.append("suffix")
    if sorted(_ids(remote.get("training_files"))) != sorted(f for f, _ in identity.training_files):
        diff.append("training_files")
    if sorted(_ids(remote.get("validation_files"))) != list(identity.validation_files):
        diff.append("validation_files")
    diff.extend(_hyperparameter_differences(identity, remote.get("hyperparameters") or {}))
    if _integrations(remote.get("integrations") or []) != identity.integrations:
        diff.append("integrations")
    targets = remote.get("classifier_targets")
    if targets is not None and not _targets_match(identity.classifier_targets, _targets(targets)):
        diff.append("classifier_targets")
    return diff


def matches(
    identity: RequestIdentity, remote: Mapping[str, Any], *, exact_tag: str | None = None
) -> bool:
    """Whether ``remote`` is the job this request would create.

    With ``exact_tag`` (a provider that tags the jobs it creates), a remote job carrying a tag
    is decided by the tag alone; otherwise, by :func:`differences`.
    """
    if exact_tag is not None:
        tag = remote_tag(remote)
        if tag is not None:
            return tag == exact_tag
    return not differences(identity, remote)


def exact_tag(address: str, fingerprint: str) -> str:
    """The exact identity of the job a spec (``address``, request ``fingerprint``) creates."""
    return f"{address}:{fingerprint}"


def remote_tag(remote: Mapping[str, Any]) -> str | None:
    """The exact identity tag a remote job carries in its metadata (the canonical job's
    ``user_metadata``), if any: :func:`exact_tag` of the address and fingerprint there."""
    metadata = remote.get("user_metadata")
    if isinstance(metadata, Mapping):
        address = metadata.get(TAG_ADDRESS_KEY)
        fingerprint = metadata.get(TAG_FINGERPRINT_KEY)
        if isinstance(address, str) and isinstance(fingerprint, str):
            return exact_tag(address, fingerprint)
    return None


@dataclass(frozen=True)
class JobTag:
    """Our identity of a job, for services that can carry it (``Capabilities.job_metadata``).

    Attributes:
        address: the spec address that creates the job, e.g. ``job.tone``.
        fingerprint: the request fingerprint of that spec revision.
        generation: how many jobs this address had before (its history length): a
            ``--replace`` of an unchanged spec is a new generation, so a new identity.
    """

    address: str
    fingerprint: str
    generation: int = 0

    def metadata(self) -> dict[str, str]:
        """The job metadata that carries this identity (string values only)."""
        return {
            TAG_ADDRESS_KEY: self.address,
            TAG_FINGERPRINT_KEY: self.fingerprint,
            TAG_GENERATION_KEY: str(self.generation),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any] | None) -> JobTag | None:
        """The tag a job's metadata carries (``RemoteJob.user_metadata``), or None for a job
        without one (made by hand, or by another tool)."""
        if not metadata:
            return None
        address = metadata.get(TAG_ADDRESS_KEY)
        fingerprint = metadata.get(TAG_FINGERPRINT_KEY)
        if not isinstance(address, str) or not isinstance(fingerprint, str):
            return None
        raw = metadata.get(TAG_GENERATION_KEY)
        generation = int(raw) if isinstance(raw, str) and raw.isdigit() else 0
        return cls(address, fingerprint, generation)


@dataclass(frozen=True)
class JobLookup:
    """Which remote jobs may be the job of a create request, beside the request itself.

    One value travels from the engine to a provider's ``create_job`` (which looks its job up
    by it when an answer is lost) and ``find_jobs``.

    Attributes:
        tag: our identity of the job. Services that carry it on the job (``job_metadata``)
            find the job by it, exactly; the others ignore it and compare requests.
        exclude: ids of jobs never to be taken for this one (jobs an address holds or held).
        created_after: only jobs created after this moment (None: any); ``create_job`` sets
            it itself, to shortly before its first attempt.
    """

    tag: JobTag | None = None
    exclude: frozenset[str] = frozenset()
    created_after: datetime | None = None


def similar(a: RequestIdentity, b: RequestIdentity) -> bool:
    """Whether the remote takes two requests for *similar* jobs (409 while one is active).

    The remote's rule (API reference §8; the sandbox's ``similarity_key``): same model, job
    type, training and validation files, hyperparameters and suffix — weights, the skip
    percentage, integrations and classifier targets do not count. Hyperparameters compare
    with defaults filled in; ``training_steps``/``epochs`` that one request leaves to the
    remote count as equal (the remote may fill them alike).
    """
    return (
        a.model == b.model
        and a.job_type == b.job_type
        and sorted(f for f, _ in a.training_files) == sorted(f for f, _ in b.training_files)
        and a.validation_files == b.validation_files
        and a.suffix == b.suffix
        and not _hyperparameter_differences(a, dict(b.hyperparameters), b.requested)
    )


def unobservable_differences(a: RequestIdentity, b: RequestIdentity) -> list[str]:
    """The :data:`UNOBSERVABLE` fields two requests set differently."""
    diff: list[str] = []
    if a.training_files != b.training_files:
        diff.append("training_files[].weight")
    if not same_number(a.invalid_sample_skip_percentage, b.invalid_sample_skip_percentage):
        diff.append("invalid_sample_skip_percentage")
    return diff


def job_file_ids(remote: Mapping[str, Any]) -> list[str]:
    """The ids of every file a remote job (API JSON shape) trains and validates on."""
    return [*_ids(remote.get("training_files")), *_ids(remote.get("validation_files"))]


def _ids(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [str(v.get("file_id", v.get("id")) if isinstance(v, Mapping) else v) for v in value]


def _hyperparameter_differences(
    identity: RequestIdentity,
    reported: Mapping[str, Any],
    other_sets: frozenset[str] | None = None,
) -> list[str]:
    """Hyperparameters of ``identity`` that ``reported`` gives another value.

    A value ``reported`` lacks is the remote's default. A value the identity does not set and
    that has no default (``training_steps``, ``epochs``, ``seq_len``) is the remote's choice,
    so it is not compared. With ``other_sets`` (comparing two requests: the names the other
    request sets itself), a value this identity sets that the other leaves to the remote (it
    has no default) is not compared either.
    """
    defaults = HYPERPARAMETER_DEFAULTS.get(identity.job_type, {})
    diff: list[str] = []
    for name, want in identity.hyperparameters:
        got = reported.get(name)
        if got is None:
            got = defaults.get(name)
        if got is None and other_sets is not None and name not in other_sets:
            continue
        if not same_number(want, got):
            diff.append(f"hyperparameters.{name}")
    return diff


def _targets_match(wanted: tuple[Target, ...], got: tuple[Target, ...]) -> bool:
    if [t[0] for t in wanted] != [t[0] for t in got]:
        return False
    for (_, labels, weight, loss), (_, have_labels, have_weight, have_loss) in zip(
        wanted, got, strict=True
    ):
        if labels != have_labels or not same_number(weight, have_weight):
            return False
        # No documented default: a request that leaves it out accepts the remote's choice.
        if loss is not None and have_loss not in (None, loss):
            return False
    return True
