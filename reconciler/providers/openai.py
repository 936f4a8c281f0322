"""The OpenAI provider: OpenAI's files, fine-tuning and models API behind the Provider interface.

It shares the client plumbing of :class:`~reconciler.client.api.HttpApi` (retries with
backoff, the shared rate limiter, error translation, the streaming upload) and translates
between OpenAI's API and the canonical shapes the engine reads:

* **Requests.** The engine's canonical create request (Mistral's ``JobIn`` shape) becomes
  OpenAI's ``CreateFineTuningJobRequest``: one ``training_file`` and at most one
  ``validation_file``, ``method: {type, <type>: {hyperparameters}}`` with the spec's names
  mapped (:data:`HYPERPARAMETER_NAMES`: ``epochs`` is ``n_epochs``), ``seed``, ``suffix``,
  W&B integrations as ``{type: wandb, wandb: {project, name, entity, tags}}``, and our
  identity (:class:`~reconciler.providers.base.JobTag`) as ``metadata``.
* **Jobs.** A ``fine_tuning.job`` becomes a :class:`~reconciler.client.types.RemoteJob`:
  statuses mapped (:data:`STATUS`; a job that failed on its files is ``FAILED_VALIDATION``),
  hyperparameters under the spec's names (``"auto"`` values left out), one-element file
  lists, the suffix read from the fine-tuned model's name once there is one, ``metadata`` as
  ``user_metadata``. The detailed form adds the events (newest first) and the checkpoints with
  their metrics — every ``metrics`` event is a point too, so curves have every step the
  service reports — and the run's total steps (from the metrics events) as
  ``metadata.training_steps``, so ``status``, ``--wait``, ``--watch`` and ``--plot`` read OpenAI
  jobs as they read Mistral's.
* **Identity.** Jobs are found by their metadata (``metadata[k]=v`` filters): exact, so a
  create whose answer was lost is resolved by lookup before anything is sent again.
  Files are found by name and size (our filenames carry the content hash). OpenAI does not
  give back the content of fine-tune files, so a file uploaded by hand under another name
  cannot be adopted by its content here (``capabilities.file_download`` is false).
* **Lifecycle.** Jobs start when created (``start_job`` only reads the job back); pause,
  resume and cancel are idempotent (a refusal because the job is already where the request
  would take it counts as done).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from reconciler.client.api import (
    HttpApi,
    _Call,  # the plumbing's call record: subclasses of HttpApi build them
    _seg,
)
from reconciler.client.types import JobEstimate, JobStatus, RemoteFile, RemoteJob, RemoteModel
from reconciler.errors import ApiError, NotFoundError, ReconcilerError
from reconciler.identity import JobLookup, JobTag, RequestIdentity, matches
from reconciler.providers.base import (
    OPENAI_CAPABILITIES,
    Capabilities,
    Provider,
    WithoutModelUpdates,
)

log = logging.getLogger("reconciler.providers.openai")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
"""OpenAI's public endpoint (used when an ``openai`` Provider names no endpoint)."""

STATUS: Mapping[str, JobStatus] = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "paused": JobStatus.PAUSED,
    "succeeded": JobStatus.SUCCESS,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
"""OpenAI job status → canonical status (``failed`` on its files: ``FAILED_VALIDATION``)."""

FILE_ERROR_PARAMS = frozenset({"training_file", "validation_file"})
"""``error.param`` of a job that failed because of a file: it failed validation."""

HYPERPARAMETER_NAMES: Mapping[str, str] = {
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "learning_rate_multiplier": "learning_rate_multiplier",
    "beta": "beta",
}
"""Spec hyperparameter → OpenAI's name (the spec's ``epochs`` is OpenAI's ``n_epochs``)."""

WANDB_KEYS = ("project", "name", "entity", "tags")
"""What OpenAI's W&B integration takes (its key lives in the organisation's settings)."""

PAGE_SIZE = 100
"""Objects per page of jobs, events and checkpoints."""

