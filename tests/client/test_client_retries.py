"""Retry policy, error translation and pagination of MistralClient (scripted remote)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from client_fakes import KEY, FakeApi, Fault, make_file

from reconciler.client import MistralClient, RateLimiter
from reconciler.client.http import parse_retry_after
from reconciler.errors import (
    ApiError,
    AuthError,
    ConflictError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitedError,
    ServerError,
    TransportError,
    ValidationError,
)


def client_for(api: FakeApi, sleeps: list[float], **kw: object) -> MistralClient:
    return MistralClient(
        "http://remote.test", KEY, transport=api.transport(), sleep=sleeps.append, **kw
    )  # type: ignore[arg-type]


def test_503_503_200_is_retried_with_backoff(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi()
    api.files.append(make_file(1))
    api.fault(Fault("GET", "/v1/files/", status=503, times=2))
    sleeps: list[float] = []
    caplog.set_level(logging.DEBUG, logger="reconciler.client")
    with client_for(api, sleeps) as client:
        f = client.get_file(make_file(1)["id"])
    assert f.filename == "train-0001.jsonl"
    assert len(api.log) == 3
    assert len(sleeps) == 2
    # full jitter: within [0, base * 2**(n-1)]
    assert 0 <= sleeps[0] <= 0.5 and 0 <= sleeps[1] <= 1.0
    assert client.stats.retries == 2 and client.stats.requests == 3
    messages = [r.getMessage() for r in caplog.records]
    assert any("attempt #1/6 failed (503); retrying in" in m for m in messages)
    assert any("attempt #2/6 failed (503); retrying in" in m for m in messages)


def test_429_honours_retry_after_seconds() -> None:
    api = FakeApi()
    api.files.append(make_file(1))
    api.fault(
        Fault(
            "GET",
            "/v1/files/",
            status=429,
            headers={"Retry-After": "7"},
            body={"message": "Requests rate limit exceeded"},
        )
    )
    sleeps: list[float] = []
    with client_for(api, sleeps) as client:
        client.get_file(make_file(1)["id"])
    assert len(sleeps) == 1
    assert 7.0 <= sleeps[0] <= 8.0
    assert len(api.log) == 2


def test_429_pauses_the_shared_limiter() -> None:
    # One worker's 429 holds every worker: the pause is on the shared limiter.
    now = [100.0]
    limiter = RateLimiter(None, clock=lambda: now[0], sleep=lambda s: None)
    limiter.pause(5.0)
    assert limiter.acquire() == pytest.approx(5.0)
    now[0] += 5.0
    assert limiter.acquire() == 0.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"Retry-After": "0.5"}, 0.5),
        ({"Retry-After": "1", "retry-after-ms": "250"}, 0.25),
        (
            {
                "Retry-After": format_datetime(
                    datetime.fromtimestamp(1_800_000_030, UTC), usegmt=True
                )
            },
            30.0,
        ),
        ({"x-ratelimit-reset-req-minute": "12"}, 12.0),
        ({"x-ratelimit-reset": "1500ms"}, 1.5),
        ({"x-ratelimit-reset": str(1_800_000_000 + 42)}, 42.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    got = parse_retry_after(httpx.Headers(headers), now=1_800_000_000.0)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_rate_limit_reset_header_drives_the_wait() -> None:
    api = FakeApi()
    api.files.append(make_file(1))
    api.fault(Fault("GET", "/v1/files/", status=429, headers={"x-ratelimit-reset-req-minute": "4"}))
    sleeps: list[float] = []
    with client_for(api, sleeps) as client:
        client.get_file(make_file(1)["id"])
    assert 4.0 <= sleeps[0] <= 5.0


STATUS_TABLE = [
    (400, {"detail": "Malformed JSON"}, ValidationError, "Malformed JSON"),
    (401, {"message": "Unauthorized", "request_id": "abc"}, AuthError, "Unauthorized"),
    (403, {"detail": "Forbidden"}, AuthError, "Forbidden"),
    (404, {"detail": "File x not found"}, NotFoundError, "File x not found"),
    (409, {"detail": "A similar job is already running"}, ConflictError, "similar job"),
    (413, {"detail": "Request Entity Too Large"}, PayloadTooLargeError, "Too Large"),
    (
        422,
        {
            "detail": [
                {
                    "type": "string_too_long",
                    "loc": ["body", "suffix"],
                    "msg": "String should have at most 18 characters",
                }
            ]
        },
        ValidationError,
        "suffix: String should have at most 18 characters",
    ),
    (
        422,
        {"detail": "Model not available for this type of fine-tuning (completion)."},
        ValidationError,
        "Model not available",
    ),
]


@pytest.mark.parametrize(("status", "body", "exc_type", "reason"), STATUS_TABLE)
def test_4xx_is_not_retried_and_is_typed(
    status: int, body: dict[str, object], exc_type: type[ApiError], reason: str
) -> None:
    api = FakeApi()
    api.fault(Fault("GET", "/v1/files/", status=status, body=body))
    sleeps: list[float] = []
    with client_for(api, sleeps) as client, pytest.raises(exc_type) as info:
        client.get_file("abc")
    assert len(api.log) == 1 and sleeps == []
    err = info.value
    assert err.status == status and err.method == "GET" and err.path == "/v1/files/abc"
    text = str(err)
    assert text.startswith(f"GET /v1/files/abc -> HTTP {status}: ")
    assert reason in text
    assert isinstance(err.__cause__, httpx.HTTPStatusError)
    if status == 422 and isinstance(body["detail"], list):
        assert err.detail == body["detail"]


def test_attempts_are_bounded() -> None:
    api = FakeApi()
    api.fault(Fault("GET", "/v1/files/", status=502, times=100, body={"detail": "bad gateway"}))
    sleeps: list[float] = []
    with client_for(api, sleeps, max_attempts=4) as client, pytest.raises(ServerError) as info:
        client.get_file("abc")
    assert len(api.log) == 4 and len(sleeps) == 3
    assert "HTTP 502" in str(info.value) and "bad gateway" in str(info.value)


def test_total_retry_time_is_bounded() -> None:
    # The server asks for an hour; the budget is two minutes: give up at once, say why.
    api = FakeApi()
    api.fault(Fault("GET", "/v1/files/", status=429, headers={"Retry-After": "3600"}, times=10))
    sleeps: list[float] = []
    with (
        client_for(api, sleeps, max_retry_seconds=120) as client,
        pytest.raises(RateLimitedError) as info,
    ):
        client.get_file("abc")
    assert len(api.log) == 1 and sleeps == []
    assert info.value.retry_after == 3600.0
    assert "rate limit" in str(info.value).lower()


@pytest.mark.parametrize(
    "exc",
    [
        httpx.ConnectError,
        httpx.ReadTimeout,
        httpx.RemoteProtocolError,
        httpx.ReadError,
        httpx.ConnectTimeout,
    ],
)
def test_transport_errors_are_retried(exc: type[Exception]) -> None:
    api = FakeApi()
    api.files.append(make_file(1))
    api.fault(Fault("GET", "/v1/files/", kind="drop-before", exc=exc, times=2))
    sleeps: list[float] = []
    with client_for(api, sleeps) as client:
        client.get_file(make_file(1)["id"])
    assert len(api.log) == 3 and len(sleeps) == 2


def test_transport_error_after_retries_is_translated() -> None:
    api = FakeApi()
    api.fault(Fault("GET", "/v1/files", kind="drop-before", exc=httpx.ConnectError, times=10))
    with client_for(api, [], max_attempts=3) as client, pytest.raises(TransportError) as info:
        client.list_files()
    err = info.value
    assert err.status is None and isinstance(err.__cause__, httpx.ConnectError)
    assert str(err).startswith("GET /v1/files: could not connect to http://remote.test")


def test_non_json_success_body_is_a_clean_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>proxy login</html>")

    with MistralClient("http://remote.test", KEY, transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ApiError, match="not JSON"):
            client.get_file("abc")


@pytest.mark.parametrize(
    ("count", "page_size", "requests"), [(250, 100, 3), (200, 100, 2), (0, 100, 1), (7, 3, 3)]
)
def test_listing_walks_every_page(count: int, page_size: int, requests: int) -> None:
    api = FakeApi()
    api.files.extend(make_file(n) for n in range(count))
    with client_for(api, []) as client:
        files = client.list_files(page_size=page_size)
    assert len(files) == count
    assert len({f.id for f in files}) == count
    assert client.stats.by_method == ({"GET": requests})


def test_listing_deduplicates_shifted_objects() -> None:
    # A page boundary moves when objects are created while we page; ids are not repeated.
    pages = [[make_file(3), make_file(2)], [make_file(2), make_file(1)], [make_file(0)]]

    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        data = pages[page] if page < len(pages) else []
        return httpx.Response(200, json={"object": "list", "data": data, "total": 5})

    with MistralClient("http://remote.test", KEY, transport=httpx.MockTransport(handler)) as client:
        files = client.list_files(page_size=2)
    assert [f.filename for f in files] == [f"train-000{n}.jsonl" for n in (3, 2, 1, 0)]


def test_list_filters_become_query_parameters() -> None:
    api = FakeApi()
    with client_for(api, []) as client:
        client.list_files(
            purpose="fine-tune",
            search="train-ab",
            sample_type=["instruct", "pretrain"],
            source="upload",
        )
        client.list_jobs(
            model="open-mistral-7b",
            status="RUNNING",
            suffix="exp",
            created_after=datetime(2026, 1, 2, 3, 4, 5),
            created_before=datetime(2026, 1, 3, tzinfo=UTC) + timedelta(hours=1),
            created_by_me=True,
            wandb_project="proj",
            wandb_name="run",
        )
    files_q = httpx.QueryParams(api.log[0][2])
    assert files_q.get_list("sample_type") == ["instruct", "pretrain"]
    assert (
        files_q["purpose"] == "fine-tune"
        and files_q["search"] == "train-ab"
        and files_q["source"] == "upload"
    )
    assert files_q["page"] == "0" and files_q["page_size"] == "100"
    jobs_q = httpx.QueryParams(api.log[1][2])
    assert jobs_q["created_after"] == "2026-01-02T03:04:05+00:00"
    assert jobs_q["created_before"] == "2026-01-03T01:00:00+00:00"
    assert jobs_q["created_by_me"] == "true"
    assert (jobs_q["model"], jobs_q["status"], jobs_q["suffix"]) == (
        "open-mistral-7b",
        "RUNNING",
        "exp",
    )
    assert (jobs_q["wandb_project"], jobs_q["wandb_name"]) == ("proj", "run")


def test_rate_limiter_spaces_requests() -> None:
    now = [0.0]

    def sleep(s: float) -> None:
        now[0] += s

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    waits = [limiter.acquire() for _ in range(5)]
    assert waits == pytest.approx([0.0, 0.25, 0.25, 0.25, 0.25])
    now[0] += 10  # idle: no burst is banked beyond one request
    assert [limiter.acquire() for _ in range(2)] == pytest.approx([0.0, 0.25])


def test_rate_limit_is_applied_to_requests() -> None:
    api = FakeApi()
    api.files.append(make_file(1))
    sleeps: list[float] = []
    with client_for(api, sleeps, rate_limit=0.001) as client:
        for _ in range(3):
            client.get_file(make_file(1)["id"])
    # One request per 1000 s; the recorder does not advance the clock, so the reserved slots
    # stack up: the 2nd request waits ~1000 s and the 3rd ~2000 s.
    assert len(sleeps) == 2
    assert 999 < sleeps[0] <= 1000 and 1999 < sleeps[1] <= 2000
    assert client.stats.waited_seconds == pytest.approx(sum(sleeps))


def test_wrong_key_is_auth_error() -> None:
    api = FakeApi(api_key="another-key")
    with client_for(api, []) as client, pytest.raises(AuthError) as info:
        client.list_files()
    assert "HTTP 401" in str(info.value) and "API key" in str(info.value)


@pytest.mark.parametrize("endpoint", ["ftp://x", "api.mistral.ai", ""])
def test_bad_endpoint_is_a_clean_error(endpoint: str) -> None:
    from reconciler.errors import ReconcilerError

    with pytest.raises(ReconcilerError, match="invalid API endpoint"):
        MistralClient(endpoint, KEY)


def test_trailing_v1_in_base_url_is_tolerated() -> None:
    api = FakeApi()
    with MistralClient("http://remote.test/v1/", KEY, transport=api.transport()) as client:
        client.list_files()
    assert api.log[0][1] == "/v1/files"


def test_429_with_advertised_limit_throttles_the_client() -> None:
    api = FakeApi()
    api.files.append(make_file(1))
    api.fault(
        Fault(
            "GET",
            "/v1/files/",
            status=429,
            headers={"Retry-After": "1", "x-ratelimit-limit-req-minute": "120"},
        )
    )
    with client_for(api, []) as client:
        assert client.rate_limiter.rate is None
        client.get_file(make_file(1)["id"])
        # 120/min = 2/s, adopted with headroom
        assert client.rate_limiter.rate == pytest.approx(1.8)


def test_server_ignoring_page_does_not_loop_forever() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"object": "list", "data": [make_file(1), make_file(2)]})

    with MistralClient("http://remote.test", KEY, transport=httpx.MockTransport(handler)) as c:
        files = c.list_files(page_size=2)
    assert len(files) == 2 and c.stats.requests == 2


def test_concurrency_bound_is_shared_by_threads() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["peak"] = max(state["peak"], state["now"])
        time.sleep(0.005)  # hold the slot so that overlapping requests would show
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=make_file(1))

    transport = httpx.MockTransport(handler)
    with MistralClient("http://remote.test", KEY, transport=transport, concurrency=3) as c:
        with ThreadPoolExecutor(12) as pool:
            list(pool.map(lambda _: c.get_file("x"), range(48)))
    assert c.stats.requests == 48
    assert 1 <= state["peak"] <= 3
