"""The postgres state backend against a real server: schema, CAS writes, locks, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import closing
from urllib.parse import quote

import psycopg
import pytest
from pg_helpers import Holder, python_env, sample_state, unique_workspace
from psycopg import conninfo

from reconciler.engine.state_model import State
from reconciler.engine.state_postgres import (
    SCHEMA_VERSION,
    PostgresStateBackend,
    lock_key,
    mask_dsn,
)
from reconciler.errors import StateError, StateLockedError
from tests.cli_inprocess import run_cli
from tests.state.state_helpers import state_echoing_a_secret


@pytest.fixture
def backend(pg_dsn: str) -> PostgresStateBackend:
    b = PostgresStateBackend(pg_dsn, unique_workspace())
    yield b  # type: ignore[misc]
    b.close()


def wait_until(predicate: object, seconds: float = 20.0) -> bool:
    """Poll ``predicate`` until true or the (generous) deadline passes."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


# ---- schema ---------------------------------------------------------------------------------


def test_schema_is_created_once_and_versioned(pg_dsn: str) -> None:
    first = PostgresStateBackend(pg_dsn, unique_workspace())
    assert first.read() is None
    assert first.schema_version() == SCHEMA_VERSION
    second = PostgresStateBackend(pg_dsn, unique_workspace())
    assert second.read() is None
    with psycopg.connect(pg_dsn) as conn:
        rows = conn.execute("SELECT version FROM reconciler_schema_version").fetchall()
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            ).fetchall()
        }
    assert sorted(r[0] for r in rows) == list(range(1, SCHEMA_VERSION + 1))
    assert {"reconciler_workspaces", "reconciler_locks", "reconciler_schema_version"} <= tables
    first.close()
    second.close()


