"""Spec checks that depend on the Provider's service: what it cannot do is a ``validate`` error.

The spec language covers more than one service (Mistral's absolute ``learning_rate``, OpenAI's
``learning_rate_multiplier``, ...). Which fields a job may use is declared per provider type in
:mod:`reconciler.spec.capabilities`; these checks hold every FineTuningJob (with the
hyperparameter profiles, matrix keys and W&B integrations it uses) and the Provider document
against that declaration, and report each field the service does not take at the line that sets
it, naming the provider and what it takes instead — before anything is prepared or sent.

Two checks hold for every provider: a ``method: dpo`` job trains on preference datasets
(``format: preference``) and a supervised job on chat datasets; ``beta`` is a DPO
hyperparameter.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import Location, Problem
from reconciler.spec.capabilities import Capabilities, capabilities_for
from reconciler.spec.models import (
    HYPERPARAMETER_FIELDS,
    Dataset,
    DatasetRef,
    FineTuningJob,
    Hyperparameters,
    InlineHyperparameters,
    Provider,
    TrainingFileRef,
    WandbIntegration,
)
from reconciler.spec.resolved import LoadedDocument

NOT_SUPPORTED = "not-supported"
"""Problem code of a field the Provider's service does not take."""

_HYPERPARAMETER_HINTS: Mapping[tuple[str, str], str] = {
    ("learning_rate", "openai"): "learning_rate is Mistral's absolute rate; openai takes "
    "learning_rate_multiplier, a factor of its own default rate",
    ("training_steps", "openai"): "openai sizes a run in epochs (n_epochs): use epochs",
    ("learning_rate_multiplier", "mistral"): "mistral takes an absolute learning_rate "
    "(default 1e-4) instead of a multiplier",
    ("batch_size", "mistral"): "mistral sizes batches itself: use training_steps or epochs",
}
"""(hyperparameter, provider) → what to write instead, when there is a close equivalent."""

_HOSTED = ("mistral", "openai", "sandbox")
_RAY = ("ray",)

_PROVIDER_FIELDS: Mapping[str, tuple[str, ...]] = {
    "organization": ("openai",),
    "project": ("openai",),
    "endpoint": _HOSTED,
    "prices": _HOSTED,
    "address": _RAY,
    "storage": _RAY,
    "resources": _RAY,
    "python": _RAY,
    "runtime_env": _RAY,
    "price_per_gpu_hour": _RAY,
    "tokens_per_gpu_second": _RAY,
}
"""Provider document fields that only some provider types take (the others: every type)."""

_PROVIDER_FIELD_HINTS: Mapping[tuple[str, str], str] = {
    ("endpoint", "ray"): "a ray Provider takes 'address' (its cluster's Jobs API) instead",
    ("prices", "ray"): "a ray Provider prices GPU-hours: use price_per_gpu_hour and "
    "tokens_per_gpu_second instead",
}
"""(field, provider type) → what to write instead, when there is an equivalent."""


@dataclass(frozen=True)
class _Source:
    """Where a hyperparameter of a job is set: the document and the field path in it."""

    doc: LoadedDocument[Any]
    path: tuple[str | int, ...]

    @property
    def location(self) -> Location:
        return self.doc.locate(*self.path)


def provider_problems(
    provider: LoadedDocument[Provider] | None,
    jobs: Mapping[str, LoadedDocument[FineTuningJob]],
    profiles: Mapping[str, LoadedDocument[Hyperparameters]],
    datasets: Mapping[str, LoadedDocument[Dataset]],
    integrations: Mapping[str, LoadedDocument[WandbIntegration]],
) -> list[Problem]:
    """Every field the Provider's service does not take, plus the method/dataset checks.

    ``provider`` None is the embedded sandbox (Mistral's API). A provider type without a
    declaration (:func:`~reconciler.spec.capabilities.capabilities_for`) is checked for the
    provider-independent rules only. Problems found through a shared profile or integration
    are reported once.
    """
    caps = capabilities_for(provider.doc.type if provider is not None else None)
    problems: list[Problem] = []
    if provider is not None:
        problems.extend(_provider_document(provider))
    checked_integrations: set[str] = set()
    for name in sorted(jobs):
        job = jobs[name]
        problems.extend(_method_and_data(job, datasets))
        if caps is None:
            continue
        problems.extend(_job(job, caps, profiles))
        for index, integration in enumerate(job.doc.integrations):
            found = integrations.get(integration)
            if found is not None and integration not in checked_integrations:
                checked_integrations.add(integration)
                problems.extend(_integration(found, caps, job, index))
    unique: dict[tuple[Any, ...], Problem] = {}
    for p in problems:
        unique.setdefault((p.location, p.code, p.message), p)
    return list(unique.values())


