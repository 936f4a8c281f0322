"""Files API: upload (validation, dedupe, limits), list filters, retrieve, delete, download."""

from __future__ import annotations

import hashlib
import json

import httpx
import pytest

from reconciler.sandbox import EmbeddedSandbox
from tests.sandbox.conftest import (
    StartSandbox,
    chat_lines,
    pretrain_lines,
    upload,
    uploaded_id,
)


def test_upload_detects_type_and_lines_and_stores_bytes(
    api: httpx.Client, sandbox: EmbeddedSandbox
) -> None:
    data = chat_lines(12)
    r = upload(api, data, "chat.jsonl", purpose="fine-tune")
    assert r.status_code == 200
    obj = r.json()
    assert obj["sample_type"] == "instruct"
    assert obj["num_lines"] == 12
    assert obj["bytes"] == len(data)
    assert obj["purpose"] == "fine-tune" and obj["source"] == "upload"
    assert obj["signature"] == hashlib.sha256(data).hexdigest()[:16]
    assert (sandbox.config.data_dir / "files" / obj["id"]).read_bytes() == data
    assert api.get(f"/v1/files/{obj['id']}/content").content == data

    pre = upload(api, pretrain_lines(4), "docs.jsonl").json()
    assert pre["sample_type"] == "pretrain" and pre["num_lines"] == 4


def test_dedupe_on_content_and_filename(api: httpx.Client) -> None:
    data = chat_lines(10)
    first = upload(api, data, "a.jsonl").json()["id"]
    assert upload(api, data, "a.jsonl").json()["id"] == first
    assert upload(api, data, "b.jsonl").json()["id"] != first  # other name: new file
    assert upload(api, chat_lines(11), "a.jsonl").json()["id"] != first  # other bytes
    assert api.get("/v1/files").json()["total"] == 3
    # A deleted file is not resurrected by dedupe.
    api.delete(f"/v1/files/{first}")
    assert upload(api, data, "a.jsonl").json()["id"] != first


@pytest.mark.parametrize(
    ("content", "filename", "fragment"),
    [
        (b"", "empty.jsonl", "empty"),
        (b"\xff\xfe\x00garbage\n\xff\n", "binary.jsonl", "line 1"),
        (b"just text\nmore text\n", "text.jsonl", "line 1"),
        (b'{"messages": [{"role": "user", "content": "hi"}]}\n' * 3, "no-answer.jsonl", "line 1"),
        (b"[1, 2]\n", "array.jsonl", "line 1"),
        (chat_lines(3), "train.csv", ".jsonl"),
    ],
)
def test_bad_files_are_refused_with_line_and_rule(
    api: httpx.Client, content: bytes, filename: str, fragment: str
) -> None:
    r = upload(api, content, filename)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert isinstance(detail, str) and "Invalid file format" in detail
    assert fragment in detail
    assert api.get("/v1/files").json()["total"] == 0


def test_refusal_names_rule_code(api: httpx.Client) -> None:
    bad = b'{"messages": [{"role": "user", "content": "hi"}]}\n'
    detail = upload(api, bad * 2, "x.jsonl").json()["detail"]
    assert "line 1:" in detail and "line 2:" in detail
    assert "[" in detail and "]" in detail  # the rule code, e.g. [M3]


def test_partly_invalid_file_is_accepted_for_skip_percentage(api: httpx.Client) -> None:
    # 1 bad sample in 10: a job may skip it (invalid_sample_skip_percentage), so it is stored.
    data = chat_lines(9) + b'{"messages": []}\n'
    r = upload(api, data, "mostly.jsonl")
    assert r.status_code == 200, r.text
    assert r.json()["num_lines"] == 10


def test_upload_limit_gives_413(start_sandbox: StartSandbox) -> None:
    sb = start_sandbox(max_upload_bytes=2000)
    with httpx.Client(base_url=sb.base_url) as client:
        # Declared size over the limit: refused before the body is read.
        big = upload(client, chat_lines(200), "big.jsonl")
        assert big.status_code == 413
        assert "Too Large" in big.json()["detail"]
        # Just over the file limit but within the multipart slack: counted while copying.
        data = chat_lines(40)
        assert 2000 < len(data) < 2000 + 1024 * 1024
        r = upload(client, data, "over.jsonl")
        assert r.status_code == 413
        ok = upload(client, chat_lines(10), "small.jsonl")
        assert ok.status_code == 200
        assert client.get("/v1/files").json()["total"] == 1
    assert not list((sb.config.data_dir / "tmp").iterdir())


