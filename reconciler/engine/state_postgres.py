"""The ``postgres`` state backend: one shared state per workspace in a PostgreSQL database.

For teams whose plan/apply runs on many CI runners: the state lives in a database every runner
reaches, with the same content and the same guarantees as the file backend
(:class:`~reconciler.engine.state_model.StateBackend`):

* **Schema.** The backend creates and migrates its own tables. ``reconciler_schema_version``
  records which of :data:`MIGRATIONS` ran; they are applied in order, once, under a
  transaction-scoped advisory lock so two runners starting together do not race.
* **Compare-and-swap.** ``write`` is one ``UPDATE ... WHERE workspace AND serial AND lineage``
  (or an ``INSERT`` against the primary key for the first write); zero rows touched means
  someone else wrote first, and nothing is stored.
* **Locking.** ``pg_try_advisory_lock`` on a dedicated connection held for the whole command.
  The database releases it when that connection ends, so a runner killed with SIGKILL or cut off
  from the network never leaves a lock behind. Who holds it (host, pid, operation, time) is a
  row in ``reconciler_locks``, trusted only while ``pg_locks`` shows that the advisory lock is
  really held by the connection that wrote the row.

psycopg 3 is an optional dependency (the ``postgres`` extra); it is imported when a backend is
first used so the rest of the package works without it.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic

from reconciler.engine.state_model import LockInfo, State, StateBackend, locked_error
from reconciler.errors import StateError, StateLockedError
from reconciler.redact import scrub, scrub_obj

if TYPE_CHECKING:
    import psycopg

#: Ordered schema migrations: (version, description, statements). Append only; never edit a
#: released entry, because databases that already ran it will not run it again.
MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "workspaces and lock holders",
        [
            """
            CREATE TABLE reconciler_workspaces (
                workspace  text PRIMARY KEY,
                lineage    text NOT NULL,
                serial     bigint NOT NULL,
                state      jsonb NOT NULL,
                updated_at timestamptz NOT NULL DEFAULT now()
            )
            """,
            """
            CREATE TABLE reconciler_locks (
                workspace   text PRIMARY KEY,
                lock_id     text NOT NULL,
                backend_pid integer NOT NULL,
                info        jsonb NOT NULL,
                created_at  timestamptz NOT NULL DEFAULT now()
            )
            """,
        ],
    ),
]

#: The newest schema version this code knows.
SCHEMA_VERSION = MIGRATIONS[-1][0]

# Advisory-lock key that serialises schema migrations across all runners of one database.
_SCHEMA_LOCK_KEY = int.from_bytes(hashlib.sha256(b"reconciler:schema").digest()[:8]) >> 1


def lock_key(workspace: str) -> int:
    """The advisory-lock key of a workspace: 63 bits of sha256, so it is a positive bigint.

    The prefix keeps the key apart from advisory locks other applications take in the
    same database.
    """
    digest = hashlib.sha256(b"reconciler:workspace:" + workspace.encode()).digest()
    return int.from_bytes(digest[:8]) >> 1


def mask_dsn(dsn: str) -> str:
    """The DSN rebuilt without its password, for messages (``host=... dbname=... user=...``).

    A DSN that cannot be parsed is never echoed (the parser's message may quote the
    password); it becomes ``<unparsable DSN>``.
    """
    try:
        from psycopg import conninfo

        params = conninfo.conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - any parse failure: never show the raw text
        return "<unparsable DSN>"
    params.pop("password", None)
    shown = {k: params[k] for k in ("host", "hostaddr", "port", "dbname", "user") if k in params}
    return " ".join(f"{k}={v}" for k, v in shown.items()) or "<default connection>"


def _password_of(dsn: str) -> str | None:
    try:
        from psycopg import conninfo

        value = conninfo.conninfo_to_dict(dsn).get("password")
    except Exception:  # noqa: BLE001 - unparsable: nothing to scrub beyond the DSN itself
        return None
    return str(value) if value else None


_F = TypeVar("_F", bound=Callable[..., Any])


def _serialized(method: _F) -> _F:
    """Run a backend method under the backend's mutex.

    A psycopg connection must not interleave two transactions from different threads, and
    an apply works with several threads; state writes are rare, so one mutex is enough.
    """

    @functools.wraps(method)
    def wrapper(self: PostgresStateBackend, *args: Any, **kwargs: Any) -> Any:
        with self._mutex:
            return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


class PostgresStateBackend(StateBackend):
    """State of one workspace in a PostgreSQL database.

    Args:
        dsn: libpq connection string or URI (``postgresql://user:pw@host:5432/db``). It holds
            a password, so it is never printed: messages use :func:`mask_dsn`.
        workspace: the workspace name; many workspaces share one database.
        dsn_source: where the DSN came from (e.g. ``env:RECONCILER_PG_DSN``), named in
            connection errors so the user knows what to fix.
        connect_timeout: seconds to wait for a connection before giving up.
    """

    def __init__(
        self,
        dsn: str,
        workspace: str,
        *,
        dsn_source: str | None = None,
        connect_timeout: int = 10,
    ) -> None:
        self.dsn = dsn
        self.workspace = workspace
        self.dsn_source = dsn_source
        self.connect_timeout = connect_timeout
        self._masked = mask_dsn(dsn)
        self._password = _password_of(dsn)
        self._key = lock_key(workspace)
        self._conn: psycopg.Connection[Any] | None = None
        self._lock_conn: psycopg.Connection[Any] | None = None
        self._lock_held: LockInfo | None = None
        self._schema_ready = False
        self._mutex = threading.RLock()

    # ---- helpers ----------------------------------------------------------------------------

    @property
    def path(self) -> str:
        """What is locked, as shown in lock info: ``postgres:WORKSPACE``."""
        return f"postgres:{self.workspace}"

    def describe(self) -> str:
        """E.g. ``postgres workspace 'ml' (host=db port=5432 dbname=reconciler user=ci)``."""
        return f"postgres workspace '{self.workspace}' ({self._masked})"

    def _scrub(self, text: str) -> str:
        # Belt and braces: libpq messages do not quote the password, but never risk it; nor
        # any other secret of the run (the DSN may not have been registered: state migrate).
        return scrub(text, (self._password, self.dsn))

    def _where(self) -> str:
        source = f" from {self.dsn_source}" if self.dsn_source else ""
        return f"postgres state backend ({self._masked}{source})"

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            import psycopg
        except ImportError as exc:
            from reconciler.engine.backends import POSTGRES_INSTALL_HINT

            raise StateError(POSTGRES_INSTALL_HINT) from exc
        if self._masked == "<unparsable DSN>":
            source = f" in {self.dsn_source}" if self.dsn_source else ""
            raise StateError(
                f"the postgres connection string{source} cannot be parsed; expected "
                "postgresql://USER:PASSWORD@HOST:PORT/DBNAME or 'host=... dbname=... user=...' "
                "(percent-encode special characters in the password)"
            )
        try:
            return psycopg.connect(
                self.dsn,
                autocommit=True,
                connect_timeout=self.connect_timeout,
                application_name=f"reconciler:{self.workspace}",
            )
        except psycopg.Error as exc:
            reason = self._scrub(" ".join(str(exc).split()))
            raise StateError(
                f"cannot connect to the {self._where()}: {reason}\n"
                "    hint: check that the server is running and reachable from here, and that "
                "the user, password and database in the connection string are right "
                "(the database must exist; the backend creates its own tables)."
            ) from None

    def _data(self) -> psycopg.Connection[Any]:
        """The connection for reads and writes, opened (and the schema migrated) on first use."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = self._connect()
            self._schema_ready = False
        if not self._schema_ready:
            self._migrate(self._conn)
            self._schema_ready = True
        return self._conn

    @contextmanager
    def _db_errors(self, action: str) -> Iterator[None]:
        """Translate driver errors into StateError naming the action and the server."""
        import psycopg

        try:
            yield
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StateError(
                f"{action} in the {self._where()}: permission denied "
                f"({self._scrub(str(exc).strip())})\n"
                "    hint: the role needs CREATE on the schema (first run) and "
                "SELECT/INSERT/UPDATE/DELETE on the reconciler_* tables; e.g. make it the "
                "database owner or GRANT CREATE ON SCHEMA public TO <role>."
            ) from None
        except psycopg.Error as exc:
            raise StateError(
                f"{action} in the {self._where()}: {self._scrub(' '.join(str(exc).split()))}"
            ) from None

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Create or upgrade the schema to :data:`SCHEMA_VERSION`, once per database."""
        with self._db_errors("cannot create or migrate the state schema"), conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK_KEY,))
            conn.execute(
                """
                CREATE TABLE IF NOT EXISTS reconciler_schema_version (
                    version     integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            row = conn.execute(
                "SELECT coalesce(max(version), 0) FROM reconciler_schema_version"
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > SCHEMA_VERSION:
                raise StateError(
                    f"the {self._where()} has state schema version {current}, newer than this "
                    f"reconciler supports ({SCHEMA_VERSION}); upgrade reconciler on this runner."
                )
            for version, description, statements in MIGRATIONS:
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO reconciler_schema_version (version, description) VALUES (%s, %s)",
                    (version, description),
                )

    @_serialized
    def schema_version(self) -> int:
        """The schema version recorded in the database (migrating first if needed)."""
        conn = self._data()
        with self._db_errors("cannot read the schema version"):
            row = conn.execute("SELECT max(version) FROM reconciler_schema_version").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    # ---- state ------------------------------------------------------------------------------

    @_serialized
    def read(self) -> State | None:
        """The workspace's state, or None when nothing was written yet."""
        conn = self._data()
        with self._db_errors(f"cannot read the state of workspace '{self.workspace}'"):
            row = conn.execute(
                "SELECT state FROM reconciler_workspaces WHERE workspace = %s",
                (self.workspace,),
            ).fetchone()
        if row is None:
            return None
        try:
            return State.model_validate(row[0])
        except pydantic.ValidationError as exc:
            raise StateError(
                f"the state of workspace '{self.workspace}' in the {self._where()} is not a "
                f"valid reconciler state ({exc.error_count()} problem(s), first: "
                f"{exc.errors()[0]['msg']} at {'.'.join(map(str, exc.errors()[0]['loc']))}); "
                "restore it from a backup or the database's history"
            ) from None

    def write(self, state: State, expected_serial: int | None) -> State:
        """Compare-and-swap: store ``state`` with serial ``expected_serial + 1`` and the bound
        target (:meth:`~reconciler.engine.state_model.StateBackend.store_target`).

        Raises StateError when the stored serial (or lineage) is not the expected one;
        nothing is written then.
        """
        serial = (expected_serial or 0) + 1
        stored = self.store_target(state).model_copy(update={"serial": serial})
        return self._store(stored, expected_serial, check_lineage=True)

    def store_exact(self, state: State, expected_serial: int | None) -> State:
        """Compare-and-swap like :meth:`write`, but keep ``state.serial`` as given.

        Used by ``state migrate`` so a state moved between backends keeps its serial and
        its history continues. Unlike ``write`` it may replace a state of another lineage
        (the migration decided that already).
        """
        return self._store(state, expected_serial, check_lineage=False)

    @_serialized
    def _store(self, stored: State, expected_serial: int | None, *, check_lineage: bool) -> State:
        from psycopg.types.json import Jsonb

        self._check_lock_alive()
        conn = self._data()
        # Scrubbed like the file backend's text: no secret belongs in a state, and if one ever
        # reached it (a server echoing a key into an object's attributes) it is stored as ***.
        doc = Jsonb(scrub_obj(stored.model_dump(mode="json")))
        with self._db_errors(f"cannot write the state of workspace '{self.workspace}'"):
            with conn.transaction():
                if expected_serial is None:
                    cur = conn.execute(
                        """
                        INSERT INTO reconciler_workspaces (workspace, lineage, serial, state)
                        VALUES (%s, %s, %s, %s)
                        ON CONFLICT (workspace) DO NOTHING
                        """,
                        (self.workspace, stored.lineage, stored.serial, doc),
                    )
                else:
                    cur = conn.execute(
                        """
                        UPDATE reconciler_workspaces
                           SET lineage = %s, serial = %s, state = %s, updated_at = now()
                         WHERE workspace = %s AND serial = %s AND (lineage = %s OR NOT %s)
                        """,
                        (
                            stored.lineage,
                            stored.serial,
                            doc,
                            self.workspace,
                            expected_serial,
                            stored.lineage,
                            check_lineage,
                        ),
                    )
                touched = cur.rowcount
            if touched != 1:
                row = conn.execute(
                    "SELECT serial, lineage FROM reconciler_workspaces WHERE workspace = %s",
                    (self.workspace,),
                ).fetchone()
        if touched != 1:
            raise self._conflict(expected_serial, stored.lineage, row)
        return stored

    def _conflict(
        self, expected: int | None, lineage: str, row: tuple[Any, ...] | None
    ) -> StateError:
        if row is None:
            found = "no state at all"
        elif row[1] != lineage:
            found = f"a state of another lineage ({row[1]}, serial {row[0]})"
        else:
            found = f"serial {row[0]}"
        wanted = "no state yet" if expected is None else f"serial {expected}"
        return StateError(
            f"state conflict in {self.describe()}: expected {wanted} but found {found}; "
            "another run wrote the state in between, and nothing was written.\n"
            "    hint: run plan again against the current state (and make every writer take "
            "the state lock)."
        )

    # ---- locking ----------------------------------------------------------------------------

    def _check_lock_alive(self) -> None:
        """Refuse to write when this process's lock connection died (lock no longer ours)."""
        if self._lock_conn is None:
            return
        try:
            self._lock_conn.execute("SELECT 1")
        except Exception:  # noqa: BLE001 - any failure means the connection (and lock) is gone
            raise StateError(
                f"lost the state lock on {self.path}: its database connection ended (server "
                "restart, network cut, or `reconciler state unlock` by someone else); nothing "
                "was written. Run the command again."
            ) from None

    @_serialized
    def acquire_lock(self, operation: str, timeout: float) -> LockInfo:
        """Take the workspace's advisory lock, polling up to ``timeout`` seconds."""
        from psycopg.types.json import Jsonb

        if self._lock_held is not None:
            raise StateError(f"this process already holds the lock on {self.path}")
        self._data()  # schema (reconciler_locks) must exist before the holder row is written
        conn = self._connect()
        deadline = time.monotonic() + max(timeout, 0.0)
        delay = 0.1
        try:
            with self._db_errors(f"cannot take the state lock on {self.path}"):
                while True:
                    row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
                    if row and row[0]:
                        break
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise self._locked_error(timeout)
                    time.sleep(min(delay, remaining))
                    delay = min(delay * 2, 1.0)
                info = LockInfo.for_this_process(operation, self.path)
                # A row left by a holder that died is overwritten: we hold the lock now.
                conn.execute(
                    """
                    INSERT INTO reconciler_locks (workspace, lock_id, backend_pid, info)
                    VALUES (%s, %s, pg_backend_pid(), %s)
                    ON CONFLICT (workspace) DO UPDATE
                       SET lock_id = excluded.lock_id, backend_pid = excluded.backend_pid,
                           info = excluded.info, created_at = now()
                    """,
                    (self.workspace, info.id, Jsonb(info.model_dump(mode="json"))),
                )
        except BaseException:
            conn.close()  # also releases the advisory lock if it was taken
            raise
        self._lock_conn = conn
        self._lock_held = info
        return info

    def _locked_error(self, timeout: float) -> StateLockedError:
        """The postgres backend's lock error (see :func:`locked_error`)."""
        holder = self.lock_info()
        note = (
            ". A holder that died releases the lock by itself; if it hangs, run: reconciler "
            f"state unlock {holder.id} (this ends its database connection)"
            if holder is not None
            else ""
        )
        return locked_error(holder, str(self.path), timeout, note)

    @_serialized
    def release_lock(self, info: LockInfo) -> None:
        """Release the lock this process holds (closing its connection releases it for sure)."""
        conn, self._lock_conn, self._lock_held = self._lock_conn, None, None
        if conn is None:
            return
        try:
            if not conn.closed and not conn.broken:
                conn.execute(
                    "DELETE FROM reconciler_locks WHERE workspace = %s AND lock_id = %s",
                    (self.workspace, info.id),
                )
                conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except Exception:  # noqa: BLE001, S110 - closing the connection below releases the lock
            pass
        finally:
            conn.close()

    def _holder_pid(self, conn: psycopg.Connection[Any]) -> int | None:
        """The database backend pid that holds the workspace's advisory lock, if any."""
        row = conn.execute(
            """
            SELECT l.pid FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND l.classid::bigint = %s AND l.objid::bigint = %s
            """,
            (self._key >> 32, self._key & 0xFFFFFFFF),
        ).fetchone()
        return int(row[0]) if row else None

    @_serialized
    def _holder(self) -> tuple[LockInfo, int] | None:
        conn = self._data()
        with self._db_errors(f"cannot read the lock info of {self.path}"):
            pid = self._holder_pid(conn)
            if pid is None:
                return None
            row = conn.execute(
                "SELECT info, backend_pid FROM reconciler_locks WHERE workspace = %s",
                (self.workspace,),
            ).fetchone()
            if row is not None and int(row[1]) == pid:
                return LockInfo.model_validate(row[0]), pid
            # Held, but the holder has not written its row yet (or it is stale): describe the
            # connection from pg_stat_activity so the user still sees who it is.
            act = conn.execute(
                "SELECT usename, client_addr, extract(epoch FROM backend_start) "
                "FROM pg_stat_activity WHERE pid = %s",
                (pid,),
            ).fetchone()
        user = str(act[0]) if act and act[0] else "unknown"
        host = str(act[1]) if act and act[1] else "unknown"
        created = float(act[2]) if act and act[2] is not None else time.time()
        info = LockInfo(
            id=f"pg-backend-{pid}",
            operation="unknown (holder has not recorded its details)",
            who=f"{user}@{host}",
            host=host,
            pid=pid,
            user=user,
            created=created,
            path=self.path,
        )
        return info, pid

    def lock_info(self) -> LockInfo | None:
        """The live holder of the workspace lock, or None (a dead holder's row is ignored)."""
        holder = self._holder()
        return holder[0] if holder else None

    @_serialized
    def force_unlock(self, lock_id: str) -> None:
        """End the database connection of the holder with id ``lock_id``, releasing its lock.

        The holder's next state write then fails ("lost the state lock") instead of
        overwriting anything. Needs permission to signal the holder's backend (same role,
        or membership in ``pg_signal_backend``); otherwise raises StateError saying so.
        """
        import psycopg

        if self._lock_held is not None and self._lock_held.id == lock_id:
            # Our own lock: releasing it is all "unlock" means.
            self.release_lock(self._lock_held)
            return
        holder = self._holder()
        if holder is None:
            raise StateError(
                f"{self.path}: the state is not locked; nothing to unlock (lock ID {lock_id}). "
                "A lock is released automatically when its holder's connection ends."
            )
        info, pid = holder
        if info.id != lock_id:
            raise StateError(
                f"{self.path}: lock ID {lock_id} does not match the current holder's lock ID "
                f"{info.id} ({info.who}, pid {info.pid}, operation {info.operation}). Check "
                "'reconciler state lock-info' and pass the current ID."
            )
        conn = self._data()
        try:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        except psycopg.errors.InsufficientPrivilege:
            raise StateError(
                f"cannot end the connection holding {self.path} (database backend pid {pid}): "
                "permission denied.\n    hint: run it as the role that holds the lock, or ask "
                f"a database administrator to run SELECT pg_terminate_backend({pid}); "
                "or GRANT pg_signal_backend TO <your role>."
            ) from None
        except psycopg.Error as exc:
            raise StateError(
                f"cannot end the connection holding {self.path}: {self._scrub(str(exc).strip())}"
            ) from None
        # pg_terminate_backend only signals; wait (briefly) until the lock is really gone.
        deadline = time.monotonic() + 10.0
        with self._db_errors(f"cannot check the lock of {self.path}"):
            while self._holder_pid(conn) == pid and time.monotonic() < deadline:
                time.sleep(0.05)
            still_held = self._holder_pid(conn) == pid
        if still_held:  # (a false result alone just means the connection had ended already)
            raise StateError(
                f"the connection holding {self.path} (database backend pid {pid}) did not end; "
                "try again, or ask a database administrator to run "
                f"SELECT pg_terminate_backend({pid})."
            )
        with self._db_errors(f"cannot clear the lock record of {self.path}"):
            conn.execute(
                "DELETE FROM reconciler_locks WHERE workspace = %s AND lock_id = %s",
                (self.workspace, lock_id),
            )

    @_serialized
    def close(self) -> None:
        """Close the connections (a still-held lock is released with its connection)."""
        for conn in (self._lock_conn, self._conn):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001, S110 - closing is best effort
                    pass
        self._lock_conn = self._conn = None
        self._lock_held = None
