"""``reconciler sandbox``: serves on a port, survives a restart, clean errors, honest --help."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import reconciler.cli.commands  # noqa: F401 - registers the commands
from reconciler.cli.app import app
from reconciler.sandbox import EmbeddedSandbox, SandboxConfig
from tests.sandbox.conftest import chat_lines

runner = CliRunner()

KEY = "cli-test-key"


class _Server:
    """``reconciler sandbox --port 0`` in a subprocess; its banner says where it listens."""

    def __init__(self, data_dir: Path, *extra: str) -> None:
        env = {**os.environ, "RECONCILER_SANDBOX_API_KEY": KEY}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reconciler",
                "sandbox",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--time-scale",
                "50",
                "--rate-limit",
                "1000/s",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        # The banner is printed once the socket listens: requests sent from then on queue
        # until the server accepts them, so there is nothing to poll.
        assert self.proc.stderr is not None
        self.banner = self.proc.stderr.readline()
        found = re.search(r" on (http://\S+)", self.banner)
        if found is None:
            raise AssertionError(f"server did not start: {self.banner}{self.proc.communicate()}")
        self.url = found.group(1)

    def stop(self) -> tuple[int, str, str]:
        self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out, self.banner + err


@pytest.fixture
def server_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def test_serves_on_a_port_and_survives_restart(server_dir: Path) -> None:
    server = _Server(server_dir)
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers) as client:
            assert client.get("/v1/files", headers={"Authorization": "Bearer x"}).status_code == 401
            fid = client.post("/v1/files", files={"file": ("t.jsonl", chat_lines(5))}).json()["id"]
    finally:
        code, out, err = server.stop()
    assert code == 0, err
    assert "never trains a model" in err
    assert "POST /v1/files" in out + err  # requests are logged
    assert "Traceback" not in err
    assert (server_dir / "sandbox.db").is_file() and (server_dir / "files" / fid).is_file()

    # Restarted on the same data dir (in-process here: the same server code), the file is there.
    with EmbeddedSandbox(SandboxConfig(data_dir=server_dir, api_key=KEY)) as again:
        with httpx.Client(base_url=again.base_url, headers=headers) as client:
            assert client.get(f"/v1/files/{fid}").json()["filename"] == "t.jsonl"
            assert client.get(f"/v1/files/{fid}/content").content == chat_lines(5)


def test_serves_the_openai_dialect(server_dir: Path) -> None:
    server = _Server(server_dir, "--dialect", "openai")
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers) as client:
            denied = client.get("/v1/files", headers={"Authorization": "Bearer x"})
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "invalid_api_key"
            uploaded = client.post(
                "/v1/files",
                files={"file": ("t.jsonl", chat_lines(12))},
                data={"purpose": "fine-tune"},
            ).json()
            assert uploaded["id"].startswith("file-") and uploaded["status"] == "processed"
            job = client.post(
                "/v1/fine_tuning/jobs",
                json={"model": "gpt-4o-mini", "training_file": uploaded["id"]},
            ).json()
            assert job["object"] == "fine_tuning.job" and job["status"] == "validating_files"
    finally:
        code, _, err = server.stop()
    assert code == 0, err
    assert "openai API" in err and "Traceback" not in err

    # The directory now holds OpenAI objects: a Mistral sandbox refuses it, saying why.
    r = runner.invoke(app, ["sandbox", "--data-dir", str(server_dir), "--port", "0"])
    assert r.exit_code == 1
    assert "--data-dir" in r.stderr and "of the openai dialect" in r.stderr
    assert "another data directory" in r.stderr


def test_help_says_it_never_trains() -> None:
    r = runner.invoke(app, ["sandbox", "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    text = " ".join(r.stdout.split())
    assert "NEVER trains a model" in text
    for flag in (
        "--host",
        "--port",
        "--data-dir",
        "--api-key",
        "--time-scale",
        "--faults",
        "--rate-limit",
        "--seed",
        "--dialect",
    ):
        assert flag in text


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--faults", "teapot=1"], "unknown key"),
        (["--rate-limit", "fast"], "requests per second"),
        (["--time-scale", "0"], "--time-scale"),
        (["--dialect", "anthropic"], "use one of mistral, openai"),
    ],
)
def test_bad_flags_exit_1_cleanly(tmp_path: Path, args: list[str], fragment: str) -> None:
    r = runner.invoke(app, ["sandbox", "--data-dir", str(tmp_path / "d"), *args])
    assert r.exit_code == 1
    assert fragment in r.stderr
    assert r.exception is None or isinstance(r.exception, SystemExit)


def test_port_in_use_exit_1_cleanly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = runner.invoke(app, ["sandbox", "--data-dir", str(tmp_path / "d"), "--port", str(port)])
    assert r.exit_code == 1
    assert "cannot listen" in r.stderr and "pick another --port" in r.stderr
