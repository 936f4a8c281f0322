"""MistralClient against the real sandbox server on 127.0.0.1: the full surface and faults."""

from __future__ import annotations

import json
import logging
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

sandbox_server = pytest.importorskip(
    "reconciler.sandbox.server", reason="the sandbox server (reconciler.sandbox) is not available"
)
from reconciler.client import MistralClient, RemoteJob  # noqa: E402
from reconciler.errors import (  # noqa: E402
    ApiError,
    AuthError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    TransportError,
    ValidationError,
)
from reconciler.sandbox.app import SandboxConfig  # noqa: E402
from reconciler.sandbox.config import parse_faults  # noqa: E402

EmbeddedSandbox = sandbox_server.EmbeddedSandbox
KEY = "sandbox-key-" + "k" * 20


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Any]:
    with EmbeddedSandbox(SandboxConfig(data_dir=tmp_path / "sb", api_key=KEY, time_scale=50)) as sb:
        yield sb


def start(tmp_path: Path, **kw: Any) -> Any:
    return EmbeddedSandbox(
        SandboxConfig(data_dir=tmp_path / "sb", api_key=KEY, time_scale=50, **kw)
    )


def dataset(
    tmp_path: Path, name: str = "train-0a1b2c3d.jsonl", lines: int = 40, tag: str = ""
) -> Path:
    path = tmp_path / name
    rows = []
    for i in range(lines):
        rows.append(
            json.dumps(
                {
                    "messages": [
                        {"role": "user", "content": f"{tag} question {i}?"},
                        {"role": "assistant", "content": f"answer {i}."},
                    ]
                }
            )
        )
    path.write_text("\n".join(rows) + "\n")
    return path


def wait_for(client: MistralClient, job_id: str, done: Callable[[RemoteJob], bool]) -> RemoteJob:
    deadline = time.monotonic() + 20
    while True:
        job = client.get_job(job_id)
        if done(job) or time.monotonic() > deadline:
            return job
        time.sleep(0.02)


def journal(sb: Any, ok: int) -> list[dict[str, Any]]:
    """The sandbox journal once ``ok`` successful requests are recorded.

    The server writes a journal entry after it has answered, so the last entries can land a
    moment after the client has its response.
    """
    deadline = time.monotonic() + 5
    entries = sb.journal()
    while sum(1 for e in entries if e["status"] == 200) < ok and time.monotonic() < deadline:
        time.sleep(0.02)
        entries = sb.journal()
    time.sleep(0.05)
    return list(sb.journal())


def job_request(file_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "open-mistral-7b",
        "job_type": "completion",
        "training_files": [{"file_id": file_id, "weight": 1.0}],
        "hyperparameters": {"training_steps": 5, "learning_rate": 0.0001},
        "suffix": "client-test",
        "auto_start": False,
        **extra,
    }


def test_full_surface(sandbox: Any, tmp_path: Path) -> None:
    path = dataset(tmp_path)
    progress: list[tuple[int, int]] = []
    with MistralClient(sandbox.base_url, KEY) as client:
        # files
        f = client.upload_file(path, path.name, progress=lambda a, b: progress.append((a, b)))
        assert f.bytes == path.stat().st_size and f.filename == path.name
        assert f.sample_type == "instruct" and f.num_lines == 40
        assert progress[-1] == (f.bytes, f.bytes)
        again = client.upload_file(path, path.name)
        assert again.id == f.id  # the server dedupes on (content, filename)
        assert client.get_file(f.id).deleted is False
        assert [x.id for x in client.list_files(search=path.name)] == [f.id]
        assert client.find_file(path.name, size=f.bytes) is not None
        assert client.find_file(path.name, size=f.bytes + 1) is None
        assert client.find_file("other.jsonl") is None
        dest = tmp_path / "download.jsonl"
        client.download_file(f.id, dest)
        assert dest.read_bytes() == path.read_bytes()
        assert client.signed_url(f.id, expiry_hours=2).startswith("http")

        # jobs
        request = job_request(f.id, validation_files=[])
        estimate = client.estimate_job(request)
        assert estimate.training_steps == 5 and estimate.cost is not None
        assert client.list_jobs() == []  # the dry run created nothing
        job = client.create_job(request)
        assert job.status in ("QUEUED", "VALIDATING", "VALIDATED") and job.is_active
        assert job.training_files == [f.id] and job.auto_start is False
        with pytest.raises(ConflictError) as conflict:
            client.create_job(request)
        assert conflict.value.status == 409
        assert [j.id for j in client.find_jobs(request)] == [job.id]
        assert client.find_jobs({**request, "suffix": "other"}) == []
        validated = wait_for(client, job.id, lambda j: j.status == "VALIDATED")
        assert validated.status == "VALIDATED" and validated.metadata is not None
        started = client.start_job(job.id)
        assert started.status in ("STARTED", "RUNNING", "SUCCESS")
        finished = wait_for(client, job.id, lambda j: j.is_terminal)
        assert finished.status == "SUCCESS" and finished.fine_tuned_model
        assert finished.checkpoints and finished.events
        assert [j.id for j in client.list_jobs(status="SUCCESS")] == [job.id]
        assert client.list_jobs(model="mistral-small-latest") == []

        # cancel another job
        other = client.create_job({**request, "suffix": "to-cancel"})
        cancelled = client.cancel_job(other.id)
        assert cancelled.status in ("CANCELLATION_REQUESTED", "CANCELLED")

        # fine-tuned models
        model_id = finished.fine_tuned_model
        assert model_id is not None
        assert any(m.id == model_id and m.is_fine_tuned for m in client.list_models())
        assert any(m.id == "open-mistral-7b" and not m.is_fine_tuned for m in client.list_models())
        updated = client.update_model(model_id, name="dumbledore", description="v1")
        assert (updated.name, updated.description) == ("dumbledore", "v1")
        client.archive_model(model_id)
        assert client.get_model(model_id).archived is True
        client.unarchive_model(model_id)
        assert client.get_model(model_id).archived is False
        assert client.get_model(model_id).job == job.id
        client.delete_model(model_id)
        with pytest.raises(NotFoundError):
            client.get_model(model_id)
        client.delete_file(f.id)
        with pytest.raises(NotFoundError) as missing:
            client.get_file(f.id)
        assert f.id in str(missing.value)
    assert client.stats.retries == 0


