"""The sandbox as a network service: body limits, timeouts, connection limit, auth, URLs.

Each test here pins one hardening item; each failed against the sandbox before it was
hardened. Servers run on 127.0.0.1; slow clients are real sockets that stop mid-request.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import reconciler.cli.commands  # noqa: F401 - registers the commands
from reconciler.cli.app import app
from reconciler.sandbox import EmbeddedSandbox, ManualClock, SandboxConfig
from tests.sandbox.conftest import API_KEY, StartSandbox, chat_lines, job_body, uploaded_id

runner = CliRunner()
MIB = 1024 * 1024


def _raw(sb: EmbeddedSandbox) -> socket.socket:
    """A plain TCP connection to the sandbox, for clients that misbehave."""
    sock = socket.create_connection(("127.0.0.1", sb.port), timeout=10)
    return sock


def _served_again(base_url: str) -> int:
    """GET the health probe until it is not refused (503) any more; the last status.

    A server that just shed connections may still count some that are closing.
    """
    with httpx.Client(base_url=base_url, timeout=10) as client:
        for _ in range(200):
            status = client.get("/sandbox/health").status_code
            if status != 503:
                return status
    return 503


def _read_to_close(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (10 s at most)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# -- body limit on every route ----------------------------------------------------------------


def test_json_bodies_over_the_limit_are_413_and_uploads_keep_theirs(
    api: httpx.Client, sandbox: EmbeddedSandbox
) -> None:
    fid = uploaded_id(api)
    huge = {**job_body(fid), "suffix": "x" * (5 * MIB)}  # over the default 4 MiB
    declared = api.post("/v1/fine_tuning/jobs", json=huge)
    assert declared.status_code == 413
    assert "limited to 4 MiB" in declared.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        payload = json.dumps(huge).encode()
        for i in range(0, len(payload), 256 * 1024):
            yield payload[i : i + 256 * 1024]

    streamed = api.post(
        "/v1/fine_tuning/jobs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413 and "Request Entity Too Large" in streamed.json()["detail"]
    patch = api.patch("/v1/fine_tuning/models/ft:x", json={"name": "n" * (5 * MIB)})
    assert patch.status_code == 413
    # Nothing was created, and a normal body still works.
    assert api.get("/v1/fine_tuning/jobs").json()["total"] == 0
    assert api.post("/v1/fine_tuning/jobs", json=job_body(fid)).status_code == 200
    # Uploads keep their own (much larger) limit: a 5 MiB file is fine.
    big = api.post(
        "/v1/files",
        files={"file": ("big.jsonl", b'{"custom_id": "1"}\n' * (5 * MIB // 19 + 1))},
        data={"purpose": "batch"},
    )
    assert big.status_code == 200 and big.json()["bytes"] > 5 * MIB
    assert {e["status"] for e in sandbox.journal()} == {200, 413}


def test_stalled_body_is_408(start_sandbox: StartSandbox) -> None:
    sb = start_sandbox(body_timeout=0.3)
    with _raw(sb) as sock:
        sock.sendall(
            b"POST /v1/fine_tuning/jobs HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"model":'
        )
        answer = _read_to_close(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"stopped arriving for 0.3 s" in answer


# -- header and idle timeouts, connection limit ----------------------------------------------


@pytest.mark.parametrize(
    "sent", [b"", b"GET /sandbox/health HTTP/1.1\r\nHost: x\r\n"], ids=["nothing", "half"]
)
def test_connection_without_complete_headers_is_closed(
    start_sandbox: StartSandbox, sent: bytes
) -> None:
    sb = start_sandbox(header_timeout=0.3)
    with _raw(sb) as sock:
        sock.sendall(sent)
        answer = _read_to_close(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    # The server is none the worse for it.
    assert httpx.get(f"{sb.base_url}/sandbox/health").status_code == 200


def test_slow_second_request_on_a_kept_alive_connection_is_closed(
    start_sandbox: StartSandbox,
) -> None:
    sb = start_sandbox(header_timeout=0.3, idle_timeout=30)
    with _raw(sb) as sock:
        sock.sendall(b"GET /sandbox/health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"false}"):  # the whole health answer
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /sandbox/health HTTP/1.1\r\n")  # and then nothing more
        assert _read_to_close(sock).startswith(b"HTTP/1.1 408 ")


def test_connection_limit_refuses_cleanly(start_sandbox: StartSandbox) -> None:
    sb = start_sandbox(max_connections=2)
    idle = [_raw(sb), _raw(sb)]
    try:
        with httpx.Client(base_url=sb.base_url) as client:
            refused = client.get("/sandbox/health")
        assert refused.status_code == 503
        assert refused.headers["connection"] == "close"
        # A connection over the limit that sends nothing is let go within a second.
        with _raw(sb) as extra:
            assert _read_to_close(extra).startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in idle:
            sock.close()
    # Once the idle ones are gone, requests are served again.
    assert _served_again(sb.base_url) == 200


def test_accept_errors_are_logged_once_per_interval(tmp_path: Path) -> None:
    # A server with 64 file descriptors, flooded with 100 connections: accept() fails with
    # EMFILE. asyncio used to log a traceback per attempt (thousands a second).
    script = textwrap.dedent(
        f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
        from reconciler.sandbox import SandboxConfig, serve
        try:
            serve(
                SandboxConfig(data_dir={str(tmp_path / "data")!r}),
                port=0,
                announce=lambda url: print(url, flush=True),
            )
        except KeyboardInterrupt:
            pass
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    err = ""
    flood: list[socket.socket] = []
    try:
        url = proc.stdout.readline().strip()
        port = int(url.rsplit(":", 1)[1])
        flood = [socket.create_connection(("127.0.0.1", port)) for _ in range(100)]
        # Wait for the first report (old servers: a traceback naming accept()).
        while "accept" not in (line := proc.stderr.readline()):
            assert line, "the server exited"
            err += line
        err += line
        for sock in flood:
            sock.close()
        assert _served_again(url) == 200, "the server did not recover"
    finally:
        for sock in flood:
            sock.close()
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=20)[1]
    err += rest
    assert "Traceback" not in err, err[:2000]
    reports = [line for line in err.splitlines() if "cannot accept connections" in line]
    assert len(reports) == 1, err[:2000]
    assert "Too many open files" in reports[0] and "ulimit -n" in reports[0]


# -- auth ---------------------------------------------------------------------------------------


@contextmanager
def _busy_port(host: str) -> Iterator[int]:
    """A port already taken on ``host``: a server that tried to start there would fail."""
    with socket.socket() as busy:
        busy.bind((host, 0))
        busy.listen()
        yield int(busy.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--host", "0.0.0.0"], "refusing to listen on 0.0.0.0 without an API key"),
        (["--api-key", ""], "API key is empty"),
        (["--host", "0.0.0.0", "--api-key", " "], "API key is empty"),
        (["--public-url", "ftp://x"], "public URL 'ftp://x' is not valid"),
        (["--time-scale", "nan"], "--time-scale"),
        (["--time-scale", "inf"], "finite number > 0"),
        (["--time-scale", "0"], "finite number > 0"),
    ],
)
def test_unsafe_or_bad_server_settings_refuse_to_start(
    tmp_path: Path, args: list[str], fragment: str
) -> None:
    # The port is taken: a server that did start would fail with "cannot listen" instead.
    with _busy_port("0.0.0.0") as port:
        r = runner.invoke(
            app, ["sandbox", "--data-dir", str(tmp_path / "d"), "--port", str(port), *args]
        )
    assert r.exit_code == 1, r.output
    assert fragment in " ".join(r.stderr.split())
    assert "cannot listen" not in r.stderr
    assert isinstance(r.exception, SystemExit)  # a clean error, no traceback
    assert not (tmp_path / "d").exists()  # refused before touching anything


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("sandbox.example.com", False),
    ],
)
def test_what_counts_as_loopback(host: str, loopback: bool) -> None:
    from reconciler.sandbox.config import is_loopback

    assert is_loopback(host) is loopback


def test_empty_api_key_is_an_error_not_no_auth(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="API key is empty"):
        SandboxConfig(data_dir=tmp_path, api_key="")


def test_rate_limit_and_journal_only_after_auth(start_sandbox: StartSandbox) -> None:
    sb = start_sandbox(api_key=API_KEY, rate_limit=2.0)
    with httpx.Client(base_url=sb.base_url) as anon:
        for _ in range(10):
            r = anon.get("/v1/files", headers={"Authorization": "Bearer wrong"})
            assert r.status_code == 401
            assert "x-ratelimit-remaining-req-minute" not in r.headers
        assert anon.get("/sandbox/health").status_code == 200  # open, but not recorded
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with httpx.Client(base_url=sb.base_url, headers=headers) as client:
        # The anonymous requests took none of the 2 tokens.
        assert [client.get("/v1/files").status_code for _ in range(3)] == [200, 200, 429]
        assert client.get("/sandbox/health").status_code == 200
    assert [(e["path"], e["status"]) for e in sb.journal()] == [
        ("/v1/files", 200),
        ("/v1/files", 200),
        ("/v1/files", 429),
        ("/sandbox/health", 200),
    ]


# -- signed URLs and file names ----------------------------------------------------------------


def test_signed_urls_ignore_the_host_header(api: httpx.Client, sandbox: EmbeddedSandbox) -> None:
    fid = uploaded_id(api)
    r = api.get(f"/v1/files/{fid}/url", headers={"Host": "attacker.example"})
    url = r.json()["url"]
    assert url.startswith(f"{sandbox.base_url}/sandbox/signed/{fid}?"), url
    assert httpx.get(url).content == chat_lines(20)


def test_signed_urls_use_the_public_url(start_sandbox: StartSandbox, clock: ManualClock) -> None:
    sb = start_sandbox(public_url="https://sandbox.example.com/base/")
    with httpx.Client(base_url=sb.base_url) as client:
        fid = uploaded_id(client)
        url = client.get(f"/v1/files/{fid}/url", headers={"Host": "evil"}).json()["url"]
        assert url.startswith(f"https://sandbox.example.com/base/sandbox/signed/{fid}?")
        # Served here under its path and query; it expires with the sandbox's clock.
        local = sb.base_url + url.removeprefix("https://sandbox.example.com/base")
        assert client.get(local).status_code == 200
        clock.advance(24 * 3600 + 1)
        expired = client.get(local)
        assert expired.status_code == 403 and "expired" in expired.json()["detail"]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://h:8080", True),
        ("https://h/base", True),
        ("ftp://h", False),
        ("http://", False),
        ("http://h/?q=1", False),
        ("http://u:p@h", False),
        ("http://h:port", False),
    ],
)
def test_public_url_checks(url: str, ok: bool) -> None:
    from reconciler.sandbox.config import check_public_url

    if ok:
        assert check_public_url(url + "/") == url
    else:
        with pytest.raises(ValueError, match="public URL"):
            check_public_url(url)


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("../../x.jsonl", "x.jsonl"),
        ("/etc/cron.d/y.jsonl", "y.jsonl"),
        ("C:\\data\\z.jsonl", "z.jsonl"),
        ("dir/sub/w.jsonl", "w.jsonl"),
        ("plain.jsonl", "plain.jsonl"),
    ],
)
def test_uploaded_file_names_lose_their_directories(
    api: httpx.Client, sent: str, stored: str
) -> None:
    r = api.post("/v1/files", files={"file": (sent, chat_lines(3))})
    assert r.status_code == 200, r.text
    assert r.json()["filename"] == stored
    fid = r.json()["id"]
    assert api.get(f"/v1/files/{fid}").json()["filename"] == stored
    disposition = api.get(f"/v1/files/{fid}/content").headers["content-disposition"]
    assert disposition == f'attachment; filename="{stored}"'


@pytest.mark.parametrize("sent", ["..", "dir/", "../"])
def test_upload_without_a_name_after_cleaning_is_422(api: httpx.Client, sent: str) -> None:
    r = api.post("/v1/files", files={"file": (sent, chat_lines(3))})
    assert r.status_code == 422 and "no filename" in r.json()["detail"]


# -- time scale from the environment ------------------------------------------------------------


def _one_dataset(root: Path) -> Path:
    """A specs directory with one Dataset: planning it needs the (embedded) sandbox."""
    (root / "s.yaml").write_text(
        "apiVersion: reconciler/v1\nkind: Dataset\nname: d\npath: d.jsonl\n"
    )
    (root / "d.jsonl").write_bytes(chat_lines(5))
    return root


@pytest.mark.parametrize("value", ["abc", "0", "-1", "inf", "nan", "1e400"])
def test_bad_time_scale_in_the_environment_is_a_start_up_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RECONCILER_SANDBOX_TIME_SCALE", value)
    r = runner.invoke(app, ["plan", str(_one_dataset(tmp_path))])
    assert r.exit_code == 1, r.output
    assert isinstance(r.exception, SystemExit)  # a clean error, no traceback
    text = " ".join(r.stderr.split())
    assert "RECONCILER_SANDBOX_TIME_SCALE" in text and "finite number > 0" in text
    assert re.search(r"\d+ to add", r.stdout) is None  # no plan was made


def test_embedded_sandbox_still_serves_plans(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECONCILER_SANDBOX_TIME_SCALE", " 20 ")
    r = runner.invoke(app, ["plan", str(_one_dataset(tmp_path))])
    assert r.exit_code == 0, r.output
    assert "embedded sandbox" in r.stdout and "1 to add" in r.stdout
