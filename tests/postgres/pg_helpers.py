"""Helpers for the PostgreSQL tests: the test server's DSN, child processes, sample states.

The tests run against a real server named by ``RECONCILER_TEST_PG_DSN`` (``.ci/postgres.sh``
starts one). Without it, or when it cannot be reached, every test here skips and says why.

Hook for the end-to-end suite: with ``RECONCILER_TEST_STATE_BACKEND=postgres`` set,
:func:`e2e_state_backend` returns the Provider ``state`` YAML an end-to-end project should
carry (a fresh workspace on the test server) and the environment the CLI needs for it, so the
same suite runs on the postgres backend; with it unset (or ``file``) it returns ``("", {})``
and the file backend is used.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from reconciler.engine.state_model import Intent, ResourceState, State

REPO_ROOT = Path(__file__).resolve().parents[2]
DSN_ENV = "RECONCILER_TEST_PG_DSN"
BACKEND_ENV = "RECONCILER_TEST_STATE_BACKEND"

_reachable: tuple[bool, str] | None = None
_RUN_SALT = uuid.uuid4().hex  # keyed workspaces are fresh in every test run


def server_status() -> tuple[bool, str]:
    """(usable, reason): whether the test server is configured and answers (cached)."""
    global _reachable
    if _reachable is not None:
        return _reachable
    dsn = os.environ.get(DSN_ENV)
    if not dsn:
        _reachable = (
            False,
            f"{DSN_ENV} is not set: no PostgreSQL server for these tests "
            "(.ci/run starts one with .ci/postgres.sh; `source .ci/postgres.sh` does it locally)",
        )
        return _reachable
    try:
        import psycopg
    except ImportError:
        _reachable = (
            False,
            "psycopg is not installed (pip install 'finetune-reconciler[postgres]')",
        )
        return _reachable
    try:
        with psycopg.connect(dsn, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
        _reachable = (True, "")
    except psycopg.Error as exc:
        # The driver's message names host/port/user, never the password.
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _reachable = (False, f"PostgreSQL server in {DSN_ENV} is unreachable: {first}")
    return _reachable


def unique_workspace(prefix: str = "t") -> str:
    """A workspace name no other test uses (advisory locks are per database)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


E2E_DSN_ENV = "E2E_STATE_PG_DSN"
"""Variable the end-to-end specs read the DSN from (the CLI's test environment drops
``RECONCILER_*`` variables, so the test DSN is passed on under this name)."""


def postgres_state_yaml(workspace: str, dsn_env: str = E2E_DSN_ENV) -> str:
    """A Provider ``state:`` block (YAML lines) naming a postgres workspace."""
    return f"state: {{backend: postgres, dsn: {{env: {dsn_env}}}, workspace: {workspace}}}\n"


def e2e_state_backend(key: str | None = None) -> tuple[str, dict[str, str]]:
    """(Provider ``state`` YAML, extra CLI environment) for the backend the e2e run uses.

    ``RECONCILER_TEST_STATE_BACKEND``: ``file`` (default) gives ``("", {})``; ``postgres``
    gives a workspace on the server in ``RECONCILER_TEST_PG_DSN`` (the caller should skip
    with :func:`server_status`'s reason when that server is not usable). The same ``key``
    (e.g. the project directory, when a test rewrites its specs) gives the same workspace
    within one test run; without a key every call gives a fresh one.
    """
    backend = os.environ.get(BACKEND_ENV, "file") or "file"
    if backend == "file":
        return "", {}
    if backend != "postgres":
        raise ValueError(f"{BACKEND_ENV} must be 'file' or 'postgres', not {backend!r}")
    workspace = unique_workspace("e2e") if key is None else e2e_workspace(key)
    return postgres_state_yaml(workspace), {E2E_DSN_ENV: os.environ[DSN_ENV]}


def e2e_workspace(key: str) -> str:
    """The postgres workspace :func:`e2e_state_backend` names for ``key`` in this test run."""
    digest = hashlib.sha256(f"{_RUN_SALT}:{key}".encode()).hexdigest()
    return f"e2e-{digest[:12]}"