def test_concurrent_first_use_migrates_without_error(pg_dsn: str) -> None:
    # Several processes open the same empty database at once: exactly one migration runs.
    script = textwrap.dedent(
        """
        import sys
        from reconciler.engine.state_postgres import PostgresStateBackend
        print(PostgresStateBackend(sys.argv[1], sys.argv[2]).schema_version())
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, pg_dsn, unique_workspace()],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        for _ in range(3)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 3, outputs
    assert all(out.strip() == str(SCHEMA_VERSION) for out, _ in outputs)


def test_newer_schema_is_refused(pg_dsn: str) -> None:
    with closing(PostgresStateBackend(pg_dsn, "a")) as backend:
        backend.schema_version()
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO reconciler_schema_version (version, description) VALUES (%s, 'future')",
            (SCHEMA_VERSION + 1,),
        )
    with (
        closing(PostgresStateBackend(pg_dsn, "a")) as backend,
        pytest.raises(StateError, match="newer than this reconciler supports.*upgrade"),
    ):
        backend.read()


# ---- reading and writing ----------------------------------------------------------------


def test_round_trip_keeps_everything(backend: PostgresStateBackend) -> None:
    state = sample_state()
    stored = backend.write(state, None)
    assert stored.serial == 1
    back = backend.read()
    assert back is not None
    assert back == stored
    assert back.lineage == state.lineage and back.content_equal(state)
    assert back.resources["job.dumbledore-v0"].attributes["metrics"]["big"] == 2**53 + 1
    again = backend.write(back, 1)
    assert again.serial == 2 and backend.read() == again


def test_workspaces_are_independent(pg_dsn: str) -> None:
    a = PostgresStateBackend(pg_dsn, "team-a")
    b = PostgresStateBackend(pg_dsn, "team-b")
    a.write(sample_state(), None)
    assert b.read() is None
    b.write(State(), None)
    stored_a, stored_b = a.read(), b.read()
    assert stored_a is not None and stored_b is not None
    assert stored_a.lineage != stored_b.lineage and len(stored_a.resources) == 3
    a.close()
    b.close()


@pytest.mark.parametrize(
    ("writes_before", "expected", "found"),
    [
        (0, 3, "no state at all"),
        (1, None, "serial 1"),
        (2, 1, "serial 2"),
        (1, 5, "serial 1"),
    ],
)
def test_compare_and_swap_conflicts(
    backend: PostgresStateBackend, writes_before: int, expected: int | None, found: str
) -> None:
    state = sample_state()
    for i in range(writes_before):
        state = backend.write(state, None if i == 0 else i)
    before = backend.read()
    with pytest.raises(StateError, match=f"state conflict.*found {found}.*nothing was written"):
        backend.write(
            sample_state(n_jobs=5).model_copy(update={"lineage": state.lineage}), expected
        )
    assert backend.read() == before


def test_two_writers_from_the_same_read_only_one_wins(pg_dsn: str) -> None:
    workspace = unique_workspace()
    one, two = PostgresStateBackend(pg_dsn, workspace), PostgresStateBackend(pg_dsn, workspace)
    base = one.write(sample_state(), None)
    read_one, read_two = one.read(), two.read()
    assert read_one is not None and read_two is not None
    read_one.resources.pop("job.dumbledore-v0")
    one.write(read_one, base.serial)
    with pytest.raises(StateError, match="expected serial 1 but found serial 2"):
        two.write(read_two, base.serial)
    final = one.read()
    assert final is not None and "job.dumbledore-v0" not in final.resources
    one.close()
    two.close()


def test_other_lineage_is_refused(backend: PostgresStateBackend) -> None:
    backend.write(sample_state(), None)
    stranger = sample_state()  # new lineage
    with pytest.raises(StateError, match="another lineage"):
        backend.write(stranger, 1)


def test_concurrent_cas_writes_from_processes_exactly_one_wins(pg_dsn: str) -> None:
    workspace = unique_workspace()
    with closing(PostgresStateBackend(pg_dsn, workspace)) as backend:
        backend.write(sample_state(), None)
    script = textwrap.dedent(
        """
        import sys
        from reconciler.engine.state_postgres import PostgresStateBackend
        from reconciler.errors import StateError
        b = PostgresStateBackend(sys.argv[1], sys.argv[2])
        state = b.read()
        print("READY", flush=True)
        sys.stdin.readline()  # every process has read serial 1: now all write at once
        state.resources.pop("job.dumbledore-v0")
        try:
            b.write(state, 1)
            print("WON")
        except StateError:
            print("LOST")
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, pg_dsn, workspace],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout is not None
        assert p.stdout.readline().strip() == "READY"
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    results = [p.communicate(timeout=60) for p in procs]
    outcomes = sorted(out.strip() for out, _ in results)
    assert outcomes == ["LOST"] * 3 + ["WON"], results
    with closing(PostgresStateBackend(pg_dsn, workspace)) as backend:
        final = backend.read()
    assert final is not None and final.serial == 2


def test_corrupt_row_is_a_clear_error(pg_dsn: str) -> None:
    backend = PostgresStateBackend(pg_dsn, "broken")
    backend.write(sample_state(), None)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            'UPDATE reconciler_workspaces SET state = state || \'{"serial": "x"}\'::jsonb '
            "WHERE workspace = 'broken'"
        )
    with pytest.raises(StateError, match="workspace 'broken'.*not a valid reconciler state"):
        backend.read()
    backend.close()


# ---- locking --------------------------------------------------------------------------------


def test_lock_contention_names_the_holder(
    pg_dsn: str, holders: type[Holder], backend: PostgresStateBackend
) -> None:
    holder = holders(pg_dsn, backend.workspace, "apply")
    info = backend.lock_info()
    assert info is not None
    assert (info.id, info.pid, info.operation) == (holder.lock_id, holder.pid, "apply")
    assert info.path == f"postgres:{backend.workspace}"
    with pytest.raises(StateLockedError) as caught:
        backend.acquire_lock("plan", 0)
    message = str(caught.value)
    assert holder.lock_id in message and f"pid {holder.pid}" in message
    assert "--lock-timeout" in message and "reconciler state unlock" in message
    assert caught.value.holder["id"] == holder.lock_id
    holder.release()
    assert backend.lock_info() is None
    with backend.lock("plan") as mine:
        assert backend.lock_info() == mine