def _provider_document(provider: LoadedDocument[Provider]) -> Iterator[Problem]:
    doc = provider.doc
    for field, only in _PROVIDER_FIELDS.items():
        if field in doc.model_fields_set and doc.type not in only:
            types = " or ".join(only)
            yield Problem(
                NOT_SUPPORTED,
                f"'{field}' is not supported by {doc.type}: it is a setting of {types}",
                provider.locate(field),
                subject=provider.subject,
                hint=_PROVIDER_FIELD_HINTS.get((field, doc.type), f"remove '{field}'"),
            )


def _problem(
    job: LoadedDocument[FineTuningJob],
    message: str,
    path: tuple[str | int, ...],
    hint: str | None,
    code: str = NOT_SUPPORTED,
) -> Problem:
    return Problem(code, message, job.locate(*path), subject=job.subject, hint=hint)


def _job(
    job: LoadedDocument[FineTuningJob],
    caps: Capabilities,
    profiles: Mapping[str, LoadedDocument[Hyperparameters]],
) -> Iterator[Problem]:
    doc, name = job.doc, caps.name
    for field, value, supported in (
        ("method", doc.method, caps.methods),
        ("job_type", doc.job_type, caps.job_types),
    ):
        if value not in supported:
            yield _problem(
                job,
                f"{field}: {value} is not supported by {name}",
                (field,),
                f"{name} takes {field}: {' or '.join(sorted(supported))}",
            )
    sources = _hyperparameter_sources(job, profiles)
    for key, source in sources.items():
        if key not in caps.hyperparameters:
            yield _at_source(
                job,
                source,
                f"hyperparameter '{key}' is not supported by {name}",
                _HYPERPARAMETER_HINTS.get(
                    (key, "mistral" if caps.absolute_learning_rate else name),
                    f"{name} takes: {', '.join(sorted(caps.hyperparameters))}",
                ),
            )
    if "beta" in sources and doc.method != "dpo":
        yield _at_source(
            job,
            sources["beta"],
            f"'beta' is a hyperparameter of method: dpo, and this job is method: {doc.method}",
            "set method: dpo, or remove beta",
            code="invalid-value",
        )
    if "epochs" in sources and (caps.whole_epochs or caps.max_epochs is not None):
        yield from _epochs(job, caps, sources["epochs"])
    if doc.suffix is not None and not caps.max_suffix_length:
        yield _problem(
            job,
            f"'suffix' is not supported by {name}: its models are not named after the job",
            ("suffix",),
            "remove suffix",
        )
    elif doc.suffix is not None and len(doc.suffix) > caps.max_suffix_length:
        yield _problem(
            job,
            f"suffix is {len(doc.suffix)} characters; {name} takes at most "
            f"{caps.max_suffix_length}",
            ("suffix",),
            "shorten the suffix",
            code="out-of-range",
        )
    yield from _files(job, caps)
    if doc.invalid_sample_skip_percentage and not caps.skip_invalid_samples:
        yield _problem(
            job,
            f"invalid_sample_skip_percentage is not supported by {name}: it rejects a file "
            "with any invalid sample",
            ("invalid_sample_skip_percentage",),
            "remove it, and drop invalid samples when preparing the data (Dataset on_invalid: "
            "skip)",
        )
    if doc.seed is not None and not caps.seed:
        yield _problem(job, f"'seed' is not supported by {name}", ("seed",), "remove seed")
    if not doc.start and not caps.auto_start:
        yield _problem(
            job,
            f"start: false is not supported by {name}: it starts every job as soon as it is "
            "created",
            ("start",),
            "remove start: false; budget.max_cost is checked against the plan's local estimate "
            "before the job is created",
        )
    if doc.paused and not caps.pause:
        yield _problem(
            job,
            f"paused: true is not supported by {name}: its jobs cannot be paused",
            ("paused",),
            "remove paused",
        )
    if doc.on_replace.previous_model == "archive" and not caps.model_updates:
        yield _problem(
            job,
            f"on_replace.previous_model: archive is not supported by {name}: its fine-tuned "
            "models cannot be archived",
            ("on_replace", "previous_model"),
            "use previous_model: keep, or delete (once the replacement has succeeded)",
        )
    yield from _self_hosted(job, caps, sources)
    model = doc.fine_tuned_model
    if model is not None and not caps.model_updates:
        for field in ("name", "description", "archived"):
            value = getattr(model, field)
            if value not in (None, False):
                yield _problem(
                    job,
                    f"fine_tuned_model.{field} is not supported by {name}: its fine-tuned "
                    "models cannot be renamed, described or archived",
                    ("fine_tuned_model", field),
                    "remove fine_tuned_model",
                )


