"""Shell scripts whose ``reconciler`` calls run in the test process.

:func:`run_script` runs a bash script as a CI runner would, with one difference: the
``reconciler`` first on its ``PATH`` is a relay. The relay sends its arguments, working
directory and environment to the test process over a loopback socket; there
:func:`~tests.cli_inprocess.run_cli` runs the real command line with them, and the relay
prints the command's stdout and stderr and exits with its exit code. Everything the shell
does around the calls — redirections, ``$?``, ``set -e``, files it appends to — happens for
real; each call costs an in-process run instead of an interpreter start that imports the
whole package. (The README's quickstart test runs the installed console script itself.)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

from tests.cli_inprocess import run_cli

RELAY = """\
import json, os, socket, sys
port, args = int(sys.argv[1]), sys.argv[2:]
request = {"args": args, "cwd": os.getcwd(), "env": dict(os.environ)}
with socket.create_connection(("127.0.0.1", port)) as conn:
    conn.sendall(json.dumps(request).encode())
    conn.shutdown(socket.SHUT_WR)
    with conn.makefile("rb") as answer:
        result = json.load(answer)
sys.stdout.write(result["stdout"])
sys.stderr.write(result["stderr"])
sys.exit(result["code"])
"""
"""The relay: ``relay.py PORT ARGS...``."""


def run_script(
    script: str, *, cwd: Path, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``bash -e -c script`` in ``cwd`` with ``env``; its ``reconciler`` calls run here."""
    with tempfile.TemporaryDirectory(prefix="relay-") as tmp, socket.socket() as server:
        bindir = Path(tmp) / "bin"
        bindir.mkdir()
        (Path(tmp) / "relay.py").write_text(RELAY, encoding="utf-8")
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.01)
        port = server.getsockname()[1]
        program = bindir / "reconciler"
        # -I -S: no site packages, no environment-driven imports — the relay starts in
        # milliseconds and cannot pick up the package under test by accident.
        program.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -I -S "{Path(tmp) / "relay.py"}" {port} "$@"\n',
            encoding="utf-8",
        )
        program.chmod(0o755)
        shell_env = {**env, "PATH": f"{bindir}{os.pathsep}{env.get('PATH', '')}"}
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        with out_path.open("w") as out, err_path.open("w") as err:
            shell = subprocess.Popen(
                ["bash", "-e", "-c", script],
                cwd=cwd,
                env=shell_env,
                stdout=out,
                stderr=err,
                stdin=subprocess.DEVNULL,
            )
            try:
                deadline = time.monotonic() + timeout
                while shell.poll() is None:
                    if time.monotonic() > deadline:
                        raise AssertionError(f"script did not finish within {timeout:.0f}s")
                    try:
                        conn, _ = server.accept()
                    except TimeoutError:
                        continue
                    with conn:
                        _answer(conn)
            finally:
                if shell.poll() is None:
                    shell.kill()
                shell.wait()
        return subprocess.CompletedProcess(
            ["bash", "-e", "-c", script],
            shell.returncode,
            out_path.read_text(encoding="utf-8"),
            err_path.read_text(encoding="utf-8"),
        )


def _answer(conn: socket.socket) -> None:
    """Run one relayed ``reconciler`` call and send back its outcome."""
    conn.settimeout(None)
    with conn.makefile("rb") as incoming:
        request = json.load(incoming)
    result = run_cli(request["args"], cwd=Path(request["cwd"]), env=request["env"])
    answer = {"code": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
    conn.sendall(json.dumps(answer).encode())