@pytest.mark.parametrize(
    ("call", "exc_type", "status", "needle"),
    [
        (lambda c: c.get_job(str(uuid.uuid4())), NotFoundError, 404, "not found"),
        (
            lambda c: c.create_job(job_request(str(uuid.uuid4()))),
            ValidationError,
            422,
            "training_files.0.file_id",
        ),
        (
            lambda c: c.create_job({**job_request(str(uuid.uuid4())), "suffix": "x" * 19}),
            ValidationError,
            422,
            "suffix",
        ),
        (
            lambda c: c.create_job({**job_request(str(uuid.uuid4())), "model": "nope"}),
            ValidationError,
            422,
            "not available",
        ),
        (lambda c: c.delete_model("open-mistral-7b"), AuthError, 403, "base model"),
        (lambda c: c.start_job(str(uuid.uuid4())), NotFoundError, 404, "not found"),
    ],
)
def test_errors_from_the_sandbox(
    sandbox: Any,
    call: Callable[[MistralClient], Any],
    exc_type: type[ApiError],
    status: int,
    needle: str,
) -> None:
    with MistralClient(sandbox.base_url, KEY) as client, pytest.raises(exc_type) as info:
        call(client)
    assert info.value.status == status
    assert needle.lower() in str(info.value).lower()
    assert client.stats.requests == 1  # 4xx are not retried


def test_invalid_upload_is_a_validation_error(sandbox: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "no answer"}]}\nnot json\n')
    with MistralClient(sandbox.base_url, KEY) as client, pytest.raises(ValidationError) as info:
        client.upload_file(bad, bad.name)
    assert info.value.status == 422 and "POST /v1/files" in str(info.value)


def test_oversized_upload_is_payload_too_large(tmp_path: Path) -> None:
    from reconciler.errors import PayloadTooLargeError

    path = dataset(tmp_path, lines=2000)
    with start(tmp_path, max_upload_bytes=1024) as sb, MistralClient(sb.base_url, KEY) as client:
        with pytest.raises(PayloadTooLargeError) as info:
            client.upload_file(path, path.name)
    assert info.value.status == 413


def test_wrong_key(sandbox: Any) -> None:
    with MistralClient(sandbox.base_url, "wrong-key") as client, pytest.raises(AuthError) as info:
        client.list_files()
    assert info.value.status == 401 and "API key" in str(info.value)


def test_connection_refused_is_a_transport_error(tmp_path: Path) -> None:
    with start(tmp_path) as sb:
        url = sb.base_url
    with MistralClient(url, KEY, max_attempts=2, sleep=lambda s: None) as client:
        with pytest.raises(TransportError) as info:
            client.list_files()
    assert info.value.status is None and url in str(info.value)
    assert client.stats.requests == 2


def test_listing_pages_against_the_sandbox(sandbox: Any, tmp_path: Path) -> None:
    with MistralClient(sandbox.base_url, KEY) as client:
        for n in range(5):
            p = dataset(tmp_path, f"train-{n}.jsonl", lines=2, tag=str(n))
            client.upload_file(p, p.name)
        before = client.stats.requests
        files = client.list_files(page_size=2)
        assert len({f.id for f in files}) == 5
        assert client.stats.requests - before == 3


# -- fault injection ------------------------------------------------------------------------


def test_create_job_timeout_after_commit_is_found_not_duplicated(tmp_path: Path) -> None:
    faults = parse_faults("timeout_after_commit=1,methods=POST,paths=/v1/fine_tuning/jobs")
    with start(tmp_path, faults=faults) as sb:
        with MistralClient(sb.base_url, KEY) as setup:
            f = setup.upload_file(dataset(tmp_path), "train-0a1b2c3d.jsonl")
        with MistralClient(sb.base_url, KEY, timeout=5) as client:
            job = client.create_job(job_request(f.id))
            jobs = client.list_jobs()
        assert [j.id for j in jobs] == [job.id]
        assert client.stats.by_method["POST"] == 1 and client.stats.lookups == 1
        posts = [
            r
            for r in journal(sb, 4)
            if r["method"] == "POST" and r["path"] == "/v1/fine_tuning/jobs"
        ]
        assert len(posts) == 1


