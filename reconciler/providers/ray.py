"""The Ray provider: LoRA fine-tuning of open-weight models as jobs on your own Ray cluster.

A ``type: ray`` Provider turns the engine's canonical requests into Ray jobs that run the
trainer (``python -m reconciler.train``), through Ray's Jobs API
(:class:`~reconciler.ray.jobs.RayJobsClient`) and a storage location both sides reach
(:mod:`reconciler.train.storage`):

**Files** are content-addressed in storage: ``STORAGE/datasets/<sha256>.jsonl``. A file's id is
its sha256, its remote name ``<sha256>.jsonl``; an upload that finds the object is done, and
an interrupted one never leaves a partial object under the final name.

**Jobs** are Ray jobs whose ``submission_id`` is derived from the job's :class:`JobTag` (spec
address, request fingerprint, replacement generation; :func:`submission_id`). Ray refuses a
second job with an id it has, so a create repeated after a crash or a lost answer finds the
first job instead of starting a second run. Before submitting, the trainer's job description
(:class:`~reconciler.train.job.TrainJob`) is written to ``STORAGE/runs/<submission_id>/job.json``;
the run writes its metrics, checkpoints and adapter beside it. The Ray job's ``metadata``
carries the tag, the request (without secrets) and the output location, so one list call
reads every job back in the canonical shape; :meth:`RayProvider.get_job` adds the checkpoints
from ``metrics.jsonl`` and events from Ray's status, the run's result and, for a failed job,
the end of its log.

Status mapping: PENDING → QUEUED, RUNNING → RUNNING, SUCCEEDED → SUCCESS, FAILED → FAILED,
STOPPED → CANCELLED. Cancel is Ray's stop. Ray starts a job as soon as it can: every job is
reported with ``auto_start``, so nothing is ever started by hand.

**Models**: the "fine-tuned model" of a job that succeeded is the storage URI of its final
adapter; :meth:`RayProvider.list_models` lists the adapters still in storage and
:meth:`RayProvider.delete_model` deletes one (``on_replace.previous_model: delete``). There is
no registry: an adapter cannot be renamed, described or archived (``ReconcilerError``).

**Secrets**: the W&B key travels only as ``WANDB_API_KEY`` in the job's runtime environment —
never in the entrypoint, the metadata or the job description — and Ray's answers come back with
every environment value masked.

What a job will cost is estimated where every provider's is
(:class:`reconciler.engine.costs.GpuHourEstimator`: GPU-hours × the Provider's price per
GPU-hour); this module reports what a finished run used.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import shlex
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pydantic

from reconciler.client.limits import RequestStats
from reconciler.client.types import JobEstimate, JobStatus, RemoteFile, RemoteJob, RemoteModel
from reconciler.errors import (
    ApiError,
    ConflictError,
    DuplicateSubmissionError,
    NotFoundError,
    ReconcilerError,
    ServerError,
    TransportError,
)
from reconciler.errors import ValidationError as RejectedError
from reconciler.identity import JobLookup, JobTag, RequestIdentity, matches
from reconciler.providers.base import (
    RAY_CAPABILITIES,
    Capabilities,
    Provider,
    WithoutModelUpdates,
)
from reconciler.ray.jobs import RayJob, RayJobsClient
from reconciler.spec.capabilities import RAY_HYPERPARAMETERS
from reconciler.spec.models import RayResources
from reconciler.train.job import (
    CheckpointRecord,
    LoraSettings,
    RunLayout,
    TrainingFile,
    TrainJob,
    TrainResult,
    ValidationFile,
    WandbSettings,
)
from reconciler.train.job import Hyperparameters as TrainHyperparameters
from reconciler.train.storage import (
    dataset_uri,
    download,
    exists,
    join,
    list_objects,
    read_bytes_if_exists,
    remove,
    remove_directory,
    stat_object,
    upload_dataset,
    write_bytes,
)

T = TypeVar("T")

REQUEST_KEY = "reconciler_request"
"""Ray job metadata key: the canonical request (JSON, without secrets) the job was made from."""

OUTPUT_KEY = "reconciler_output"
"""Ray job metadata key: the storage URI the run writes to (metrics, checkpoints, adapter)."""

GPUS_KEY = "reconciler_gpus"
"""Ray job metadata key: the GPUs the job asked for (Ray's job details do not say), for the
GPU-hours a finished run used."""

SUBMISSION_PREFIX = "reconciler-"
"""Every submission id this provider derives starts with it."""

SUBMIT_ATTEMPTS = 3
"""Submissions of one job per create when the answer is lost (a repeat is refused by Ray as a
duplicate if an earlier attempt got through, so repeating is safe)."""

LOG_TAIL_LINES = 20
"""Lines of a failed job's log shown as its last event."""

DEFAULT_PYTHON = "python"
"""The command jobs run the trainer with when the Provider names none."""

CURRENCY = "USD"
"""Currency of ``price_per_gpu_hour``."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_HASH_IN_NAME = re.compile(r"([0-9a-f]{12,64})\.jsonl$")


# ---------------------------------------------------------------------------------- identity


def submission_id(tag: JobTag) -> str:
    """The Ray ``submission_id`` of the job with this identity.

    ``reconciler-<name>-<16 hex>``: the name part (from the address) is for people reading the
    Ray dashboard; the digest of address, fingerprint and generation is the identity.
    """
    digest = hashlib.sha256(
        f"{tag.address}\n{tag.fingerprint}\n{tag.generation}".encode()
    ).hexdigest()
    name = re.sub(r"[^a-z0-9-]+", "-", tag.address.removeprefix("job.").lower())[:40].strip("-")
    return (
        f"{SUBMISSION_PREFIX}{name}-{digest[:16]}" if name else f"{SUBMISSION_PREFIX}{digest[:16]}"
    )


def _request_submission_id(echo: Mapping[str, Any]) -> str:
    """The submission id of a request created without a tag: a digest of the request."""
    text = json.dumps(echo, sort_keys=True, separators=(",", ":"))
    return f"{SUBMISSION_PREFIX}request-{hashlib.sha256(text.encode()).hexdigest()[:16]}"


def request_echo(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request as a job's metadata keeps it: the W&B keys removed."""
    echo = {k: v for k, v in request.items() if k != "integrations"}
    echo["integrations"] = [
        {k: v for k, v in i.items() if k != "api_key"} for i in request.get("integrations") or []
    ]
    return echo


# ---------------------------------------------------------------------------------- provider


class RayProvider(WithoutModelUpdates):
    """A Ray cluster and a storage location as a :class:`~reconciler.providers.base.Provider`.

    Args:
        address: the Ray Jobs API (dashboard) address, e.g. ``http://127.0.0.1:8265``.
        storage: the storage root, a local directory or an fsspec URI both sides reach.
        token: the cluster's token, if it requires one.
        resources: what each job asks Ray for (default: one GPU).
        python: the command jobs run Python with on the cluster.
        runtime_env: Ray runtime environment of every job (the W&B key is added per job).
        price_per_gpu_hour: price of a GPU-hour, for the cost of finished runs (estimates of
            new ones are :class:`~reconciler.engine.costs.GpuHourEstimator`'s).
        timeout: seconds per Jobs API request.
        transport: an httpx transport (tests).
        sleep: how to wait between submission attempts.
    """

    capabilities: Capabilities = RAY_CAPABILITIES
    model_updates_refusal = (
        "a ray Provider has no model registry: a job's fine-tuned model is its adapter in "
        "storage, which cannot be renamed or archived"
    )

    def __init__(
        self,
        address: str,
        storage: str,
        *,
        token: str | None = None,
        resources: RayResources | None = None,
        python: str | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        price_per_gpu_hour: float | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.address = address.rstrip("/")
        self.storage = storage.rstrip("/")
        self.resources = resources or RayResources()
        self.python = python or DEFAULT_PYTHON
        self.runtime_env: dict[str, Any] = copy.deepcopy(dict(runtime_env or {}))
        self.price_per_gpu_hour = price_per_gpu_hour
        self.stats = RequestStats()
        self._jobs = RayJobsClient(address, token=token, timeout=timeout, transport=transport)
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"RayProvider({self.address!r}, storage={self.storage!r})"

    def close(self) -> None:
        """Close the Jobs API connections."""
        self._jobs.close()

    def _count(self, method: str, operation: str, call: Callable[[], T]) -> T:
        """Run one remote operation (a Jobs API request or a storage access), counted."""
        self.stats.count_request(method, operation, retry=False)
        return call()

    def _ray_job(self, job_id: str) -> RayJob:
        """The Ray job with this submission id (one request, counted)."""
        return self._count("GET", "get_job", lambda: self._jobs.get(job_id))

    # -- files ------------------------------------------------------------------------------

    @property
    def datasets(self) -> str:
        """``STORAGE/datasets``: where the content-addressed training files live."""
        return join(self.storage, "datasets")

    def _file(self, sha256: str, size: int, modified: float, uri: str) -> RemoteFile:
        return RemoteFile(
            id=sha256,
            filename=f"{sha256}.jsonl",
            bytes=size,
            created_at=int(modified),
            purpose="fine-tune",
            source="upload",
            sha256=sha256,  # the planner recognises identical content by it
            uri=uri,
        )

    def upload_file(
        self,
        path: Path,
        filename: str,
        *,
        sha256: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RemoteFile:
        """Store ``path`` as ``datasets/<sha256>.jsonl``; a no-op when it is already there.

        ``filename`` (the engine's upload name) is not kept: the content is the identity.
        """
        stored = upload_dataset(path, self.storage, sha256, progress)
        self.stats.count_request("PUT" if stored.uploaded else "HEAD", "upload_file", retry=False)
        if stored.uploaded:
            self.stats.add(bytes_uploaded=stored.size)
        elif progress is not None:
            progress(stored.size, stored.size)
        return self._file(stored.sha256, stored.size, time.time(), stored.uri)

    def list_files(self) -> list[RemoteFile]:
        """Every dataset in storage (one listing of ``datasets/``)."""
        objects = self._count("GET", "list_files", lambda: list_objects(self.datasets, ".jsonl"))
        return [
            self._file(o.name.removesuffix(".jsonl"), o.size, o.modified, o.uri)
            for o in objects
            if _SHA256.match(o.name.removesuffix(".jsonl"))
        ]

    def _dataset(self, file_id: str) -> str:
        if not _SHA256.match(file_id):
            raise NotFoundError(
                f"{file_id!r} is not a dataset id of a ray Provider (the sha256 of its content, "
                "64 hex digits)",
                method="GET",
                path=self.datasets,
                status=404,
            )
        return dataset_uri(self.storage, file_id)

    def get_file(self, file_id: str) -> RemoteFile:
        """The dataset with this sha256 (``NotFoundError`` when storage has none)."""
        uri = self._dataset(file_id)
        found = self._count("GET", "get_file", lambda: stat_object(uri))
        if found is None:
            raise NotFoundError(f"no dataset at {uri}", method="GET", path=uri, status=404)
        return self._file(file_id, found.size, found.modified, uri)

    def delete_file(self, file_id: str) -> None:
        """Delete the dataset with this sha256; one already gone counts as deleted."""
        uri = self._dataset(file_id)
        self._count("DELETE", "delete_file", lambda: remove(uri))

    def download_file(self, file_id: str, dest: Path) -> None:
        """Stream the dataset with this sha256 from storage to ``dest``."""
        self.get_file(file_id)  # NotFoundError when storage has none
        uri = self._dataset(file_id)
        self._count("GET", "download_file", lambda: download(uri, dest))

    def find_file(self, filename: str, *, size: int | None = None) -> RemoteFile | None:
        """The dataset whose sha256 starts with the hash in ``filename`` (and of ``size``).

        Upload names end with the content hash (``NAME-<12 hex>.jsonl``, or the stored
        ``<sha256>.jsonl``), so a file is found by its content, whatever it was called.
        """
        found = _HASH_IN_NAME.search(filename)
        if found is None:
            return None
        prefix = found.group(1)
        matches = [
            f
            for f in self.list_files()
            if f.id.startswith(prefix) and (size is None or f.bytes == size)
        ]
        return max(matches, key=lambda f: f.created_at) if matches else None

    # -- jobs -------------------------------------------------------------------------------

    def create_job(self, request: dict[str, Any], lookup: JobLookup = JobLookup()) -> RemoteJob:
        """Submit the trainer on ``request`` as the Ray job of ``lookup.tag``; never twice.

        The job description is written to storage first; then the job is submitted under its
        derived ``submission_id``. Ray refusing the id as a duplicate means an earlier attempt
        (of this run, or of one that crashed) got through: that job is returned — unless its
        id is in ``lookup.exclude`` (a job an address holds or held), which is a conflict. A
        lost answer is resolved by submitting again, which Ray refuses if the first got through.
        """
        tag = lookup.tag
        echo = request_echo(request)
        sid = submission_id(tag) if tag is not None else _request_submission_id(echo)
        layout = RunLayout(join(self.storage, "runs", sid))
        description = self.train_job(request, layout.output_uri, tag)
        self._count(
            "PUT",
            "write_job",
            lambda: write_bytes(layout.job, description.model_dump_json(indent=2).encode()),
        )
        metadata = dict(tag.metadata()) if tag is not None else {}
        metadata[REQUEST_KEY] = json.dumps(echo, sort_keys=True, separators=(",", ":"))
        metadata[OUTPUT_KEY] = layout.output_uri
        gpus = self.resources.gpus
        metadata[GPUS_KEY] = f"{gpus:g}"
        for attempt in range(1, SUBMIT_ATTEMPTS + 1):
            try:
                self._count(
                    "POST",
                    "submit_job",
                    lambda: self._jobs.submit(
                        self.entrypoint(layout.job),
                        submission_id=sid,
                        runtime_env=self.job_runtime_env(request),
                        metadata=metadata,
                        entrypoint_num_gpus=gpus if gpus > 0 else None,
                        entrypoint_num_cpus=self.resources.cpus,
                        entrypoint_memory=self.resources.memory_bytes,
                    ),
                )
                break
            except DuplicateSubmissionError as exc:
                self.stats.add(lookups=1)
                existing = self._ray_job(sid)
                if sid in lookup.exclude or (
                    tag is not None and JobTag.from_metadata(existing.metadata) != tag
                ):
                    made_for = f"{tag.address} at this revision" if tag is not None else "it"
                    raise ConflictError(
                        f"Ray job {sid} exists but is not the job of {made_for} (or an "
                        "address already holds it); stop or delete it on the cluster, then "
                        "apply again",
                        method=exc.method,
                        path=exc.path,
                        status=exc.status,
                    ) from exc
                return self.remote_job(existing)
            except (TransportError, ServerError):
                if attempt == SUBMIT_ATTEMPTS:
                    raise
                self._sleep(min(2.0**attempt, 10.0))
        return self.remote_job(self._ray_job(sid))

    def train_job(
        self, request: Mapping[str, Any], output_uri: str, tag: JobTag | None = None
    ) -> TrainJob:
        """The trainer's job description of a canonical request.

        ``model`` becomes ``base_model`` (a path or a model id the cluster can load), file ids
        their storage URIs (with weights), the hyperparameters the trainer's, ``lora`` the
        adapter's rank, the first W&B integration the run's W&B settings (its key stays out:
        see :meth:`job_runtime_env`).

        Raises:
            reconciler.errors.ValidationError: the request cannot be trained (nothing is
                submitted).
        """
        hyper = request.get("hyperparameters") or {}
        integrations = request.get("integrations") or []
        lora = request.get("lora")
        try:
            return TrainJob(
                base_model=str(request.get("model") or ""),
                training_files=[
                    TrainingFile(uri=self._dataset(str(f["file_id"])), weight=f.get("weight", 1.0))
                    for f in request.get("training_files") or []
                ],
                validation_files=[
                    ValidationFile(uri=self._dataset(str(f)))
                    for f in request.get("validation_files") or []
                ],
                hyperparameters=TrainHyperparameters(
                    **{k: v for k, v in hyper.items() if k in RAY_HYPERPARAMETERS and v is not None}
                ),
                lora=LoraSettings(rank=int(lora["rank"])) if lora else LoraSettings(),
                output_uri=output_uri,
                wandb=WandbSettings(
                    project=integrations[0]["project"],
                    name=integrations[0].get("name"),
                    run_name=integrations[0].get("run_name"),
                )
                if integrations
                else None,
                metadata=tag.metadata() if tag is not None else {},
            )
        except (pydantic.ValidationError, KeyError, TypeError, ValueError, NotFoundError) as exc:
            raise RejectedError(
                f"the request cannot be trained by a Ray job: {_short_error(exc)}; nothing was "
                "submitted",
                method="POST",
                path="/api/jobs/",
                status=400,
            ) from exc

    def entrypoint(self, job_uri: str) -> str:
        """The job's shell command: the trainer on its description (under torchrun, one
        process per GPU, when a job has more than one GPU)."""
        gpus = self.resources.gpus
        launcher = (
            f"-m torch.distributed.run --standalone --nproc-per-node {int(gpus)} "
            if gpus > 1
            else ""
        )
        return f"{self.python} {launcher}-m reconciler.train {shlex.quote(job_uri)}"

    def job_runtime_env(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The Provider's runtime environment plus this job's W&B key (``WANDB_API_KEY``)."""
        env = copy.deepcopy(self.runtime_env)
        integrations = request.get("integrations") or []
        key = integrations[0].get("api_key") if integrations else None
        if key:
            env["env_vars"] = {**env.get("env_vars", {}), "WANDB_API_KEY": str(key)}
        return env

    def estimate_job(self, request: dict[str, Any]) -> JobEstimate:
        """Ray has no estimate of its own (``capabilities.remote_estimate`` is false)."""
        raise ReconcilerError(
            "a Ray cluster gives no cost estimate; plans estimate GPU-hours × "
            "price_per_gpu_hour locally"
        )

    def list_jobs(self) -> list[RemoteJob]:
        """Every job on the cluster that reconciler made (one request), without events or
        checkpoints."""
        jobs = self._count("GET", "list_jobs", self._jobs.list_jobs)
        return [self.remote_job(j) for j in jobs if REQUEST_KEY in j.metadata]

    def get_job(self, job_id: str) -> RemoteJob:
        """One job with its checkpoints (``metrics.jsonl``) and events."""
        ray_job = self._ray_job(job_id)
        if REQUEST_KEY not in ray_job.metadata:
            raise NotFoundError(
                f"Ray job {job_id} was not made by reconciler (its metadata carries no request)",
                method="GET",
                path=f"/api/jobs/{job_id}",
                status=404,
            )
        output = ray_job.metadata.get(OUTPUT_KEY)
        records = self._records(output) if output else []
        result = self._result(output) if output else None
        logs = ""
        if ray_job.status.upper() == "FAILED":
            logs = self._count("GET", "job_logs", lambda: self._jobs.logs(job_id))
        return self.remote_job(ray_job, records=records, result=result, logs=logs)

    def _read(self, operation: str, uri: str) -> bytes:
        """A run's file in storage; empty when the run has not written it (yet)."""
        return self._count("GET", operation, lambda: read_bytes_if_exists(uri)) or b""

    def _records(self, output: str) -> list[CheckpointRecord]:
        data = self._read("read_metrics", RunLayout(output).metrics)
        records = []
        for line in data.splitlines():
            try:
                records.append(CheckpointRecord.model_validate_json(line))
            except pydantic.ValidationError:
                continue  # a line of a newer or damaged format says nothing we can show
        return records

    def _result(self, output: str) -> TrainResult | None:
        data = self._read("read_result", RunLayout(output).result)
        try:
            return TrainResult.model_validate_json(data) if data else None
        except pydantic.ValidationError:
            return None

    def start_job(self, job_id: str) -> RemoteJob:
        """Ray runs a job as soon as it is submitted: nothing to start; the job as it is."""
        return self.remote_job(self._ray_job(job_id))

    def cancel_job(self, job_id: str) -> RemoteJob:
        """Stop the Ray job (idempotent: a job that has ended is left as it is)."""
        self._count("POST", "stop_job", lambda: self._jobs.stop(job_id))
        return self.remote_job(self._ray_job(job_id))

    def find_jobs(
        self, request: dict[str, Any], lookup: JobLookup = JobLookup()
    ) -> list[RemoteJob]:
        """The job of ``lookup.tag`` (one lookup of its submission id), or, without a tag, the
        jobs whose recorded request is ``request`` (created after ``lookup.created_after``);
        never one whose id is in ``lookup.exclude``."""
        tag, created_after, exclude = lookup.tag, lookup.created_after, lookup.exclude
        if tag is not None:
            sid = submission_id(tag)
            if sid in exclude:
                return []
            try:
                found = self._ray_job(sid)
            except NotFoundError:
                return []
            return [self.remote_job(found)] if JobTag.from_metadata(found.metadata) == tag else []
        floor = created_after.timestamp() if created_after is not None else None
        wanted = RequestIdentity.of_request(request)
        return [
            job
            for job in self.list_jobs()
            if job.id not in exclude
            and (floor is None or job.created_at >= floor)
            and matches(wanted, job.model_dump(mode="json"))
            and job.model_dump().get("lora") == request.get("lora")
        ]

    def remote_job(
        self,
        job: RayJob,
        *,
        records: list[CheckpointRecord] | None = None,
        result: TrainResult | None = None,
        logs: str = "",
    ) -> RemoteJob:
        """A Ray job in the canonical shape (the detailed form when ``records``/``result``/
        ``logs`` are given)."""
        try:
            request = json.loads(job.metadata.get(REQUEST_KEY) or "{}")
        except ValueError:
            request = {}
        status = job.reconciler_status
        output = job.metadata.get(OUTPUT_KEY)
        tag = JobTag.from_metadata(job.metadata)
        records = records or []
        trained = records[-1].trained_tokens if records else None
        if result is not None:
            trained = result.trained_tokens
        return RemoteJob(
            id=str(job.submission_id),
            status=status,
            model=str(request.get("model") or ""),
            job_type=request.get("job_type") or "completion",
            auto_start=True,  # Ray runs every job as soon as it can
            created_at=(job.start_time or 0) // 1000,
            modified_at=(job.end_time or job.start_time or 0) // 1000,
            training_files=request.get("training_files") or [],
            validation_files=request.get("validation_files") or [],
            hyperparameters=request.get("hyperparameters") or {},
            suffix=request.get("suffix"),
            integrations=request.get("integrations") or [],
            fine_tuned_model=RunLayout(output).adapter if output and status == "SUCCESS" else None,
            trained_tokens=trained,
            metadata=self._run_metadata(job, result),
            events=_events(job, status, records, result, logs),
            checkpoints=[r.model_dump(mode="json") for r in reversed(records)],
            user_metadata=dict(tag.metadata()) if tag is not None else None,
            lora=request.get("lora"),
            output_uri=output,
            ray_status=job.status,
        )

    def _run_metadata(self, job: RayJob, result: TrainResult | None) -> dict[str, Any] | None:
        """The run's figures once it has ended: steps, GPU-hours and, with a price, its cost
        (GPU-hours × ``price_per_gpu_hour``)."""
        if result is None:
            return None
        try:
            gpus = float(job.metadata.get(GPUS_KEY) or 0)
        except ValueError:
            gpus = 0.0
        gpu_hours = gpus * result.elapsed_seconds / 3600
        meta: dict[str, Any] = {
            "training_steps": result.training_steps,
            "gpu_hours": round(gpu_hours, 6),
        }
        if self.price_per_gpu_hour is not None and gpus > 0:
            meta["cost"] = round(gpu_hours * self.price_per_gpu_hour, 4)
            meta["cost_currency"] = CURRENCY
        return meta

    # -- fine-tuned models ------------------------------------------------------------------

    def list_models(self) -> list[RemoteModel]:
        """The adapters of the jobs that succeeded, while they are in storage: a Ray job's
        model is its final adapter (``fine_tuned_model``, a storage URI)."""
        models = []
        for job in self.list_jobs():
            adapter = job.fine_tuned_model
            if adapter and self._stored(adapter):
                models.append(
                    RemoteModel(
                        id=adapter,
                        job=job.id,
                        root=job.model,
                        created=job.modified_at,
                        owned_by="ray",
                        type="fine-tuned",
                        model_type="completion",
                    )
                )
        return models

    def _stored(self, uri: str) -> bool:
        return self._count("HEAD", "find_model", lambda: exists(uri))

    def delete_model(self, model_id: str) -> None:
        """Delete an adapter this provider's jobs wrote (``STORAGE/runs/<id>/adapter``); one
        already gone counts as deleted. Anything else in (or out of) storage is refused."""
        runs = join(self.storage, "runs") + "/"
        inside = model_id.removeprefix(runs)
        if not model_id.startswith(runs) or not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9._-]*/adapter", inside
        ):
            raise NotFoundError(
                f"{model_id!r} is not an adapter of a job in this ray Provider's storage "
                f"({runs}<job>/adapter); nothing was deleted",
                method="DELETE",
                path=model_id,
                status=404,
            )
        self._count("DELETE", "delete_model", lambda: remove_directory(model_id))


def _short_error(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors()
        )
    if isinstance(exc, ApiError):
        return exc.reason
    return f"{type(exc).__name__}: {exc}"


def _first_and_last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    return lines[0] if len(lines) == 1 else f"{lines[0]} … {lines[-1]}"


def _events(
    job: RayJob,
    status: str,
    records: list[CheckpointRecord],
    result: TrainResult | None,
    logs: str,
) -> list[dict[str, Any]]:
    """Status events, newest first: submitted (QUEUED), training started (RUNNING) when the
    run says when, the end with its reason, and the end of a failed job's log."""

    def event(name: str, created_at: float, **data: Any) -> dict[str, Any]:
        return {"name": name, "data": data, "created_at": int(created_at)}

    events = []
    if job.start_time:
        events.append(event("status-updated", job.start_time / 1000, status="QUEUED"))
    started: float | None = result.started_at if result is not None and result.started_at else None
    if started is None and records:
        started = records[0].created_at - records[0].elapsed_seconds
    if started:
        events.append(event("status-updated", started, status="RUNNING"))
    known = JobStatus.of(status)
    if known is not None and known.is_terminal:
        ended = (job.end_time or 0) / 1000 or (result.finished_at if result else 0)
        message = (result.message if result is not None else None) or _first_and_last_line(
            job.message or ""
        )
        data = {"status": status, "message": message} if message else {"status": status}
        events.append(event("status-updated", ended, **data))
        tail = "\n".join(logs.rstrip().splitlines()[-LOG_TAIL_LINES:])
        if tail:
            events.append(event("logs", ended, logs=tail))
    return list(reversed(events))


if TYPE_CHECKING:  # mypy checks that the provider really implements the interface
    _conforms: type[Provider] = RayProvider
