"""Restart persistence and concurrency: nothing lost, nothing duplicated, never a 500."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from reconciler.sandbox import EmbeddedSandbox, ManualClock, SandboxConfig
from tests.sandbox.conftest import (
    API_KEY,
    StartSandbox,
    chat_lines,
    job_body,
    uploaded_id,
    wait_status,
)


def test_restart_keeps_everything(start_sandbox: StartSandbox, clock: ManualClock) -> None:
    sb = start_sandbox(api_key=API_KEY)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=sb.base_url, headers=headers) as client:
        data = chat_lines(7)
        fid = uploaded_id(client, data)
        done = client.post(
            "/v1/fine_tuning/jobs", json=job_body(fid, auto_start=True, suffix="keep")
        ).json()
        held = client.post("/v1/fine_tuning/jobs", json=job_body(fid, suffix="held")).json()
        model = wait_status(client, clock, done["id"], {"SUCCESS"})["fine_tuned_model"]
        wait_status(client, clock, held["id"], {"VALIDATED"})
        client.patch(f"/v1/fine_tuning/models/{model}", json={"name": "kept"})
        before = {
            "files": client.get("/v1/files").json(),
            "jobs": client.get("/v1/fine_tuning/jobs").json(),
            "done": client.get(f"/v1/fine_tuning/jobs/{done['id']}").json(),
            "models": client.get("/v1/models").json(),
        }
    journal_before = sb.journal()
    sb.stop()

    sb2 = start_sandbox(api_key=API_KEY)  # same data dir
    assert sb2.port != 0
    with httpx.Client(base_url=sb2.base_url, headers=headers) as client:
        assert client.get("/v1/files").json() == before["files"]
        assert client.get("/v1/fine_tuning/jobs").json() == before["jobs"]
        assert client.get(f"/v1/fine_tuning/jobs/{done['id']}").json() == before["done"]
        assert client.get("/v1/models").json() == before["models"]
        assert client.get(f"/v1/files/{fid}/content").content == data
        # Dedupe and the 409 still hold across the restart.
        assert uploaded_id(client, data) == fid
        assert (
            client.post("/v1/fine_tuning/jobs", json=job_body(fid, suffix="held")).status_code
            == 409
        )
        # And the held job can still be started.
        assert client.post(f"/v1/fine_tuning/jobs/{held['id']}/start").status_code == 200
    assert sb2.journal()[: len(journal_before)] == journal_before


def test_parallel_uploads_and_creates(sandbox: EmbeddedSandbox) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    # One client shared by the threads: its pool opens parallel connections.
    c = httpx.Client(
        base_url=sandbox.base_url,
        headers=headers,
        timeout=30,
        limits=httpx.Limits(max_connections=16),
    )

    def upload(i: int) -> tuple[int, str]:
        # Every other worker sends the same (content, name): dedupe must hold under races.
        name, data = (
            ("same.jsonl", chat_lines(5, "same"))
            if i % 2
            else (f"f{i}.jsonl", chat_lines(5, str(i)))
        )
        r = c.post("/v1/files", files={"file": (name, data)})
        return r.status_code, r.json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(upload, range(16)))
    assert {status for status, _ in results} == {200}
    same_ids = {fid for (_, fid), i in zip(results, range(16), strict=True) if i % 2}
    assert len(same_ids) == 1
    fid = results[0][1]

    def create(i: int) -> int:
        # Half the workers send the same request: exactly one of those may win.
        suffix = "race" if i % 2 else f"job-{i}"
        return c.post("/v1/fine_tuning/jobs", json=job_body(fid, suffix=suffix)).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(16)))
    assert statuses.count(409) == 7 and statuses.count(200) == 9
    assert c.get("/v1/files").json()["total"] == 9
    assert c.get("/v1/fine_tuning/jobs").json()["total"] == 9
    assert c.get("/v1/fine_tuning/jobs", params={"suffix": "race"}).json()["total"] == 1
    c.close()
    assert len(list((sandbox.config.data_dir / "files").iterdir())) == 9
    assert all(e["status"] in (200, 409) for e in sandbox.journal())


def test_embedded_sandbox_lifecycle(tmp_path: object) -> None:
    config = SandboxConfig(data_dir=tmp_path / "emb")  # type: ignore[operator]
    sb = EmbeddedSandbox(config)
    with httpx.Client(timeout=1) as client:
        with sb:
            assert sb.base_url.startswith("http://127.0.0.1:") and sb.api_key is None
            url = f"{sb.base_url}/sandbox/health"
            assert client.get(url, headers={"connection": "close"}).status_code == 200
        # Stopped: the port no longer answers.
        try:
            client.get(url)
        except httpx.TransportError:
            pass
        else:
            raise AssertionError("the stopped sandbox still answers")
