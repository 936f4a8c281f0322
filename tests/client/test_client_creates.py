"""Creates are never blindly retried: lost answers are resolved by looking the object up."""

from __future__ import annotations

import hashlib
import json
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path
from typing import Any

import httpx
import pytest
from client_fakes import KEY, REQUEST, FakeApi, Fault

from reconciler.client import MistralClient
from reconciler.errors import (
    ConflictError,
    DataError,
    NotFoundError,
    ServerError,
    TransportError,
)


def client_for(api: FakeApi, sleeps: list[float] | None = None, **kw: Any) -> MistralClient:
    return MistralClient(
        "http://remote.test",
        KEY,
        transport=api.transport(),
        sleep=(sleeps if sleeps is not None else []).append,
        **kw,
    )


def test_dropped_connection_on_create_job_is_resolved_by_lookup() -> None:
    api = FakeApi()
    api.fault(
        Fault("POST", "/v1/fine_tuning/jobs", kind="drop-after", exc=httpx.RemoteProtocolError)
    )
    with client_for(api) as client:
        job = client.create_job(REQUEST)
    assert len(api.jobs) == 1 and job.id == api.jobs[0]["id"]
    assert api.requests("POST") == ["/v1/fine_tuning/jobs"]  # no second POST
    assert client.stats.lookups == 1
    # The lookup was narrowed server-side by model, suffix and creation time.
    q = httpx.QueryParams(next(qs for m, p, qs in api.log if m == "GET"))
    assert (
        q["model"] == "open-mistral-7b"
        and q["suffix"] == "dumbledore-a1b2"
        and "created_after" in q
    )


def test_timeout_after_commit_is_resolved_by_lookup() -> None:
    api = FakeApi()
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-after", exc=httpx.ReadTimeout))
    with client_for(api) as client:
        client.create_job(REQUEST)
    assert len(api.jobs) == 1 and len(api.requests("POST")) == 1


def test_lost_create_not_found_is_retried() -> None:
    api = FakeApi()
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", status=503))
    sleeps: list[float] = []
    with client_for(api, sleeps) as client:
        job = client.create_job(REQUEST)
    assert len(api.jobs) == 1 and job.id == api.jobs[0]["id"]
    assert len(api.requests("POST")) == 2 and client.stats.lookups == 1 and len(sleeps) == 1


def test_connect_error_is_retried_without_lookup() -> None:
    # Nothing reached the server: a plain retry is safe and no lookup is needed.
    api = FakeApi()
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-before", exc=httpx.ConnectError))
    with client_for(api) as client:
        client.create_job(REQUEST)
    assert len(api.jobs) == 1 and client.stats.lookups == 0 and len(api.requests("POST")) == 2


def test_conflict_on_create_is_reported() -> None:
    api = FakeApi()
    with client_for(api) as client:
        client.create_job(REQUEST)
        with pytest.raises(ConflictError) as info:
            client.create_job(REQUEST)
    assert info.value.status == 409 and "similar job" in str(info.value)
    assert len(api.requests("POST")) == 2 and len(api.jobs) == 1


def test_lost_create_then_409_on_retry_finds_the_job() -> None:
    # First attempt committed but answered 502; the lookup misses it (the list is stale),
    # the retry gets 409 from the duplicate check, and a second lookup resolves it.
    api = FakeApi()
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-after", exc=httpx.ReadError))
    api.fault(
        Fault(
            "GET",
            "/v1/fine_tuning/jobs",
            status=200,
            body={"object": "list", "data": [], "total": 0},
        )
    )
    with client_for(api) as client:
        job = client.create_job(REQUEST)
    assert len(api.jobs) == 1 and job.id == api.jobs[0]["id"]
    assert len(api.requests("POST")) == 2 and client.stats.lookups == 1


def test_create_gives_up_after_bounded_attempts_without_duplicates() -> None:
    api = FakeApi()
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", status=500, times=10))
    with client_for(api, max_attempts=3) as client, pytest.raises(ServerError):
        client.create_job(REQUEST)
    assert len(api.requests("POST")) == 3 and client.stats.lookups == 3 and api.jobs == []


def test_start_job_whose_answer_was_lost() -> None:
    api = FakeApi()
    with client_for(api) as client:
        job = client.create_job(REQUEST)
        api.fault(Fault("POST", f"/v1/fine_tuning/jobs/{job.id}/start", kind="drop-after"))
        started = client.start_job(job.id)
    assert started.status == "RUNNING"
    # second start got 409 (already running), resolved by reading the job
    assert len(api.requests("POST", f"/v1/fine_tuning/jobs/{job.id}/start")) == 2


def test_estimate_is_a_dry_run() -> None:
    api = FakeApi()
    with client_for(api) as client:
        est = client.estimate_job(REQUEST)
    assert est.cost == 1.5 and api.jobs == []
    assert api.log[0][2] == "dry_run=true"


# -- uploads ------------------------------------------------------------------------------


