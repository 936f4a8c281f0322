"""Real LoRA training of the tiny Mistral model on the CPU, through the trainer's entrypoint.

Here in the test process, as one process; two data-parallel processes under torchrun train
in a Ray job asking for two GPUs (test_ray_apply.py's last test).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path

import pytest
from train_helpers import check_training_outputs, need_train_extra, tiny_job, write_job

from reconciler.train.__main__ import main
from reconciler.train.job import RunLayout, TrainJob, TrainResult


def test_training_lowers_the_loss_and_writes_adapters_that_load(
    tiny_model: Path, chat_files: dict[str, Path], tmp_path: Path
) -> None:
    job = write_job(tmp_path / "job.json", **tiny_job(tiny_model, chat_files, tmp_path / "out"))
    assert main([str(job)]) == 0
    check_training_outputs(tmp_path / "out", tiny_model)


def test_a_stop_signal_ends_the_run_as_cancelled_and_gives_the_handler_back(
    tiny_model: Path, chat_files: dict[str, Path], tmp_path: Path
) -> None:
    """SIGTERM — what Ray's stop sends (test_ray_provider.py checks that it reaches the job's
    process) — ends a run between steps, and the result says so."""
    job = tiny_job(tiny_model, chat_files, tmp_path / "out")
    job["hyperparameters"] = {**job["hyperparameters"], "training_steps": 100_000}
    metrics = Path(RunLayout(str(tmp_path / "out")).metrics)
    done = threading.Event()

    def stop_after_the_first_checkpoint() -> None:
        # Only while the run is in its loop: a checkpoint is written, 99,995 steps remain, and
        # the trainer's handler is in place (sent any other time, SIGTERM would end pytest).
        while not done.wait(0.05):
            if metrics.is_file() and metrics.read_text(encoding="utf-8").strip():
                os.kill(os.getpid(), signal.SIGTERM)
                return

    ours = signal.getsignal(signal.SIGTERM)
    stopper = threading.Thread(target=stop_after_the_first_checkpoint, daemon=True)
    stopper.start()
    try:
        code = main([str(write_job(tmp_path / "job.json", **job))])
    finally:
        done.set()
        stopper.join()
    assert code == 1
    assert signal.getsignal(signal.SIGTERM) is ours
    result = TrainResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert (result.status, result.message) == ("cancelled", "stopped by signal SIGTERM")
    assert 5 <= result.steps_completed < 100_000


def test_a_failing_run_still_writes_its_result(
    tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    files = {"train": questions, "extra": questions, "valid": questions}
    job = write_job(tmp_path / "job.json", **tiny_job(tiny_model, files, tmp_path / "out"))
    # What an earlier run on the same output left must not be taken for this run's.
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "metrics.jsonl").write_text('{"step_number": 5}\n')
    (tmp_path / "out" / "result.json").write_text('{"status": "succeeded"}')
    assert main([str(job)]) == 1
    assert (tmp_path / "out" / "metrics.jsonl").read_text() == ""
    assert "no sample with an assistant message" in capsys.readouterr().err
    result = TrainResult.model_validate_json((tmp_path / "out" / "result.json").read_text())
    assert result.status == "failed"
    assert result.message is not None and "questions.jsonl" in result.message
    assert result.steps_completed == 0


def test_an_invalid_job_description_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    job = write_job(
        tmp_path / "job.json",
        base_model="m",
        training_files=[{"uri": "t.jsonl"}],
        hyperparameters={"learning_rate": 1e-4},
        output_uri=str(tmp_path / "out"),
    )
    assert main([str(job)]) == 2
    err = capsys.readouterr().err
    assert "not a valid training job description" in err
    assert "exactly one of 'training_steps' and 'epochs'" in err
    assert not (tmp_path / "out").exists()
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_schema_is_printable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "TrainJob"
    assert {"base_model", "training_files", "hyperparameters", "output_uri"} <= set(
        schema["required"]
    )


@pytest.mark.parametrize(
    ("step", "factor"),
    [(0, 0.5), (1, 1.0), (2, 1.0), (11, 0.5), (19, 1 / 18), (20, 0.0)],
)
def test_learning_rate_warms_up_then_decays_linearly(step: int, factor: float) -> None:
    need_train_extra()
    from reconciler.train.trainer import lr_factor

    # 20 steps, warmup_fraction 0.1: two warm-up steps, then 18 steps down to zero.
    assert lr_factor(step, 20, 0.1) == pytest.approx(factor)


def test_epochs_become_steps(chat_files: dict[str, Path], tmp_path: Path) -> None:
    need_train_extra()
    from reconciler.train.trainer import total_steps

    job = TrainJob.model_validate(
        {
            "base_model": "m",
            "training_files": [
                {"uri": str(chat_files["train"])},
                {"uri": str(chat_files["extra"])},
            ],
            "hyperparameters": {"epochs": 1.5, "batch_size": 4},
            "output_uri": str(tmp_path),
        }
    )
    # 52 samples * 1.5 epochs / (4 per step * 2 processes) = 9.75 -> 10 steps
    assert total_steps(job, world=2) == 10
