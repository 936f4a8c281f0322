"""A small client of Ray's Jobs API (the dashboard's REST API), over httpx.

It speaks the HTTP API directly, so the command line needs neither the ``ray`` package nor a
matching Ray version to submit jobs and watch them:

====================================  =================================================
``POST /api/jobs/``                   :meth:`RayJobsClient.submit`
``GET /api/jobs/``                    :meth:`RayJobsClient.list_jobs`
``GET /api/jobs/{id}``                :meth:`RayJobsClient.get`
``GET /api/jobs/{id}/logs``           :meth:`RayJobsClient.logs`
``POST /api/jobs/{id}/stop``          :meth:`RayJobsClient.stop`
``GET /api/version``                  :meth:`RayJobsClient.version`
====================================  =================================================

**Exactly once.** A submission carries a caller-chosen ``submission_id``, and Ray refuses a
second job with an id it already has. It does so with HTTP 500 (the head relays the job
agent's HTTP 400) and a plain-text traceback ending in ``ValueError: Job with submission_id
<id> already exists. Please use a different submission_id.``; this client recognises that
text (with either status) and raises :class:`reconciler.errors.DuplicateSubmissionError`.
Repeating a submission whose answer was lost is therefore safe: the duplicate error says an
earlier attempt got through, and no second run starts.

**Errors** become :mod:`reconciler.errors` (via :mod:`reconciler.client.http`), with the last
line of Ray's traceback as the reason rather than the whole traceback.

**Secrets.** Ray returns a job's ``runtime_env`` unredacted to API clients, environment
variables included (where a W&B key travels). :class:`RayJob` masks every
``runtime_env.env_vars`` value as it parses, so no secret leaves this module; the optional
cluster token is only ever in the ``Authorization`` header.
"""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator

from reconciler import __version__
from reconciler.client.http import error_for_response, translate_errors
from reconciler.closing import Closing
from reconciler.errors import ApiError, DuplicateSubmissionError, ReconcilerError

RAY_TO_JOB_STATUS = {
    "PENDING": "QUEUED",
    "RUNNING": "RUNNING",
    "SUCCEEDED": "SUCCESS",
    "FAILED": "FAILED",
    "STOPPED": "CANCELLED",
}
"""Ray job status -> the job status reconciler uses (the hosted API's vocabulary)."""

RAY_TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
"""Ray job statuses that never change again."""

MASK = "***"
"""What a masked secret value reads as."""

_DUPLICATE = re.compile(r"Job with submission_id (\S+) already exists")

_HINTS: dict[int, str] = {
    400: "Ray rejected the request",
    401: "the Ray cluster needs a token: set its token (RAY_AUTH_TOKEN) for this client",
    403: "the Ray cluster refused the token",
    404: "no such job on this Ray cluster (a head restarted without GCS fault tolerance "
    "forgets its jobs)",
}


def job_status(ray_status: str) -> str:
    """The reconciler job status of a Ray job status.

    PENDING -> QUEUED, RUNNING -> RUNNING, SUCCEEDED -> SUCCESS, FAILED -> FAILED,
    STOPPED -> CANCELLED; a status this version does not know -> ``UNKNOWN`` (neither active
    nor terminal, so nothing acts on it).
    """
    return RAY_TO_JOB_STATUS.get(ray_status.upper(), "UNKNOWN")


