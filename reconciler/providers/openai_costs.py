"""Local cost estimates of OpenAI fine-tuning jobs: tokens × epochs × the model's price.

OpenAI estimates nothing before a job runs, and starts every job as soon as it is created, so
a plan's estimate of an OpenAI job is computed here, sending nothing: OpenAI bills supervised
and DPO training by the tokens trained, which is the tokens of the training file times the
number of epochs. When the job leaves ``n_epochs`` to the service, the epochs are OpenAI's
default (:func:`auto_epochs`).

The price table (:data:`OPENAI_TRAINING_PRICES`) is kept in code with its source and date
(:data:`PRICE_SOURCE`). Models it does not list get no estimate (a plan says so) rather than
a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

CURRENCY = "USD"

PRICE_SOURCE = (
    "OpenAI, NOT verified: openai.com/api/pricing, fine-tuning training prices per million "
    "training tokens as published in 2025 (gpt-4o and gpt-4o-mini agree with a third-party "
    "pricing guide of April 2026); the page could not be re-read on 2026-11-29"
)
"""Where :data:`OPENAI_TRAINING_PRICES` comes from, and how far it could be checked."""

OPENAI_TRAINING_PRICES: Mapping[str, float] = {
    "gpt-4o-mini": 3.00,
    "gpt-4o": 25.00,
    "gpt-4.1-nano": 1.50,
    "gpt-4.1-mini": 5.00,
    "gpt-4.1": 25.00,
    "gpt-3.5-turbo": 8.00,
    "davinci-002": 6.00,
    "babbage-002": 0.40,
}
"""USD per million trained tokens, by base model family (an alias or any of its snapshots,
e.g. ``gpt-4o-mini`` and ``gpt-4o-mini-2024-07-18``). Supervised and DPO training are billed
alike per trained token. ``o4-mini`` (reinforcement, billed by the hour) is not listed."""

_SNAPSHOT = re.compile(r"-\d{4}(-\d{2}-\d{2})?$")
"""A snapshot's date on its family's name (``-2024-07-18``, ``-0125``)."""

OPENAI_STORAGE_PER_MONTH = 0.0
"""OpenAI bills the use of a fine-tuned model, not keeping it (its 2025 pricing)."""

TARGET_EPOCHS = 3
MIN_TARGET_EXAMPLES = 100
MAX_TARGET_EXAMPLES = 25_000
MIN_DEFAULT_EPOCHS = 1
MAX_DEFAULT_EPOCHS = 25
"""OpenAI's default epochs: 3, raised for small files and lowered for large ones so that
epochs × examples falls between 100 and 25,000 where it can (1–25 epochs). From OpenAI's
cookbook "Data preparation and analysis for chat model fine-tuning"; the sandbox's OpenAI
dialect applies the same rule."""


@dataclass(frozen=True)
class OpenAIEstimate:
    """A local estimate of one OpenAI job.

    Attributes:
        amount: estimated training cost, in :attr:`currency`.
        currency: ``USD``.
        train_tokens: tokens billed: the training file's tokens times :attr:`epochs`.
        epochs: epochs the run trains (the job's, or OpenAI's default).
        epochs_from: ``epochs`` (the job sets them) or ``default`` (OpenAI's rule).
        price_per_million_tokens: the price applied.
        price_source: where the price comes from.
    """

    amount: float
    currency: str
    train_tokens: int
    epochs: int
    epochs_from: str
    price_per_million_tokens: float
    price_source: str


def training_price(model: str) -> float | None:
    """USD per million trained tokens of ``model`` (a base model or ``ft:`` model of one);
    None when the table has no price for it."""
    base = model.split(":")[1] if model.startswith("ft:") and ":" in model[3:] else model
    family = _SNAPSHOT.sub("", base)
    return OPENAI_TRAINING_PRICES.get(family)


def auto_epochs(examples: int) -> int:
    """The epochs OpenAI trains when a job leaves ``n_epochs`` to it (see the constants)."""
    n = max(examples, 1)
    epochs = TARGET_EPOCHS
    if n * epochs < MIN_TARGET_EXAMPLES:
        epochs = min(MAX_DEFAULT_EPOCHS, MIN_TARGET_EXAMPLES // n)
    elif n * epochs > MAX_TARGET_EXAMPLES:
        epochs = max(MIN_DEFAULT_EPOCHS, MAX_TARGET_EXAMPLES // n)
    return epochs


def estimate_openai(
    model: str, *, tokens: int, examples: int, epochs: float | None
) -> OpenAIEstimate | None:
    """The estimate of a job on ``model`` training ``epochs`` (None: OpenAI's default) over a
    file of ``tokens`` tokens and ``examples`` examples; None when the model has no price."""
    price = training_price(model)
    if price is None:
        return None
    runs = int(epochs) if epochs is not None else auto_epochs(examples)
    train_tokens = max(tokens, 0) * runs
    return OpenAIEstimate(
        amount=round(train_tokens / 1e6 * price, 4),
        currency=CURRENCY,
        train_tokens=train_tokens,
        epochs=runs,
        epochs_from="epochs" if epochs is not None else "default",
        price_per_million_tokens=price,
        price_source=PRICE_SOURCE,
    )
