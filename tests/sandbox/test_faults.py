"""Fault injection (each kind), determinism, the rate limit, and the journal of faults."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.sandbox import ManualClock, SandboxConfig, parse_faults
from tests.sandbox.conftest import StartSandbox, chat_lines, job_body, uploaded_id, wait_status


@pytest.mark.parametrize(
    ("kind", "status"),
    [("500", 500), ("502", 502), ("503", 503), ("504", 504), ("429", 429)],
)
def test_error_faults_answer_without_acting(
    start_sandbox: StartSandbox, kind: str, status: int
) -> None:
    sb = start_sandbox(faults=parse_faults(f"{kind}=1,methods=POST,retry_after=3"))
    with httpx.Client(base_url=sb.base_url) as client:
        r = client.post("/v1/files", files={"file": ("a.jsonl", chat_lines(3))})
        assert r.status_code == status
        body = r.json()
        assert body["object"] == "error"
        if status == 429:
            assert r.headers["retry-after"] == "3"
            assert body == {
                "object": "error",
                "message": "Rate limit exceeded",
                "type": "rate_limited",
                "param": None,
                "code": "1300",
            }
        # Nothing was stored; GETs are not affected (methods=POST).
        assert client.get("/v1/files").json()["total"] == 0
    entry = sb.journal()[0]
    assert (entry["method"], entry["status"], entry["fault"]) == ("POST", status, kind)


def test_drop_closes_the_connection_without_acting(start_sandbox: StartSandbox) -> None:
    sb = start_sandbox(faults=parse_faults("drop=1,paths=/v1/files"))
    with httpx.Client(base_url=sb.base_url) as client:
        # Closed with no answer: seen as a closed connection or, when the close overtakes the
        # request body still being sent, as a reset (both are what a dropped request looks like).
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post("/v1/files", files={"file": ("a.jsonl", chat_lines(3))})
        # Other paths are untouched and the server is still healthy.
        assert client.get("/v1/fine_tuning/jobs").status_code == 200
    assert [(e["path"], e["status"], e["fault"]) for e in sb.journal()] == [
        ("/v1/files", None, "drop"),
        ("/v1/fine_tuning/jobs", 200, None),
    ]
    # The dropped upload did nothing (the fault hits before the application).
    assert not list((sb.config.data_dir / "files").iterdir())


def test_timeout_after_commit_upload_create_start_cancel(
    start_sandbox: StartSandbox, clock: ManualClock
) -> None:
    sb = start_sandbox(faults=parse_faults("timeout_after_commit=1,methods=POST"))

    def lost() -> pytest.RaisesExc[httpx.RemoteProtocolError]:
        return pytest.raises(httpx.RemoteProtocolError)

    with httpx.Client(base_url=sb.base_url) as client:
        with lost():
            client.post("/v1/files", files={"file": ("t.jsonl", chat_lines(5))})
        files = client.get("/v1/files").json()
        assert files["total"] == 1  # the upload was committed
        fid = files["data"][0]["id"]
        with lost():
            client.post("/v1/fine_tuning/jobs", json=job_body(fid, suffix="ghost"))
        jobs = client.get("/v1/fine_tuning/jobs", params={"suffix": "ghost"}).json()
        assert jobs["total"] == 1  # so was the create
        job_id = jobs["data"][0]["id"]
        wait_status(client, clock, job_id, {"VALIDATED"})
        with lost():
            client.post(f"/v1/fine_tuning/jobs/{job_id}/start")
        assert wait_status(client, clock, job_id, {"SUCCESS"})["status"] == "SUCCESS"
        with lost():
            client.post("/v1/fine_tuning/jobs", json=job_body(fid, suffix="other"))
        other = client.get("/v1/fine_tuning/jobs", params={"suffix": "other"}).json()["data"][0]
        with lost():
            client.post(f"/v1/fine_tuning/jobs/{other['id']}/cancel")
        assert wait_status(client, clock, other["id"], {"CANCELLED"})["status"] == "CANCELLED"
    posts = [e for e in sb.journal() if e["method"] == "POST"]
    assert len(posts) == 5
    assert all((e["status"], e["fault"]) == (200, "timeout_after_commit") for e in posts)


def test_faults_are_deterministic_per_seed(tmp_path: Path) -> None:
    from reconciler.sandbox.gate import Gate
    from reconciler.sandbox.store import Store

    store = Store(tmp_path)

    async def nothing(*args: object) -> None:
        return None

    def gate(faults: str, seed: int) -> Gate:
        config = SandboxConfig(data_dir=tmp_path, faults=parse_faults(faults), seed=seed)
        return Gate(nothing, store=store, config=config)

    def draws(seed: int) -> list[str | None]:
        one = gate("500=0.3,503=0.2", seed)
        return [one._pick_fault("GET", "/v1/files") for _ in range(400)]

    first, again, other = draws(1), draws(1), draws(2)
    assert first == again
    assert first != other
    assert first.count("500") / 400 == pytest.approx(0.3, abs=0.08)
    assert first.count("503") / 400 == pytest.approx(0.2, abs=0.08)
    # A seed given in the spec wins over the server seed.
    seeded = gate("500=0.3,503=0.2,seed=1", 99)
    assert [seeded._pick_fault("GET", "/v1/files") for _ in range(400)] == first
    store.close()


def test_server_fault_sequence_repeats_after_restart(start_sandbox: StartSandbox) -> None:
    def run() -> list[int]:
        sb = start_sandbox(faults=parse_faults("500=0.3,503=0.2"), seed=5)
        with httpx.Client(base_url=sb.base_url) as client:
            codes = [client.get("/v1/files").status_code for _ in range(15)]
        sb.stop()
        return codes

    first = run()
    assert first == run()
    assert {200, 500} <= set(first)


def test_job_failure_fault(start_sandbox: StartSandbox, clock: ManualClock) -> None:
    sb = start_sandbox(faults=parse_faults("job_failure=1"))
    with httpx.Client(base_url=sb.base_url) as client:
        fid = uploaded_id(client)
        job = client.post(
            "/v1/fine_tuning/jobs", json=job_body(fid, auto_start=True, suffix="doomed")
        ).json()
        failed = wait_status(client, clock, job["id"], {"FAILED", "SUCCESS"})
    assert failed["status"] == "FAILED"
    assert failed["fine_tuned_model"] is None
    assert failed["events"][0]["data"]["status"] == "FAILED"
    assert len(failed["checkpoints"]) < 10


def test_rate_limit_token_bucket(start_sandbox: StartSandbox, clock: ManualClock) -> None:
    sb = start_sandbox(rate_limit=5.0)
    with httpx.Client(base_url=sb.base_url) as client:
        codes = [client.get("/v1/files") for _ in range(8)]
        statuses = [r.status_code for r in codes]
        # Burst of 5 passes, then 429s.
        assert statuses[:5] == [200] * 5 and 429 in statuses[5:]
        limited = next(r for r in codes if r.status_code == 429)
        assert int(limited.headers["retry-after"]) >= 1
        assert 0 < int(limited.headers["retry-after-ms"]) <= 1000
        assert limited.json()["type"] == "rate_limited" and limited.json()["code"] == "1300"
        assert codes[0].headers["x-ratelimit-limit-req-minute"] == "300"
        assert "x-ratelimit-remaining-req-minute" in codes[0].headers
        # Non-API paths are never limited.
        assert client.get("/sandbox/health").status_code == 200
        # Waiting as long as the last 429 says is enough.
        last = client.get("/v1/files")
        while last.status_code != 429:
            last = client.get("/v1/files")
        clock.advance(int(last.headers["retry-after-ms"]) / 1000)
        assert client.get("/v1/files").status_code == 200
    faults = [e["fault"] for e in sb.journal() if e["status"] == 429]
    assert faults and set(faults) == {"rate_limit"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("500=2", "between 0 and 1"),
        ("500=x", "not a probability"),
        ("teapot=0.1", "unknown key"),
        ("500", "no value"),
        ("500=0.6,503=0.6", "more than 1"),
        ("seed=abc", "not an integer"),
        ("retry_after=-1", ">= 0"),
    ],
)
def test_parse_faults_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faults(text)


def test_parse_faults_round_trip() -> None:
    spec = parse_faults(
        "500=0.1, drop=0.05,timeout_after_commit=0.05,job_failure=0.2,"
        "methods=post|delete,paths=/v1/files*,retry_after=2,seed=9"
    )
    assert spec.probabilities == {"500": 0.1, "drop": 0.05, "timeout_after_commit": 0.05}
    assert spec.job_failure == 0.2 and spec.methods == {"POST", "DELETE"}
    assert spec.applies_to("POST", "/v1/files/abc") and not spec.applies_to("GET", "/v1/files")
    assert not spec.applies_to("POST", "/sandbox/journal")
    assert parse_faults(spec.describe()) == spec


@pytest.mark.parametrize(
    ("text", "rate"),
    [("5", 5.0), ("5/s", 5.0), ("300/min", 5.0), ("3600/h", 1.0), ("0.5", 0.5)],
)
def test_parse_rate(text: str, rate: float) -> None:
    from reconciler.sandbox import parse_rate

    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["0", "-1", "fast", "5/fortnight", ""])
def test_parse_rate_errors(text: str) -> None:
    from reconciler.sandbox import parse_rate

    with pytest.raises(ValueError, match="requests per second"):
        parse_rate(text)
