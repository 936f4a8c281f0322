"""``python -m reconciler.train JOB``: run one training job (the entrypoint of a Ray job).

``JOB`` is a path or storage URI of a job description (:class:`reconciler.train.job.TrainJob`
as JSON). ``--schema`` prints the description's JSON Schema instead. Exit status: 0 when the
run succeeded, 1 when it failed or was stopped (the reason is in ``result.json`` and in the
log), 2 when the job description cannot be read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import pydantic

from reconciler.errors import ReconcilerError
from reconciler.train.job import TrainJob
from reconciler.train.storage import read_bytes


def load_job(uri: str) -> TrainJob:
    """Read and validate a job description; :class:`ReconcilerError` when it is not one."""
    data = read_bytes(uri)
    try:
        return TrainJob.model_validate_json(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(document)'}: {e['msg']}"
            for e in exc.errors()
        )
        raise ReconcilerError(f"{uri}: not a valid training job description: {problems}") from exc


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m reconciler.train", description="Run one LoRA training job."
    )
    parser.add_argument("job", nargs="?", help="path or storage URI of the job description")
    parser.add_argument("--schema", action="store_true", help="print the job JSON Schema")
    args = parser.parse_args(argv)
    if args.schema:
        print(json.dumps(TrainJob.model_json_schema(), indent=2))
        return 0
    if not args.job:
        parser.error("the job description is required")
    main_process = os.environ.get("RANK", "0") == "0"  # under torchrun, rank 0 speaks
    logging.basicConfig(
        level=logging.INFO if main_process else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        job = load_job(args.job)
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from reconciler.train.trainer import Trainer

    try:
        result = Trainer(job).run()
    except ReconcilerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if main_process:
        print(f"training {result.status}: {result.message or result.adapter_uri}")
    return 0 if result.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