class RayJob(BaseModel):
    """A job as Ray's Jobs API describes it (``JobDetails``); unknown fields are kept.

    Attributes:
        submission_id: the id given at submission (``None`` for jobs started by a driver
            script rather than through the Jobs API).
        job_id: Ray's internal job id, once the driver runs.
        type: ``SUBMISSION`` (through the Jobs API) or ``DRIVER``.
        status: PENDING, RUNNING, STOPPED, SUCCEEDED or FAILED.
        entrypoint: the shell command the job runs.
        message: Ray's status message (e.g. why it failed).
        error_type: Ray's failure category, when it failed.
        start_time, end_time: unix milliseconds.
        metadata: the string map given at submission.
        runtime_env: the runtime environment, with every ``env_vars`` value masked.
        driver_exit_code: the entrypoint's exit code, once it ended.
    """

    model_config = ConfigDict(extra="allow")

    submission_id: str | None = None
    job_id: str | None = None
    type: str = "SUBMISSION"
    status: str
    entrypoint: str = ""
    message: str | None = None
    error_type: str | None = None
    start_time: int | None = None
    end_time: int | None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    runtime_env: dict[str, Any] = Field(default_factory=dict)
    driver_exit_code: int | None = None

    @field_validator("metadata", "runtime_env", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("runtime_env")
    @classmethod
    def _mask_env_vars(cls, value: dict[str, Any]) -> dict[str, Any]:
        env = value.get("env_vars")
        if isinstance(env, dict):
            return {**value, "env_vars": dict.fromkeys(env, MASK)}
        return value

    @property
    def reconciler_status(self) -> str:
        """The status mapped by :func:`job_status`."""
        return job_status(self.status)

    @property
    def is_terminal(self) -> bool:
        """True once the job has stopped, succeeded or failed."""
        return self.status.upper() in RAY_TERMINAL_STATUSES


def _reason(text: str) -> str:
    """The useful line of a Ray error body: the last line that says something (the
    exception at the end of a traceback), or the whole short message."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line.strip(".:;,") and not line.startswith("^")]
    return lines[-1] if lines else "no reason given"


def _seg(value: str) -> str:
    # A submission id goes into the path: quoted, it can never address another resource.
    return quote(value, safe="")


class RayJobsClient(Closing):
    """Typed access to one Ray cluster's Jobs API.

    Args:
        address: the dashboard's HTTP address, e.g. ``http://127.0.0.1:8265``.
        token: the cluster's authentication token, if it requires one.
        timeout: seconds per request.
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        address: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.address = address.rstrip("/")
        self._token = token
        headers = {"user-agent": f"reconciler/{__version__}"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.address, headers=headers, timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"RayJobsClient({self.address!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _error(self, response: httpx.Response, method: str, path: str) -> ApiError:
        text = response.text
        duplicate = _DUPLICATE.search(text)
        if duplicate:
            submission_id = duplicate.group(1)
            return DuplicateSubmissionError(
                f"a Ray job with submission_id {submission_id} already exists; nothing new "
                "was started",
                submission_id=submission_id,
                method=method,
                path=path,
                status=response.status_code,
            )
        error = error_for_response(response, method, path, self._token)
        hint = _HINTS.get(response.status_code)
        if hint is None and response.status_code >= 500:
            hint = "the Ray head failed; its dashboard log says why"
        reason = _reason(text) if text else (response.reason_phrase or "no reason given")
        return error.restated(f"{reason} ({hint})" if hint else reason)

    def _request(self, method: str, path: str, json: Any = None) -> Any:
        with translate_errors(method, path, base_url=self.address, secret=self._token):
            response = self._http.request(method, path, json=json)
        if response.is_error:
            raise self._error(response, method, path)
        try:
            return response.json()
        except ValueError as exc:
            raise ApiError(
                f"the answer is not JSON ({response.headers.get('content-type', 'no type')}); "
                f"is {self.address} a Ray dashboard address?",
                method=method,
                path=path,
                status=response.status_code,
            ) from exc

    def version(self) -> dict[str, Any]:
        """The cluster's versions (``ray_version``, API ``version``, ``session_name``)."""
        body = self._request("GET", "/api/version")
        return dict(body) if isinstance(body, dict) else {}

    def submit(
        self,
        entrypoint: str,
        *,
        submission_id: str,
        runtime_env: dict[str, Any] | None = None,
        metadata: dict[str, str] | None = None,
        entrypoint_num_cpus: float | None = None,
        entrypoint_num_gpus: float | None = None,
        entrypoint_memory: int | None = None,
        entrypoint_resources: dict[str, float] | None = None,
    ) -> str:
        """Start ``entrypoint`` as a job named ``submission_id``; returns that id.

        Raises :class:`DuplicateSubmissionError` when a job with this id exists (in which
        case nothing was started). ``metadata`` values must be strings (Ray's rule); secrets
        go in ``runtime_env["env_vars"]``, never in the entrypoint or the metadata.
        """
        for key, value in (metadata or {}).items():
            if not isinstance(value, str):
                raise TypeError(f"Ray job metadata values must be strings: {key!r}")
        body: dict[str, Any] = {"entrypoint": entrypoint, "submission_id": submission_id}
        optional = {
            "runtime_env": runtime_env,
            "metadata": metadata,
            "entrypoint_num_cpus": entrypoint_num_cpus,
            "entrypoint_num_gpus": entrypoint_num_gpus,
            "entrypoint_memory": entrypoint_memory,
            "entrypoint_resources": entrypoint_resources,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        answer = self._request("POST", "/api/jobs/", json=body)
        return str(answer.get("submission_id") or submission_id)

    def get(self, submission_id: str) -> RayJob:
        """One job, by submission id (:class:`NotFoundError` when Ray has none)."""
        return RayJob.model_validate(self._request("GET", f"/api/jobs/{_seg(submission_id)}"))

    def list_jobs(self) -> list[RayJob]:
        """Every job the cluster knows, submitted ones and driver scripts alike."""
        body = self._request("GET", "/api/jobs/")
        return [RayJob.model_validate(item) for item in body or []]

    def logs(self, submission_id: str) -> str:
        """The job's output so far (the entrypoint's stdout and stderr)."""
        body = self._request("GET", f"/api/jobs/{_seg(submission_id)}/logs")
        return str(body.get("logs") or "") if isinstance(body, dict) else ""

    def stop(self, submission_id: str) -> bool:
        """Ask Ray to stop the job (SIGTERM to the entrypoint, SIGKILL after a grace time).

        Returns whether Ray had something to stop: ``False`` for a job already ended.
        """
        body = self._request("POST", f"/api/jobs/{_seg(submission_id)}/stop")
        return bool(body.get("stopped")) if isinstance(body, dict) else False

    def wait(self, submission_id: str, *, timeout: float, interval: float = 1.0) -> RayJob:
        """Poll the job until it ends; :class:`ReconcilerError` after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.get(submission_id)
            if job.is_terminal:
                return job
            if time.monotonic() >= deadline:
                raise ReconcilerError(
                    f"Ray job {submission_id} is still {job.status} after {timeout:.0f}s"
                )
            time.sleep(interval)
