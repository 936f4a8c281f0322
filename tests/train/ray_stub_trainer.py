"""Stands in for the trainer in the Ray provider tests that are not about training.

A Ray provider whose ``python`` is ``PYTHON ray_stub_trainer.py`` makes jobs run
``PYTHON ray_stub_trainer.py -m reconciler.train JOB``. Like the trainer, the stub reads and
validates the job description (so what the provider wrote is checked), then, by the job's
``STUB_TRAINER`` environment variable:

- ``succeed`` (default): writes what a successful run leaves — two checkpoint records in
  ``metrics.jsonl`` with falling losses, the adapter's config, ``result.json`` — and exits 0;
- ``fail``: writes a failed ``result.json`` and exits 1 with an ``error:`` line, as the
  trainer does when a model cannot be loaded;
- ``sleep``: runs until it is stopped; on SIGTERM (what Ray's stop sends) it writes a
  cancelled ``result.json`` and exits 1, as the trainer does.

It takes a second instead of the half minute of the real trainer, and no CPU while it waits.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from reconciler.train.__main__ import load_job
from reconciler.train.job import CheckpointMetrics, CheckpointRecord, RunLayout, TrainResult
from reconciler.train.storage import join, write_bytes

FAILURE = "stub: the base model does not load"


def main() -> int:
    job = load_job(sys.argv[-1])
    layout = RunLayout(job.output_uri)
    mode = os.environ.get("STUB_TRAINER", "succeed")
    print(f"stub trainer ({mode}) on {job.base_model}", flush=True)
    if mode == "sleep":

        def stopped(signum: int, frame: object) -> None:
            message = f"stopped by signal {signal.Signals(signum).name}"
            result = TrainResult(status="cancelled", message=message)
            write_bytes(layout.result, result.model_dump_json().encode())
            sys.exit(1)

        signal.signal(signal.SIGTERM, stopped)
        print("stub trainer: step 1", flush=True)
        while True:
            time.sleep(1)
    now = int(time.time())
    if mode == "fail":
        result = TrainResult(status="failed", message=FAILURE, started_at=now, finished_at=now)
        write_bytes(layout.result, result.model_dump_json().encode())
        print(f"error: {FAILURE}", file=sys.stderr)
        return 1
    steps = job.hyperparameters.training_steps or 2
    records = [
        CheckpointRecord(
            step_number=step,
            created_at=now,
            metrics=CheckpointMetrics(train_loss=4.0 / step, valid_loss=5.0 / step),
            elapsed_seconds=float(step),
            trained_tokens=100 * step,
            adapter_uri=layout.checkpoint(step),
        )
        for step in (max(1, steps // 2), steps)
    ]
    write_bytes(layout.metrics, "".join(r.model_dump_json() + "\n" for r in records).encode())
    config = {"r": job.lora.rank, "base_model_name_or_path": job.base_model}
    write_bytes(join(layout.adapter, "adapter_config.json"), json.dumps(config).encode())
    result = TrainResult(
        status="succeeded",
        adapter_uri=layout.adapter,
        training_steps=steps,
        steps_completed=steps,
        trained_tokens=records[-1].trained_tokens,
        metrics=records[-1].metrics,
        started_at=now - steps,
        finished_at=now,
        elapsed_seconds=float(steps),
        metadata=job.metadata,
    )
    write_bytes(layout.result, result.model_dump_json().encode())
    print(f"training succeeded: {layout.adapter}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
