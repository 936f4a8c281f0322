"""Spec checks of self-hosted training (Provider ``type: ray``): what Ray jobs cannot do is a
``validate`` error, at the line that asks for it.

A Ray job is a LoRA run of the trainer (``python -m reconciler.train``): it starts as soon as it
is submitted, produces an adapter in storage instead of a model in a registry, and trains
completion models on chat data. So with a ``ray`` Provider a job cannot ask for a model name,
description or archiving, for ``start: false``, for classifier heads, a model-name ``suffix``,
skipping invalid samples, fill-in-the-middle, or more than one W&B run; and it must say how
long to train (exactly one of ``training_steps`` and ``epochs``). The other way round, ``lora``
is a Ray setting that no hosted service takes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from reconciler.errors import Location, Problem
from reconciler.spec.models import FineTuningJob, Provider
from reconciler.spec.resolved import LoadedDocument, ResolvedJob

NOT_SUPPORTED = "not-supported"
"""Problem code of a field the Provider's service does not take."""

_NO_REGISTRY = (
    "a Ray job's fine-tuned model is the adapter it writes to storage (reconciler output "
    "prints its URI); there is no model registry to name or archive it in"
)


def ray_problems(
    provider: LoadedDocument[Provider] | None,
    job_docs: Mapping[str, LoadedDocument[FineTuningJob]],
    jobs: Mapping[str, ResolvedJob],
) -> list[Problem]:
    """Every job field the Provider's type cannot honour, for Ray and against it.

    ``jobs`` are the resolved jobs (profiles applied), whose hyperparameters are checked at
    the job document's ``hyperparameters``; a problem shared by the cells of a matrix is
    reported once.
    """
    is_ray = provider is not None and provider.doc.type == "ray"
    found: dict[tuple[str, str, Location], Problem] = {}
    for loaded in job_docs.values():
        problems = _ray_job(loaded) if is_ray else _hosted_job(loaded, provider)
        for problem in problems:
            found.setdefault(
                (problem.code, problem.message, problem.location or Location("")), problem
            )
    if is_ray:
        for job in jobs.values():
            loaded = job_docs[job.source]
            for problem in _ray_hyperparameters(loaded, job):
                key = (problem.code, problem.message, problem.location or Location(""))
                found.setdefault(key, problem)
    return list(found.values())


def _problem(
    loaded: LoadedDocument[FineTuningJob], path: tuple[str | int, ...], message: str, hint: str
) -> Problem:
    return Problem(NOT_SUPPORTED, message, loaded.locate(*path), subject=loaded.subject, hint=hint)


def _ray_job(loaded: LoadedDocument[FineTuningJob]) -> Iterator[Problem]:
    doc = loaded.doc
    if doc.fine_tuned_model is not None:
        yield _problem(
            loaded,
            ("fine_tuned_model",),
            "'fine_tuned_model' (name, description, archived) is not supported by ray",
            f"remove it: {_NO_REGISTRY}",
        )
    if doc.on_replace.previous_model == "archive":
        yield _problem(
            loaded,
            ("on_replace", "previous_model"),
            "on_replace.previous_model: archive is not supported by ray",
            f"remove it (the previous adapter is kept): {_NO_REGISTRY}",
        )
    if doc.job_type != "completion":
        yield _problem(
            loaded,
            ("job_type",),
            f"job_type: {doc.job_type} is not supported by ray",
            "the trainer fine-tunes completion (chat) models only; remove job_type",
        )
    if doc.suffix is not None:
        yield _problem(
            loaded,
            ("suffix",),
            "'suffix' is not supported by ray",
            "remove it: the adapter is stored under the job's own id",
        )
    if doc.invalid_sample_skip_percentage:
        yield _problem(
            loaded,
            ("invalid_sample_skip_percentage",),
            "'invalid_sample_skip_percentage' is not supported by ray",
            "remove it; to drop invalid samples before training, set on_invalid: skip on "
            "the Dataset",
        )
    if not doc.start:
        yield _problem(
            loaded,
            ("start",),
            "start: false is not supported by ray: Ray runs a job as soon as it is submitted",
            "remove it; a job that should not run yet belongs in another branch",
        )
    if len(doc.integrations) > 1:
        yield _problem(
            loaded,
            ("integrations", 1),
            "more than one W&B integration is not supported by ray (one run per job)",
            "keep one integration",
        )


def _hosted_job(
    loaded: LoadedDocument[FineTuningJob], provider: LoadedDocument[Provider] | None
) -> Iterator[Problem]:
    if loaded.doc.lora is not None:
        where = f"type: {provider.doc.type}" if provider is not None else "the embedded sandbox"
        yield _problem(
            loaded,
            ("lora",),
            f"'lora' is only for a Provider of type: ray (these specs target {where})",
            "remove it: hosted services choose their own adapter settings",
        )


def _ray_hyperparameters(
    loaded: LoadedDocument[FineTuningJob], job: ResolvedJob
) -> Iterator[Problem]:
    values = job.hyperparameters
    if values.get("fim_ratio") is not None:
        yield _problem(
            loaded,
            ("hyperparameters",),
            "'fim_ratio' is not supported by ray: the trainer does not train fill-in-the-middle",
            "remove fim_ratio from the job's hyperparameters (or from the profile it uses)",
        )
    steps, epochs = values.get("training_steps"), values.get("epochs")
    if (steps is None) == (epochs is None):
        what = "both" if steps is not None else "neither"
        yield _problem(
            loaded,
            ("hyperparameters",),
            f"ray needs exactly one of training_steps and epochs; this job sets {what}",
            "set training_steps (optimizer steps) or epochs (passes over the data)",
        )