def test_lock_timeout_waits_for_the_holder(
    pg_dsn: str, holders: type[Holder], backend: PostgresStateBackend
) -> None:
    holder = holders(pg_dsn, backend.workspace, "apply")
    waiter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import sys
                from reconciler.engine.state_postgres import PostgresStateBackend
                b = PostgresStateBackend(sys.argv[1], sys.argv[2])
                print("WAITING", flush=True)
                info = b.acquire_lock("apply", 60)
                print("GOT", info.id, flush=True)
                """
            ),
            pg_dsn,
            backend.workspace,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=python_env(),
    )
    try:
        assert waiter.stdout is not None
        assert waiter.stdout.readline().strip() == "WAITING"
        assert waiter.poll() is None  # still waiting: the holder has it
        holder.release()
        out, err = waiter.communicate(timeout=60)
        assert waiter.returncode == 0, err
        assert out.startswith("GOT ")
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.wait()


def test_killed_holder_releases_the_lock_and_its_intents_survive(
    pg_dsn: str, holders: type[Holder], backend: PostgresStateBackend
) -> None:
    backend.write(sample_state(with_intent=False), None)
    holder = holders(pg_dsn, backend.workspace, "apply")
    answer = holder.send("write")
    assert answer.startswith("WROTE 2 "), answer
    intent_id = answer.split()[2]
    os.kill(holder.pid, signal.SIGKILL)
    holder.proc.wait(timeout=30)
    # The server notices the dead connection and drops its advisory lock; the stale holder row
    # left behind is then ignored.
    assert wait_until(lambda: backend.lock_info() is None)
    with backend.lock("apply", timeout=30) as info:
        assert backend.lock_info() == info
        state = backend.read()
        assert state is not None and state.serial == 2
        assert state.intents[intent_id].address == "job.crash"  # the next run recovers it
        state.intents.clear()
        backend.write(state, 2)
    recovered = backend.read()
    assert recovered is not None and recovered.intents == {} and recovered.serial == 3


def test_force_unlock_ends_the_holders_connection(
    pg_dsn: str, holders: type[Holder], backend: PostgresStateBackend
) -> None:
    backend.write(sample_state(), None)
    holder = holders(pg_dsn, backend.workspace, "apply")
    with pytest.raises(StateError, match="does not match the current holder"):
        backend.force_unlock("not-the-id")
    backend.force_unlock(holder.lock_id)
    assert backend.lock_info() is None
    # The old holder, still running, can no longer write: its lock is gone.
    answer = holder.send("write")
    assert answer.startswith("ERROR") and "lost the state lock" in answer, answer
    stored = backend.read()
    assert stored is not None and stored.serial == 1
    with backend.lock("apply"):
        pass


def test_force_unlock_without_a_lock_is_an_error(backend: PostgresStateBackend) -> None:
    with pytest.raises(StateError, match="not locked; nothing to unlock"):
        backend.force_unlock("whatever")


def test_own_lock_force_unlock_releases_it(backend: PostgresStateBackend) -> None:
    info = backend.acquire_lock("apply", 0)
    backend.force_unlock(info.id)
    assert backend.lock_info() is None


def test_holder_without_record_is_still_described(
    pg_dsn: str, backend: PostgresStateBackend
) -> None:
    # Someone holds the advisory lock but wrote no holder row (e.g. killed in between).
    with psycopg.connect(pg_dsn, autocommit=True) as other:
        other.execute("SELECT pg_try_advisory_lock(%s)", (lock_key(backend.workspace),))
        pid = other.info.backend_pid
        info = backend.lock_info()
        assert info is not None and info.id == f"pg-backend-{pid}"
        with pytest.raises(StateLockedError, match=f"pg-backend-{pid}"):
            backend.acquire_lock("apply", 0)
        backend.force_unlock(info.id)
        assert other.closed or other.broken or wait_until(lambda: backend.lock_info() is None)
    assert backend.lock_info() is None


# ---- connection errors: clear, and never the password ------------------------------------


def _with(dsn: str, **changes: str) -> str:
    params = conninfo.conninfo_to_dict(dsn)
    params.update(changes)
    return conninfo.make_conninfo("", **params)  # type: ignore[arg-type]


def _unused_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("password", "password authentication failed"),
        ("dbname", "does not exist"),
        ("port", "cannot connect"),
    ],
)
def test_connection_failures_are_clear_and_hide_the_password(
    server_dsn: str, change: str, expected: str
) -> None:
    secret = "Wr0ng-S3cret-Pw"
    real_password = conninfo.conninfo_to_dict(server_dsn).get("password")
    if change == "password":
        if not real_password:
            pytest.skip("the test server's DSN has no password (trust authentication)")
        dsn = _with(server_dsn, password=secret)
    elif change == "dbname":
        dsn = _with(server_dsn, password=secret if not real_password else str(real_password))
        dsn = _with(dsn, dbname="no_such_db_reconciler")
    else:
        dsn = _with(server_dsn, password=secret, port=str(_unused_port()), host="127.0.0.1")
    backend = PostgresStateBackend(dsn, "w", dsn_source="env:RECONCILER_PG_DSN", connect_timeout=5)
    with pytest.raises(StateError) as caught:
        backend.read()
    message = str(caught.value)
    assert expected in message
    assert "env:RECONCILER_PG_DSN" in message and "hint:" in message
    assert secret not in message
    if real_password:
        assert str(real_password) not in message
    if change == "password":
        # Probe the server with the same wrong password: it must really be refused there.
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn, connect_timeout=5).close()


def test_wrong_password_through_the_cli_prints_no_password(server_dsn: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not conninfo.conninfo_to_dict(server_dsn).get("password"):
        pytest.skip("the test server's DSN has no password (trust authentication)")
    secret = "Cli-Wr0ng-S3cret"
    params = conninfo.conninfo_to_dict(server_dsn)
    url = (
        f"postgresql://{params['user']}:{quote(secret)}@{params['host']}:{params['port']}/"
        f"{params['dbname']}"
    )
    (tmp_path / "provider.yaml").write_text(
        "kind: Provider\nname: team\ntype: sandbox\n"
        "state: {backend: postgres, dsn: {env: RECONCILER_PG_DSN}, workspace: w}\n"
    )
    result = run_cli(
        ["state", "migrate", "--to", "file", "-p", "."],
        cwd=tmp_path,
        env=python_env({"RECONCILER_PG_DSN": url}),
    )
    if "No such command 'state'" in result.stderr:
        pytest.skip("the `state` command group is not registered yet")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "password authentication failed" in result.stderr
    assert secret not in result.stdout + result.stderr
    assert quote(secret) not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://u:sup3r secret@[bad:5432/db",
        "host=127.0.0.1 password='unterminated sup3r",
    ],
)
def test_unparsable_dsn_is_never_echoed(dsn: str) -> None:
    assert mask_dsn(dsn) == "<unparsable DSN>"
    with pytest.raises(StateError, match="cannot be parsed") as caught:
        PostgresStateBackend(dsn, "w").read()
    assert "sup3r" not in str(caught.value)


def test_mask_dsn_drops_the_password() -> None:
    masked = mask_dsn("postgresql://ci:hunter2@db.internal:6543/state?sslmode=require")
    assert "hunter2" not in masked
    assert masked == "host=db.internal port=6543 dbname=state user=ci"


# ---- secrets --------------------------------------------------------------------------------


def test_registered_secrets_are_never_stored_in_the_state(backend: PostgresStateBackend) -> None:
    with state_echoing_a_secret() as (state, key):
        backend.write(state, None)
        with closing(psycopg.connect(backend.dsn)) as conn:
            (raw,) = conn.execute(
                "SELECT state::text FROM reconciler_workspaces WHERE workspace = %s",
                (backend.workspace,),
            ).fetchone()
        assert key not in raw and "bad key ***" in raw
        stored = backend.read()
        assert stored is not None
        assert stored.resources["job.x"].attributes == {
            "echo": "server said: bad key ***",
            "***": "as a key too",
        }