def drop_e2e_state(key: str) -> None:
    """Delete the state of ``key``'s workspace on the test server, as deleting a state file
    does on the file backend (the next command finds no state)."""
    import psycopg

    with psycopg.connect(os.environ[DSN_ENV], autocommit=True) as conn:
        conn.execute(
            "DELETE FROM reconciler_workspaces WHERE workspace = %s", (e2e_workspace(key),)
        )


def python_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for child processes that import the package from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra or {})
    return env


# A child that takes the lock, then obeys commands on stdin: "write" (CAS-write the state it
# read, adding an intent), "release"; it answers each on stdout. Killing it is the crash test.
HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from reconciler.engine.state_model import Intent, State
    from reconciler.engine.state_postgres import PostgresStateBackend
    from reconciler.errors import ReconcilerError

    backend = PostgresStateBackend(sys.argv[1], sys.argv[2])
    info = backend.acquire_lock(sys.argv[3], float(sys.argv[4]))
    print("LOCKED", info.id, flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "write":
            try:
                current = backend.read()
                state = current or State()
                expected = current.serial if current is not None else None
                intent = Intent(address="job.crash", operation="create_job",
                                fingerprint="f" * 64, created_at=time.time())
                state.intents[intent.id] = intent
                stored = backend.write(state, expected)
                print("WROTE", stored.serial, intent.id, flush=True)
            except ReconcilerError as exc:
                print("ERROR", " ".join(str(exc).split()), flush=True)
        elif command == "release":
            backend.release_lock(info)
            print("RELEASED", flush=True)
            break
    """
)


class Holder:
    """A child process holding the workspace lock until told otherwise or killed."""

    def __init__(
        self, dsn: str, workspace: str, operation: str = "apply", timeout: float = 0.0
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, dsn, workspace, operation, str(timeout)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        line = self._line()
        if not line.startswith("LOCKED "):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            self.stop()
            raise AssertionError(f"holder did not lock: {line!r} {err}")
        self.lock_id = line.split()[1]
        self.pid = self.proc.pid

    def _line(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline()

    def send(self, command: str) -> str:
        """Send one command and return the child's answer line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line().strip()

    def release(self) -> None:
        assert self.send("release") == "RELEASED"
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def sample_state(n_jobs: int = 2, with_intent: bool = True) -> State:
    """A state with typical content: a file, jobs with attributes and history, an intent."""
    state = State()
    state.resources["dataset.ultrachat[train]"] = ResourceState(
        address="dataset.ultrachat[train]",
        type="file",
        remote_id="5f3c1c3e-0000-4000-8000-000000000001",
        fingerprint="a" * 64,
        attributes={"filename": "ultrachat-train-abc.jsonl", "sha256": "b" * 64, "bytes": 1234},
    )
    for i in range(n_jobs):
        address = f"job.dumbledore-v{i}"
        state.resources[address] = ResourceState(
            address=address,
            type="job",
            remote_id=f"9a1b2c3d-0000-4000-8000-{i:012d}",
            fingerprint=f"{i:064x}",
            attributes={
                "status": "SUCCESS",
                "fine_tuned_model": f"ft:open-mistral-7b:abc:{i}",
                "hyperparameters": {"learning_rate": 0.0001, "training_steps": 10},
                "metrics": {"train_loss": 1.2345678901234567, "big": 2**53 + 1},
                "description": 'Zauberer — ünïcödé "quoted" \\ backslash',
            },
            history=[{"remote_id": "old-job", "status": "CANCELLED", "replaced_at": 1.5}],
        )
    if with_intent:
        intent = Intent(
            address="job.pending",
            operation="create_job",
            fingerprint="c" * 64,
            lookup={"model": "open-mistral-7b", "suffix": "pending", "training_files": ["x"]},
            created_at=1732560000.125,
        )
        state.intents[intent.id] = intent
    return state
