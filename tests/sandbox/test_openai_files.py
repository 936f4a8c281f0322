"""OpenAI-dialect files: uploads (never deduplicated), cursor lists, downloads, refusals;
and what the gate answers in OpenAI's words (auth, rate limit, faults, body limits)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from reconciler.sandbox import EmbeddedSandbox, SandboxConfig, parse_faults
from reconciler.sandbox.store import WrongDialect
from tests.sandbox.conftest import (
    API_KEY,
    StartSandbox,
    chat_lines,
    client_of,
    oai_file_id,
    preference_lines,
    upload,
)


def test_every_upload_is_a_new_file(oai: httpx.Client, openai_sandbox: EmbeddedSandbox) -> None:
    data = chat_lines(12)
    first, second = oai_file_id(oai, data), oai_file_id(oai, data)
    assert first != second and first.startswith("file-") and len(first) == len("file-") + 22
    got = oai.get(f"/v1/files/{first}").json()
    assert got == {
        "id": first,
        "object": "file",
        "bytes": len(data),
        "created_at": got["created_at"],
        "filename": "train.jsonl",
        "purpose": "fine-tune",
        "status": "processed",
    }
    assert len(list((openai_sandbox.config.data_dir / "files").iterdir())) == 2


def test_lists_page_by_cursor_in_either_order(oai: httpx.Client) -> None:
    assert oai.get("/v1/files").json() == {
        "object": "list",
        "data": [],
        "first_id": None,
        "last_id": None,
        "has_more": False,
    }
    ids = [oai_file_id(oai, chat_lines(12, str(i)), f"f{i}.jsonl") for i in range(5)]
    notes = oai_file_id(oai, b"notes", "notes.txt", purpose="user_data")
    newest = oai.get("/v1/files", params={"limit": 2}).json()
    assert [f["id"] for f in newest["data"]] == [notes, ids[4]]
    assert (newest["first_id"], newest["last_id"], newest["has_more"]) == (notes, ids[4], True)
    page = oai.get("/v1/files", params={"limit": 2, "order": "asc", "after": ids[1]}).json()
    assert [f["id"] for f in page["data"]] == ids[2:4] and page["has_more"] is True
    tuning = oai.get("/v1/files", params={"purpose": "fine-tune", "after": ids[1]}).json()
    assert [f["id"] for f in tuning["data"]] == [ids[0]] and tuning["has_more"] is False
    # A deleted file still marks its place in the list.
    oai.delete(f"/v1/files/{ids[2]}")
    after_deleted = oai.get("/v1/files", params={"after": ids[2]}).json()
    assert [f["id"] for f in after_deleted["data"]] == ids[1::-1]
    for params, param in (
        ({"after": "file-nope"}, "after"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"limit": str(10**30)}, "limit"),
        ({"order": "random"}, "order"),
    ):
        r = oai.get("/v1/files", params=params)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (params, r.text)


def test_expiry(oai: httpx.Client) -> None:
    def send(**fields: str) -> httpx.Response:
        return oai.post(
            "/v1/files",
            files={"file": ("t.jsonl", chat_lines(12))},
            data={"purpose": "fine-tune", **fields},
        )

    made = send(**{"expires_after[anchor]": "created_at", "expires_after[seconds]": "3600"})
    assert made.json()["expires_at"] == made.json()["created_at"] + 3600
    assert "expires_at" not in send().json()
    for fields, param in (
        (
            {"expires_after[anchor]": "created_at", "expires_after[seconds]": "60"},
            "expires_after[seconds]",
        ),
        (
            {"expires_after[anchor]": "created_at", "expires_after[seconds]": str(10**30)},
            "expires_after[seconds]",
        ),
        (
            {"expires_after[anchor]": "now", "expires_after[seconds]": "3600"},
            "expires_after[anchor]",
        ),
        ({"expires_after[seconds]": "3600"}, "expires_after"),
    ):
        r = send(**fields)
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (fields, r.text)


def test_refused_uploads_leave_nothing(oai: httpx.Client, openai_sandbox: EmbeddedSandbox) -> None:
    for kwargs, status, param, fragment in (
        (
            {"files": {"file": ("t.csv", b"a,b\n")}, "data": {"purpose": "fine-tune"}},
            400,
            "file",
            "Must be .jsonl",
        ),
        (
            {"files": {"file": ("t.jsonl", b"")}, "data": {"purpose": "fine-tune"}},
            400,
            "file",
            "is empty",
        ),
        (
            {"files": {"file": ("t.jsonl", b"\n \n")}, "data": {"purpose": "fine-tune"}},
            400,
            "file",
            "is empty",
        ),
        (
            {"files": {"file": ("t.jsonl", b"{}")}},
            400,
            "purpose",
            "Missing required parameter: 'purpose'",
        ),
        (
            {"files": {"file": ("t.jsonl", b"{}")}, "data": {"purpose": "fun"}},
            400,
            "purpose",
            "Supported values",
        ),
        ({"data": {"purpose": "fine-tune"}}, 400, "file", "Missing required parameter: 'file'"),
        ({"files": {"file": ("", b"x")}, "data": {"purpose": "fine-tune"}}, 400, "file", ""),
    ):
        r = oai.post("/v1/files", **kwargs)  # type: ignore[arg-type]
        assert r.status_code == status, (kwargs, r.text)
        error = r.json()["error"]
        assert error["param"] == param and fragment in error["message"], (kwargs, error)
    assert oai.get("/v1/files").json()["data"] == []
    assert not list((openai_sandbox.config.data_dir / "tmp").iterdir())


def test_content_that_breaks_the_rules_is_accepted_and_kept(oai: httpx.Client) -> None:
    # The service checks the content when a job validates its files; the upload succeeds.
    fid = oai_file_id(oai, b'{"messages": []}\nnot json\n' + chat_lines(10))
    assert oai.get(f"/v1/files/{fid}").json()["bytes"] > 0
    assert oai_file_id(oai, preference_lines(3), "prefs.jsonl").startswith("file-")


def test_downloads(oai: httpx.Client) -> None:
    notes = oai_file_id(oai, b"some notes", "notes.txt", purpose="user_data")
    r = oai.get(f"/v1/files/{notes}/content")
    assert r.status_code == 200 and r.content == b"some notes"
    fid = oai_file_id(oai)
    r = oai.get(f"/v1/files/{fid}/content")
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "Not allowed to download files of purpose: fine-tune"
    for method, path in (
        ("GET", "/v1/files/file-x"),
        ("DELETE", "/v1/files/file-x"),
        ("GET", "/v1/files/file-x/content"),
    ):
        r = oai.request(method, path)
        assert r.status_code == 404
        assert r.json()["error"] == {
            "message": "No such File object: file-x",
            "type": "invalid_request_error",
            "param": "id",
            "code": None,
        }


def test_the_gate_speaks_openai(start_sandbox: StartSandbox) -> None:
    sandbox = start_sandbox(
        api_key=API_KEY,
        dialect="openai",
        rate_limit=2,
        max_upload_bytes=1000,
        faults=parse_faults("500=1,paths=/v1/models"),
    )
    with httpx.Client(base_url=sandbox.base_url) as anon:
        r = anon.get("/v1/files")
        assert r.status_code == 401 and r.json()["error"]["code"] is None
        assert "didn't provide an API key" in r.json()["error"]["message"]
        r = anon.get("/v1/files", headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert anon.get("/sandbox/health").status_code == 200
    with client_of(sandbox) as api:
        r = api.get("/v1/models")
        assert r.status_code == 500
        assert r.json()["error"]["type"] == "server_error"
        assert "(injected fault)" in r.json()["error"]["message"]
        r = upload(api, chat_lines(40), purpose="fine-tune")
        assert r.status_code == 413 and "limited to" in r.json()["error"]["message"]
        # Two tokens, both taken, and the test's clock never refills the bucket.
        limited = [api.get("/v1/files") for _ in range(2)]
        assert [c.status_code for c in limited] == [429, 429]
        assert limited[0].json()["error"] == {
            "message": "Rate limit reached for requests. Please try again after the time in "
            "Retry-After.",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
        assert int(limited[0].headers["retry-after"]) >= 1
        assert limited[0].headers["x-ratelimit-limit-requests"] == "120"
        assert "x-ratelimit-remaining-requests" in limited[0].headers
    faults = [e["fault"] for e in sandbox.journal()]
    assert "500" in faults and "rate_limit" in faults


def test_unknown_urls(oai: httpx.Client) -> None:
    for method, path, status in (("GET", "/v1/nowhere", 404), ("PUT", "/v1/files", 405)):
        r = oai.request(method, path)
        assert r.status_code == status
        assert r.json()["error"] == {
            "message": f"Invalid URL ({method} {path})",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }


def test_a_data_directory_belongs_to_one_dialect(tmp_path: Path) -> None:
    data = tmp_path / "sandbox"
    with EmbeddedSandbox(SandboxConfig(data_dir=data, dialect="openai")) as sb:
        with httpx.Client(base_url=sb.base_url) as api:
            oai_file_id(api)
    with pytest.raises(WrongDialect, match="holds the files and jobs of the openai dialect"):
        EmbeddedSandbox(SandboxConfig(data_dir=data)).start()
    # Served again in its own dialect, everything is there.
    with EmbeddedSandbox(SandboxConfig(data_dir=data, dialect="openai")) as sb:
        with httpx.Client(base_url=sb.base_url) as api:
            assert len(api.get("/v1/files").json()["data"]) == 1


def test_an_older_mistral_directory_stays_mistral(tmp_path: Path) -> None:
    import sqlite3

    data = tmp_path / "sandbox"
    with EmbeddedSandbox(SandboxConfig(data_dir=data)) as sb:
        with httpx.Client(base_url=sb.base_url) as api:
            api.post("/v1/files", files={"file": ("t.jsonl", chat_lines(5))})
    # As written before dialects existed: no record of one.
    with sqlite3.connect(data / "sandbox.db") as conn:
        conn.execute("DELETE FROM meta WHERE key = 'dialect'")
    with pytest.raises(WrongDialect, match="of the mistral dialect"):
        EmbeddedSandbox(SandboxConfig(data_dir=data, dialect="openai")).start()


def test_an_unknown_dialect_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown dialect 'cohere': use one of mistral, openai"):
        SandboxConfig(data_dir=tmp_path, dialect="cohere")
