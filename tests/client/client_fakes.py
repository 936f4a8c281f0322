"""A scripted stand-in for the remote API, served through ``httpx.MockTransport``.

It is a fake of the *remote*, not of our client: it keeps files, jobs and fine-tuned models,
pages lists like the real API, and can be told to fail the next matching request in a given
way (an error status, a dropped connection before or after the object is committed, a
timeout). New jobs take the status ``new_job_status`` and the metadata ``new_job_metadata``;
tests move them on by editing ``jobs``.
"""

from __future__ import annotations

import itertools
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

KEY = "sk-test-SECRET-0123456789abcdef"

# A create request (JobIn body) of the shape the engine sends, with file ids of its own.
TRAIN = "11111111-1111-1111-1111-111111111111"
TRAIN2 = "22222222-2222-2222-2222-222222222222"
VALID = "33333333-3333-3333-3333-333333333333"

REQUEST: dict[str, Any] = {
    "model": "open-mistral-7b",
    "job_type": "completion",
    "training_files": [{"file_id": TRAIN, "weight": 1.0}, {"file_id": TRAIN2, "weight": 0.5}],
    "validation_files": [VALID],
    "hyperparameters": {"training_steps": 10, "learning_rate": 0.0001},
    "suffix": "dumbledore-a1b2",
    "integrations": [
        {"type": "wandb", "project": "p", "name": "n", "run_name": None, "api_key": "w" * 40}
    ],
    "auto_start": False,
    "invalid_sample_skip_percentage": 0.0,
}


@dataclass
class Fault:
    """What to do to the next request matching ``method`` and ``path`` (path prefix).

    kind: ``status`` (answer ``status`` with ``body``/``headers``), ``drop-before`` (raise
    ``exc`` without handling the request), ``drop-after`` (handle it, commit, then raise
    ``exc`` as if the answer was lost).
    """

    method: str
    path: str
    kind: str = "status"
    match: bytes | None = None  # only requests whose body contains these bytes
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    exc: type[Exception] = httpx.RemoteProtocolError
    times: int = 1


