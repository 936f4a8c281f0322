"""``reconciler apply`` with a ``type: ray`` Provider, on a real local Ray head.

The first tests run the stand-in trainer (ray_stub_trainer.py), because what they check is the
submission, not the training: a kill -9 of apply while its submission is in flight — after Ray
took it, or before it reached Ray — then a new apply leaves exactly one Ray job for the
address; a replacement stops the old job; a job missing from the state is found by its tag.

The last test trains the tiny Mistral model for real (20 steps on the CPU) on two GPUs, the
way a multi-GPU cluster runs a job: the test head's GPUs are logical (tests/train/rayhead.py),
so the job runs the trainer under torchrun as two data-parallel processes, which find no CUDA
device and train on the CPU. Apply converges, the run reports two processes and rank 0 alone
reports success, the checkpoints reach ``status --format json``, the adapter in storage holds
trained LoRA weights of the spec's rank for the base model's layers, ``output`` prints its
URI, and a second apply submits nothing. It comes last so that the worker that trains on the
CPU meanwhile builds the tiny model the tests share (train/conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from ray_helpers import (
    POLL,
    STUB_PYTHON,
    Cli,
    HoldingProxy,
    job_env,
    poll_until,
    ray_jobs_of,
    stop_jobs,
    unique_name,
    write_project,
)
from train_helpers import check_adapter_tensors
from train_tiny import chat_samples, write_jsonl

from reconciler.ray import RayJobsClient
from reconciler.train.job import TrainResult


def _state(project: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(
        (project / ".reconciler" / "state.json").read_text(encoding="utf-8")
    )
    return state


def _stub_project(
    tmp_path: Path,
    repo_root: Path,
    ray_address: str,
    name: str,
    hyperparameters: dict[str, Any],
    **env: str,
) -> Path:
    """A spec directory whose job runs the stand-in trainer (``env``: its STUB_TRAINER)."""
    return write_project(
        tmp_path / "project",
        ray_address=ray_address,
        storage=tmp_path / "storage",
        python=STUB_PYTHON,
        env_vars=job_env(repo_root, **env),
        model="/models/used-by-the-stub-only-as-a-name",
        name=name,
        files={"train": write_jsonl(tmp_path / "chats.jsonl", chat_samples(6))},
        hyperparameters=hyperparameters,
    )


@pytest.mark.parametrize("hold", ["after", "before"])
def test_kill_9_during_submission_then_apply_leaves_one_ray_job(
    hold: str, ray_address: str, tmp_path: Path, repo_root: Path
) -> None:
    name = unique_name(f"crash-{hold}")
    address = f"job.{name}"
    with HoldingProxy(ray_address) as proxy:
        project = _stub_project(tmp_path, repo_root, proxy.address, name, {"training_steps": 4})
        cli = Cli(project, tmp_path / "storage")
        try:
            proxy.hold = hold
            proc = cli.popen("apply", "--yes")
            if not proxy.reached.wait(180):
                proc.kill()
                pytest.fail(f"the submission never came:\n{proc.communicate()}")
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
            # Killed between the intent and the record of the job.
            intents = _state(project)["intents"].values()
            assert [i["address"] for i in intents] == [address]
            assert address not in _state(project)["resources"]
            taken = ray_jobs_of(ray_address, address)
            assert len(taken) == (1 if hold == "after" else 0)

            proxy.hold = None
            proxy.release.set()
            rerun = cli.run("apply", "--yes", timeout=180, check=0)
            if hold == "after":
                assert "recovered interrupted create" in rerun.stdout
            else:
                assert "interrupted create was never received remotely" in rerun.stdout
            [job] = ray_jobs_of(ray_address, address)
            state = _state(project)
            assert state["intents"] == {}
            assert state["resources"][address]["remote_id"] == job.submission_id
            assert proxy.submissions == (1 if hold == "after" else 2)

            assert "No changes." in cli.run("apply", "--yes", check=0).stdout
            assert len(ray_jobs_of(ray_address, address)) == 1
        finally:
            stop_jobs(ray_address, [address])


def test_a_replacement_stops_the_old_ray_job(
    ray_address: str, tmp_path: Path, repo_root: Path
) -> None:
    name = unique_name("replace")
    address = f"job.{name}"

    def project(learning_rate: float) -> Path:
        hyper = {"training_steps": 1000, "learning_rate": learning_rate}
        return _stub_project(tmp_path, repo_root, ray_address, name, hyper, STUB_TRAINER="sleep")

    cli = Cli(project(1e-4), tmp_path / "storage")
    try:
        cli.run("apply", "--yes", check=0)
        [old] = ray_jobs_of(ray_address, address)
        old_id = str(old.submission_id)
        with RayJobsClient(ray_address) as client:
            poll_until(
                lambda: client.get(old_id).status == "RUNNING", 120, lambda: client.logs(old_id)
            )

            project(2e-4)
            plan = cli.run("plan", check=0).stdout
            assert "forces new job: hyperparameters.learning_rate" in plan
            assert f"previous job {old_id} (RUNNING): cancel" in plan
            applied = cli.run("apply", "--yes", check=0).stdout
            assert f"cancelled previous job {old_id}" in applied

            assert client.wait(old_id, timeout=60, interval=POLL).status == "STOPPED"
            new = [j for j in ray_jobs_of(ray_address, address) if j.submission_id != old_id]
            assert len(new) == 1 and new[0].status in ("PENDING", "RUNNING")
        resource = _state(cli.cwd)["resources"][address]
        assert resource["remote_id"] == new[0].submission_id
        assert resource["history"][0]["remote_id"] == old_id
        assert resource["history"][0]["cancelled_by_reconciler"] is True
        # Stopped by reconciler: not drift, and nothing left to do.
        cli.run("plan", "--detailed-exitcode", check=0)
    finally:
        stop_jobs(ray_address, [address])


def test_a_ray_job_missing_from_the_state_is_flagged_and_discovered_by_its_tag(
    ray_address: str, tmp_path: Path, repo_root: Path
) -> None:
    name = unique_name("adopt")
    address = f"job.{name}"
    project = _stub_project(tmp_path, repo_root, ray_address, name, {"training_steps": 4})
    cli = Cli(project, tmp_path / "storage")
    try:
        cli.run("apply", "--yes", check=0)
        [job] = ray_jobs_of(ray_address, address)
        sid = str(job.submission_id)
        (project / ".reconciler" / "state.json").unlink()  # the state is lost

        plan = cli.run("plan", check=1).stdout
        # The storage already holds the data, and the cluster the job: nothing runs twice.
        assert plan.count("identical file already on the remote") == 1
        assert f"'reconciler import {address} {sid}'" in plan
        # Found by the identity tag in its metadata, its dataset by the content hash.
        seen = cli.run("import", "--discover", "--dry-run", check=0).stdout
        assert f"{address} = job {sid} (" in seen and "same request)" in seen, seen
        assert f"dataset.train[all] = file {_sha256(project / 'data' / 'train.jsonl')}" in seen
        blocked = cli.run("apply", "--yes", check=1)
        assert "possible duplicate" in blocked.stdout + blocked.stderr
        assert len(ray_jobs_of(ray_address, address)) == 1
        cli.run("import", "--discover", check=0)
        state = _state(project)["resources"]
        assert state[address]["remote_id"] == sid
        assert state["dataset.train[all]"]["remote_id"] == _sha256(project / "data" / "train.jsonl")
        cli.run("plan", "--detailed-exitcode", check=0)
        assert len(ray_jobs_of(ray_address, address)) == 1
    finally:
        stop_jobs(ray_address, [address])


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_apply_trains_on_ray_and_a_second_apply_submits_nothing(
    ray_address: str,
    tiny_model: Path,
    chat_files: dict[str, Path],
    tmp_path: Path,
    repo_root: Path,
) -> None:
    name = unique_name("tone")
    address = f"job.{name}"
    storage = tmp_path / "storage"
    project = write_project(
        tmp_path / "project",
        ray_address=ray_address,
        storage=storage,
        python=sys.executable,
        env_vars=job_env(repo_root),
        model=str(tiny_model),
        name=name,
        files={"train": chat_files["train"], "valid": chat_files["valid"]},
        hyperparameters={
            "training_steps": 20,
            "learning_rate": 5e-3,
            "warmup_fraction": 0.1,
            "seq_len": 128,
        },
        cpus=1,
        gpus=2,
    )
    cli = Cli(project, storage)
    try:
        applied = cli.run("apply", "--yes", "--wait", timeout=300)
        assert applied.returncode == 0, applied.stdout + applied.stderr
        assert "starts as soon as it is created" in applied.stdout
        assert "1 of 1 job(s) succeeded" in applied.stdout
        [ray_job] = ray_jobs_of(ray_address, address)
        sid = str(ray_job.submission_id)
        # One trainer process per GPU, under torchrun; rank 0 alone reports the result.
        assert "-m torch.distributed.run --standalone --nproc-per-node 2 " in ray_job.entrypoint
        with RayJobsClient(ray_address) as client:
            logs = client.logs(sid)
        assert logs.count("training succeeded") == 1, logs[-3000:]
        result = TrainResult.model_validate_json(
            (storage / "runs" / sid / "result.json").read_text()
        )
        assert (result.status, result.processes) == ("succeeded", 2)

        detail = json.loads(cli.run("status", address, "--format", "json", check=0).stdout)
        [job] = detail["jobs"]
        assert (job["job_id"], job["progress"]["status"]) == (sid, "SUCCESS")
        newest, oldest = job["checkpoints"]
        assert (newest["step_number"], oldest["step_number"]) == (20, 10)
        assert newest["metrics"]["train_loss"] < oldest["metrics"]["train_loss"]
        assert newest["metrics"]["valid_loss"] < oldest["metrics"]["valid_loss"]
        adapter = storage / "runs" / sid / "adapter"
        assert job["progress"]["fine_tuned_model"] == str(adapter)
        assert sorted(p.name for p in adapter.glob("adapter_*")) == [
            "adapter_config.json",
            "adapter_model.safetensors",
        ]
        check_adapter_tensors(tiny_model, adapter, rank=8)  # the spec's lora
        assert f"{address} = {adapter}" in cli.run("output", check=0).stdout

        again = cli.run("apply", "--yes", check=0)
        assert "No changes." in again.stdout
        assert [j.submission_id for j in ray_jobs_of(ray_address, address)] == [sid]
        cli.run("plan", "--detailed-exitcode", check=0)
    finally:
        stop_jobs(ray_address, [address])
