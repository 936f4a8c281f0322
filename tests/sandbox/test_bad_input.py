"""Bad input from the issue's list: a correct status and body, never a 500, DB consistent."""

from __future__ import annotations

from typing import Any

import httpx

from reconciler.sandbox import EmbeddedSandbox, ManualClock
from tests.sandbox.conftest import API_KEY, chat_lines, job_body, uploaded_id, wait_status

MISSING = "00000000-0000-4000-8000-000000000000"
#: A number no SQLite integer holds.
HUGE = str(10**20)


def _request_cases(
    fid: str, running: str, finished: str
) -> list[tuple[str, dict[str, Any], int, str]]:
    """(method path, httpx kwargs, expected status, fragment of the body)."""
    ok = job_body(fid)
    return [
        # Multipart trouble.
        (
            "POST /v1/files",
            {
                "content": b"--x\r\nbroken",
                "headers": {"content-type": "multipart/form-data; boundary=x"},
            },
            422,
            "missing",
        ),
        (
            "POST /v1/files",
            {"content": b"abc", "headers": {"content-type": "multipart/form-data"}},
            400,
            "detail",
        ),
        (
            "POST /v1/files",
            {"data": {"purpose": "fine-tune"}, "files": {"other": ("a", b"x")}},
            422,
            "missing",
        ),
        ("POST /v1/files", {"json": {"file": "x"}}, 422, "missing"),
        (
            "POST /v1/files",
            {"content": b"file=x", "headers": {"content-type": "text/plain"}},
            422,
            "missing",
        ),
        (
            "POST /v1/files",
            {"files": {"file": ("latin.jsonl", "é\n".encode("latin-1"))}},
            422,
            "line 1",
        ),
        ("POST /v1/files", {"files": {"file": ("notes.jsonl", b"hello\nworld\n")}}, 422, "line 1"),
        ("POST /v1/files", {"files": {"file": ("", b"x")}}, 422, ""),
        # Bad UUIDs and unknown ids.
        ("GET /v1/files/not-a-uuid", {}, 422, "uuid"),
        ("DELETE /v1/files/123", {}, 422, "uuid"),
        ("GET /v1/files/not-a-uuid/content", {}, 422, "uuid"),
        ("GET /v1/fine_tuning/jobs/xyz", {}, 422, "uuid"),
        ("POST /v1/fine_tuning/jobs/xyz/start", {}, 422, "uuid"),
        (f"GET /v1/files/{MISSING}", {}, 404, MISSING),
        (f"GET /v1/fine_tuning/jobs/{MISSING}", {}, 404, MISSING),
        (f"POST /v1/fine_tuning/jobs/{MISSING}/cancel", {}, 404, MISSING),
        ("GET /v1/models/nope", {}, 404, "nope"),
        ("DELETE /v1/models/nope", {}, 404, "nope"),
        ("PATCH /v1/fine_tuning/models/nope", {"json": {"name": "x"}}, 404, "nope"),
        ("POST /v1/fine_tuning/models/nope/archive", {}, 404, "nope"),
        ("DELETE /v1/models/open-mistral-7b", {}, 403, "base model"),
        ("PATCH /v1/fine_tuning/models/open-mistral-7b", {"json": {"name": "x"}}, 404, ""),
        # Start of a running job, cancel of a finished one.
        (f"POST /v1/fine_tuning/jobs/{running}/start", {}, 409, "VALIDATED"),
        (f"POST /v1/fine_tuning/jobs/{finished}/cancel", {}, 409, "SUCCESS"),
        # Pagination.
        ("GET /v1/files?page_size=-1", {}, 422, "greater_than_equal"),
        ("GET /v1/files?page_size=0", {}, 422, "greater_than_equal"),
        ("GET /v1/files?page_size=100000000", {}, 422, "less_than_equal"),
        ("GET /v1/files?page=-3", {}, 422, "greater_than_equal"),
        ("GET /v1/files?page_size=abc", {}, 422, "int_parsing"),
        ("GET /v1/fine_tuning/jobs?page_size=-5", {}, 422, "greater_than_equal"),
        ("GET /v1/fine_tuning/jobs?page_size=99999999999999999999", {}, 422, "page_size"),
        ("GET /v1/fine_tuning/jobs?status=DONE", {}, 422, "literal_error"),
        # Numbers too large for the database: refused, never a 500.
        (f"GET /v1/files?page={HUGE}", {}, 422, "less_than_equal"),
        (f"GET /v1/fine_tuning/jobs?page={HUGE}", {}, 422, "less_than_equal"),
        (f"GET /v1/files?page={2**62}", {}, 422, "less_than_equal"),
        (f"GET /sandbox/journal?since={HUGE}", {}, 422, "less_than_equal"),
        (
            "POST /v1/files",
            {"files": {"file": ("t.jsonl", chat_lines(3))}, "data": {"expiry": HUGE}},
            422,
            "less_than_equal",
        ),
        ("GET /v1/fine_tuning/jobs?created_after=yesterday", {}, 422, "created_after"),
        ("GET /v1/files?sample_type=poetry", {}, 422, "literal_error"),
        # Job bodies.
        (
            "POST /v1/fine_tuning/jobs",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            422,
            "json_invalid",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {
                "content": b"model=x",
                "headers": {"content-type": "application/x-www-form-urlencoded"},
            },
            422,
            "detail",
        ),
        ("POST /v1/fine_tuning/jobs", {"json": []}, 422, "detail"),
        ("POST /v1/fine_tuning/jobs", {"json": {**ok, "store": False}}, 422, "extra_forbidden"),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"lr": 1}}},
            422,
            "extra_forbidden",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {k: v for k, v in ok.items() if k != "model"}},
            422,
            "missing",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"learning_rate": 2}}},
            422,
            "less_than_equal",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"training_steps": 0}}},
            422,
            "greater_than_equal",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"seq_len": 50}}},
            422,
            "greater_than_equal",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"epochs": 0}}},
            422,
            "greater_than",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"training_steps": int(HUGE)}}},
            422,
            "less_than_equal",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"seq_len": int(HUGE)}}},
            422,
            "less_than_equal",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "hyperparameters": {"epochs": 1e300}}},
            422,
            "more than a job can have",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {
                "content": b'{"model": "open-mistral-7b", "training_files": ["%s"], '
                b'"hyperparameters": {"epochs": Infinity}}' % fid.encode(),
                "headers": {"content-type": "application/json"},
            },
            422,
            "finite_number",
        ),
        ("POST /v1/fine_tuning/jobs", {"json": {**ok, "suffix": "x" * 19}}, 422, "string_too_long"),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "invalid_sample_skip_percentage": 0.6}},
            422,
            "less_than_equal",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "integrations": [{"project": "p", "api_key": "short"}]}},
            422,
            "string_too_short",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "training_files": []}},
            422,
            "At least one training file",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "training_files": ["nope"]}},
            422,
            "training_files",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "training_files": [MISSING]}},
            422,
            "does not exist",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "validation_files": [MISSING]}},
            422,
            "does not exist",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "training_files": [{"file_id": fid, "weight": 0}]}},
            422,
            "greater_than",
        ),
        ("POST /v1/fine_tuning/jobs", {"json": {**ok, "model": "gpt-4"}}, 422, "not available"),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "model": "open-mistral-7b", "job_type": "classifier"}},
            422,
            "not available",
        ),
        (
            "POST /v1/fine_tuning/jobs",
            {"json": {**ok, "model": "ministral-3b-latest", "job_type": "classifier"}},
            422,
            "classifier_targets",
        ),
        ("POST /v1/fine_tuning/jobs?dry_run=maybe", {"json": ok}, 422, "bool_parsing"),
        ("PATCH /v1/fine_tuning/models/x", {"json": {"title": "x"}}, 422, "extra_forbidden"),
        # Unknown routes and methods.
        ("GET /v1/nothing", {}, 404, "Not Found"),
        ("PUT /v1/files", {}, 405, "Method Not Allowed"),
    ]