def test_upload_limit_streamed_body_without_length(start_sandbox: StartSandbox) -> None:
    sb = start_sandbox(max_upload_bytes=1000)
    boundary = "b0und4ry"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
        f'filename="s.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n'
    ).encode()

    def body() -> object:
        yield head
        for _ in range(40):  # ~2.5 MB in chunks, no Content-Length
            yield b"x" * 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    with httpx.Client(base_url=sb.base_url) as client:
        r = client.post(
            "/v1/files",
            content=body(),  # type: ignore[arg-type]
            headers={"content-type": f"multipart/form-data; boundary={boundary}"},
        )
    assert r.status_code == 413


def test_list_filters_and_pagination(api: httpx.Client) -> None:
    ids = [uploaded_id(api, chat_lines(3, str(i)), f"set-{i}.jsonl") for i in range(5)]
    pre = uploaded_id(api, pretrain_lines(3), "corpus.jsonl")
    everything = api.get("/v1/files").json()
    assert everything["object"] == "list" and everything["total"] == 6
    assert [f["id"] for f in everything["data"]] == [pre, *reversed(ids)]  # newest first

    cases: list[tuple[list[tuple[str, str | int]], set[str]]] = [
        ([("search", "set-")], set(ids)),
        ([("search", "set-3")], {ids[3]}),
        ([("search", "%")], set()),
        ([("sample_type", "pretrain")], {pre}),
        ([("sample_type", "pretrain"), ("sample_type", "instruct")], {*ids, pre}),
        ([("source", "repository")], set()),
        ([("purpose", "fine-tune")], {*ids, pre}),
        ([("purpose", "batch")], set()),
        ([("mimetypes", "application/jsonl")], {*ids, pre}),
        ([("mimetypes", "text/csv")], set()),
    ]
    for params, expected in cases:
        got = api.get("/v1/files", params=params).json()
        assert {f["id"] for f in got["data"]} == expected, params
        assert got["total"] == len(expected)

    pages = [api.get("/v1/files", params={"page": p, "page_size": 4}).json() for p in range(3)]
    assert [len(p["data"]) for p in pages] == [4, 2, 0]
    assert all(p["total"] == 6 for p in pages)
    assert api.get("/v1/files", params={"include_total": "false"}).json()["total"] is None


def test_retrieve_delete_and_404(api: httpx.Client) -> None:
    fid = uploaded_id(api)
    got = api.get(f"/v1/files/{fid}").json()
    assert got["deleted"] is False and got["id"] == fid
    assert api.delete(f"/v1/files/{fid}").json() == {"id": fid, "object": "file", "deleted": True}
    for method, suffix in [("GET", ""), ("DELETE", ""), ("GET", "/content"), ("GET", "/url")]:
        r = api.request(method, f"/v1/files/{fid}{suffix}")
        assert r.status_code == 404, (method, suffix)
        assert fid in r.json()["detail"]


def test_signed_url_serves_content_with_token(api: httpx.Client) -> None:
    data = chat_lines(4)
    fid = uploaded_id(api, data)
    url = api.get(f"/v1/files/{fid}/url", params={"expiry": 168}).json()["url"]
    # No bearer token needed: the signature is the credential.
    with httpx.Client() as anon:
        assert anon.get(url).content == data
        tampered = url.replace("token=", "token=0")
        assert anon.get(tampered).status_code == 403
    for bad in (0, 169, -1):
        assert api.get(f"/v1/files/{fid}/url", params={"expiry": bad}).status_code == 422


def test_expiry_and_visibility_form_fields(api: httpx.Client) -> None:
    r = upload(api, chat_lines(3), "v.jsonl", visibility="user", expiry="2")
    obj = r.json()
    assert obj["visibility"] == "user"
    assert obj["expires_at"] == obj["created_at"] + 2 * 3600
    assert upload(api, chat_lines(3), "v2.jsonl", visibility="nobody").status_code == 422
    assert upload(api, chat_lines(3), "v3.jsonl", purpose="weird").status_code == 422


def test_journal_records_upload(api: httpx.Client, sandbox: EmbeddedSandbox) -> None:
    uploaded_id(api)
    entries = sandbox.journal()
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [("POST", "/v1/files", 200)]
    # Also over HTTP, with ?since=.
    over_http = api.get("/sandbox/journal", params={"since": entries[-1]["id"]}).json()
    assert over_http == []
    assert json.loads(api.get("/sandbox/journal").text)[0]["path"] == "/v1/files"
    with httpx.Client(base_url=sandbox.base_url) as anon:
        assert anon.get("/sandbox/journal").status_code == 401  # the key guards it too
    assert api.delete("/sandbox/journal").json() == {"deleted": 1}
    assert sandbox.journal() == []
