"""Helpers of the attack tests: a recording HTTP endpoint, the environment the CI recipes give
reconciler, and running the real command line in a child process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.cli_processes import shared as shared_processes
from tests.local_http import LocalHTTPServer
from tests.yaml_text import safe_load

REPO = Path(__file__).resolve().parents[2]
RECIPES = REPO / "examples" / "ci" / "github"


@dataclass(frozen=True)
class Recorded:
    """One request the recording endpoint received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class RecordingEndpoint(LocalHTTPServer):
    """An HTTP server on 127.0.0.1 that answers every request with an empty list and records
    it: what an attacker would run to collect keys."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        lock = threading.Lock()
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with lock:
                    requests.append(
                        Recorded(self.command, self.path, dict(self.headers.items()), body)
                    )
                payload = json.dumps({"object": "list", "data": [], "total": 0}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _record  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        super().__init__(Handler)

    @property
    def url(self) -> str:
        """Where it listens."""
        return self.base_url

    def everything_received(self) -> str:
        """Every request as one text (headers and bodies), to search for secrets."""
        return "\n".join(
            f"{r.method} {r.path} {r.headers} {r.body.decode('utf-8', 'replace')}"
            for r in self.requests
        )


_SECRET = re.compile(r"\$\{\{\s*secrets\.(\w+)\s*\}\}")
_VAR_OR_DEFAULT = re.compile(r"\$\{\{\s*vars\.\w+\s*\|\|\s*'([^']*)'\s*\}\}")


def recipe_env(workflow: str, job: str, secrets: Mapping[str, str]) -> dict[str, str]:
    """The environment a GitHub recipe gives the step of ``job`` that runs reconciler plan or
    apply: the job's ``env:`` (repository variables unset, so their defaults) and the step's,
    with ``secrets``."""
    data = safe_load((RECIPES / f"reconciler-{workflow}.yml").read_text(encoding="utf-8"))
    spec = data["jobs"][job]
    step = next(
        s for s in spec["steps"] if re.search(r"reconciler (plan|apply) ", str(s.get("run", "")))
    )
    env: dict[str, str] = {}
    for key, value in {**spec.get("env", {}), **step.get("env", {})}.items():
        text = _SECRET.sub(lambda m: secrets[m.group(1)], str(value))
        text = _VAR_OR_DEFAULT.sub(lambda m: m.group(1), text)
        assert "${{" not in text, f"{workflow}:{job}: {key}: {value}"
        env[key] = text
    return env


def run_cli(
    args: list[str], cwd: Path, env: Mapping[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``reconciler ARGS`` in a child process with exactly ``env`` (plus what Python needs).

    The child is forked from the suite's helper (:func:`tests.cli_processes.shared`, the ``cli_processes`` fixture's), an
    interpreter that has imported the package but run nothing: a process of its own, which
    nothing of the test process's — its variables, its registry of secrets to mask — reaches,
    without the second of start-up a new interpreter costs.
    """
    full = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(cwd),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        **env,
    }
    process = shared_processes(os.environ).start(args, cwd=cwd, env=full)
    stdout, stderr = process.communicate(timeout=timeout)
    assert process.returncode is not None
    return subprocess.CompletedProcess(["reconciler", *args], process.returncode, stdout, stderr)


def write_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root``; returns ``root``."""
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    return root