def _dataset(tmp_path: Path, lines: int = 2000) -> Path:
    path = tmp_path / "train-0a1b2c3d.jsonl"
    row = {
        "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    }
    path.write_text("".join(json.dumps(row) + "\n" for _ in range(lines)))
    return path


def test_upload_streams_a_well_formed_multipart_body(tmp_path: Path) -> None:
    path = _dataset(tmp_path)
    api = FakeApi()
    progress: list[tuple[int, int]] = []
    with client_for(api) as client:
        f = client.upload_file(
            path,
            path.name,
            sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
            progress=lambda a, b: progress.append((a, b)),
        )
    size = path.stat().st_size
    assert f.bytes == size and f.filename == path.name
    assert progress[0] == (0, size) and progress[-1] == (size, size)
    assert [a for a, _ in progress] == sorted(a for a, _ in progress)
    assert client.stats.bytes_uploaded == size
    # Parse the body as a mail message (same MIME multipart grammar) to prove it is valid.
    body = api.bodies[0]
    ctype = api.content_types[0]
    msg = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
    )
    parts = list(msg.iter_parts())
    assert parts[0].get_param("name", header="content-disposition") == "purpose"
    assert parts[0].get_content().strip() == "fine-tune"
    assert parts[1].get_filename() == path.name
    assert parts[1].get_payload(decode=True) == path.read_bytes()


def test_lost_upload_response_is_resolved_by_find_file(tmp_path: Path) -> None:
    path = _dataset(tmp_path)
    api = FakeApi()
    api.fault(Fault("POST", "/v1/files", kind="drop-after", exc=httpx.ReadTimeout))
    with client_for(api) as client:
        f = client.upload_file(path, path.name)
    assert len(api.files) == 1 and f.id == api.files[0]["id"]
    assert api.requests("POST") == ["/v1/files"]  # the file was not sent twice
    q = httpx.QueryParams(next(qs for m, p, qs in api.log if m == "GET"))
    assert q["search"] == path.name
    assert client.stats.bytes_uploaded == path.stat().st_size


def test_upload_lookup_checks_the_size(tmp_path: Path) -> None:
    # Same name, different size: not ours; the upload is sent again.
    path = _dataset(tmp_path)
    api = FakeApi()
    api.files.append(
        {
            "id": "f-old",
            "object": "file",
            "bytes": 3,
            "created_at": 1,
            "filename": path.name,
            "purpose": "fine-tune",
            "sample_type": "instruct",
            "source": "upload",
        }
    )
    api.fault(Fault("POST", "/v1/files", status=503))
    with client_for(api) as client:
        f = client.upload_file(path, path.name)
    assert f.id != "f-old" and len(api.requests("POST")) == 2


def test_upload_of_a_file_that_changed_is_aborted(tmp_path: Path) -> None:
    path = _dataset(tmp_path)
    api = FakeApi()
    with client_for(api) as client, pytest.raises(DataError) as info:
        client.upload_file(path, path.name, sha256="0" * 64)
    assert api.files == []
    assert "changed" in str(info.value) and str(path) in str(info.value)


def test_missing_upload_file_is_a_clean_error(tmp_path: Path) -> None:
    from reconciler.errors import ReconcilerError

    with client_for(FakeApi()) as client, pytest.raises(ReconcilerError, match="cannot upload"):
        client.upload_file(tmp_path / "nope.jsonl", "nope.jsonl")


def test_delete_whose_answer_was_lost_counts_as_done(tmp_path: Path) -> None:
    path = _dataset(tmp_path)
    api = FakeApi()
    with client_for(api) as client:
        f = client.upload_file(path, path.name)
        api.fault(Fault("DELETE", f"/v1/files/{f.id}", kind="drop-after"))
        client.delete_file(f.id)
    assert api.files == [] and len(api.requests("DELETE")) == 2


def test_update_model_sends_only_given_fields() -> None:
    seen: list[Any] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, json.loads(request.content)))
        return httpx.Response(200, json={"id": "ft:x", "object": "model", "name": "n"})

    with MistralClient("http://remote.test", KEY, transport=httpx.MockTransport(handler)) as c:
        c.update_model("ft:open-mistral-7b:abc:20260101:1234", description="d")
    assert seen == [
        (
            "PATCH",
            "/v1/fine_tuning/models/ft:open-mistral-7b:abc:20260101:1234",
            {"description": "d"},
        )
    ]


def test_odd_ids_cannot_escape_their_path() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        return httpx.Response(404, json={"detail": "nope"})

    with MistralClient("http://remote.test", KEY, transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(NotFoundError):
            c.get_file("../jobs?x=1")
    assert paths == ["/v1/files/..%2Fjobs%3Fx%3D1"]


def test_filename_with_quotes_is_escaped(tmp_path: Path) -> None:
    path = _dataset(tmp_path, lines=2)
    api = FakeApi()
    with client_for(api) as client:
        client.upload_file(path, 'we"ird.jsonl')
    assert b'filename="we%22ird.jsonl"' in api.bodies[0]


def test_failed_lookup_says_the_outcome_is_unknown() -> None:
    api = FakeApi()
    api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-after"))
    api.fault(Fault("GET", "/v1/fine_tuning/jobs", status=503, times=100))
    with client_for(api, max_attempts=2) as client:
        with pytest.raises(TransportError) as info:
            client.create_job(REQUEST)
    text = str(info.value)
    assert text.startswith("POST /v1/fine_tuning/jobs: ")
    assert "may have been applied" in text and "GET /v1/fine_tuning/jobs -> HTTP 503" in text
    assert len(api.requests("POST")) == 1  # never re-posted without knowing
    assert isinstance(info.value.__cause__, ServerError)
