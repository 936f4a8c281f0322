"""The sandbox's HTTP endpoints: files, fine-tuning jobs, models, and its own test hooks.

Every response body has the exact shape of the Mistral OpenAPI contract (``UploadFileOut``,
``RetrieveFileOut``, ``CompletionJobOut``, ``CompletionDetailedJobOut``, ``ModelList`` ...).
Errors: ``{"detail": "..."}`` for 401/403/404/409/413 and business-rule 422s, FastAPI's
``{"detail": [{type, loc, msg, input, ctx}]}`` for invalid requests.

:func:`build_router` returns the router bound to one :class:`~.store.Store`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import random
import sqlite3
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from reconciler.sandbox import lifecycle
from reconciler.sandbox.config import SandboxConfig
from reconciler.sandbox.lifecycle import JobPlan
from reconciler.sandbox.schemas import (
    BASE_MODEL_CREATED,
    BASE_MODELS,
    JobIn,
    TrainingFileIn,
    UpdateFTModelIn,
)
from reconciler.sandbox.store import Conflict, Store, cost_estimate
from reconciler.sandbox.validation import MAX_QUOTED_PROBLEMS, check_upload

#: Copy uploads in chunks of this size (never the whole file in memory).
CHUNK = 1024 * 1024
#: Share of invalid samples above which an upload is refused: no job could skip that many.
MAX_INVALID_FRACTION = 0.5
#: Training steps when the request gives neither ``training_steps`` nor ``epochs``.
DEFAULT_TRAINING_STEPS = 10
#: Default sequence length; a step trains 4 sequences (the real service's 131072 tokens/step).
DEFAULT_SEQ_LEN = 32768
SEQUENCES_PER_STEP = 4
PAGE_SIZE_MAX = 1000

PageQ = Annotated[int, Query(ge=0, description="0-based page number")]
PageSizeQ = Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX, description="items per page")]


def _value_error(loc: list[str | int], message: str, value: Any = None) -> JSONResponse:
    """A 422 in FastAPI's validation shape for a rule pydantic cannot express."""
    item: dict[str, Any] = {
        "type": "value_error",
        "loc": loc,
        "msg": f"Value error, {message}",
        "input": value,
        "ctx": {"error": message},
    }
    return JSONResponse({"detail": [item]}, status_code=422)


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


