"""The rules of OpenAI job creation, as plain functions: from a ``CreateJob`` to a job.

:func:`new_job` checks a create request against what the sandbox knows (base and fine-tuned
models, the methods each takes, uploaded files) and decides everything fixed about the job:
its hyperparameters with every ``auto`` resolved, its step count, whether validating its
files will fail and why, an injected failure, its seed and the name of the model it will
produce. A request the service would refuse raises :class:`~.errors.APIError` (400); data
the service accepts but cannot train on makes the job fail while ``validating_files``, with
an ``error`` naming the file and the first problems, as the service does. Nothing here does
I/O: the route looks the files and the parent model up.

OpenAI starts a job at once (there is no ``auto_start`` to turn off) and has no rule against
similar jobs: every job gets a similarity key of its own.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

from reconciler.sandbox import job_rules
from reconciler.sandbox.config import FaultSpec
from reconciler.sandbox.lifecycle import JobPlan
from reconciler.sandbox.openai import catalogue
from reconciler.sandbox.openai.errors import invalid
from reconciler.sandbox.openai.naming import fine_tuned_name
from reconciler.sandbox.openai.schemas import (
    CreateJob,
    DpoHyperparameters,
    Method,
    ReinforcementHyperparameters,
    SupervisedHyperparameters,
)
from reconciler.sandbox.records import FileRecord, JobSpec, ModelRecord

#: The fewest examples a training file may have.
MIN_EXAMPLES = 10
#: How ``n_epochs: auto`` is resolved (OpenAI's cookbook on preparing chat data): three
#: epochs, more for small files and fewer for large ones, so that an epoch count times the
#: examples lands between 100 and 25,000 where it can, with 1 to 25 epochs.
TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_AUTO_EPOCHS = 1
MAX_AUTO_EPOCHS = 25
#: ``batch_size: auto`` is about 0.2% of the examples, at most 256 (OpenAI's guide).
AUTO_BATCH_SHARE = 0.002
MAX_BATCH = 256
#: What the sandbox makes of the other ``auto`` values (the service picks its own).
AUTO_LEARNING_RATE_MULTIPLIER = 1.0
AUTO_BETA = 0.1

#: The training format each method needs (a file's detected ``sample_type``) and its name.
FORMATS = {
    "instruct": "the chat format ('messages')",
    "preference": "the preference format ('input', 'preferred_output', 'non_preferred_output')",
}
METHOD_FORMAT = {"supervised": "instruct", "dpo": "preference", "reinforcement": "instruct"}


def new_job(
    body: CreateJob,
    files: Mapping[str, FileRecord],
    *,
    parent: ModelRecord | None,
    job_id: str,
    created: float,
    seed: int,
    faults: FaultSpec | None,
) -> JobSpec:
    """The job a create request describes; raises :class:`~.errors.APIError` to refuse it.

    ``files`` holds the live files among the request's; ``parent`` is the live fine-tuned
    model named by ``model``, if it names one; ``seed`` is the server seed.
    """
    base = _base(body.model, parent)
    method = body.method or Method(type="supervised")
    if method.type not in base.methods:
        raise invalid(
            f"Model {body.model} does not support the {method.type} method; it takes "
            f"{', '.join(sorted(base.methods))}.",
            "method.type",
            "invalid_value",
        )
    if body.hyperparameters is not None and (
        method.type != "supervised" or method.hyperparameters() is not None
    ):
        raise invalid(
            "Give the hyperparameters in method, not also in the deprecated top-level "
            "hyperparameters.",
            "hyperparameters",
            "invalid_value",
        )
    training = _file(files, body.training_file, "training_file")
    validation = (
        _file(files, body.validation_file, "validation_file") if body.validation_file else None
    )
    given = method.hyperparameters() or body.hyperparameters or HYPERPARAMETERS[method.type]()
    requested = given.model_dump()
    hyperparameters = _resolve(method.type, requested, max(training.samples, 1))
    steps_per_epoch = math.ceil(max(training.samples, 1) / hyperparameters["batch_size"])
    steps = hyperparameters["n_epochs"] * steps_per_epoch
    data_tokens = max(training.approx_tokens, 1)
    failure = _failure(method.type, training, validation)
    plan = JobPlan(
        job_id=job_id,
        created=created,
        steps=steps,
        auto_start=True,
        validation_error=failure[0] if failure else None,
        fail_step=job_rules.fail_step(faults, seed, job_id, steps),
        has_validation=validation is not None,
        seed=seed,
    )
    return JobSpec(
        plan=plan,
        model=parent.id if parent is not None else base.id,
        job_type="completion",
        suffix=body.suffix,
        training_files=(training.id,),
        validation_files=(validation.id,) if validation is not None else (),
        hyperparameters={k: hyperparameters[k] for k in _SHARED},
        integrations=[i.model_dump(exclude_none=True) for i in body.integrations or []],
        repositories=[],
        classifier_targets=None,
        similarity=f"unique:{job_id}",
        tokens_per_step=max(1, math.ceil(data_tokens / steps_per_epoch)),
        data_tokens=data_tokens,
        model_name=fine_tuned_name(base.id, body.suffix, job_id),
        metadata=body.metadata,
        extra={
            "root": base.id,
            "seed": body.seed if body.seed is not None else _seed(job_id),
            "method": _method(method, requested),
            "resolved_method": _method(method, hyperparameters),
            "error": {"code": failure[1], "param": failure[2]} if failure else None,
        },
    )


#: Hyperparameters every method has (the job's top-level ``hyperparameters``).
_SHARED = ("batch_size", "learning_rate_multiplier", "n_epochs")
#: The hyperparameters of each method (every one ``auto`` when none are given).
HYPERPARAMETERS: dict[str, type[SupervisedHyperparameters]] = {
    "supervised": SupervisedHyperparameters,
    "dpo": DpoHyperparameters,
    "reinforcement": ReinforcementHyperparameters,
}


def _base(name: str, parent: ModelRecord | None) -> catalogue.BaseModel:
    """The base model a job trains (a fine-tuned model's own base), or a 400."""
    base = catalogue.base_model(parent.root if parent is not None else name)
    if base is None:
        raise invalid(
            f"Model {name} is not available for fine-tuning or does not exist. Fine-tunable "
            f"models: {', '.join(m.alias for m in catalogue.BASE_MODELS)} (or their "
            "snapshots), and your fine-tuned models.",
            "model",
            "model_not_available",
        )
    return base


def _file(files: Mapping[str, FileRecord], file_id: str, param: str) -> FileRecord:
    """The live fine-tuning file a request names, or a 400 naming the parameter."""
    file = files.get(file_id)
    if file is None:
        raise invalid(
            f"Invalid {param}: {file_id} does not exist (never uploaded, or deleted). Upload "
            "it with POST /v1/files, purpose fine-tune, and use the id it returns.",
            param,
            f"invalid_{param}",
        )
    if file.purpose != "fine-tune":
        raise invalid(
            f"Invalid {param}: {file_id} was uploaded with purpose {file.purpose!r}; "
            "fine-tuning files need purpose 'fine-tune'.",
            param,
            f"invalid_{param}",
        )
    return file


def _resolve(method: str, requested: dict[str, Any], examples: int) -> dict[str, Any]:
    """The hyperparameters with every ``auto`` the sandbox resolves replaced by a value."""
    out = dict(requested)
    if out.get("n_epochs", "auto") == "auto":
        epochs = TARGET_EPOCHS
        if examples * TARGET_EPOCHS < MIN_TARGET_EXAMPLES:
            epochs = min(MAX_AUTO_EPOCHS, MIN_TARGET_EXAMPLES // examples)
        elif examples * TARGET_EPOCHS > MAX_TARGET_EXAMPLES:
            epochs = max(MIN_AUTO_EPOCHS, MAX_TARGET_EXAMPLES // examples)
        out["n_epochs"] = epochs
    if out.get("batch_size", "auto") == "auto":
        out["batch_size"] = max(1, min(MAX_BATCH, round(examples * AUTO_BATCH_SHARE)))
    if out.get("learning_rate_multiplier", "auto") == "auto":
        out["learning_rate_multiplier"] = AUTO_LEARNING_RATE_MULTIPLIER
    if method == "dpo" and out.get("beta", "auto") == "auto":
        out["beta"] = AUTO_BETA
    return out


def _method(method: Method, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The job's ``method`` object: its type and configuration with these hyperparameters."""
    config: dict[str, Any] = {"hyperparameters": hyperparameters}
    if method.reinforcement is not None:
        config = {"grader": method.reinforcement.grader, **config}
    return {"type": method.type, method.type: config}


def _failure(
    method: str, training: FileRecord, validation: FileRecord | None
) -> tuple[str, str, str] | None:
    """(message, code, param) of why validating the files will fail, or None."""
    for role, file in (("training", training), ("validation", validation)):
        if file is None:
            continue
        param = f"{role}_file"
        expected = METHOD_FORMAT[method]
        if file.sample_type != expected:
            found = FORMATS.get(file.sample_type, "something else")
            return (
                f"The job failed due to an invalid {role} file. A {method} job needs "
                f"{FORMATS[expected]}, but {file.filename} ({file.id}) holds {found}.",
                f"invalid_{param}",
                param,
            )
        # Reinforcement data ends with the question, not an answer: the chat rules (which
        # want the answer last) do not apply to it.
        if file.invalid and method != "reinforcement":
            return (
                f"The job failed due to an invalid {role} file. {file.filename} ({file.id}): "
                f"{file.invalid} of {file.samples} examples are invalid: "
                f"{'; '.join(file.problems)}. Fix them (`reconciler validate` shows every "
                "problem) and upload the file again.",
                f"invalid_{param}",
                param,
            )
    if training.samples < MIN_EXAMPLES:
        return (
            f"Training file has {training.samples} example(s), but must have at least "
            f"{MIN_EXAMPLES} examples.",
            "invalid_training_file",
            "training_file",
        )
    return None


def _seed(job_id: str) -> int:
    """The seed of a job created without one (fixed per job)."""
    return int.from_bytes(hashlib.sha256(f"seed:{job_id}".encode()).digest()[:4]) % 2**31
