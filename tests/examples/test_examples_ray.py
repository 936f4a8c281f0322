"""The Ray example (specs/10-self-hosted-ray), as far as it goes without GPUs: it validates
with no cluster, and plans against a real local Ray head with its cost in GPU-hours.

Applying it trains Mistral-7B on a GPU; what applying a ``type: ray`` workspace does is
tested with a tiny model in tests/train/test_ray_apply.py. Here the plan is the example's
own, only pointed at the test run's head (a loopback address, allowed like the example's).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from reconciler.ray import RayJobsClient
from tests.cli_inprocess import run_cli

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "specs" / "10-self-hosted-ray"
ADDRESS = "address: http://127.0.0.1:8265"


def _copy(tmp_path: Path, ray_address: str | None = None) -> Path:
    target = tmp_path / EXAMPLE.name
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".reconciler", ".ray-storage"))
    if ray_address is not None:
        spec = target / "tone-on-ray.yaml"
        text = spec.read_text(encoding="utf-8")
        assert ADDRESS in text
        spec.write_text(text.replace(ADDRESS, f"address: {ray_address}"), encoding="utf-8")
    return target


def _env() -> dict[str, str]:
    # The operator's settings are not the test run's: the example needs none.
    return {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_")}


def test_the_ray_example_validates_without_a_cluster(tmp_path: Path) -> None:
    workspace = _copy(tmp_path)
    result = run_cli(["validate"], cwd=workspace, env=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "error" not in result.stdout


def test_the_ray_example_plans_its_job_at_its_gpu_hour_cost(
    tmp_path: Path, ray_address: str
) -> None:
    workspace = _copy(tmp_path, ray_address)
    with RayJobsClient(ray_address) as client:
        before = {j.submission_id for j in client.list_jobs()}
    result = run_cli(["plan", "--format", "json", "--detailed-exitcode"], cwd=workspace, env=_env())
    assert result.returncode == 2, result.stdout + result.stderr
    plan = json.loads(result.stdout)
    assert plan["target"] == (
        f"ray {ray_address} (storage {(workspace / '.ray-storage').resolve()})"
    )
    changes = {c["address"]: c for c in plan["changes"]}
    assert changes["dataset.ray-tone-chats[all]"]["action"] == "create"
    job = changes["job.ray-tone-dumbledore"]
    assert job["action"] == "create" and job["after"]["starts_at_create"] is True
    assert job["after"]["request"]["lora"] == {"rank": 16}
    cost = job["cost"]
    assert cost["source"] == "local" and cost["currency"] == "USD"
    basis = cost["basis"]
    assert (basis["steps"], basis["steps_from"]) == (72, "epochs")  # 3 epochs of 24 chats
    assert (basis["price_per_gpu_hour"], basis["tokens_per_gpu_second"]) == (2.0, 2500)
    assert basis["gpu_hours"] == round(cost["train_tokens"] / 2500 / 3600, 6)
    assert cost["amount"] == round(cost["train_tokens"] / 2500 / 3600 * 2.0, 4)
    assert plan["costs"]["totals"] == {"USD": cost["amount"]} and plan["errors"] == []
    # A plan never writes: no storage, no Ray job.
    assert not (workspace / ".ray-storage").exists()
    with RayJobsClient(ray_address) as client:
        assert {j.submission_id for j in client.list_jobs()} == before

    # The run's cap holds against that estimate, as on every provider.
    capped = run_cli(["plan", "--max-cost", "0.0001"], cwd=workspace, env=_env())
    assert capped.returncode == 1, capped.stdout + capped.stderr
    assert "is over the run's cap of 0.00 USD (--max-cost)" in capped.stdout + capped.stderr


@pytest.mark.parametrize("storage", ["/mnt/fine-tuning", "s3://my-bucket/fine-tuning"])
def test_the_ray_example_with_cluster_storage_needs_the_operators_setting(
    tmp_path: Path, storage: str
) -> None:
    # What the example's comments suggest for a real cluster is refused until the operator
    # allows it, before anything is read.
    workspace = _copy(tmp_path)
    spec = workspace / "tone-on-ray.yaml"
    spec.write_text(
        spec.read_text(encoding="utf-8").replace("storage: .ray-storage", f"storage: {storage}"),
        encoding="utf-8",
    )
    result = run_cli(["validate"], cwd=workspace, env=_env())
    assert result.returncode == 1, result.stdout + result.stderr
    setting = "RECONCILER_ALLOWED_STORAGE" if "://" in storage else "RECONCILER_ALLOWED_PATHS"
    assert setting in result.stdout
