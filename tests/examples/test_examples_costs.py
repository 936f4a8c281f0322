"""The local cost estimate agrees with the sandbox's own figure on every job of the examples
on the embedded (Mistral-dialect) sandbox; the openai example's jobs are priced by OpenAI's
formula, within their budgets; the ray example's job by the GPU-hours it takes.

For each example's jobs — as written (``training_steps``) and with ``epochs`` instead and short
steps, where the token count of the data decides the length to 400 tokens — the local estimate (nothing sent) is compared
with the sandbox's estimate for the same request (its dry run, the figure it also reports at
VALIDATED). Both count tokens with the same validator on the same bytes, so they must agree to
within :data:`TOLERANCE_USD`, the rounding of the two figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.client.api import MistralClient
from reconciler.data.api import check_datasets
from reconciler.engine import costs
from reconciler.engine.desired import DesiredState, build_desired
from reconciler.engine.plan import CostEstimate
from reconciler.sandbox.app import SandboxConfig
from reconciler.sandbox.server import EmbeddedSandbox
from reconciler.spec.loader import load_specs
from reconciler.spec.resolved import SpecSet

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted(
    p.name
    for p in (REPO / "specs").iterdir()
    if p.is_dir() and p.name[:2].isdigit() and not (p / "reconciler.yaml").exists()
)
"""The examples of ``specs/`` as one workspace (not those with a root marker of their own)."""
OPENAI_EXAMPLE = "09-openai-tone"
RAY_EXAMPLE = "10-self-hosted-ray"
TOLERANCE_USD = 1e-4
"""Largest difference allowed between the local and the sandbox's figure (both are rounded to
4 decimals)."""
EPOCHS = 100.0
SEQ_LEN = 100
"""With 4 sequences of 100 tokens a step, 400 tokens more or less data change the trained
tokens, which both sides must then report alike."""
WANDB_KEY = "w" * 40


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MistralClient]:
    data = tmp_path_factory.mktemp("sandbox")
    with EmbeddedSandbox(SandboxConfig(data_dir=data, api_key="k")) as sb:
        with MistralClient(sb.base_url, "k") as api:
            yield api


def _with_epochs(specs: SpecSet) -> SpecSet:
    """The same jobs, trained for :data:`EPOCHS` epochs of :data:`SEQ_LEN` instead of a
    number of steps."""
    jobs = {
        name: dataclasses.replace(
            job,
            hyperparameters={
                **{k: v for k, v in job.hyperparameters.items() if k != "training_steps"},
                "epochs": EPOCHS,
                "seq_len": SEQ_LEN,
            },
        )
        for name, job in specs.jobs.items()
    }
    return dataclasses.replace(specs, jobs=jobs)


def _pairs(
    desired: DesiredState, client: MistralClient
) -> Iterator[tuple[str, CostEstimate, float]]:
    """(address, local estimate, the sandbox's figure) of every job."""
    ids = {}
    for address, f in desired.files.items():
        ids[address] = client.upload_file(f.path, f.filename, sha256=f.sha256).id
    estimator = costs.estimator_for(None)
    for address, job in desired.jobs.items():
        local = estimator.estimate(job, desired.files)
        assert isinstance(local, CostEstimate), local
        remote = client.estimate_job(job.build_request(ids, lambda _: WANDB_KEY))
        assert remote.cost is not None and remote.cost_currency == local.currency
        assert remote.train_tokens == local.train_tokens, address
        assert local.basis is not None and remote.data_tokens == local.basis.data_tokens
        yield address, local, remote.cost


@pytest.mark.parametrize("example", EXAMPLES)
def test_local_estimate_agrees_with_the_sandbox(
    example: str, client: MistralClient, tmp_path: Path
) -> None:
    specs = load_specs([REPO / "specs" / example])
    check = check_datasets(specs, cache_dir=tmp_path)
    for variant in (specs, _with_epochs(specs)):
        desired = build_desired(variant, check.prepared)
        pairs = list(_pairs(desired, client))
        assert pairs
        for address, local, sandbox_cost in pairs:
            assert abs(local.amount - sandbox_cost) <= TOLERANCE_USD, (address, local, sandbox_cost)
            if variant is not specs:
                assert local.basis is not None and local.basis.steps_from == "epochs"


def test_the_openai_example_is_priced_by_tokens_times_epochs_within_its_budgets(
    tmp_path: Path,
) -> None:
    specs = load_specs([REPO / "specs" / OPENAI_EXAMPLE])
    assert specs.provider is not None
    estimator = costs.estimator_for(specs.provider.doc)
    desired = build_desired(specs, check_datasets(specs, cache_dir=tmp_path).prepared)
    assert len(desired.jobs) == 2  # supervised and DPO
    for address, job in desired.jobs.items():
        local = estimator.estimate(job, desired.files)
        assert isinstance(local, CostEstimate), (address, local)
        assert local.basis is not None and local.basis.epochs_from == "epochs"
        data = sum(desired.files[f["file"]].approx_tokens for f in job.identity["training_files"])
        assert local.train_tokens == 2 * data  # the examples' two epochs
        assert job.job.budget is not None and 0 < local.amount <= job.job.budget.max_cost


def test_the_ray_example_is_priced_by_the_gpu_hours_it_takes(tmp_path: Path) -> None:
    specs = load_specs([REPO / "specs" / RAY_EXAMPLE])
    assert specs.provider is not None
    provider = specs.provider.doc
    assert provider.tokens_per_gpu_second and provider.price_per_gpu_hour
    estimator = costs.estimator_for(provider)
    desired = build_desired(specs, check_datasets(specs, cache_dir=tmp_path).prepared)
    [(address, job)] = desired.jobs.items()
    local = estimator.estimate(job, desired.files)
    assert isinstance(local, CostEstimate), (address, local)
    [chats] = desired.files.values()
    # 3 epochs of 24 chats, one per step on one GPU: 72 steps of the mean chat's tokens.
    per_sample = -(-chats.approx_tokens // chats.samples)
    assert local.basis is not None and (local.basis.steps, local.basis.steps_from) == (72, "epochs")
    assert local.train_tokens == 72 * per_sample
    gpu_hours = local.train_tokens / provider.tokens_per_gpu_second / 3600
    assert local.basis.gpu_hours == round(gpu_hours, 6)
    assert local.amount == round(gpu_hours * provider.price_per_gpu_hour, 4)
    assert local.storage_per_month is None  # the adapter is in one's own storage
