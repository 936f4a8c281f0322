"""Local cost estimates and budgets: what the jobs of a plan will cost, computed on this machine.

``plan`` sends nothing to the remote to price a job. The estimate of every job it creates,
replaces or starts comes from local facts: the token counts of the prepared training files
(the validator's approximation, or Mistral's tokenizer with the ``tokens`` extra and
``--exact-tokens``), the job's ``training_steps`` or ``epochs``, and a per-model price table
kept in code with its source and date (:data:`MISTRAL_PRICES`, :data:`SANDBOX_PRICES`,
:data:`OPENAI_PRICES`), overridable per Provider (``prices:``). Where the remote validates a
job before it starts (``auto_start``), the remote's own figure stays the final gate at apply
(:mod:`~reconciler.engine.start_gate`); where it starts jobs as it creates them (OpenAI), the
plan's estimate is the only budget check there is.

An estimator is chosen by provider type (:func:`estimator_for`, :data:`ESTIMATORS`) and
implements :class:`CostEstimator`. Mistral and the sandbox train ``steps`` steps of
``tokens_per_step`` tokens each (:class:`StepTokenEstimator`); OpenAI bills the training
file's tokens times the epochs (:class:`EpochTokenEstimator`); a Ray cluster of one's own
costs the GPU-hours its jobs take × the Provider's price per GPU-hour
(:class:`GpuHourEstimator`).

:func:`review_costs` turns the estimates into the plan's cost review: new jobs that could not
be estimated (the totals are then a lower bound) and the errors that make apply refuse the
plan — a job over its ``budget.max_cost`` (or, on a provider without a start gate, a job with
a budget and no estimate), or the whole plan over the run's cap (``--max-cost``, the
Provider's ``budget``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, Protocol

from reconciler.address import Address, ResourceType
from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState
from reconciler.engine.plan import (
    CostBasis,
    CostEstimate,
    CostSource,
    FileTokens,
    Plan,
    RunBudgetLimit,
)
from reconciler.train.job import Hyperparameters as TrainHyperparameters

if TYPE_CHECKING:
    from reconciler.spec.models import ModelPrice as ModelPriceSpec
    from reconciler.spec.models import Provider

CURRENCY = "USD"
"""The currency of the price tables (and of ``--max-cost`` and the Provider's ``budget``)."""

DEFAULT_SEQ_LEN = 32768
"""Sequence length when a job does not set ``seq_len`` (Mistral's default)."""

SEQUENCES_PER_STEP = 4
"""Sequences one training step trains on. With the default ``seq_len`` a step is 131,072
tokens: the ``train_tokens_per_step`` of a real Mistral job (open-mistral-7b, 2024-07-19, in
Mistral's fine-tuning API cookbook, docs.mistral.ai/cookbook/mistral-fine_tune-mistral_finetune_api),
and the sandbox's rule."""

MISTRAL_STORAGE_PER_MONTH = 2.0
"""USD per fine-tuned model per month: "a monthly storage fee of $2 for each model"
(docs.mistral.ai/capabilities/finetuning, read 2026-11-29)."""

MISTRAL_MINIMUM_FEE = 4.0
"""USD: "Every fine-tuning job comes with a minimum fee of $4" (same page)."""


@dataclass(frozen=True)
class ModelRate:
    """The price of fine-tuning one base model.

    Attributes:
        train_per_million_tokens: USD per million trained tokens.
        storage_per_month: USD per month for each fine-tuned model kept.
        minimum_fee: the least a job costs (USD).
        source: where the figures come from (shown in each estimate's basis).
    """

    train_per_million_tokens: float
    storage_per_month: float
    minimum_fee: float
    source: str


@dataclass(frozen=True)
class PriceTable:
    """The prices of one provider's base models.

    Attributes:
        provider: the provider type the table is for.
        models: base model → rate. A model not listed has no price: its jobs are not
            estimated unless the Provider's ``prices`` names it.
        default: the rate of any other model (None: none), e.g. the sandbox's flat rate.
        storage_per_month: storage price of a model the table does not list (USD/month).
        minimum_fee: minimum fee of a model the table does not list (USD).
    """

    provider: str
    models: Mapping[str, ModelRate]
    default: ModelRate | None = None
    storage_per_month: float = MISTRAL_STORAGE_PER_MONTH
    minimum_fee: float = 0.0

    def rate(self, model: str) -> ModelRate | None:
        """The rate of ``model``, or None when the table has none."""
        return self.models.get(model, self.default)

    def with_overrides(self, prices: Mapping[str, ModelPriceSpec]) -> PriceTable:
        """This table with the Provider's ``prices`` in front (unset fields keep the table's)."""
        if not prices:
            return self
        models = dict(self.models)
        for model, price in prices.items():
            known = self.rate(model)
            models[model] = ModelRate(
                train_per_million_tokens=price.train_per_million_tokens,
                storage_per_month=_first(
                    price.storage_per_month,
                    known.storage_per_month if known else None,
                    self.storage_per_month,
                ),
                minimum_fee=_first(
                    price.minimum_fee, known.minimum_fee if known else None, self.minimum_fee
                ),
                source=f"Provider prices: {model}",
            )
        return replace(self, models=models)


def _first(*values: float | None) -> float:
    return next(v for v in values if v is not None)


_MISTRAL_VERIFIED = (
    "Mistral, verified: a real open-mistral-7b job's metadata (1,310,720 trained tokens cost "
    "2.6214 USD on 2024-07-19; docs.mistral.ai/cookbook/mistral-fine_tune-mistral_finetune_api); "
    "$4 minimum and $2/month storage from docs.mistral.ai/capabilities/finetuning, read "
    "2026-11-29"
)
_MISTRAL_UNVERIFIED = (
    "Mistral, NOT verified: recalled from mistral.ai/pricing (fine-tunable models, 2024), "
    "which could not be re-read on 2026-11-29; set the Provider's prices to be sure"
)

MISTRAL_PRICES = PriceTable(
    provider="mistral",
    models={
        "open-mistral-7b": ModelRate(
            2.0, MISTRAL_STORAGE_PER_MONTH, MISTRAL_MINIMUM_FEE, _MISTRAL_VERIFIED
        ),
        "open-mistral-nemo": ModelRate(
            1.0, MISTRAL_STORAGE_PER_MONTH, MISTRAL_MINIMUM_FEE, _MISTRAL_UNVERIFIED
        ),
        "codestral-latest": ModelRate(
            3.0, MISTRAL_STORAGE_PER_MONTH, MISTRAL_MINIMUM_FEE, _MISTRAL_UNVERIFIED
        ),
        "mistral-large-latest": ModelRate(
            9.0, MISTRAL_STORAGE_PER_MONTH, MISTRAL_MINIMUM_FEE, _MISTRAL_UNVERIFIED
        ),
    },
    minimum_fee=MISTRAL_MINIMUM_FEE,
)
"""Mistral's fine-tuning prices (USD), by base model.

Sources, and what could be checked (2026-11-29):

* **Verified.** ``open-mistral-7b`` at 2 USD per million trained tokens: the metadata of a
  real job in Mistral's fine-tuning API cookbook
  (docs.mistral.ai/cookbook/mistral-fine_tune-mistral_finetune_api, run 2024-07-19) reads
  ``train_tokens: 1310720, cost: 2.6214, cost_currency: USD`` — exactly 2 USD per million. The minimum fee of 4 USD per job and the storage
  fee of 2 USD per model per month: docs.mistral.ai/capabilities/finetuning ("Every
  fine-tuning job comes with a minimum fee of $4, and there's a monthly storage fee of $2 for
  each model"). Mistral's own dry-run figure did not include the minimum fee; this table does,
  so the local estimate errs on the high side for short jobs.
* **Not verified.** ``open-mistral-nemo`` (1), ``codestral-latest`` (3) and
  ``mistral-large-latest`` (9 USD per million tokens) are the figures of the "fine-tunable
  models" section of mistral.ai/pricing as remembered from 2024; that page could not be
  re-read, and the largest model's storage may have been priced higher than 2 USD. Their
  estimates say so in their basis.
* **Unknown.** ``mistral-small-latest``, ``ministral-3b-latest``, ``ministral-8b-latest`` and
  any other model: no price is given rather than a guess. Their jobs are listed as not
  estimated (the plan's total then reads "at least") until the Provider's ``prices`` names
  them.

Mistral has deprecated its fine-tuning jobs API; these prices are what its last published
contract charged.
"""

SANDBOX_PRICES = PriceTable(
    provider="sandbox",
    models={},
    default=ModelRate(
        train_per_million_tokens=2.0,
        storage_per_month=MISTRAL_STORAGE_PER_MONTH,
        minimum_fee=1.0,
        source="the sandbox's rate: 2 USD per million trained tokens, minimum 1 USD "
        "(docs/sandbox.md)",
    ),
)
"""The sandbox's price: one flat rate for every model (its cost estimate at validation and in
a dry run), so a local estimate and the sandbox's own figure agree; storage as Mistral's."""

OPENAI_PRICE_SOURCE = (
    "OpenAI, NOT verified: openai.com/api/pricing, fine-tuning training prices per million "
    "training tokens as published in 2025 (gpt-4o and gpt-4o-mini agree with a third-party "
    "pricing guide of April 2026); the page could not be re-read on 2026-11-29"
)
"""Where :data:`OPENAI_PRICES` comes from, and how far it could be checked."""


def _openai_rate(price: float) -> ModelRate:
    # OpenAI bills the use of a fine-tuned model, not keeping it, and has no minimum fee.
    return ModelRate(price, 0.0, 0.0, OPENAI_PRICE_SOURCE)


OPENAI_PRICES = PriceTable(
    provider="openai",
    models={
        "gpt-4o-mini": _openai_rate(3.00),
        "gpt-4o": _openai_rate(25.00),
        "gpt-4.1-nano": _openai_rate(1.50),
        "gpt-4.1-mini": _openai_rate(5.00),
        "gpt-4.1": _openai_rate(25.00),
        "gpt-3.5-turbo": _openai_rate(8.00),
        "davinci-002": _openai_rate(6.00),
        "babbage-002": _openai_rate(0.40),
    },
    storage_per_month=0.0,
)
"""OpenAI's fine-tuning prices (USD per million trained tokens), by base model family: an
alias or any of its snapshots (``gpt-4o-mini``, ``gpt-4o-mini-2024-07-18``) and fine-tunes of
them (``ft:gpt-4o-mini-2024-07-18:org:tone:id``) take the family's price
(:func:`openai_family`). Supervised and DPO training are billed alike per trained token.
``o4-mini`` (reinforcement, billed by the hour) and any other model get no price rather than
a guess. Storage is free: OpenAI bills the use of a fine-tuned model, not keeping it."""

_SNAPSHOT = re.compile(r"-\d{4}(-\d{2}-\d{2})?$")
"""A snapshot's date on its family's name (``-2024-07-18``, ``-0125``)."""


def openai_family(model: str) -> str:
    """The base model family of an OpenAI model: ``gpt-4o-mini`` for
    ``gpt-4o-mini-2024-07-18`` and for a fine-tune of it (``ft:gpt-4o-mini-...:org:x:id``)."""
    base = model.split(":")[1] if model.startswith("ft:") and ":" in model[3:] else model
    return _SNAPSHOT.sub("", base)


OPENAI_TARGET_EPOCHS = 3
OPENAI_MIN_TARGET_EXAMPLES = 100
OPENAI_MAX_TARGET_EXAMPLES = 25_000
OPENAI_MIN_DEFAULT_EPOCHS = 1
OPENAI_MAX_DEFAULT_EPOCHS = 25
"""OpenAI's default epochs: 3, raised for small files and lowered for large ones so that
epochs × examples falls between 100 and 25,000 where it can (1–25 epochs). From OpenAI's
cookbook "Data preparation and analysis for chat model fine-tuning"; the sandbox's OpenAI
dialect applies the same rule."""


def openai_default_epochs(examples: int) -> int:
    """The epochs OpenAI trains when a job leaves ``n_epochs`` to it (see the constants)."""
    n = max(examples, 1)
    epochs = OPENAI_TARGET_EPOCHS
    if n * epochs < OPENAI_MIN_TARGET_EXAMPLES:
        epochs = min(OPENAI_MAX_DEFAULT_EPOCHS, OPENAI_MIN_TARGET_EXAMPLES // n)
    elif n * epochs > OPENAI_MAX_TARGET_EXAMPLES:
        epochs = max(OPENAI_MIN_DEFAULT_EPOCHS, OPENAI_MAX_TARGET_EXAMPLES // n)
    return epochs


@dataclass(frozen=True)
class Unestimated:
    """Why a job has no estimate (a missing price, an unknown length)."""

    reason: str


class CostEstimator(Protocol):
    """Estimates what one job costs on one kind of provider, from local facts only."""

    @property
    def provider(self) -> str:
        """The provider type it estimates for."""
        ...

    @property
    def storage_per_month(self) -> float:
        """Monthly storage price of a fine-tuned model it has no specific price for (USD)."""
        ...

    def estimate(
        self, job: DesiredJob, files: Mapping[str, DesiredFile]
    ) -> CostEstimate | Unestimated:
        """The job's estimate (``source: local``), or why there is none."""
        ...


@dataclass(frozen=True)
class _TableEstimator:
    """An estimator priced by a :class:`PriceTable` (with the Provider's overrides)."""

    prices: PriceTable

    @property
    def provider(self) -> str:
        """The price table's provider type."""
        return self.prices.provider

    @property
    def storage_per_month(self) -> float:
        """The price table's storage price of an unlisted model."""
        return self.prices.storage_per_month


@dataclass(frozen=True)
class StepTokenEstimator(_TableEstimator):
    """Jobs that train ``steps`` steps of ``seq_len × 4`` tokens (Mistral and the sandbox).

    ``steps`` is ``training_steps`` when set; else ``ceil(epochs × data_tokens /
    tokens_per_step)`` where ``data_tokens`` is the sum of the training files' tokens
    (weights do not change it: they only decide how often each file is sampled); else the
    provider's default (None: unknown, no estimate). The cost is ``max(minimum_fee,
    steps × tokens_per_step / 1e6 × price)``, rounded to 4 decimals as the sandbox does.

    Attributes:
        prices: the price table (with the Provider's overrides).
        default_steps: steps of a job that sets neither ``training_steps`` nor ``epochs``.
    """

    default_steps: int | None = None

    def estimate(
        self, job: DesiredJob, files: Mapping[str, DesiredFile]
    ) -> CostEstimate | Unestimated:
        """See the class docstring."""
        identity = job.identity
        model = str(identity["model"])
        rate = self.prices.rate(model)
        if rate is None:
            return _no_price(model, self.prices.provider)
        hyper = identity["hyperparameters"]
        tokens_per_step = int(hyper.get("seq_len") or DEFAULT_SEQ_LEN) * SEQUENCES_PER_STEP
        # Plain loops: a plan prices every new job, and this runs a thousand times in one.
        training: list[tuple[DesiredFile, float]] = []
        exact = True
        for ref in identity["training_files"]:
            f = files[ref["file"]]
            training.append((f, float(ref.get("weight") or 1.0)))
            exact = exact and f.exact_tokens is not None
        counts = [(f.exact_tokens or 0) if exact else f.approx_tokens for f, _ in training]
        data_tokens = max(1, sum(counts))
        steps_from: Literal["training_steps", "epochs", "default"]
        if hyper.get("training_steps") is not None:
            steps, steps_from = int(hyper["training_steps"]), "training_steps"
        elif hyper.get("epochs") is not None:
            steps = max(1, math.ceil(float(hyper["epochs"]) * data_tokens / tokens_per_step))
            steps_from = "epochs"
        elif self.default_steps is not None:
            steps, steps_from = self.default_steps, "default"
        else:
            return Unestimated(
                "neither training_steps nor epochs is set, so the remote decides how long "
                "it trains; set one of them to get an estimate"
            )
        train_tokens = steps * tokens_per_step
        shares = _file_shares(training, counts, train_tokens)
        basis = CostBasis(
            **({"training_files": shares} if shares else {}),
            train_tokens=train_tokens,
            steps=steps,
            steps_from=steps_from,
            tokens_per_step=tokens_per_step,
            data_tokens=data_tokens,
            token_count="exact" if exact else "approx",
            epochs=round(train_tokens / data_tokens, 4),
            price_per_million_tokens=rate.train_per_million_tokens,
            minimum_fee=rate.minimum_fee,
            price_source=rate.source,
        )
        return _local_estimate(rate, train_tokens, basis)


@dataclass(frozen=True)
class EpochTokenEstimator(_TableEstimator):
    """Jobs billed by the tokens of their training data times the epochs (OpenAI).

    ``epochs`` is the job's (OpenAI's whole ``n_epochs``) or, when the job leaves it to the
    service, OpenAI's default for the number of training examples
    (:func:`openai_default_epochs`). The cost is ``max(minimum_fee, epochs × data_tokens /
    1e6 × price)``, rounded to 4 decimals. Token counts are the validator's approximation:
    Mistral's tokenizer (``--exact-tokens``) is no more exact for OpenAI's models.

    Attributes:
        prices: the price table (with the Provider's overrides); a model it does not name is
            looked up by its family (:func:`openai_family`).
    """

    def estimate(
        self, job: DesiredJob, files: Mapping[str, DesiredFile]
    ) -> CostEstimate | Unestimated:
        """See the class docstring."""
        identity = job.identity
        model = str(identity["model"])
        rate = self.prices.rate(model) or self.prices.rate(openai_family(model))
        if rate is None:
            return _no_price(model, self.prices.provider)
        training = [files[ref["file"]] for ref in identity["training_files"]]
        data_tokens = max(1, sum(f.approx_tokens for f in training))
        given = identity["hyperparameters"].get("epochs")
        epochs = (
            int(given)
            if given is not None
            else openai_default_epochs(sum(f.samples for f in training))
        )
        train_tokens = epochs * data_tokens
        basis = CostBasis(
            train_tokens=train_tokens,
            data_tokens=data_tokens,
            token_count="approx",
            epochs=epochs,
            epochs_from="epochs" if given is not None else "default",
            price_per_million_tokens=rate.train_per_million_tokens,
            minimum_fee=rate.minimum_fee,
            price_source=rate.source,
        )
        return _local_estimate(rate, train_tokens, basis)


@dataclass(frozen=True)
class GpuHourEstimator:
    """Jobs on a cluster of one's own (Ray): the GPU-hours they take × a price per GPU-hour.

    The trainer runs ``steps`` optimizer steps of ``batch_size`` samples in each of its
    ``processes`` (one per GPU when a job has several GPUs, else one), as
    :mod:`reconciler.train` does: ``steps`` is ``training_steps``, or ``ceil(epochs × samples
    / (batch_size × processes))``. A sample counts the training files' mean tokens per sample,
    cut at ``seq_len`` as the trainer cuts it (``seq_len`` itself when the counts are unknown:
    an upper bound). The tokens over the GPUs' throughput are the GPU-hours, summed over the
    GPUs: ``train_tokens / tokens_per_gpu_second / 3600``; the cost is ``gpu_hours ×
    price_per_gpu_hour``, rounded to 4 decimals. No minimum fee, no storage fee (the adapters
    are in one's own storage). It counts training only: not waiting for a GPU, loading the
    model or evaluating checkpoints.

    Attributes:
        gpus: GPUs per job (the Provider's ``resources.gpus``).
        tokens_per_gpu_second: what one GPU trains per second (None: no estimate).
        price_per_gpu_hour: what one GPU-hour costs, in :data:`CURRENCY` (None: no estimate).
    """

    gpus: float
    tokens_per_gpu_second: float | None
    price_per_gpu_hour: float | None
    provider: str = "ray"
    storage_per_month: float = 0.0

    @classmethod
    def of(cls, provider: Provider | None) -> GpuHourEstimator:
        """The estimator of a ray Provider document (its resources, throughput and price)."""
        if provider is None:
            return cls(gpus=1.0, tokens_per_gpu_second=None, price_per_gpu_hour=None)
        return cls(
            gpus=provider.resources.gpus if provider.resources is not None else 1.0,
            tokens_per_gpu_second=provider.tokens_per_gpu_second,
            price_per_gpu_hour=provider.price_per_gpu_hour,
        )

    def estimate(
        self, job: DesiredJob, files: Mapping[str, DesiredFile]
    ) -> CostEstimate | Unestimated:
        """See the class docstring."""
        missing = [
            name
            for name, value in (
                ("tokens_per_gpu_second", self.tokens_per_gpu_second),
                ("price_per_gpu_hour", self.price_per_gpu_hour),
            )
            if value is None
        ]
        if self.tokens_per_gpu_second is None or self.price_per_gpu_hour is None:
            return Unestimated(
                f"the ray Provider sets no {' and no '.join(missing)}, so its GPU-hours "
                "cannot be priced; set both on the Provider (measure the throughput from a "
                "first run's result.json: trained_tokens / elapsed_seconds / GPUs)"
            )
        defaults = TrainHyperparameters.model_fields
        batch = int(defaults["batch_size"].default)
        hyper = job.identity["hyperparameters"]
        seq_len = int(hyper.get("seq_len") or defaults["seq_len"].default)
        processes = int(self.gpus) if self.gpus > 1 else 1
        training = [files[ref["file"]] for ref in job.identity["training_files"]]
        exact = all(f.exact_tokens is not None for f in training)
        data_tokens = sum((f.exact_tokens or 0) if exact else f.approx_tokens for f in training)
        samples = sum(f.samples for f in training)
        steps_from: Literal["training_steps", "epochs"]
        if hyper.get("training_steps") is not None:
            steps, steps_from = int(hyper["training_steps"]), "training_steps"
        elif hyper.get("epochs") is not None:
            steps = max(1, math.ceil(float(hyper["epochs"]) * samples / (batch * processes)))
            steps_from = "epochs"
        else:
            return Unestimated("neither training_steps nor epochs is set; set one of them")
        per_sample = seq_len
        if data_tokens > 0 and samples > 0:
            per_sample = max(1, min(seq_len, math.ceil(data_tokens / samples)))
        tokens_per_step = batch * processes * per_sample
        train_tokens = steps * tokens_per_step
        gpu_hours = train_tokens / self.tokens_per_gpu_second / 3600
        basis = CostBasis(
            train_tokens=train_tokens,
            steps=steps,
            steps_from=steps_from,
            tokens_per_step=tokens_per_step,
            data_tokens=max(1, data_tokens),
            token_count="exact" if exact else "approx",
            epochs=round(train_tokens / max(1, data_tokens), 4),
            # The same price per trained token, for comparison with hosted services.
            price_per_million_tokens=round(
                self.price_per_gpu_hour / (self.tokens_per_gpu_second * 3600) * 1e6, 6
            ),
            minimum_fee=0.0,
            price_source=f"the ray Provider: {self.price_per_gpu_hour:g} {CURRENCY} per "
            f"GPU-hour at {self.tokens_per_gpu_second:g} tokens per GPU-second",
            gpu_hours=round(gpu_hours, 6),
            price_per_gpu_hour=self.price_per_gpu_hour,
            tokens_per_gpu_second=self.tokens_per_gpu_second,
        )
        return CostEstimate(
            amount=round(gpu_hours * self.price_per_gpu_hour, 4),
            currency=CURRENCY,
            source=CostSource.LOCAL,
            train_tokens=train_tokens,
            basis=basis,
        )


def _no_price(model: str, provider: str) -> Unestimated:
    return Unestimated(
        f"no price for model {model!r} on {provider}: add it to the Provider's prices, e.g. "
        f"prices: {{{model}: {{train_per_million_tokens: ...}}}}"
    )


def _local_estimate(rate: ModelRate, train_tokens: int, basis: CostBasis) -> CostEstimate:
    """The estimate of ``train_tokens`` trained at ``rate`` (its minimum fee at least), with
    the monthly storage of the model it makes where the provider charges any."""
    amount = max(rate.minimum_fee, train_tokens / 1e6 * rate.train_per_million_tokens)
    storage = {"storage_per_month": rate.storage_per_month} if rate.storage_per_month else {}
    return CostEstimate(
        amount=round(amount, 4),
        currency=CURRENCY,
        source=CostSource.LOCAL,
        train_tokens=train_tokens,
        basis=basis,
        **storage,
    )


def _file_shares(
    training: list[tuple[DesiredFile, float]], counts: list[int], train_tokens: int
) -> tuple[FileTokens, ...]:
    """Each training file's tokens, weight and passes, when there are several (with one,
    the basis's ``data_tokens`` and ``epochs`` say it all)."""
    if len(training) < 2:
        return ()
    per_weight = train_tokens / (sum(w for _, w in training) or 1.0)
    return tuple(
        FileTokens(
            file=f.address,
            tokens=count,
            weight=weight,
            epochs=round(per_weight * weight / max(1, count), 4),
        )
        for (f, weight), count in zip(training, counts, strict=True)
    )


EstimatorFactory = Callable[["Provider | None"], CostEstimator]
"""Makes the estimator of a workspace from its Provider document (None: the embedded sandbox),
with the Provider's ``prices`` applied."""

SANDBOX_DEFAULT_STEPS = 10
"""Steps the sandbox trains a job that sets neither ``training_steps`` nor ``epochs``."""


def _step_tokens(table: PriceTable, default_steps: int | None) -> EstimatorFactory:
    def make(provider: Provider | None) -> CostEstimator:
        prices = table.with_overrides(provider.prices) if provider is not None else table
        return StepTokenEstimator(prices, default_steps)

    return make


def _epoch_tokens(table: PriceTable) -> EstimatorFactory:
    def make(provider: Provider | None) -> CostEstimator:
        return EpochTokenEstimator(
            table.with_overrides(provider.prices) if provider is not None else table
        )

    return make


ESTIMATORS: dict[str, EstimatorFactory] = {
    "mistral": _step_tokens(MISTRAL_PRICES, None),
    "sandbox": _step_tokens(SANDBOX_PRICES, SANDBOX_DEFAULT_STEPS),
    "openai": _epoch_tokens(OPENAI_PRICES),
    "ray": GpuHourEstimator.of,
}
"""Provider type → how to make its estimator. Mistral does not document how long a job that
sets neither ``training_steps`` nor ``epochs`` trains, so such a job is not estimated there.
A provider with another cost model registers its own :class:`CostEstimator` here, as ``ray``
does (GPU-hours × the Provider's price per GPU-hour)."""


def estimator_for(provider: Provider | None) -> CostEstimator:
    """The estimator of the workspace's provider (None: the embedded sandbox), with the
    Provider's ``prices`` applied."""
    return ESTIMATORS[provider.type if provider is not None else "sandbox"](provider)


def pricer(
    estimator: CostEstimator, desired: DesiredState
) -> Callable[[DesiredJob], CostEstimate | None]:
    """The planner's ``price``: a job's local estimate (None when there is none; the reason
    is found again by :func:`review_costs`)."""

    def price(job: DesiredJob) -> CostEstimate | None:
        result = estimator.estimate(job, desired.files)
        return result if isinstance(result, CostEstimate) else None

    return price


def with_estimates(plan: Plan, known: Mapping[str, CostEstimate]) -> Plan:
    """The plan with the estimates in ``known`` (the remote's dry runs) on its new jobs, in
    place of the local ones."""
    if not known:
        return plan
    changes = tuple(
        c.model_copy(update={"cost": known[c.address]})
        if c.address in known and c.type is ResourceType.JOB and c.action.makes_new
        else c
        for c in plan.changes
    )
    return plan.model_copy(update={"changes": changes})


def with_approved(plan: Plan, approved: Mapping[str, CostEstimate]) -> Plan:
    """The plan with the estimates a saved plan was reviewed with (``approved``) on its new
    jobs, where they are higher than the ones made now or where there is none now.

    Apply makes a saved plan again and checks the budgets on that plan: a figure the reviewer
    saw (the remote's dry run, say) counts when it is the higher one, so a plan that was over
    a budget when reviewed is still refused, while a plan file edited to show less than what
    apply computes now cannot loosen the check.
    """
    higher: dict[str, CostEstimate] = {
        c.address: approved[c.address]
        for c in plan.costly
        if c.action.makes_new
        and c.address in approved
        and (c.cost is None or approved[c.address].amount > c.cost.amount)
    }
    return with_estimates(plan, higher)


def run_budget(max_cost: float | None, provider: Provider | None) -> RunBudgetLimit | None:
    """The cap on a plan's total: the lower of ``--max-cost`` and the Provider's ``budget``."""
    caps = []
    if max_cost is not None:
        caps.append(RunBudgetLimit(max_cost=max_cost, source="--max-cost"))
    if provider is not None and provider.budget is not None:
        caps.append(RunBudgetLimit(max_cost=provider.budget.max_cost, source="Provider budget"))
    return min(caps, key=lambda c: c.max_cost) if caps else None


def review_costs(
    plan: Plan,
    estimator: CostEstimator,
    desired: DesiredState,
    budget: RunBudgetLimit | None,
    *,
    start_gate: bool = True,
) -> Plan:
    """The plan with its cost review: the jobs it creates, replaces or starts without a cost
    and why (:attr:`~reconciler.engine.plan.Plan.unestimated`), the run's cap, and the budget
    errors (:func:`budget_errors`, after the plan's own errors).

    ``start_gate`` is false for a provider that starts jobs as it creates them (no
    ``auto_start``): no remote figure will be checked before a job runs, so a job with a
    budget must have an estimate within it here, and the plan says so.
    """
    unestimated: dict[Address, str] = {}
    for change in plan.costly:
        if change.cost is None:
            result = estimator.estimate(desired.jobs[change.address], desired.files)
            unestimated[change.address] = (
                result.reason if isinstance(result, Unestimated) else "not estimated"
            )
    update: dict[str, Any] = {"unestimated": unestimated, "run_budget": budget}
    budgeted = any(c.after is not None and c.after.budget is not None for c in plan.costly)
    if not start_gate and budgeted:
        update["warnings"] = (
            f"{estimator.provider} starts a job as soon as it is created (there is no start "
            "gate): each budget.max_cost is held against this plan's local estimate, and a "
            "job over its budget, or with a budget and no estimate, is an error",
            *plan.warnings,
        )
    reviewed = plan.model_copy(update=update)
    errors = budget_errors(reviewed, start_gate=start_gate)
    return reviewed.model_copy(update={"errors": (*plan.errors, *errors)}) if errors else reviewed


def budget_errors(plan: Plan, *, start_gate: bool = True) -> list[str]:
    """What exceeds a budget: each job over its ``budget.max_cost`` (without a
    ``start_gate``, also each job with a budget and no estimate), then the plan's total over
    its run budget."""
    errors: list[str] = []
    for change in plan.costly:
        after, cost = change.after, change.cost
        if after is None or after.budget is None:
            continue
        if cost is None:
            if not start_gate:
                errors.append(
                    f"{change.address}: its budget.max_cost {after.budget.max_cost:g} cannot be "
                    "held: the job starts as soon as it is created and the plan has no estimate "
                    f"of it ({plan.unestimated.get(change.address, 'not estimated')}); price "
                    f"the model in the Provider's prices, or remove the budget in {after.source}"
                )
            continue
        if cost.amount > after.budget.max_cost:
            errors.append(
                f"{change.address}: estimated cost {_money(cost.amount, cost.currency)} "
                f"({cost.source}{_basis_text(cost)}) is over its budget.max_cost "
                f"{after.budget.max_cost:g}; raise budget.max_cost in {after.source} or train "
                "less (training_steps, epochs)"
            )
    if plan.run_budget is not None:
        errors += run_cap_errors(plan, plan.run_budget)
    return errors


def run_cap_errors(plan: Plan, cap: RunBudgetLimit) -> list[str]:
    """The error of a plan whose total estimate is over ``cap`` (none when within it)."""
    totals = plan.cost_totals()
    total = totals.get(CURRENCY, 0.0) + totals.get("", 0.0)
    if total <= cap.max_cost:
        return []
    bound = "at least " if plan.unestimated else ""
    return [
        f"the plan's estimated cost, {bound}{_money(total, CURRENCY)} for "
        f"{len(plan.costly)} job(s), is over the run's cap of {_money(cap.max_cost, CURRENCY)} "
        f"({cap.source}); plan fewer jobs (--target) or raise the cap"
    ]


def _money(amount: float, currency: str | None) -> str:
    return f"{amount:,.2f} {currency or ''}".rstrip()


def _basis_text(cost: CostEstimate) -> str:
    """``: 10 steps x 131,072 tokens x 2 USD/M`` (or ``: 3 epochs x 2,399 tokens x 3 USD/M``)
    for a local estimate; empty otherwise."""
    basis = cost.basis
    if basis is None:
        return ""
    if basis.gpu_hours is not None and basis.price_per_gpu_hour is not None:
        return (
            f": {basis.gpu_hours:g} GPU-hours x {basis.price_per_gpu_hour:g} "
            f"{cost.currency or ''}/GPU-hour"
        )
    if basis.steps is None or basis.tokens_per_step is None:
        passes = f"{basis.epochs:g} epochs x {basis.data_tokens:,} tokens"
    else:
        passes = f"{basis.steps} steps x {basis.tokens_per_step:,} tokens"
    return f": {passes} x {basis.price_per_million_tokens:g} {cost.currency or ''}/M"