class FakeApi:
    """In-memory files + jobs API with fault scripting and a request log."""

    def __init__(self, api_key: str | None = KEY) -> None:
        self.api_key = api_key
        self.files: list[dict[str, Any]] = []
        self.jobs: list[dict[str, Any]] = []
        self.faults: list[Fault] = []
        self.log: list[tuple[str, str, str]] = []  # (method, path, query)
        self.bodies: list[bytes] = []
        self.content_types: list[str] = []
        self.models: list[dict[str, Any]] = []
        self.contents: dict[str, bytes] = {}  # file id -> uploaded content
        self.clock = itertools.count(1_800_000_000)
        self.new_job_status = "VALIDATED"
        self.new_job_metadata: dict[str, Any] | None = None

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)

    def fault(self, *faults: Fault) -> None:
        self.faults.extend(faults)

    def requests(self, method: str | None = None, path: str | None = None) -> list[str]:
        return [
            p
            for m, p, _ in self.log
            if (method is None or m == method) and (path is None or p.startswith(path))
        ]

    # -- the server -----------------------------------------------------------------------

    def __call__(self, request: httpx.Request) -> httpx.Response:
        method, path = request.method, request.url.path
        self.log.append((method, path, request.url.query.decode()))
        body = request.read()
        self.bodies.append(body)
        self.content_types.append(request.headers.get("content-type", ""))
        fault = self._take_fault(method, path, body)
        if fault is not None and fault.kind == "drop-before":
            raise fault.exc("connection dropped", request=request)
        if fault is not None and fault.kind == "status":
            content = fault.body if fault.body is not None else {"detail": "injected failure"}
            return httpx.Response(fault.status, json=content, headers=fault.headers)
        if self.api_key and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return httpx.Response(401, json={"detail": "Unauthorized"})
        response = self._handle(request, method, path, body)
        if fault is not None and fault.kind == "drop-after":
            raise fault.exc("connection dropped after commit", request=request)
        return response

    def _take_fault(self, method: str, path: str, body: bytes) -> Fault | None:
        for f in self.faults:
            if f.match is not None and f.match not in body:
                continue
            if f.method == method and path.startswith(f.path):
                f.times -= 1
                if f.times <= 0:
                    self.faults.remove(f)
                return f
        return None

    def _page(self, request: httpx.Request, items: list[dict[str, Any]]) -> httpx.Response:
        page = int(request.url.params.get("page", 0))
        size = int(request.url.params.get("page_size", 100))
        chunk = items[page * size : (page + 1) * size]
        return httpx.Response(200, json={"object": "list", "data": chunk, "total": len(items)})

    def _handle(
        self, request: httpx.Request, method: str, path: str, body: bytes
    ) -> httpx.Response:
        q = request.url.params
        if path == "/v1/files" and method == "POST":
            return httpx.Response(200, json=self._store_file(request, body))
        if path == "/v1/files" and method == "GET":
            items = [
                f for f in self.files if q.get("search") is None or q["search"] in f["filename"]
            ]
            return self._page(request, sorted(items, key=lambda f: -f["created_at"]))
        if path.startswith("/v1/files/"):
            fid = path.split("/")[3]
            match = [f for f in self.files if f["id"] == fid]
            if not match:
                return httpx.Response(404, json={"detail": f"File {fid} not found"})
            if path.endswith("/content"):
                return httpx.Response(200, content=self.contents.get(fid, b""))
            if method == "DELETE":
                self.files.remove(match[0])
                return httpx.Response(200, json={"id": fid, "object": "file", "deleted": True})
            return httpx.Response(200, json={**match[0], "deleted": False})
        if path == "/v1/fine_tuning/jobs" and method == "POST":
            req = json.loads(body)
            if q.get("dry_run") == "true":
                return httpx.Response(
                    200, json={"object": "job.metadata", "details": "", "cost": 1.5}
                )
            for j in self.jobs:
                if (
                    j["status"] in ("QUEUED", "VALIDATED", "RUNNING")
                    and j["model"] == req["model"]
                    and j["suffix"] == req.get("suffix")
                    and j["training_files"] == [t["file_id"] for t in req["training_files"]]
                ):
                    return httpx.Response(409, json={"detail": "A similar job is already queued"})
            return httpx.Response(200, json=self._store_job(req))
        if path == "/v1/fine_tuning/jobs" and method == "GET":
            items = list(self.jobs)
            for key in ("model", "suffix"):
                if q.get(key) is not None:
                    items = [j for j in items if j.get(key) == q[key]]
            return self._page(request, sorted(items, key=lambda j: -j["created_at"]))
        if path.startswith("/v1/fine_tuning/jobs/"):
            parts = path.split("/")
            match = [j for j in self.jobs if j["id"] == parts[4]]
            if not match:
                return httpx.Response(404, json={"detail": "Job not found"})
            job = match[0]
            if len(parts) == 6 and parts[5] == "start":
                if job["status"] != "VALIDATED":
                    return httpx.Response(409, json={"detail": f"Job is {job['status']}"})
                job["status"] = "RUNNING"
            if len(parts) == 6 and parts[5] == "cancel":
                job["status"] = "CANCELLED"
            return httpx.Response(200, json=job)
        if path == "/v1/models" and method == "GET":
            return httpx.Response(200, json={"object": "list", "data": self.models})
        if path.startswith("/v1/models/") and method == "DELETE":
            model_id = path.split("/")[3]
            if not any(m["id"] == model_id for m in self.models):
                return httpx.Response(404, json={"detail": "Model not found"})
            self.models = [m for m in self.models if m["id"] != model_id]
            return httpx.Response(200, json={"id": model_id, "object": "model", "deleted": True})
        if path.startswith("/v1/fine_tuning/models/"):
            return self._model(method, path.split("/"), body)
        return httpx.Response(404, json={"detail": "Not Found"})

    def _model(self, method: str, parts: list[str], body: bytes) -> httpx.Response:
        match = [m for m in self.models if m["id"] == parts[4]]
        if not match:
            return httpx.Response(404, json={"detail": "Model not found"})
        model = match[0]
        if len(parts) == 6 and parts[5] == "archive":
            model["archived"] = method == "POST"
        elif method == "PATCH":
            model.update(json.loads(body))
        return httpx.Response(200, json=model)

    def _store_file(self, request: httpx.Request, body: bytes) -> dict[str, Any]:
        boundary = request.headers["content-type"].split("boundary=")[1].encode()
        parts = body.split(b"--" + boundary)
        filename, content = "", b""
        for part in parts:
            if b'name="file"' in part:
                head, _, rest = part.partition(b"\r\n\r\n")
                filename = head.split(b'filename="')[1].split(b'"')[0].decode()
                content = rest[: -len(b"\r\n")]
        for f in self.files:
            if f["filename"] == filename and f["bytes"] == len(content):
                return f
        return self.add_file(filename, content)

    def add_file(self, filename: str, content: bytes) -> dict[str, Any]:
        """Store a file as uploaded (tests also add files "uploaded by hand" under any name)."""
        entry = {
            "id": str(uuid.uuid4()),
            "object": "file",
            "bytes": len(content),
            "created_at": next(self.clock),
            "filename": filename,
            "purpose": "fine-tune",
            "sample_type": "instruct",
            "source": "upload",
            "num_lines": content.count(b"\n"),
        }
        self.files.append(entry)
        self.contents[entry["id"]] = content
        return entry

    def _store_job(self, req: dict[str, Any]) -> dict[str, Any]:
        hp = dict(req.get("hyperparameters") or {})
        hp.setdefault("learning_rate", 0.0001)
        hp.setdefault("epochs", 0.25)  # server-filled extra
        job = {
            "id": str(uuid.uuid4()),
            "object": "job",
            "status": self.new_job_status if not req.get("auto_start") else "RUNNING",
            "model": req["model"],
            "job_type": req.get("job_type") or "completion",
            "auto_start": bool(req.get("auto_start")),
            "created_at": int(__import__("time").time()),
            "modified_at": int(__import__("time").time()),
            "training_files": [t["file_id"] for t in req.get("training_files", [])],
            "validation_files": req.get("validation_files") or [],
            "hyperparameters": hp,
            "suffix": req.get("suffix"),
            "integrations": [
                {k: v for k, v in i.items() if k != "api_key"} | {"url": None}
                for i in req.get("integrations") or []
            ],
            "fine_tuned_model": None,
            "metadata": self.new_job_metadata,
        }
        self.jobs.append(job)
        return job


def make_file(n: int) -> dict[str, Any]:
    return {
        "id": f"00000000-0000-0000-0000-{n:012d}",
        "object": "file",
        "bytes": 10,
        "created_at": 1_700_000_000 + n,
        "filename": f"train-{n:04d}.jsonl",
        "purpose": "fine-tune",
        "sample_type": "instruct",
        "source": "upload",
    }
