"""Request bodies of the OpenAI dialect: ``CreateFineTuningJobRequest`` and its parts.

The pydantic models mirror the reference document's schemas with its ranges (suffix of 1 to
64 characters, ``seed`` in [0, 2³¹ − 1], metadata of at most 16 string pairs with keys of at
most 64 and values of at most 512 characters, hyperparameters that are ``"auto"`` or a number
in range). Unknown fields are refused, as the service refuses them ("Unrecognized request
argument supplied"), and so is a W&B ``api_key``: OpenAI reads that key from the
organisation's settings, never from a job. Numbers must have their JSON type (``"3"`` is not
an integer, ``true`` is not a number).

Our own validators raise errors typed ``openai_<code>``, which :mod:`.errors` turns into the
service's ``code``.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator
from pydantic_core import PydanticCustomError

_STRICT = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)

#: Most metadata pairs on a job, and the longest key and value.
METADATA_MAX_PAIRS = 16
METADATA_KEY_MAX = 64
METADATA_VALUE_MAX = 512
#: The grader types of the reinforcement method.
GRADER_TYPES = frozenset({"string_check", "text_similarity", "python", "score_model", "multi"})

Auto = Literal["auto"]


def _auto_or(kind: type, low: float, high: float, *, low_open: bool = False) -> PlainValidator:
    """A validator for ``"auto"`` or a number of ``kind`` (int or float) in range."""
    number = "an integer" if kind is int else "a number"
    opening = ">" if low_open else ">="
    wanted = f"'auto' or {number} {opening} {low:g}" + (
        f" and <= {high:g}" if math.isfinite(high) else ""
    )

    def check(value: Any) -> Any:
        if value == "auto":
            return value
        fits = isinstance(value, int | float) and not isinstance(value, bool)
        if fits and kind is int and not isinstance(value, int):
            fits = False
        if fits and math.isfinite(value):
            if (value > low if low_open else value >= low) and value <= high:
                return value
        raise PydanticCustomError(
            "openai_invalid_value",
            "expected {wanted}, but got {got}.",
            {"wanted": wanted, "got": repr(value)},
        )

    return PlainValidator(check)


BatchSize = Annotated[Auto | int, _auto_or(int, 1, 256)]
LearningRateMultiplier = Annotated[Auto | float, _auto_or(float, 0, math.inf, low_open=True)]
Epochs = Annotated[Auto | int, _auto_or(int, 1, 50)]
Beta = Annotated[Auto | float, _auto_or(float, 0, 2, low_open=True)]
ComputeMultiplier = Annotated[Auto | float, _auto_or(float, 1e-5, 10, low_open=True)]
Count = Annotated[Auto | int, _auto_or(int, 1, 2**31 - 1)]


class SupervisedHyperparameters(BaseModel):
    """Hyperparameters of every method.

    Attributes:
        batch_size: examples per batch, 1-256, or ``auto``.
        learning_rate_multiplier: scale of the learning rate (> 0), or ``auto``.
        n_epochs: passes over the training data, 1-50, or ``auto``.
    """

    model_config = _STRICT

    batch_size: BatchSize = "auto"
    learning_rate_multiplier: LearningRateMultiplier = "auto"
    n_epochs: Epochs = "auto"


class DpoHyperparameters(SupervisedHyperparameters):
    """Hyperparameters of the ``dpo`` method.

    Attributes:
        beta: weight of the penalty between the policy and the reference model, in (0, 2],
            or ``auto``.
    """

    beta: Beta = "auto"


class ReinforcementHyperparameters(SupervisedHyperparameters):
    """Hyperparameters of the ``reinforcement`` method.

    Attributes:
        reasoning_effort: ``default``, ``low``, ``medium`` or ``high``.
        compute_multiplier: compute spent exploring, in (1e-5, 10], or ``auto``.
        eval_interval: training steps between evaluations, or ``auto``.
        eval_samples: samples generated per evaluation step, or ``auto``.
    """

    reasoning_effort: Literal["default", "low", "medium", "high"] = "default"
    compute_multiplier: ComputeMultiplier = "auto"
    eval_interval: Count = "auto"
    eval_samples: Count = "auto"


class SupervisedMethod(BaseModel):
    """Configuration of the ``supervised`` method.

    Attributes:
        hyperparameters: its hyperparameters (all ``auto`` when absent).
    """

    model_config = _STRICT

    hyperparameters: SupervisedHyperparameters | None = None


class DpoMethod(BaseModel):
    """Configuration of the ``dpo`` method.

    Attributes:
        hyperparameters: its hyperparameters (all ``auto`` when absent).
    """

    model_config = _STRICT

    hyperparameters: DpoHyperparameters | None = None


class ReinforcementMethod(BaseModel):
    """Configuration of the ``reinforcement`` method.

    Attributes:
        grader: how answers are graded: an object whose ``type`` is one of
            :data:`GRADER_TYPES` (its other fields are kept as sent; nothing is graded).
        hyperparameters: its hyperparameters (all ``auto`` when absent).
    """

    model_config = _STRICT

    grader: dict[str, Any]
    hyperparameters: ReinforcementHyperparameters | None = None

    @model_validator(mode="after")
    def _grader_type(self) -> ReinforcementMethod:
        if self.grader.get("type") not in GRADER_TYPES:
            raise PydanticCustomError(
                "openai_invalid_value",
                "the grader's type must be one of {types}, got {got}.",
                {"types": ", ".join(sorted(GRADER_TYPES)), "got": repr(self.grader.get("type"))},
            )
        return self


MethodType = Literal["supervised", "dpo", "reinforcement"]


class Method(BaseModel):
    """The fine-tuning method: its type and the configuration of that type only.

    Attributes:
        type: ``supervised``, ``dpo`` or ``reinforcement``.
        supervised: configuration when ``type`` is ``supervised``.
        dpo: configuration when ``type`` is ``dpo``.
        reinforcement: configuration when ``type`` is ``reinforcement`` (required then).
    """

    model_config = _STRICT

    type: MethodType
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None
    reinforcement: ReinforcementMethod | None = None

    @model_validator(mode="after")
    def _one_configuration(self) -> Method:
        others = [t for t in ("supervised", "dpo", "reinforcement") if t != self.type]
        extra = [t for t in others if getattr(self, t) is not None]
        if extra:
            raise PydanticCustomError(
                "openai_invalid_value",
                "a {type} method takes no '{extra}' configuration.",
                {"type": self.type, "extra": extra[0]},
            )
        if self.type == "reinforcement" and self.reinforcement is None:
            raise PydanticCustomError(
                "openai_missing_required_parameter",
                "a reinforcement method needs its 'reinforcement' configuration with a grader.",
            )
        return self

    def hyperparameters(self) -> SupervisedHyperparameters | None:
        """The hyperparameters given in the configuration of its type, if any."""
        config = getattr(self, self.type)
        return config.hyperparameters if config is not None else None


class Wandb(BaseModel):
    """The settings of a Weights & Biases run.

    Attributes:
        project: the W&B project.
        name: the run's display name (the job id when absent).
        entity: the W&B team or user.
        tags: tags of the run.
    """

    model_config = _STRICT

    project: str
    name: str | None = None
    entity: str | None = None
    tags: list[str] | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_key(cls, data: Any) -> Any:
        if isinstance(data, dict) and "api_key" in data:
            raise PydanticCustomError(
                "openai_unknown_parameter",
                "a W&B api_key is not sent with a job: the service reads it from the "
                "organization's settings. Remove it.",
            )
        return data


class Integration(BaseModel):
    """An integration of a job (only W&B exists).

    Attributes:
        type: ``wandb``.
        wandb: the run's settings.
    """

    model_config = _STRICT

    type: Literal["wandb"]
    wandb: Wandb


def _metadata(value: Any) -> dict[str, str] | None:
    """Check job metadata: at most 16 pairs of strings, keys ≤ 64 and values ≤ 512."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise PydanticCustomError("openai_invalid_type", "expected an object of string pairs.")
    if len(value) > METADATA_MAX_PAIRS:
        raise PydanticCustomError(
            "openai_object_above_max_properties",
            "too many properties. Expected an object with at most {limit} properties, but "
            "got an object with {count} properties instead.",
            {"limit": METADATA_MAX_PAIRS, "count": len(value)},
        )
    for key, item in value.items():
        if len(key) > METADATA_KEY_MAX:
            raise PydanticCustomError(
                "openai_string_above_max_length",
                "key {key} is {length} characters long; keys have at most {limit}.",
                {"key": repr(key[:20] + "..."), "length": len(key), "limit": METADATA_KEY_MAX},
            )
        if not isinstance(item, str):
            raise PydanticCustomError(
                "openai_invalid_type",
                "the value of {key} must be a string, got {got}.",
                {"key": repr(key), "got": repr(item)},
            )
        if len(item) > METADATA_VALUE_MAX:
            raise PydanticCustomError(
                "openai_string_above_max_length",
                "the value of {key} is {length} characters long; values have at most {limit}.",
                {"key": repr(key), "length": len(item), "limit": METADATA_VALUE_MAX},
            )
    return value


Metadata = Annotated[dict[str, str] | None, PlainValidator(_metadata)]


class CreateJob(BaseModel):
    """Body of ``POST /v1/fine_tuning/jobs`` (``CreateFineTuningJobRequest``).

    Attributes:
        model: a base model (snapshot or alias, see :mod:`.catalogue`) or a fine-tuned one.
        training_file: id of an uploaded file with purpose ``fine-tune``.
        validation_file: id of such a file for validation metrics, or None.
        hyperparameters: deprecated supervised hyperparameters (``method`` supersedes them).
        suffix: 1 to 64 characters in the fine-tuned model's name.
        integrations: W&B integrations (at most 5).
        seed: the run's seed, in [0, 2³¹ − 1]; generated when absent.
        method: the method and its hyperparameters; ``supervised`` when absent.
        metadata: up to 16 string pairs, filterable when listing jobs.
    """

    model_config = _STRICT

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    hyperparameters: SupervisedHyperparameters | None = None
    suffix: str | None = Field(None, min_length=1, max_length=64)
    integrations: list[Integration] | None = Field(None, max_length=5)
    seed: int | None = Field(None, ge=0, le=2**31 - 1)
    method: Method | None = None
    metadata: Metadata = None
