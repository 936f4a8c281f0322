"""The local cost estimate and the budget review (pure): formula, price tables, overrides,
jobs that cannot be estimated, budgets per job and per run."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.engine import costs
from reconciler.engine.plan import CostEstimate, CostSource, Plan, RunBudgetLimit
from reconciler.spec.models import Budget, ModelPrice, Provider, RunBudget
from tests.engine.factories import (
    desired,
    desired_file,
    observed,
    remote_job,
    resolved_job,
    reviewed_plan,
    state_with,
)

pytestmark = pytest.mark.state_backend_independent

SANDBOX = costs.estimator_for(None)
MISTRAL = costs.estimator_for(Provider(name="m", type="mistral"))


def _estimate(estimator: costs.CostEstimator, files: list[Any], **job: Any) -> Any:
    ds = desired(files, [resolved_job("j", **job)])
    return estimator.estimate(ds.jobs["job.j"], ds.files)


@pytest.mark.parametrize(
    ("estimator", "hyper", "tokens", "steps", "steps_from", "amount"),
    [
        # 10 steps x 131,072 tokens x 2 USD per million: the sandbox's own figure.
        (SANDBOX, {"training_steps": 10}, 30_000, 10, "training_steps", 2.6214),
        # seq_len sets the tokens of a step: 4 sequences of 8,192.
        (SANDBOX, {"training_steps": 100, "seq_len": 8192}, 30_000, 100, "training_steps", 6.5536),
        # epochs: ceil(3 x 1,000,000 / 131,072) = 23 steps.
        (SANDBOX, {"epochs": 3.0}, 1_000_000, 23, "epochs", 6.0293),
        # The minimum fee: 1 step costs 0.26 at the rate, 1 USD on the sandbox.
        (SANDBOX, {"training_steps": 1}, 30_000, 1, "training_steps", 1.0),
        # Neither steps nor epochs: the sandbox trains 10 steps.
        (SANDBOX, {}, 30_000, 10, "default", 2.6214),
        # Mistral: open-mistral-7b at 2 USD per million, 4 USD at least.
        (MISTRAL, {"training_steps": 10}, 30_000, 10, "training_steps", 4.0),
        (MISTRAL, {"training_steps": 100}, 30_000, 100, "training_steps", 26.2144),
    ],
    ids=["steps", "seq-len", "epochs", "minimum-fee", "sandbox-default", "mistral-min", "mistral"],
)
def test_estimate_is_steps_times_tokens_per_step_times_price(
    estimator: costs.CostEstimator,
    hyper: dict[str, Any],
    tokens: int,
    steps: int,
    steps_from: str,
    amount: float,
) -> None:
    est = _estimate(estimator, [desired_file("d", tokens=tokens)], hyperparameters=hyper)
    assert est.source is CostSource.LOCAL and est.currency == "USD"
    assert est.amount == amount
    basis = est.basis
    assert (basis.steps, basis.steps_from) == (steps, steps_from)
    assert est.train_tokens == basis.train_tokens == steps * basis.tokens_per_step
    assert basis.data_tokens == tokens and basis.token_count == "approx"
    assert est.storage_per_month == 2.0


def test_weights_decide_how_often_each_file_is_seen_not_how_much_is_trained() -> None:
    from reconciler.spec.resolved import TrainingInput

    files = [desired_file("a", tokens=100_000), desired_file("b", sha="b" * 64, tokens=10_000)]
    training = (
        TrainingInput(dataset="a", part="all", weight=1.0),
        TrainingInput(dataset="b", part="all", weight=3.0),
    )
    est = _estimate(SANDBOX, files, training_files=training, hyperparameters={"epochs": 2.0})
    basis = est.basis
    # ceil(2 x 110,000 / 131,072) = 2 steps = 262,144 tokens, a quarter of them from 'a'.
    assert basis.data_tokens == 110_000 and basis.steps == 2 and basis.train_tokens == 262_144
    by_file = {f.file: (f.tokens, f.weight, f.epochs) for f in basis.training_files}
    assert by_file == {
        "dataset.a[all]": (100_000, 1.0, round(262_144 / 4 / 100_000, 4)),
        "dataset.b[all]": (10_000, 3.0, round(262_144 * 3 / 4 / 10_000, 4)),
    }


def test_exact_token_counts_are_used_when_every_training_file_has_them() -> None:
    exact = desired_file("d", tokens=1_000_000, exact_tokens=800_000)
    est = _estimate(SANDBOX, [exact], hyperparameters={"epochs": 1.0})
    assert est.basis.token_count == "exact" and est.basis.data_tokens == 800_000
    assert est.basis.steps == 7  # ceil(800,000 / 131,072)
    approx = _estimate(
        SANDBOX, [desired_file("d", tokens=1_000_000)], hyperparameters={"epochs": 1.0}
    )
    assert approx.basis.token_count == "approx" and approx.basis.steps == 8


@pytest.mark.parametrize(
    ("estimator", "job", "reason"),
    [
        (MISTRAL, {"model": "mistral-small-latest"}, "no price for model 'mistral-small-latest'"),
        (MISTRAL, {"hyperparameters": {}}, "neither training_steps nor epochs is set"),
    ],
    ids=["unpriced-model", "unknown-length"],
)
def test_what_cannot_be_estimated_says_why(
    estimator: costs.CostEstimator, job: dict[str, Any], reason: str
) -> None:
    result = _estimate(estimator, [desired_file("d")], **job)
    assert isinstance(result, costs.Unestimated) and reason in result.reason


def test_provider_prices_override_the_table_and_fill_what_it_lacks() -> None:
    provider = Provider(
        name="m",
        type="mistral",
        prices={
            "mistral-small-latest": ModelPrice(train_per_million_tokens=3.5),
            "open-mistral-7b": ModelPrice(
                train_per_million_tokens=1.0, storage_per_month=0.5, minimum_fee=0.0
            ),
        },
    )
    estimator = costs.estimator_for(provider)
    small = _estimate(estimator, [desired_file("d")], model="mistral-small-latest")
    # 1,310,720 tokens x 3.5 = 4.59; storage and minimum fee from the table's defaults.
    assert small.amount == 4.5875 and small.storage_per_month == 2.0
    assert small.basis.minimum_fee == 4.0 and "Provider prices" in small.basis.price_source
    seven = _estimate(estimator, [desired_file("d")])
    assert (seven.amount, seven.storage_per_month) == (1.3107, 0.5)
    # The built-in table is left as it was.
    assert _estimate(MISTRAL, [desired_file("d")]).amount == 4.0


def test_the_price_tables_say_where_each_price_comes_from() -> None:
    for rate in [*costs.MISTRAL_PRICES.models.values(), costs.SANDBOX_PRICES.default]:
        assert rate is not None and rate.source
    assert "verified" in costs.MISTRAL_PRICES.models["open-mistral-7b"].source
    assert "NOT verified" in costs.MISTRAL_PRICES.models["codestral-latest"].source
    assert costs.MISTRAL_PRICES.rate("mistral-small-latest") is None  # no guess


def test_the_sandbox_table_is_the_sandbox_s_own_rate() -> None:
    from reconciler.sandbox import job_rules

    rate = costs.SANDBOX_PRICES.default
    assert rate is not None
    assert rate.train_per_million_tokens == job_rules.USD_PER_MILLION_TOKENS
    assert rate.minimum_fee == job_rules.MINIMUM_FEE_USD
    assert costs.DEFAULT_SEQ_LEN == job_rules.DEFAULT_SEQ_LEN
    assert costs.SEQUENCES_PER_STEP == job_rules.SEQUENCES_PER_STEP
    assert costs.SANDBOX_DEFAULT_STEPS == job_rules.DEFAULT_TRAINING_STEPS


# ----------------------------------------------------------------- budgets


def _reviewed(
    jobs: list[Any],
    max_cost: float | None = None,
    estimator: costs.CostEstimator = SANDBOX,
    **world: Any,
) -> Plan:
    ds = desired([desired_file("d")], jobs)
    return reviewed_plan(ds, estimator, budget=costs.run_budget(max_cost, None), **world)


def test_a_job_over_its_budget_is_a_plan_error_naming_it_and_the_fix() -> None:
    plan = _reviewed(
        [
            resolved_job("cheap", budget=Budget(max_cost=5), suffix="a"),
            resolved_job("dear", budget=Budget(max_cost=2), suffix="b"),
        ]
    )
    (error,) = plan.errors
    assert error.startswith("job.dear: estimated cost 2.62 USD (local: 10 steps x 131,072")
    assert "over its budget.max_cost 2; raise budget.max_cost in dear" in error


def test_the_run_cap_counts_every_job_created_or_started() -> None:
    validated = resolved_job("validated", suffix="v")
    ds = desired([desired_file("d")], [validated])
    ids = {"dataset.d[all]": "f-1"}
    st = state_with(ds, file_ids=ids, job_ids={"job.validated": "j-1"})
    obs = observed(
        [{"id": "f-1", "filename": ds.files["dataset.d[all]"].filename, "bytes": 100}],
        [remote_job("j-1", ds.jobs["job.validated"], ids, "VALIDATED", metadata={"cost": 7.5})],
    )
    jobs = [validated, resolved_job("new", suffix="n")]
    within = _reviewed(jobs, max_cost=10.2, state=st, obs=obs)
    assert within.errors == () and within.cost_totals() == {"": 7.5, "USD": 2.6214}
    over = _reviewed(jobs, max_cost=10.0, state=st, obs=obs)
    assert over.errors == (
        "the plan's estimated cost, 10.12 USD for 2 job(s), is over the run's cap of "
        "10.00 USD (--max-cost); plan fewer jobs (--target) or raise the cap",
    )


def test_the_lower_of_max_cost_and_the_provider_budget_is_the_cap() -> None:
    provider = Provider(name="p", type="sandbox", budget=RunBudget(max_cost=20))
    assert costs.run_budget(None, None) is None
    assert costs.run_budget(50, provider) == RunBudgetLimit(max_cost=20, source="Provider budget")
    assert costs.run_budget(5, provider) == RunBudgetLimit(max_cost=5, source="--max-cost")


def test_a_run_cap_with_jobs_not_estimated_says_at_least() -> None:
    jobs = [resolved_job(f"j{i}", suffix=f"s{i}") for i in range(2)]
    jobs.append(resolved_job("small", suffix="s", model="mistral-small-latest"))
    plan = _reviewed(jobs, max_cost=5, estimator=MISTRAL)
    assert list(plan.unestimated) == ["job.small"]
    assert "no price for model 'mistral-small-latest'" in plan.unestimated["job.small"]
    # Two jobs at Mistral's minimum fee of 4 USD, and one more of unknown cost.
    assert plan.errors == (
        "the plan's estimated cost, at least 8.00 USD for 3 job(s), is over the run's cap of "
        "5.00 USD (--max-cost); plan fewer jobs (--target) or raise the cap",
    )


def test_a_job_to_start_is_priced_locally_until_the_remote_has_validated_it() -> None:
    job = resolved_job("j")
    ds = desired([desired_file("d")], [job])
    ids = {"dataset.d[all]": "f-1"}
    st = state_with(ds, file_ids=ids, job_ids={"job.j": "j-1"})
    files = [{"id": "f-1", "filename": ds.files["dataset.d[all]"].filename, "bytes": 100}]
    queued = observed(files, [remote_job("j-1", ds.jobs["job.j"], ids, "VALIDATING")])
    (start,) = _reviewed([job], state=st, obs=queued).costly
    assert start.action.value == "start" and start.cost is not None
    assert start.cost.source is CostSource.LOCAL


def test_saved_estimates_count_on_new_jobs_only_where_higher_or_missing() -> None:
    # A saved plan's figures, applied to the plan made now: they can make the budget check
    # stricter (a higher remote figure, a job not estimated now), never looser.
    jobs = [
        resolved_job("higher", suffix="h"),
        resolved_job("lower", suffix="l"),
        resolved_job("unpriced", suffix="u", model="mistral-small-latest"),
        resolved_job("unsaved", suffix="n"),
    ]
    plan = _reviewed(jobs, estimator=MISTRAL)
    saved = {
        "job.higher": CostEstimate(amount=9.0, currency="USD", source=CostSource.DRY_RUN),
        "job.lower": CostEstimate(amount=0.5, currency="USD", source=CostSource.DRY_RUN),
        "job.unpriced": CostEstimate(amount=3.0, currency="USD", source=CostSource.DRY_RUN),
    }
    kept = {c.address: c.cost for c in costs.with_approved(plan, saved).costly}
    assert kept["job.higher"] == saved["job.higher"]
    assert kept["job.unpriced"] == saved["job.unpriced"]
    assert kept["job.lower"] is not None and kept["job.lower"].amount == 4.0  # the minimum fee
    assert kept["job.unsaved"] is not None and kept["job.unsaved"].source is CostSource.LOCAL


# ----------------------------------------------------------------- openai: tokens x epochs

OPENAI = costs.estimator_for(Provider(name="o", type="openai"))


def _openai_job(**over: Any) -> Any:
    fields: dict[str, Any] = {"model": "gpt-4o-mini-2024-07-18", "hyperparameters": {}}
    return {**fields, **over}


@pytest.mark.parametrize(
    ("examples", "epochs"),
    [(1, 25), (10, 10), (19, 5), (34, 3), (100, 3), (8_333, 3), (8_334, 2), (30_000, 1)],
)
def test_openai_default_epochs_follow_openais_rule(examples: int, epochs: int) -> None:
    assert costs.openai_default_epochs(examples) == epochs
    est = _estimate(OPENAI, [desired_file("d", tokens=1_000, samples=examples)], **_openai_job())
    assert (est.basis.epochs, est.basis.epochs_from) == (epochs, "default")
    assert est.train_tokens == epochs * 1_000


def test_the_openai_rule_is_the_sandbox_s() -> None:
    from reconciler.sandbox.openai import rules

    assert costs.OPENAI_TARGET_EPOCHS == rules.TARGET_EPOCHS
    assert costs.OPENAI_MIN_TARGET_EXAMPLES == rules.MIN_TARGET_EXAMPLES
    assert costs.OPENAI_MAX_TARGET_EXAMPLES == rules.MAX_TARGET_EXAMPLES
    assert costs.OPENAI_MAX_DEFAULT_EPOCHS == rules.MAX_AUTO_EPOCHS
    assert costs.OPENAI_MIN_DEFAULT_EPOCHS == rules.MIN_AUTO_EPOCHS


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
def test_openai_prices_by_model_family(model: str, price: float | None) -> None:
    est = _estimate(OPENAI, [desired_file("d")], **_openai_job(model=model))
    if price is None:
        assert isinstance(est, costs.Unestimated) and f"no price for model {model!r}" in est.reason
    else:
        assert est.basis.price_per_million_tokens == price
        assert "NOT verified" in est.basis.price_source


def test_an_openai_estimate_is_tokens_times_epochs_times_the_price() -> None:
    files = [desired_file("d", tokens=2_399, samples=19)]
    est = _estimate(OPENAI, files, **_openai_job(hyperparameters={"epochs": 2}))
    assert est.source is CostSource.LOCAL and est.currency == "USD"
    assert est.train_tokens == est.basis.train_tokens == 4_798
    assert (est.basis.epochs, est.basis.epochs_from) == (2, "epochs")
    assert est.amount == round(4_798 / 1e6 * 3.0, 4)
    # Billed by passes over the data: no steps; OpenAI charges no storage and no minimum.
    data = est.model_dump(mode="json")
    assert {"steps", "steps_from", "tokens_per_step"}.isdisjoint(data["basis"])
    assert "storage_per_month" not in data and est.basis.minimum_fee == 0.0
    assert OPENAI.storage_per_month == 0.0


def test_openai_provider_prices_override_by_name_or_family() -> None:
    provider = Provider(
        name="o",
        type="openai",
        prices={
            "gpt-4o-mini": ModelPrice(train_per_million_tokens=1.0),
            "o4-mini": ModelPrice(train_per_million_tokens=100.0, minimum_fee=5.0),
        },
    )
    estimator = costs.estimator_for(provider)
    files = [desired_file("d", tokens=1_000, samples=100)]
    snapshot = _estimate(estimator, files, **_openai_job())  # its family's override
    assert snapshot.basis.price_per_million_tokens == 1.0 and snapshot.amount == 0.003
    o4 = _estimate(estimator, files, **_openai_job(model="o4-mini"))
    assert o4.amount == 5.0  # 3,000 tokens at 100 USD/M, 5 USD at least


def test_without_a_start_gate_a_budget_needs_an_estimate_within_it() -> None:
    jobs = [
        resolved_job("unpriced", suffix="u", budget=Budget(max_cost=5), **_openai_job(model="x")),
        resolved_job("within", suffix="w", budget=Budget(max_cost=5), **_openai_job()),
        resolved_job("free", suffix="f", **_openai_job(model="y")),  # no budget: no error
    ]
    ds = desired([desired_file("d")], jobs)
    gated = reviewed_plan(ds, OPENAI)
    assert gated.errors == () and set(gated.unestimated) == {"job.unpriced", "job.free"}
    plan = reviewed_plan(ds, OPENAI, start_gate=False)
    (error,) = plan.errors
    assert error.startswith("job.unpriced: its budget.max_cost 5 cannot be held: the job starts")
    assert "no price for model 'x'" in error and "remove the budget in unpriced" in error
    assert plan.warnings[0].startswith("openai starts a job as soon as it is created")
    big = desired([desired_file("d", tokens=10**6)], jobs[1:2])
    (error,) = reviewed_plan(big, OPENAI, start_gate=False).errors
    assert "job.within: estimated cost 75.00 USD (local: 25 epochs x 1,000,000 tokens" in error


def _ray(gpus: float = 1, **fields: Any) -> costs.CostEstimator:
    provider: dict[str, Any] = {
        "name": "r",
        "type": "ray",
        "address": "http://127.0.0.1:8265",
        "storage": "s",
        "resources": {"gpus": gpus},
        "tokens_per_gpu_second": 2048,
        "price_per_gpu_hour": 3.6,
    }
    return costs.estimator_for(Provider.model_validate({**provider, **fields}))


def test_a_ray_estimate_is_gpu_hours_times_the_price_per_gpu_hour() -> None:
    def estimate(hyper: dict[str, Any], tokens: int, samples: int = 10, **kw: Any) -> Any:
        ray = _ray(**kw)
        files = [desired_file("d", tokens=tokens, samples=samples)]
        return _estimate(ray, files, hyperparameters=hyper)

    # The mean sample is 2,048 tokens: 1000 steps x 2048 tokens at 2048 tokens/s on one GPU
    # is 1000 GPU-seconds, 0.2778 GPU-hours, 1.00 USD at 3.60 per GPU-hour.
    one = estimate({"training_steps": 1000, "seq_len": 2048}, tokens=20_480)
    assert one.source is CostSource.LOCAL and one.currency == "USD"
    assert (one.basis.steps, one.basis.tokens_per_step, one.train_tokens) == (1000, 2048, 2_048_000)
    assert one.basis.gpu_hours == pytest.approx(1000 / 3600, abs=1e-6)
    assert one.amount == pytest.approx(1.0) and one.storage_per_month is None
    # Four GPUs: four processes, a sample each per step: four times the tokens and GPU time.
    four = estimate({"training_steps": 1000, "seq_len": 2048}, tokens=20_480, gpus=4)
    assert four.basis.tokens_per_step == 4 * 2048 and four.amount == pytest.approx(4.0)
    # The mean sample (512 tokens), cut at seq_len as the trainer cuts it.
    assert estimate({"training_steps": 1000}, tokens=5_120).amount == pytest.approx(0.25)
    cut = estimate({"training_steps": 1000, "seq_len": 256}, tokens=5_120)
    assert cut.basis.tokens_per_step == 256
    # Epochs convert to steps as the trainer converts them: 2 x 150 samples, one per step.
    epochs = estimate({"epochs": 2}, tokens=150 * 512, samples=150)
    assert (epochs.basis.steps, epochs.basis.steps_from, epochs.train_tokens) == (
        300,
        "epochs",
        300 * 512,
    )
    # The same price per trained token, for comparison with hosted services.
    assert one.basis.price_per_million_tokens == pytest.approx(3.6 / (2048 * 3600) * 1e6)


@pytest.mark.parametrize(
    ("fields", "missing"),
    [
        ({"tokens_per_gpu_second": None}, "no tokens_per_gpu_second"),
        ({"price_per_gpu_hour": None}, "no price_per_gpu_hour"),
        (
            {"tokens_per_gpu_second": None, "price_per_gpu_hour": None},
            "no tokens_per_gpu_second and no price_per_gpu_hour",
        ),
    ],
)
def test_a_ray_provider_without_price_or_throughput_has_no_estimate_and_says_why(
    fields: dict[str, Any], missing: str
) -> None:
    result = _estimate(_ray(**fields), [desired_file("d")], hyperparameters={"epochs": 1})
    assert isinstance(result, costs.Unestimated) and missing in result.reason


def test_ray_budgets_are_held_against_the_gpu_hour_estimate() -> None:
    # 100 steps of 1,000-token samples at 1 token/s: 100,000 GPU-seconds, 100 USD.
    ray = _ray(tokens_per_gpu_second=1, price_per_gpu_hour=3.6)
    job = resolved_job("j", hyperparameters={"training_steps": 100}, budget=Budget(max_cost=50))
    ds = desired([desired_file("d", tokens=10_000, samples=10)], [job])
    plan = reviewed_plan(
        ds, ray, budget=RunBudgetLimit(max_cost=80, source="--max-cost"), start_gate=False
    )
    assert plan.errors[0].startswith(
        "job.j: estimated cost 100.00 USD (local: 27.7778 GPU-hours x 3.6 USD/GPU-hour) is "
        "over its budget.max_cost 50"
    )
    assert "over the run's cap of 80.00 USD (--max-cost)" in plan.errors[1]
