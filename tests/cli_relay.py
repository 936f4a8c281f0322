"""Shell scripts whose ``reconciler`` calls run in the test process.

:class:`Relay` runs a program (a bash script, as a CI runner would) with one difference: the
``reconciler`` first on its ``PATH`` is a relay. The relay sends its arguments, working
directory and environment to the test process over a loopback socket; there
:func:`~tests.cli_inprocess.run_cli` runs the real command line with them, and the relay
prints the command's stdout and stderr and exits with its exit code. Everything the shell
does around the calls — redirections, pipes, ``$?``, ``set -e``, files it appends to —
happens for real; each call costs an in-process run instead of an interpreter start that
imports the whole package. (The README's quickstart test runs the installed console script
itself.) Standard input is not relayed: a relayed command reads an empty stdin, as commands
run with ``stdin=DEVNULL`` do.

:func:`run_script` is the short form for one ``bash -e -c`` script.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
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


class Relay:
    """A ``reconciler`` program that runs its calls in this process (see the module doc).

    Use as a context manager; :meth:`run` runs one program with the relay first on its
    ``PATH`` and answers its calls until it exits. Calls are answered in the thread that
    called :meth:`run`, one at a time.

    Attributes:
        bin_dir: the directory holding the ``reconciler`` relay program.
        calls: every relayed call so far, as its argument list.
    """

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="relay-")
        root = Path(self._tmp.name)
        self.bin_dir = root / "bin"
        self.bin_dir.mkdir()
        self.calls: list[list[str]] = []
        (root / "relay.py").write_text(RELAY, encoding="utf-8")
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen()
        self._server.settimeout(0.01)
        port = self._server.getsockname()[1]
        program = self.bin_dir / "reconciler"
        # -I -S: no site packages, no environment-driven imports — the relay starts in
        # milliseconds and cannot pick up the package under test by accident.
        program.write_text(
            f'#!/bin/sh\nexec "{sys.executable}" -I -S "{root / "relay.py"}" {port} "$@"\n',
            encoding="utf-8",
        )
        program.chmod(0o755)

    def run(
        self,
        command: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        timeout: float = 300,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in ``cwd`` with ``env`` (the relay put first on its ``PATH``),
        stdin empty; its stdout and stderr captured. Raises ``subprocess.TimeoutExpired``
        (after killing it) when it runs longer than ``timeout`` seconds."""
        shell_env = {**env, "PATH": os.pathsep.join([str(self.bin_dir), env.get("PATH", "")])}
        with tempfile.TemporaryDirectory(prefix="relayed-") as tmp:
            out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
            with out_path.open("w") as out, err_path.open("w") as err:
                process = subprocess.Popen(
                    list(command),
                    cwd=cwd,
                    env=shell_env,
                    stdout=out,
                    stderr=err,
                    stdin=subprocess.DEVNULL,
                )
                try:
                    deadline = time.monotonic() + timeout
                    while process.poll() is None:
                        if time.monotonic() > deadline:
                            raise subprocess.TimeoutExpired(list(command), timeout)
                        try:
                            conn, _ = self._server.accept()
                        except TimeoutError:
                            continue
                        with conn:
                            self._answer(conn)
                finally:
                    if process.poll() is None:
                        process.kill()
                    process.wait()
            return subprocess.CompletedProcess(
                list(command),
                process.returncode,
                out_path.read_text(encoding="utf-8"),
                err_path.read_text(encoding="utf-8"),
            )

    def _answer(self, conn: socket.socket) -> None:
        """Run one relayed ``reconciler`` call and send back its outcome."""
        conn.settimeout(None)
        with conn.makefile("rb") as incoming:
            request = json.load(incoming)
        self.calls.append(list(request["args"]))
        result = run_cli(request["args"], cwd=Path(request["cwd"]), env=request["env"])
        answer = {"code": result.returncode, "stdout": result.stdout, "stderr": result.stderr}
        conn.sendall(json.dumps(answer).encode())

    def close(self) -> None:
        """Close the socket and remove the relay program."""
        self._server.close()
        self._tmp.cleanup()

    def __enter__(self) -> Relay:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def run_script(
    script: str, *, cwd: Path, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """``bash -e -c script`` in ``cwd`` with ``env``; its ``reconciler`` calls run here."""
    with Relay() as relay:
        try:
            return relay.run(["bash", "-e", "-c", script], cwd=cwd, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"script did not finish within {timeout:.0f}s") from None
