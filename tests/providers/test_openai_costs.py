"""Local estimates of OpenAI jobs: training tokens × epochs × the model's price, with OpenAI's
default epochs when the job leaves them to the service."""

from __future__ import annotations

import pytest

from reconciler.providers.openai_costs import (
    OPENAI_TRAINING_PRICES,
    PRICE_SOURCE,
    auto_epochs,
    estimate_openai,
    training_price,
)


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(1, 25), (10, 10), (19, 5), (34, 3), (100, 3), (8_333, 3), (8_334, 2), (30_000, 1)],
)
def test_default_epochs_follow_openais_rule(examples: int, epochs: int) -> None:
    assert auto_epochs(examples) == epochs


@pytest.mark.parametrize(
    ("model", "price"),
    [
        ("gpt-4o-mini-2024-07-18", 3.0),
        ("gpt-4o-mini", 3.0),
        ("gpt-4o-2024-08-06", 25.0),
        ("gpt-3.5-turbo-0125", 8.0),
        ("gpt-4.1-nano-2025-04-14", 1.5),
        ("ft:gpt-4o-mini-2024-07-18:org:tone:AbC12xYz", 3.0),  # fine-tuning a fine-tune
        ("o4-mini", None),  # billed by the hour: no price rather than a guess
        ("gpt-4o-minimal", None),
    ],
)
def test_prices_by_model_family(model: str, price: float | None) -> None:
    assert training_price(model) == price


def test_the_estimate_is_tokens_times_epochs_times_the_price() -> None:
    est = estimate_openai("gpt-4o-mini-2024-07-18", tokens=2_399, examples=19, epochs=2)
    assert est is not None
    assert (est.train_tokens, est.epochs, est.epochs_from) == (4_798, 2, "epochs")
    assert est.amount == round(4_798 / 1e6 * 3.0, 4) and est.currency == "USD"
    assert est.price_source == PRICE_SOURCE and "NOT verified" in PRICE_SOURCE
    default = estimate_openai("gpt-4o-mini", tokens=1_000, examples=19, epochs=None)
    assert default is not None and (default.epochs, default.epochs_from) == (5, "default")
    assert estimate_openai("o4-mini", tokens=1_000, examples=19, epochs=None) is None
    assert all(price > 0 for price in OPENAI_TRAINING_PRICES.values())