def _self_hosted(
    job: LoadedDocument[FineTuningJob], caps: Capabilities, sources: Mapping[str, _Source]
) -> Iterator[Problem]:
    """The settings of a trainer of one's own (``lora``), its single W&B run and its need to
    be told how long to train."""
    doc, name = job.doc, caps.name
    if doc.lora is not None and not caps.lora:
        yield _problem(
            job,
            f"'lora' is not supported by {name}: it is a setting of a self-hosted trainer "
            "(type: ray)",
            ("lora",),
            "remove lora: the service chooses its own adapter settings",
        )
    if caps.max_integrations is not None and len(doc.integrations) > caps.max_integrations:
        yield _problem(
            job,
            f"{len(doc.integrations)} W&B integrations: {name} takes at most "
            f"{caps.max_integrations} (one run per job)",
            ("integrations", caps.max_integrations),
            f"keep {caps.max_integrations}",
        )
    if caps.training_length and ("training_steps" in sources) == ("epochs" in sources):
        what = "both" if "epochs" in sources else "neither"
        yield _problem(
            job,
            f"{name} needs exactly one of training_steps and epochs; this job sets {what}",
            ("hyperparameters",),
            "set training_steps (optimizer steps) or epochs (passes over the data)",
        )


def _files(job: LoadedDocument[FineTuningJob], caps: Capabilities) -> Iterator[Problem]:
    doc, name = job.doc, caps.name
    if len(doc.training_files) > 1 and not caps.multiple_training_files:
        yield _problem(
            job,
            f"{len(doc.training_files)} training files: several (weighted) training files are "
            f"not supported by {name}, which trains on one file",
            ("training_files",),
            "use one Dataset (several sources go into one file with 'paths')",
        )
    elif not caps.multiple_training_files:
        for index, ref in enumerate(doc.training_files):
            if isinstance(ref, TrainingFileRef) and ref.weight != 1.0:
                yield _problem(
                    job,
                    f"training file weights are not supported by {name}, which trains on one file",
                    ("training_files", index, "weight"),
                    "remove weight",
                )
    if len(doc.validation_files) > 1 and not caps.multiple_validation_files:
        yield _problem(
            job,
            f"{len(doc.validation_files)} validation files: {name} takes one",
            ("validation_files",),
            "use one Dataset for validation",
        )


def _at_source(
    job: LoadedDocument[FineTuningJob],
    source: _Source,
    message: str,
    hint: str | None,
    code: str = NOT_SUPPORTED,
) -> Problem:
    """A problem at the line that sets a hyperparameter (a profile names the job using it)."""
    if source.doc is not job:
        message += f" (used by {job.subject})"
    return Problem(code, message, source.location, subject=source.doc.subject, hint=hint)


def _hyperparameter_sources(
    job: LoadedDocument[FineTuningJob], profiles: Mapping[str, LoadedDocument[Hyperparameters]]
) -> dict[str, _Source]:
    """Each hyperparameter the job sets, with where it is set: a matrix key, an inline value,
    or the nearest profile of its ``extends`` chain that sets it (nearest wins)."""
    sources: dict[str, _Source] = {}
    hp = job.doc.hyperparameters
    chain_start = hp if isinstance(hp, str) else hp.extends
    chain: list[LoadedDocument[Hyperparameters]] = []
    seen: set[str] = set()
    while chain_start is not None and chain_start in profiles and chain_start not in seen:
        seen.add(chain_start)
        chain.append(profiles[chain_start])
        chain_start = profiles[chain_start].doc.extends
    for profile in reversed(chain):
        for key in profile.doc.set_values():
            if key in HYPERPARAMETER_FIELDS:  # a profile's set values include its name, kind
                sources[key] = _Source(profile, (key,))
    if isinstance(hp, InlineHyperparameters):
        for key in hp.set_values():
            sources[key] = _Source(job, ("hyperparameters", key))
    for key in job.doc.matrix or {}:
        if key != "model":
            sources[key] = _Source(job, ("matrix", key))
    return sources