def build_router(store: Store, config: SandboxConfig) -> APIRouter:
    """All endpoints of one sandbox, bound to its store and configuration."""
    router = APIRouter()
    tmp_dir = store.data_dir / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- files

    @router.post("/v1/files")
    def upload_file(
        file: Annotated[UploadFile, File()],
        purpose: Annotated[Literal["fine-tune", "batch", "ocr"] | None, Form()] = None,
        visibility: Annotated[Literal["workspace", "user"], Form()] = "workspace",
        expiry: Annotated[int | None, Form(ge=1)] = None,
    ) -> Any:
        filename = (file.filename or "").strip()
        if not filename:
            return _detail(422, "The file part has no filename; send it as file=@name.jsonl.")
        purpose = purpose or "fine-tune"
        if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
            return _detail(
                422,
                f"Invalid file format: {filename!r}. The fine-tuning API only supports .jsonl "
                "files; rename it or convert it to JSON Lines.",
            )
        tmp = tmp_dir / f"upload-{uuid.uuid4().hex}"
        digest = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                while chunk := file.file.read(CHUNK):
                    size += len(chunk)
                    if size > config.max_upload_bytes:
                        raise _TooLarge
                    digest.update(chunk)
                    out.write(chunk)
            sample_type = "batch_request"
            num_lines: int | None = None
            extra = {"samples": 0, "invalid": 0, "approx_tokens": size // 4}
            if purpose == "fine-tune":
                report = check_upload(tmp, filename)
                refusal = _refusal(filename, report)
                if refusal:
                    tmp.unlink(missing_ok=True)
                    return _detail(422, refusal)
                assert report.sample_type is not None
                sample_type = report.sample_type
                num_lines = report.num_lines
                extra = {
                    "samples": report.samples,
                    "invalid": report.invalid,
                    "approx_tokens": max(report.approx_tokens, 1),
                }
        except _TooLarge:
            tmp.unlink(missing_ok=True)
            return _too_large(config.max_upload_bytes)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        sha = digest.hexdigest()
        created = int(time.time())
        mimetype = (
            "application/jsonl"
            if filename.lower().endswith(".jsonl")
            else (file.content_type or "application/octet-stream")
        )
        obj = {
            "id": str(uuid.uuid4()),
            "object": "file",
            "bytes": size,
            "created_at": created,
            "filename": filename,
            "purpose": purpose,
            "sample_type": sample_type,
            "source": "upload",
            "num_lines": num_lines,
            "mimetype": mimetype,
            "signature": sha[:16],
            "expires_at": created + expiry * 3600 if expiry else None,
            "visibility": visibility,
        }
        return store.add_file(tmp, obj, {"sha256": sha, **extra})

    @router.get("/v1/files")
    def list_files(
        page: PageQ = 0,
        page_size: PageSizeQ = 100,
        include_total: bool = True,
        sample_type: Annotated[
            list[Literal["pretrain", "instruct", "batch_request", "batch_result", "batch_error"]]
            | None,
            Query(),
        ] = None,
        source: Annotated[list[Literal["upload", "repository", "mistral"]] | None, Query()] = None,
        search: str | None = None,
        purpose: Literal["fine-tune", "batch", "ocr"] | None = None,
        mimetypes: Annotated[list[str] | None, Query()] = None,
    ) -> Any:
        data, total = store.list_files(
            page=page,
            page_size=page_size,
            sample_types=list(sample_type) if sample_type else None,
            sources=list(source) if source else None,
            search=search,
            purpose=purpose,
            mimetypes=mimetypes,
        )
        return {"data": data, "object": "list", "total": total if include_total else None}

    def _file_or_404(file_id: UUID) -> tuple[Path, dict[str, Any]]:
        stored = store.get_file(str(file_id))
        if stored is None:
            raise HTTPException(404, f"File {file_id} not found (never uploaded, or deleted).")
        return stored.path, stored.obj

    @router.get("/v1/files/{file_id}")
    def retrieve_file(file_id: UUID) -> Any:
        _, obj = _file_or_404(file_id)
        return {**obj, "deleted": False}

    @router.delete("/v1/files/{file_id}")
    def delete_file(file_id: UUID) -> Any:
        if not store.delete_file(str(file_id)):
            raise HTTPException(404, f"File {file_id} not found (never uploaded, or deleted).")
        return {"id": str(file_id), "object": "file", "deleted": True}

    @router.get("/v1/files/{file_id}/content")
    def download_file(file_id: UUID) -> Any:
        path, obj = _file_or_404(file_id)
        return FileResponse(path, media_type="application/octet-stream", filename=obj["filename"])

    @router.get("/v1/files/{file_id}/url")
    def signed_url(
        request: Request, file_id: UUID, expiry: Annotated[int, Query(ge=1, le=168)] = 24
    ) -> Any:
        _file_or_404(file_id)
        expires = int(time.time()) + expiry * 3600
        token = _sign(store.url_secret, str(file_id), expires)
        base = str(request.base_url).rstrip("/")
        return {"url": f"{base}/sandbox/signed/{file_id}?expires={expires}&token={token}"}

    @router.get("/sandbox/signed/{file_id}")
    def signed_download(file_id: UUID, expires: int, token: str) -> Any:
        good = _sign(store.url_secret, str(file_id), expires)
        if not hmac.compare_digest(good, token):
            return _detail(403, "Invalid signature: request a new URL with GET /v1/files/{id}/url.")
        if expires < time.time():
            return _detail(403, "This signed URL has expired: request a new one.")
        path, obj = _file_or_404(file_id)
        return FileResponse(path, media_type="application/octet-stream", filename=obj["filename"])

    # ---------------------------------------------------------------- jobs

    @router.post("/v1/fine_tuning/jobs")
    def create_job(body: JobIn, dry_run: bool | None = None) -> Any:
        job_type = body.job_type or "completion"
        base = BASE_MODELS.get(body.model)
        if base is None or job_type not in base[1]:
            usable = sorted(m for m, (_, types, _) in BASE_MODELS.items() if job_type in types)
            return _detail(
                422,
                f"Model {body.model!r} not available for this type of fine-tuning ({job_type}). "
                f"Use one of: {', '.join(usable)}.",
            )
        training = [
            item if isinstance(item, TrainingFileIn) else TrainingFileIn(file_id=item)
            for item in body.training_files
        ]
        if not training and not body.repositories:
            return _value_error(
                ["body", "job_in"], "At least one training file or repository is required."
            )
        if job_type == "classifier" and not body.classifier_targets:
            return _value_error(
                ["body", "classifier_targets"],
                "classifier_targets are required for a classifier job.",
            )
        validation_ids = [str(v) for v in body.validation_files or []]
        ids = [str(t.file_id) for t in training]
        rows = store.file_rows(ids + validation_ids)
        for field, group in (("training_files", ids), ("validation_files", validation_ids)):
            for i, fid in enumerate(group):
                if fid not in rows:
                    loc: list[str | int] = ["body", field, i]
                    if field == "training_files":
                        loc.append("file_id")
                    return _value_error(
                        loc,
                        f"File {fid} does not exist (never uploaded, or deleted). Upload it "
                        "with POST /v1/files and use the id it returns.",
                        fid,
                    )
        hp = body.hyperparameters
        tokens_per_step = (hp.seq_len or DEFAULT_SEQ_LEN) * SEQUENCES_PER_STEP
        data_tokens = max(1, sum(int(rows[f]["approx_tokens"]) for f in ids)) if ids else 1
        if hp.training_steps is not None:
            steps = hp.training_steps
        elif hp.epochs is not None:
            steps = max(1, math.ceil(hp.epochs * data_tokens / tokens_per_step))
        else:
            steps = DEFAULT_TRAINING_STEPS
        job_id = str(uuid.uuid4())
        created = time.time()
        plan = JobPlan(
            job_id=job_id,
            created=created,
            steps=steps,
            auto_start=body.auto_start,
            validation_error=_validation_error(body, ids, validation_ids, rows),
            fail_step=_fail_step(config, job_id, steps),
            has_validation=bool(validation_ids),
            seed=store.seed,
        )
        if dry_run:
            train_tokens = steps * tokens_per_step
            return {
                "object": "job.metadata",
                "details": "Dry run: the job was not created. These are the sandbox's estimates.",
                "deprecated": True,
                "expected_duration_seconds": math.ceil(
                    lifecycle.run_duration(plan, store.time_scale)
                ),
                "cost": cost_estimate(train_tokens),
                "cost_currency": "USD",
                "train_tokens_per_step": tokens_per_step,
                "train_tokens": train_tokens,
                "data_tokens": data_tokens,
                "estimated_start_time": None,
                "epochs": round(train_tokens / data_tokens, 4),
                "training_steps": steps,
            }
        requested_hp = hp.model_dump()
        if job_type == "classifier":
            requested_hp.pop("fim_ratio", None)
        integrations = [
            {
                "type": "wandb",
                "project": w.project,
                "name": w.name,
                "run_name": w.run_name,
                "url": None,
            }
            for w in body.integrations or []
        ]
        repositories = [
            {
                "type": "github",
                "name": r.name,
                "owner": r.owner,
                "ref": r.ref,
                "weight": r.weight,
                # No repository is fetched; a stable fake commit id keeps the shape.
                "commit_id": hashlib.sha1(f"{r.owner}/{r.name}@{r.ref}".encode()).hexdigest(),
            }
            for r in body.repositories or []
        ]
        targets = (
            [
                {
                    "name": t.name,
                    "labels": t.labels,
                    "weight": t.weight,
                    "loss_function": t.loss_function or "single_class",
                }
                for t in body.classifier_targets or []
            ]
            if job_type == "classifier"
            else None
        )
        similarity = hashlib.sha256(
            json.dumps(
                {
                    "model": body.model,
                    "job_type": job_type,
                    "training_files": ids,
                    "validation_files": validation_ids,
                    "hyperparameters": requested_hp,
                    "suffix": body.suffix,
                },
                sort_keys=True,
            ).encode()
        ).hexdigest()
        job = {
            "id": job_id,
            "model": body.model,
            "job_type": job_type,
            "auto_start": int(body.auto_start),
            "suffix": body.suffix,
            "training_files": json.dumps(ids),
            "validation_files": json.dumps(validation_ids),
            "hyperparameters": json.dumps(requested_hp),
            "integrations": json.dumps(integrations) if body.integrations is not None else None,
            "repositories": json.dumps(repositories),
            "classifier_targets": json.dumps(targets) if targets is not None else None,
            "similarity": similarity,
            "tokens_per_step": tokens_per_step,
            "data_tokens": data_tokens,
            "wandb_projects": json.dumps([w.project for w in body.integrations or []]),
            "wandb_names": json.dumps([w.name for w in body.integrations or [] if w.name]),
        }
        try:
            store.create_job(job, plan)
        except Conflict as exc:
            return _detail(409, str(exc))
        row = store.job_row(job_id)
        assert row is not None
        return render_job(store, row, detailed=False)

    @router.get("/v1/fine_tuning/jobs")
    def list_jobs(
        page: PageQ = 0,
        page_size: PageSizeQ = 100,
        model: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        created_by_me: bool = False,
        status: Literal[
            "QUEUED",
            "STARTED",
            "VALIDATING",
            "VALIDATED",
            "RUNNING",
            "FAILED_VALIDATION",
            "FAILED",
            "SUCCESS",
            "CANCELLED",
            "CANCELLATION_REQUESTED",
        ]
        | None = None,
        wandb_project: str | None = None,
        wandb_name: str | None = None,
        suffix: str | None = None,
    ) -> Any:
        # created_by_me narrows to the caller's jobs; the sandbox has one caller, so it is
        # accepted and changes nothing.
        rows, total = store.list_jobs(
            page=page,
            page_size=page_size,
            model=model,
            created_after=_ts(created_after),
            created_before=_ts(created_before),
            status=status,
            wandb_project=wandb_project,
            wandb_name=wandb_name,
            suffix=suffix,
        )
        return {
            "data": [render_job(store, r, detailed=False) for r in rows],
            "object": "list",
            "total": total,
        }

    def _job_404(job_id: UUID) -> JSONResponse:
        return _detail(404, f"Job {job_id} not found.")

    @router.get("/v1/fine_tuning/jobs/{job_id}")
    def get_job(job_id: UUID) -> Any:
        row = store.job_row(str(job_id))
        if row is None:
            return _job_404(job_id)
        return render_job(store, row, detailed=True)

    def _transition(job_id: UUID, request: Callable[[str], tuple[Any, str | None]]) -> Any:
        """Start or cancel: 404 for an unknown job, 409 when its status does not allow it."""
        row, problem = request(str(job_id))
        if row is None:
            return _job_404(job_id)
        if problem:
            return _detail(409, problem)
        return render_job(store, row, detailed=True)

    @router.post("/v1/fine_tuning/jobs/{job_id}/start")
    def start_job(job_id: UUID) -> Any:
        return _transition(job_id, store.start_job)

    @router.post("/v1/fine_tuning/jobs/{job_id}/cancel")
    def cancel_job(job_id: UUID) -> Any:
        return _transition(job_id, store.cancel_job)

    # ---------------------------------------------------------------- models

    @router.get("/v1/models")
    def list_models(provider: str | None = None, model: str | None = None) -> Any:
        cards = [_base_card(m) for m in BASE_MODELS]
        cards += [_ft_card(store, r) for r in store.model_rows()]
        if model is not None:
            cards = [c for c in cards if c["id"] == model]
        return {"object": "list", "data": cards}

    @router.get("/v1/models/{model_id}")
    def retrieve_model(model_id: str) -> Any:
        if model_id in BASE_MODELS:
            return _base_card(model_id)
        row = store.model_row(model_id)
        if row is None:
            return _detail(404, f"Model {model_id!r} not found.")
        return _ft_card(store, row)

    @router.delete("/v1/models/{model_id}")
    def delete_model(model_id: str) -> Any:
        if model_id in BASE_MODELS:
            return _detail(
                403, f"Model {model_id!r} is a base model; only fine-tuned models can be deleted."
            )
        if store.update_model(model_id, {"deleted": 1}) is None:
            return _detail(404, f"Model {model_id!r} not found.")
        return {"id": model_id, "object": "model", "deleted": True}

    def _ft_or_404(model_id: str, changes: dict[str, Any]) -> sqlite3.Row | JSONResponse:
        row = store.update_model(model_id, changes)
        if row is None:
            return _detail(404, f"Fine-tuned model {model_id!r} not found.")
        return row

    @router.patch("/v1/fine_tuning/models/{model_id}")
    def update_model(model_id: str, body: UpdateFTModelIn) -> Any:
        changes = {k: getattr(body, k) for k in body.model_fields_set}
        row = _ft_or_404(model_id, changes)
        if isinstance(row, JSONResponse):
            return row
        return _ft_model_out(store, row)

    @router.post("/v1/fine_tuning/models/{model_id}/archive")
    def archive_model(model_id: str) -> Any:
        row = _ft_or_404(model_id, {"archived": 1})
        if isinstance(row, JSONResponse):
            return row
        return {"id": model_id, "object": "model", "archived": True}

    @router.delete("/v1/fine_tuning/models/{model_id}/archive")
    def unarchive_model(model_id: str) -> Any:
        row = _ft_or_404(model_id, {"archived": 0})
        if isinstance(row, JSONResponse):
            return row
        return {"id": model_id, "object": "model", "archived": False}

    # ---------------------------------------------------------------- sandbox hooks

    @router.get("/sandbox/health")
    def health() -> Any:
        return {"status": "ok", "sandbox": True, "trains_models": False}

    @router.get("/sandbox/journal")
    def journal(since: Annotated[int, Query(ge=0)] = 0) -> Any:
        return store.journal(since)

    @router.delete("/sandbox/journal")
    def clear_journal() -> Any:
        return {"deleted": store.journal_clear()}

    return router


class _TooLarge(Exception):
    """The upload passed the size limit while being copied."""


def _too_large(limit: int) -> JSONResponse:
    return _detail(
        413,
        f"Request Entity Too Large: files are limited to {limit // (1024 * 1024)} MiB "
        f"({limit} bytes). Split the dataset into smaller files.",
    )


def _refusal(filename: str, report: Any) -> str | None:
    """Why an uploaded fine-tuning file is refused, or None to accept it."""
    quoted = "; ".join(p.render() for p in report.problems[:MAX_QUOTED_PROBLEMS])
    more = len(report.problems) - MAX_QUOTED_PROBLEMS
    if more > 0:
        quoted += f"; and {more} more"
    if report.samples == 0:
        return f"Invalid file format: {filename!r} is empty; it needs one JSON sample per line."
    if report.sample_type is None or report.invalid_fraction > MAX_INVALID_FRACTION:
        return (
            f"Invalid file format: {filename!r}: {report.invalid} of {report.samples} samples "
            f"break the training-data rules: {quoted}. Fix these lines (run `reconciler "
            "validate`) and upload again."
        )
    return None


def _validation_error(
    body: JobIn, ids: list[str], validation_ids: list[str], rows: dict[str, sqlite3.Row]
) -> str | None:
    """Why the job will end in FAILED_VALIDATION, or None."""
    limit = body.invalid_sample_skip_percentage
    for fid in ids + validation_ids:
        row = rows[fid]
        samples, invalid = int(row["samples"]), int(row["invalid"])
        if samples and invalid / samples > limit:
            return (
                f"File {row['filename']} ({fid}) has {invalid} invalid sample(s) of {samples} "
                f"({invalid / samples:.1%}), more than invalid_sample_skip_percentage {limit}."
            )
    overlap = sorted(set(ids) & set(validation_ids))
    if overlap:
        return (
            f"File {overlap[0]} is used for both training and validation; the same data should "
            "not be present in both."
        )
    return None


def _fail_step(config: SandboxConfig, job_id: str, steps: int) -> int | None:
    """Where an injected job failure happens (deterministic per seed and job id)."""
    faults = config.faults
    if faults is None or faults.job_failure <= 0:
        return None
    seed = faults.seed if faults.seed is not None else config.seed
    rng = random.Random(f"{seed}:job_failure:{job_id}")
    if rng.random() >= faults.job_failure:
        return None
    return rng.randint(1, max(1, steps))


def _sign(secret: str, file_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def _ts(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def render_job(store: Store, row: sqlite3.Row, *, detailed: bool) -> dict[str, Any]:
    """A job in API shape: ``*JobOut``, or ``*DetailedJobOut`` with events and checkpoints."""
    plan = store.plan_of(row)
    scale = store.time_scale
    validated = bool(row["validated"])
    hp = json.loads(row["hyperparameters"])
    tps = int(row["tokens_per_step"])
    data_tokens = int(row["data_tokens"])
    train_tokens = plan.steps * tps
    if validated:
        hp["training_steps"] = plan.steps
        hp["epochs"] = round(train_tokens / data_tokens, 4)
    metadata = None
    if validated:
        begin = lifecycle.start_time(plan, row["started"], scale)
        metadata = {
            "expected_duration_seconds": math.ceil(lifecycle.run_duration(plan, scale)),
            "cost": cost_estimate(train_tokens),
            "cost_currency": "USD",
            "train_tokens_per_step": tps,
            "train_tokens": train_tokens,
            "data_tokens": data_tokens,
            "estimated_start_time": int(begin) if begin is not None else None,
        }
    trained_tokens = None
    if row["status"] in ("RUNNING", "SUCCESS", "FAILED", "CANCELLATION_REQUESTED", "CANCELLED"):
        done = lifecycle.steps_done(
            plan, row["started"], row["cancel_requested"], scale, time.time()
        )
        trained_tokens = train_tokens if row["status"] == "SUCCESS" else done * tps
        if row["status"] != "SUCCESS" and lifecycle.start_time(plan, row["started"], scale) is None:
            trained_tokens = None
    out: dict[str, Any] = {
        "id": row["id"],
        "auto_start": bool(row["auto_start"]),
        "model": row["model"],
        "status": row["status"],
        "created_at": int(row["created"]),
        "modified_at": int(row["modified_at"]),
        "training_files": json.loads(row["training_files"]),
        "validation_files": json.loads(row["validation_files"]),
        "object": "job",
        "fine_tuned_model": row["fine_tuned_model"],
        "suffix": row["suffix"],
        "integrations": json.loads(row["integrations"]) if row["integrations"] else None,
        "trained_tokens": trained_tokens,
        "metadata": metadata,
        "job_type": row["job_type"],
        "hyperparameters": hp,
    }
    if row["job_type"] == "completion":
        out["repositories"] = json.loads(row["repositories"])
    if detailed:
        events, checkpoints = store.job_details(row["id"])
        out["events"] = events
        out["checkpoints"] = checkpoints
        if row["job_type"] == "classifier":
            out["classifier_targets"] = json.loads(row["classifier_targets"] or "[]")
    return out


def _base_card(model_id: str) -> dict[str, Any]:
    context, types, caps = BASE_MODELS[model_id]
    capabilities = {
        "completion_chat": True,
        "function_calling": False,
        "completion_fim": False,
        "fine_tuning": True,
        "vision": False,
        "ocr": False,
        "classification": "classifier" in types,
        "moderation": False,
        "audio": False,
        "audio_transcription": False,
        **caps,
    }
    return {
        "id": model_id,
        "object": "model",
        "created": BASE_MODEL_CREATED,
        "owned_by": "mistralai",
        "capabilities": capabilities,
        "name": model_id,
        "description": f"{model_id} (sandbox catalogue entry; the sandbox serves no inference)",
        "max_context_length": context,
        "aliases": [],
        "deprecation": None,
        "deprecation_replacement_model": None,
        "default_model_temperature": 0.3,
        "type": "base",
    }


def _ft_capabilities(row: sqlite3.Row) -> dict[str, bool]:
    classifier = row["model_type"] == "classifier"
    return {
        "completion_chat": not classifier,
        "completion_fim": False,
        "function_calling": not classifier,
        "fine_tuning": False,
        "classification": classifier,
    }


def _ft_card(store: Store, row: sqlite3.Row) -> dict[str, Any]:
    context = BASE_MODELS.get(row["root"], (32768, frozenset(), {}))[0]
    return {
        "id": row["id"],
        "object": "model",
        "created": row["created"],
        "owned_by": store.org_id,
        "capabilities": {
            **_ft_capabilities(row),
            "vision": False,
            "ocr": False,
            "moderation": False,
            "audio": False,
            "audio_transcription": False,
        },
        "name": row["name"],
        "description": row["description"],
        "max_context_length": context,
        "aliases": [],
        "deprecation": None,
        "deprecation_replacement_model": None,
        "default_model_temperature": None,
        "type": "fine-tuned",
        "job": row["job_id"],
        "root": row["root"],
        "archived": bool(row["archived"]),
    }


def _ft_model_out(store: Store, row: sqlite3.Row) -> dict[str, Any]:
    """``CompletionFTModelOut`` / ``ClassifierFTModelOut``."""
    context = BASE_MODELS.get(row["root"], (32768, frozenset(), {}))[0]
    out: dict[str, Any] = {
        "id": row["id"],
        "object": "model",
        "created": row["created"],
        "owned_by": store.org_id,
        "workspace_id": str(uuid.UUID(int=int(store.org_id, 16))),
        "root": row["root"],
        "root_version": "1",
        "archived": bool(row["archived"]),
        "name": row["name"],
        "description": row["description"],
        "capabilities": _ft_capabilities(row),
        "max_context_length": context,
        "aliases": [],
        "job": row["job_id"],
        "model_type": row["model_type"],
    }
    if row["model_type"] == "classifier":
        out["classifier_targets"] = json.loads(row["classifier_targets"] or "[]")
    return out