def test_bad_input_table(api: httpx.Client, sandbox: EmbeddedSandbox, clock: ManualClock) -> None:
    fid = uploaded_id(api, chat_lines(20))
    finished = api.post(
        "/v1/fine_tuning/jobs", json=job_body(fid, auto_start=True, suffix="done")
    ).json()["id"]
    running = api.post(
        "/v1/fine_tuning/jobs",
        json=job_body(fid, auto_start=True, suffix="run", hyperparameters={"training_steps": 5000}),
    ).json()["id"]
    wait_status(api, clock, finished, {"SUCCESS"})
    wait_status(api, clock, running, {"RUNNING"})
    before_files = api.get("/v1/files").json()["total"]
    before_jobs = api.get("/v1/fine_tuning/jobs").json()["total"]

    failures = []
    for line, kwargs, status, fragment in _request_cases(fid, running, finished):
        method, path = line.split(" ", 1)
        r = api.request(method, path, **kwargs)
        if r.status_code != status or fragment not in r.text:
            failures.append(f"{line}: {r.status_code} {r.text[:200]}")
            continue
        body = r.json()
        assert "detail" in body, line
        if status == 422 and isinstance(body["detail"], list):
            for item in body["detail"]:
                assert {"type", "loc", "msg"} <= set(item), line
                assert "url" not in item, line
    assert not failures, "\n".join(failures)

    # The database is consistent: nothing was created by the bad requests.
    assert api.get("/v1/files").json()["total"] == before_files
    assert api.get("/v1/fine_tuning/jobs").json()["total"] == before_jobs
    assert not list((sandbox.config.data_dir / "tmp").iterdir())
    assert len(list((sandbox.config.data_dir / "files").iterdir())) == before_files
    statuses = {e["status"] for e in sandbox.journal()}
    assert 500 not in statuses and None not in statuses


def test_missing_or_invalid_bearer(sandbox: EmbeddedSandbox) -> None:
    with httpx.Client(base_url=sandbox.base_url) as anon:
        for method, path in [
            ("GET", "/v1/files"),
            ("POST", "/v1/files"),
            ("GET", "/v1/models"),
            ("DELETE", f"/v1/files/{MISSING}"),
            ("POST", "/v1/fine_tuning/jobs"),
        ]:
            for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": API_KEY}):
                r = anon.request(method, path, headers=headers)
                assert r.status_code == 401, (method, path, headers)
                assert r.json() == {"detail": "Unauthorized"}
                assert r.headers["www-authenticate"] == "Bearer"
        # The health probe is open.
        assert anon.get("/sandbox/health").json()["trains_models"] is False