def _epochs(
    job: LoadedDocument[FineTuningJob], caps: Capabilities, source: _Source
) -> Iterator[Problem]:
    """``epochs`` values the service does not take (fractions, more than its maximum)."""
    values: list[Any] = []
    if source.path[0] == "matrix":
        values = list((job.doc.matrix or {}).get("epochs", []))
    else:
        owner = source.doc.doc
        hp = owner.hyperparameters if isinstance(owner, FineTuningJob) else owner
        values = [getattr(hp, "epochs", None)]
    for value in values:
        if not isinstance(value, int | float) or isinstance(value, bool):
            continue  # a type problem, reported by the matrix checks
        if caps.whole_epochs and float(value) != int(value):
            yield _at_source(
                job,
                source,
                f"epochs {value:g}: {caps.name} trains whole epochs (n_epochs)",
                "use a whole number of epochs",
                code="invalid-value",
            )
        elif caps.max_epochs is not None and value > caps.max_epochs:
            yield _at_source(
                job,
                source,
                f"epochs {value:g}: {caps.name} trains at most {caps.max_epochs} epochs",
                f"use at most {caps.max_epochs} epochs",
                code="out-of-range",
            )


def _integration(
    integration: LoadedDocument[WandbIntegration],
    caps: Capabilities,
    job: LoadedDocument[FineTuningJob],
    index: int,
) -> Iterator[Problem]:
    doc, name = integration.doc, caps.name
    set_fields = {
        "api_key": doc.api_key is not None,
        "display_name": doc.run_display_name is not None,
        "run_name": doc.run_name is not None,
        "entity": doc.entity is not None,
        "tags": bool(doc.tags),
    }
    for field, is_set in set_fields.items():
        if not is_set or field in caps.wandb_fields:
            continue
        hint = (
            f"{name} keeps the W&B key in the organisation's settings; remove api_key "
            "(entity and tags are accepted)"
            if field == "api_key"
            else f"remove '{field}'; {name} takes: {', '.join(sorted(caps.wandb_fields))}"
        )
        yield Problem(
            NOT_SUPPORTED,
            f"W&B '{field}' is not supported by {name} (used by {job.subject})",
            integration.locate(field),
            subject=integration.subject,
            hint=hint,
        )
    if caps.wandb_key_per_job and doc.api_key is None:
        yield Problem(
            "missing-field",
            f"{name} needs the W&B key with each job, and this integration has no 'api_key' "
            f"(used by {job.subject})",
            integration.location,
            subject=integration.subject,
            hint="add api_key: {env: WANDB_API_KEY}",
        )


def _method_and_data(
    job: LoadedDocument[FineTuningJob], datasets: Mapping[str, LoadedDocument[Dataset]]
) -> Iterator[Problem]:
    """A dpo job trains on preference datasets, a supervised job on chat datasets."""
    doc = job.doc
    wanted = "preference" if doc.method == "dpo" else "chat"
    refs: list[tuple[str, tuple[str | int, ...]]] = []
    lists: tuple[tuple[str, list[Any]], ...] = (
        ("training_files", list(doc.training_files)),
        ("validation_files", list(doc.validation_files)),
    )
    for key, items in lists:
        for index, ref in enumerate(items):
            dataset = ref.dataset if isinstance(ref, DatasetRef) else ref
            refs.append((dataset, (key, index)))
    for dataset, path in refs:
        found = datasets.get(dataset)
        if found is None or found.doc.format == wanted:
            continue
        if doc.method == "dpo":
            message = (
                f"Dataset '{dataset}' holds chat samples (format: {found.doc.format}), and "
                "method: dpo trains on preference pairs"
            )
            hint = "use a Dataset with format: preference, or set method: supervised"
        else:
            message = (
                f"Dataset '{dataset}' holds preference pairs (format: preference), which "
                f"train with method: dpo, and this job is method: {doc.method}"
            )
            hint = "set method: dpo, or use a chat Dataset"
        yield _problem(job, message, path, hint, code="invalid-value")