FILES_PAGE_SIZE = 10000
"""Files per page (the API's maximum and default)."""

MAX_EVENTS = 5000
"""Events read per job at most (newest first): a long run reports a metrics event per step."""


class OpenAIProvider(WithoutModelUpdates, HttpApi):
    """OpenAI's fine-tuning service as a :class:`~reconciler.providers.base.Provider`.

    Args:
        base_url: API root (default :data:`DEFAULT_BASE_URL`; the sandbox's OpenAI dialect
            at ``http://127.0.0.1:PORT/v1``).
        api_key: bearer key.
        organization: sent as ``OpenAI-Organization`` when given.
        project: sent as ``OpenAI-Project`` when given.
        **options: the plumbing's options (:class:`~reconciler.client.api.HttpApi`).
    """

    capabilities: Capabilities = OPENAI_CAPABILITIES
    compatible = "an OpenAI-compatible API"
    model_updates_refusal = (
        "openai fine-tuned models cannot be renamed, described or archived; remove "
        "fine_tuned_model from the spec"
    )

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        organization: str | None = None,
        project: str | None = None,
        **options: Any,
    ) -> None:
        headers = dict(options.pop("extra_headers", None) or {})
        if organization:
            headers["OpenAI-Organization"] = organization
        if project:
            headers["OpenAI-Project"] = project
        super().__init__(base_url, api_key, extra_headers=headers, **options)

    # -- listing --------------------------------------------------------------------------

    def _pages(
        self, op: str, path: str, params: list[tuple[str, str]], limit: int, cap: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every object of a cursor-paged list (``after``, ``limit``, ``has_more``)."""
        after: str | None = None
        seen: set[str] = set()
        count = 0
        while True:
            page = [*params, ("limit", str(limit))] + ([("after", after)] if after else [])
            call = _Call(op, "GET", path, params=page)
            body, data = self._list(call)
            fresh = [o for o in data if isinstance(o, dict) and str(o.get("id")) not in seen]
            for obj in fresh:
                seen.add(str(obj.get("id")))
                yield obj
                count += 1
                if cap is not None and count >= cap:
                    return
            if not body.get("has_more") or not data:
                return
            if not fresh:
                # A page of nothing new: the server ignores `after`; stop, do not spin.
                log.warning("GET %s: a page repeated earlier results; stopping", path)
                return
            after = str(data[-1].get("id"))

    def _list(self, call: _Call) -> tuple[dict[str, Any], list[Any]]:
        """A list answer (``{"object": "list", "data": [...]}``) and its ``data``."""
        response = self._call(call)
        body = self._json(response, call)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise self._unexpected(call, "no 'data' list", response.status_code)
        return body, data

    # -- files ----------------------------------------------------------------------------

    def list_files(self) -> list[RemoteFile]:
        """Every ``fine-tune`` file (all pages)."""
        return [
            self._parse(RemoteFile, raw, _Call("list_files", "GET", "/v1/files"))
            for raw in self._pages(
                "list_files", "/v1/files", [("purpose", "fine-tune")], FILES_PAGE_SIZE
            )
        ]

    def get_file(self, file_id: str) -> RemoteFile:
        """One file by id (``NotFoundError`` when gone)."""
        return self._one(RemoteFile, _Call("get_file", "GET", f"/v1/files/{_seg(file_id)}"))

    def delete_file(self, file_id: str) -> None:
        """Delete a file; one already gone after a lost answer counts as deleted."""
        self._delete("delete_file", f"/v1/files/{_seg(file_id)}")

    def find_file(self, filename: str, *, size: int | None = None) -> RemoteFile | None:
        """The newest file named exactly ``filename`` (and of ``size`` bytes, if given)."""
        candidates = [
            f
            for f in self.list_files()
            if f.filename == filename and (size is None or f.bytes is None or f.bytes == size)
        ]
        return max(candidates, key=lambda f: f.created_at) if candidates else None

    def download_file(self, file_id: str, dest: Path) -> None:
        """Refused without a request: OpenAI answers ``GET /files/{id}/content`` of a
        ``fine-tune`` file (the only files this provider deals with) with 400
        ("Not allowed to download files of purpose: fine-tune"); ``capabilities.file_download``
        is false, so the engine does not ask."""
        raise ReconcilerError(
            f"file {file_id}: openai does not give back the content of fine-tune files, so it "
            "cannot be downloaded or compared with a prepared part"
        )

    def _delete(self, op: str, path: str) -> None:
        self._execute(_Call(op, "DELETE", path, resolve_rejected=_gone))

    # -- jobs -----------------------------------------------------------------------------

    def create_job(self, request: dict[str, Any], lookup: JobLookup = JobLookup()) -> RemoteJob:
        """Create a job from a canonical request, with ``lookup.tag`` as its metadata.

        If the answer is lost, the job is looked up — by its tag (exact), or without one by
        its request among jobs created since shortly before — and returned instead of
        posting again; a job whose id is in ``lookup.exclude`` is never taken for it.
        """
        return self._create_job_once(
            openai_request(request, lookup.tag),
            lambda since: self.find_jobs(request, replace(lookup, created_after=since)),
        )

    def _created_job(self, response: httpx.Response, call: _Call) -> RemoteJob:
        return self._job(self._json(response, call), call)

    def estimate_job(self, request: dict[str, Any]) -> JobEstimate:
        """OpenAI estimates nothing before a job runs; plans use the local estimate."""
        raise ReconcilerError(
            "openai gives no cost estimate before a job runs; the plan's estimate is local "
            "(training tokens x epochs x the model's price)"
        )

    def list_jobs(self, *, metadata: Mapping[str, str] | None = None) -> list[RemoteJob]:
        """Every job (all pages), or those whose metadata has every pair of ``metadata``."""
        params = [(f"metadata[{k}]", v) for k, v in (metadata or {}).items()]
        call = _Call("list_jobs", "GET", "/v1/fine_tuning/jobs")
        return [
            self._job(raw, call)
            for raw in self._pages("list_jobs", "/v1/fine_tuning/jobs", params, PAGE_SIZE)
        ]

    def get_job(self, job_id: str) -> RemoteJob:
        """One job with its events (newest first), checkpoints and total steps."""
        path = f"/v1/fine_tuning/jobs/{_seg(job_id)}"
        call = _Call("get_job", "GET", path)
        response = self._call(call)
        raw = self._json(response, call)
        events = list(self._pages("list_events", f"{path}/events", [], PAGE_SIZE, MAX_EVENTS))
        checkpoints = list(self._pages("list_checkpoints", f"{path}/checkpoints", [], PAGE_SIZE))
        return self._job(raw, call, events=events, checkpoints=checkpoints)

    def start_job(self, job_id: str) -> RemoteJob:
        """OpenAI jobs start when created: the job as it is."""
        return self.get_job(job_id)

    def cancel_job(self, job_id: str) -> RemoteJob:
        """Cancel a job; a finished (or already cancelled) job is left as it is."""
        return self._action("cancel_job", job_id, "cancel", lambda s: s.is_terminal)

    def pause_job(self, job_id: str) -> RemoteJob:
        """Pause a running job; a paused or finished job is left as it is."""
        return self._action("pause_job", job_id, "pause", lambda s: s.is_paused or s.is_terminal)

    def resume_job(self, job_id: str) -> RemoteJob:
        """Resume a paused job; a job that is not paused is left as it is."""
        return self._action("resume_job", job_id, "resume", lambda s: not s.is_paused)

    def _action(
        self, op: str, job_id: str, action: str, settled: Callable[[JobStatus], bool]
    ) -> RemoteJob:
        """POST a job action. A refusal (400/409) of a job already where the action would take
        it is success: the request is idempotent."""

        path = f"/v1/fine_tuning/jobs/{_seg(job_id)}/{action}"
        call = _Call(op, "POST", path)
        try:
            response = self._call(call)
        except ApiError as exc:
            # Also after a lost first attempt: the retry is refused because it took effect.
            if exc.status not in (400, 409):
                raise
            job = self.get_job(job_id)
            status = JobStatus.of(job.status)
            if status is None or not settled(status):
                raise
            return job
        return self._job(self._json(response, call), call)

    def find_jobs(
        self, request: dict[str, Any], lookup: JobLookup = JobLookup()
    ) -> list[RemoteJob]:
        """Jobs this request created: by ``lookup.tag`` in their metadata (exact), else by
        comparing what the jobs report with the request (created after
        ``lookup.created_after``); never one whose id is in ``lookup.exclude``."""
        tag, created_after = lookup.tag, lookup.created_after
        listed = self.list_jobs(metadata=tag.metadata() if tag is not None else None)
        jobs = [j for j in listed if j.id not in lookup.exclude]
        if created_after is not None:
            floor = created_after.replace(tzinfo=created_after.tzinfo or UTC).timestamp()
            jobs = [j for j in jobs if j.created_at >= floor]
        return jobs if tag is not None else [j for j in jobs if openai_job_matches(j, request)]

    def _job(
        self,
        raw: Any,
        call: _Call,
        *,
        events: list[dict[str, Any]] | None = None,
        checkpoints: list[dict[str, Any]] | None = None,
    ) -> RemoteJob:
        if not isinstance(raw, dict):
            raise self._unexpected(call, "a job is not an object")
        return self._parse(RemoteJob, canonical_job(raw, events, checkpoints), call)

    # -- models ---------------------------------------------------------------------------

    def list_models(self) -> list[RemoteModel]:
        """Models visible to the key: base models (``type: base``) and fine-tuned ones."""
        call = _Call("list_models", "GET", "/v1/models")
        _, data = self._list(call)
        return [self._parse(RemoteModel, canonical_model(raw), call) for raw in data]

    def delete_model(self, model_id: str) -> None:
        """Delete a fine-tuned model; one already gone after a lost answer counts as done."""
        self._delete("delete_model", f"/v1/models/{_seg(model_id)}")


def _gone(error: ApiError) -> bool | None:
    """After a lost DELETE, a 404 means the first attempt did delete."""
    return True if isinstance(error, NotFoundError) else None


# -- translation ------------------------------------------------------------------------------


def openai_request(request: Mapping[str, Any], tag: JobTag | None) -> dict[str, Any]:
    """OpenAI's create body for a canonical request (see the module docstring).

    Raises:
        ReconcilerError: the request asks for something OpenAI does not take (the spec checks
            refuse such specs first; this guards other callers).
    """
    problems: list[str] = []
    training = [_file_id(f) for f in request.get("training_files") or []]
    validation = [_file_id(f) for f in request.get("validation_files") or []]
    if len(training) != 1:
        problems.append(f"{len(training)} training files (openai takes one)")
    if len(validation) > 1:
        problems.append(f"{len(validation)} validation files (openai takes one)")
    if (request.get("job_type") or "completion") != "completion":
        problems.append(f"job_type {request.get('job_type')}")
    if request.get("invalid_sample_skip_percentage"):
        problems.append("invalid_sample_skip_percentage")
    hyper: dict[str, Any] = {}
    for name, value in (request.get("hyperparameters") or {}).items():
        if value is None:
            continue
        if name not in HYPERPARAMETER_NAMES:
            problems.append(f"hyperparameter {name}")
            continue
        theirs = HYPERPARAMETER_NAMES[name]
        hyper[theirs] = int(value) if theirs == "n_epochs" else value
    integrations: list[dict[str, Any]] = []
    for item in request.get("integrations") or []:
        if item.get("api_key"):
            problems.append("a W&B api_key (openai keeps it in the organisation's settings)")
        wandb = {k: item[k] for k in WANDB_KEYS if item.get(k) not in (None, [], "")}
        integrations.append({"type": "wandb", "wandb": wandb})
    if problems:
        raise ReconcilerError("the job asks for what openai does not take: " + "; ".join(problems))
    method = str(request.get("method") or "supervised")
    settings: dict[str, Any] = {"hyperparameters": hyper} if hyper else {}
    body: dict[str, Any] = {
        "model": request["model"],
        "training_file": training[0],
        "method": {"type": method, method: settings},
    }
    if validation:
        body["validation_file"] = validation[0]
    for key in ("suffix", "seed"):
        if request.get(key) is not None:
            body[key] = request[key]
    if integrations:
        body["integrations"] = integrations
    if tag is not None:
        body["metadata"] = tag.metadata()
    return body


def _file_id(item: Any) -> str:
    return str(item.get("file_id") if isinstance(item, Mapping) else item)


def canonical_status(raw: Mapping[str, Any]) -> str:
    """The canonical status of an OpenAI job (an unknown one upper-cased, as it came)."""
    text = str(raw.get("status") or "")
    status = STATUS.get(text)
    if status is None:
        return text.upper()
    error = raw.get("error")
    if status is JobStatus.FAILED and isinstance(error, Mapping):
        code = str(error.get("code") or "")
        if error.get("param") in FILE_ERROR_PARAMS or code.startswith("invalid_"):
            return JobStatus.FAILED_VALIDATION.value
    return status.value


def canonical_job(
    raw: Mapping[str, Any],
    events: list[dict[str, Any]] | None = None,
    checkpoints: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``fine_tuning.job`` (plus its events and checkpoints) as the canonical job JSON."""
    method = _mapping(raw.get("method"))
    kind = str(method.get("type") or "supervised")
    reported = _mapping(_mapping(method.get(kind)).get("hyperparameters")) or _mapping(
        raw.get("hyperparameters")
    )
    ours = {v: k for k, v in HYPERPARAMETER_NAMES.items()}
    hyperparameters = {
        ours[name]: value
        for name, value in reported.items()
        if name in ours and isinstance(value, int | float) and not isinstance(value, bool)
    }
    model = raw.get("fine_tuned_model")
    validation = raw.get("validation_file")
    job: dict[str, Any] = {
        "id": raw.get("id"),
        "object": raw.get("object"),
        "status": canonical_status(raw),
        "model": raw.get("model"),
        "job_type": "completion",
        "auto_start": True,  # OpenAI starts every job when it is created
        "created_at": raw.get("created_at") or 0,
        "modified_at": raw.get("finished_at") or raw.get("created_at") or 0,
        "training_files": [raw["training_file"]] if raw.get("training_file") else [],
        "validation_files": [validation] if validation else [],
        "hyperparameters": hyperparameters,
        "suffix": model_suffix(model) if isinstance(model, str) else None,
        "integrations": [_integration(i) for i in raw.get("integrations") or []],
        "fine_tuned_model": model,
        "trained_tokens": raw.get("trained_tokens"),
        "user_metadata": raw.get("metadata"),
        "method": kind,
        "seed": raw.get("seed"),
        "error": raw.get("error"),
        "estimated_finish": raw.get("estimated_finish"),
        "finished_at": raw.get("finished_at"),
        "organization_id": raw.get("organization_id"),
    }
    if events is not None:
        job["events"] = _events(raw, events)
        total = _total_steps(events)
        if total is not None:
            job["metadata"] = {"training_steps": total}
    if checkpoints is not None:
        job["checkpoints"] = _checkpoints(events or [], checkpoints)
    return job


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _integration(item: Any) -> dict[str, Any]:
    settings = _mapping(_mapping(item).get("wandb"))
    out: dict[str, Any] = {
        "type": str(_mapping(item).get("type") or "wandb"),
        "project": settings.get("project"),
        "name": settings.get("name"),
        "run_name": None,  # OpenAI's integration has no run name
    }
    if settings.get("entity") is not None:
        out["entity"] = settings["entity"]
    if settings.get("tags"):
        out["tags"] = list(settings["tags"])
    return out


def model_suffix(model: str) -> str | None:
    """The suffix in a fine-tuned model's name ``ft:<base>:<org>:<suffix>:<id>`` (None: none)."""
    parts = model.split(":")
    return (parts[3] or None) if len(parts) >= 5 and parts[0] == "ft" else None


def _events(raw: Mapping[str, Any], events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events newest first, in the canonical shape (``name``, ``created_at``, ``data``), the
    job's error first when it failed (so the failure reason is the service's own words)."""
    out = [
        {
            "name": str(e.get("type") or "message"),
            "created_at": e.get("created_at") or 0,
            "data": {
                **_mapping(e.get("data")),
                "message": e.get("message"),
                "level": e.get("level"),
            },
            "id": e.get("id"),
        }
        for e in events
    ]
    out.sort(key=lambda e: -float(_number(e["created_at"])))
    error = raw.get("error")
    if isinstance(error, Mapping) and error.get("message"):
        code = error.get("code")
        text = f"{error['message']} ({code})" if code else str(error["message"])
        at = raw.get("finished_at") or (out[0]["created_at"] if out else 0)
        out.insert(0, {"name": "error", "created_at": at, "data": {"error": text}})
    return out


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _total_steps(events: list[dict[str, Any]]) -> int | None:
    for event in events:  # newest first
        data = event.get("data")
        if isinstance(data, Mapping) and isinstance(data.get("total_steps"), int):
            return int(data["total_steps"])
    return None


def _checkpoints(
    events: list[dict[str, Any]], checkpoints: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Metric points by step, newest first: one per ``metrics`` event, the checkpoint's own
    (with its model name) where the API lists one for that step."""
    points: dict[int, dict[str, Any]] = {}
    for event in events:
        data = event.get("data")
        if event.get("type") != "metrics" or not isinstance(data, Mapping):
            continue
        step = data.get("step")
        if not isinstance(step, int):
            continue
        metrics = {k: v for k, v in data.items() if k not in ("step", "total_steps")}
        points[step] = {
            "step_number": step,
            "created_at": event.get("created_at") or 0,
            "metrics": metrics,
        }
    for cp in checkpoints:
        step = cp.get("step_number")
        if isinstance(step, int):
            points[step] = {**points.get(step, {}), **cp}
    return [points[s] for s in sorted(points, reverse=True)]


def openai_job_matches(job: RemoteJob, request: Mapping[str, Any]) -> bool:
    """Whether an (untagged) job reports what ``request`` asks for.

    The suffix is compared only when the job reports one (OpenAI shows it in the fine-tuned
    model's name, once the job has succeeded); the method and seed when the request sets them.
    """
    wanted = dict(request)
    if job.suffix is None:
        wanted.pop("suffix", None)
    extra = job.model_extra or {}
    if str(extra.get("method") or "supervised") != str(request.get("method") or "supervised"):
        return False
    if request.get("seed") is not None and extra.get("seed") != request["seed"]:
        return False
    return matches(RequestIdentity.of_request(wanted), job.model_dump(mode="json"))


def canonical_model(raw: Any) -> Any:
    """An OpenAI ``model`` object with the canonical fields a refresh reads."""
    if not isinstance(raw, Mapping):
        return raw
    model_id = str(raw.get("id") or "")
    fine_tuned = model_id.startswith("ft:")
    out = dict(raw)
    out["type"] = "fine-tuned" if fine_tuned else "base"
    if fine_tuned:
        out.setdefault("root", model_id.split(":")[1] if model_id.count(":") >= 1 else None)
    return out


if TYPE_CHECKING:  # mypy checks that the provider really implements the interface
    _conforms: type[Provider] = OpenAIProvider