def test_upload_timeout_after_commit_is_found_not_resent(tmp_path: Path) -> None:
    faults = parse_faults("timeout_after_commit=1,methods=POST,paths=/v1/files")
    path = dataset(tmp_path)
    with start(tmp_path, faults=faults) as sb, MistralClient(sb.base_url, KEY) as client:
        f = client.upload_file(path, path.name)
        assert [x.id for x in client.list_files()] == [f.id]
        assert (
            client.stats.by_method["POST"] == 1
            and client.stats.bytes_uploaded == path.stat().st_size
        )


def test_dropped_connections_are_retried_then_reported(tmp_path: Path) -> None:
    with start(tmp_path, faults=parse_faults("drop=1,methods=GET")) as sb:
        with MistralClient(sb.base_url, KEY, max_attempts=3, sleep=lambda s: None) as client:
            with pytest.raises(TransportError) as info:
                client.list_jobs()
    assert client.stats.requests == 3
    assert "GET /v1/fine_tuning/jobs" in str(info.value)


def test_random_faults_converge_without_duplicates(tmp_path: Path) -> None:
    faults = parse_faults("500=0.15,503=0.15,drop=0.1,timeout_after_commit=0.15,seed=3")
    sleeps: list[float] = []
    with start(tmp_path, faults=faults) as sb:
        with MistralClient(sb.base_url, KEY, max_attempts=10, sleep=sleeps.append) as client:
            ids = set()
            for n in range(4):
                p = dataset(tmp_path, f"train-{n}.jsonl", lines=3, tag=str(n))
                f = client.upload_file(p, p.name)
                job = client.create_job(job_request(f.id, suffix=f"s{n}"))
                ids.add(job.id)
            jobs = client.list_jobs()
            files = client.list_files()
        assert len(ids) == 4 and {j.id for j in jobs} == ids
        assert len(files) == 4
        assert client.stats.retries > 0 and sleeps


def test_injected_429_honours_retry_after(tmp_path: Path) -> None:
    faults = parse_faults("429=1,methods=GET,paths=/v1/files,retry_after=2")
    sleeps: list[float] = []
    with start(tmp_path, faults=faults) as sb:
        with MistralClient(sb.base_url, KEY, max_attempts=2, sleep=sleeps.append) as client:
            with pytest.raises(RateLimitedError) as info:
                client.list_files()
    assert info.value.retry_after == pytest.approx(2.0)
    assert len(sleeps) == 1 and 2.0 <= sleeps[0] <= 3.0


def _hammer(client: MistralClient, threads: int, each: int) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        for fut in [pool.submit(client.list_jobs) for _ in range(threads * each)]:
            fut.result()


def test_client_rate_limit_keeps_under_the_server_limit(tmp_path: Path) -> None:
    # The server's bucket starts full (burst 20); drain it so the test measures steady state.
    with start(tmp_path, rate_limit=20.0) as sb:
        with MistralClient(sb.base_url, KEY, rate_limit=20.0) as client:
            _hammer(client, threads=8, each=3)
        statuses = [r["status"] for r in journal(sb, 24)]
    assert len(statuses) == 24
    assert 429 not in statuses and client.stats.retries == 0


def test_server_rate_limit_without_client_limit_is_retried(tmp_path: Path) -> None:
    # Eight requests at once against a bucket of four: the gate refuses some on arrival,
    # whatever the machine's speed; the client waits as told and adopts the advertised limit.
    with start(tmp_path, rate_limit=4.0) as sb:
        with MistralClient(sb.base_url, KEY, concurrency=8) as client:
            _hammer(client, threads=8, each=1)
        statuses = [r["status"] for r in journal(sb, 8)]
    assert statuses.count(200) == 8
    assert 429 in statuses and client.stats.retries == statuses.count(429)
    assert client.rate_limiter.rate == pytest.approx(4.0 * 0.9)


def test_key_never_leaks_against_the_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    captured: list[str] = []
    faults = parse_faults("503=0.3,drop=0.2,seed=1")
    with start(tmp_path, faults=faults) as sb:
        with MistralClient(sb.base_url, KEY, max_attempts=8, sleep=lambda s: None) as client:
            client._http.event_hooks = {
                "request": [lambda r: captured.extend([repr(r), repr(r.headers), str(r.url)])],
                "response": [lambda r: captured.extend([repr(r), repr(r.headers)])],
            }
            p = dataset(tmp_path)
            f = client.upload_file(p, p.name)
            client.create_job(job_request(f.id))
            client.list_jobs()
            captured.append(repr(client))
        with MistralClient(sb.base_url, KEY[::-1]) as wrong:
            try:
                wrong.list_files()
            except ApiError as exc:
                captured += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    out = capsys.readouterr()
    captured += [out.out, out.err, caplog.text]
    assert any("retrying" in line for line in caplog.text.splitlines())
    for text in captured:
        assert KEY not in text
