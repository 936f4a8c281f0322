"""The sandbox's persistence: one SQLite database plus uploaded contents on disk.

Layout under ``data_dir``: ``sandbox.db`` (files, jobs, events, checkpoints, models, the
request journal, and a ``meta`` table with the organisation id and the URL-signing secret)
and ``files/<file id>`` (uploaded bytes). SQLite runs in WAL mode; one connection is shared
by the request threads and every operation holds :attr:`Store.lock` inside an explicit
``BEGIN IMMEDIATE`` transaction, so concurrent requests never interleave half-done writes and a
crash leaves the database consistent.

Jobs advance lazily: :meth:`Store.advance` materialises, for every job whose next transition
is due, the events, checkpoints, metadata and fine-tuned model that :mod:`.lifecycle` says
lie in the past. Every read calls it first.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.sandbox import lifecycle
from reconciler.sandbox.lifecycle import JobPlan

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    filename TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    sample_type TEXT NOT NULL,
    source TEXT NOT NULL,
    num_lines INTEGER,
    mimetype TEXT,
    signature TEXT,
    expires_at INTEGER,
    visibility TEXT,
    sha256 TEXT NOT NULL,
    samples INTEGER NOT NULL DEFAULT 0,
    invalid INTEGER NOT NULL DEFAULT 0,
    approx_tokens INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS files_dedupe ON files (sha256, filename, deleted);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    created REAL NOT NULL,
    model TEXT NOT NULL,
    job_type TEXT NOT NULL,
    auto_start INTEGER NOT NULL,
    suffix TEXT,
    status TEXT NOT NULL,
    modified_at INTEGER NOT NULL,
    training_files TEXT NOT NULL,
    validation_files TEXT NOT NULL,
    hyperparameters TEXT NOT NULL,
    integrations TEXT,
    repositories TEXT NOT NULL,
    classifier_targets TEXT,
    similarity TEXT NOT NULL,
    steps INTEGER NOT NULL,
    tokens_per_step INTEGER NOT NULL,
    data_tokens INTEGER NOT NULL,
    validation_error TEXT,
    fail_step INTEGER,
    started REAL,
    cancel_requested REAL,
    n_events INTEGER NOT NULL DEFAULT 0,
    n_checkpoints INTEGER NOT NULL DEFAULT 0,
    validated INTEGER NOT NULL DEFAULT 0,
    fine_tuned_model TEXT,
    next_at REAL,
    wandb_projects TEXT NOT NULL DEFAULT '[]',
    wandb_names TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX IF NOT EXISTS jobs_next ON jobs (next_at);
CREATE INDEX IF NOT EXISTS jobs_similar ON jobs (similarity, status);
CREATE TABLE IF NOT EXISTS events (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    name TEXT NOT NULL,
    data TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS checkpoints (
    job_id TEXT NOT NULL,
    step_number INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    train_loss REAL,
    valid_loss REAL,
    valid_mean_token_accuracy REAL,
    PRIMARY KEY (job_id, step_number)
);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY,
    job_id TEXT NOT NULL,
    root TEXT NOT NULL,
    model_type TEXT NOT NULL,
    created INTEGER NOT NULL,
    name TEXT,
    description TEXT,
    archived INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    classifier_targets TEXT
);
CREATE TABLE IF NOT EXISTS journal (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    status INTEGER,
    fault TEXT,
    duration_ms REAL
);
"""

#: Price used for the cost estimate: USD per million trained tokens, and the minimum fee.
USD_PER_MILLION_TOKENS = 2.0
MINIMUM_FEE_USD = 1.0


class Conflict(Exception):
    """A similar job is already active (becomes HTTP 409)."""


@dataclass(frozen=True)
class StoredFile:
    """An uploaded file.

    Attributes:
        path: where its bytes are stored.
        obj: its API object (``FileSchema`` shape).
    """

    path: Path
    obj: dict[str, Any]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class Store:
    """SQLite-backed state of one sandbox (see module docstring).

    Attributes:
        data_dir: the data directory.
        files_dir: where uploaded contents are stored (``data_dir/files``).
        time_scale: simulated-time speed used to compute job progress.
        seed: server seed (loss curves).
        lock: held around every database operation.
    """

    def __init__(self, data_dir: Path, *, time_scale: float = 1.0, seed: int = 0) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.time_scale = time_scale
        self.seed = seed
        self.lock = threading.RLock()
        self._conn = sqlite3.connect(
            data_dir / "sandbox.db", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        # executescript runs its own COMMIT, so it stays outside tx().
        with self.lock:
            self._conn.executescript(SCHEMA)
        with self.tx() as c:
            self.org_id = self._meta(c, "org_id", lambda: secrets.token_hex(4))
            self.url_secret = self._meta(c, "url_secret", lambda: secrets.token_hex(32))

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the body in one IMMEDIATE transaction."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        """Close the database connection."""
        with self.lock:
            self._conn.close()

    @staticmethod
    def _meta(c: sqlite3.Connection, key: str, default: Any) -> str:
        row = c.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row:
            return str(row["value"])
        value = str(default())
        c.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
        return value

    # -- files ----------------------------------------------------------------------------

    def add_file(
        self, tmp_path: Path, obj: dict[str, Any], extra: dict[str, Any]
    ) -> dict[str, Any]:
        """Store an uploaded file, or return the existing one with the same content and name.

        ``tmp_path`` holds the bytes (moved into place, or removed on a dedupe hit); ``obj`` is
        the API object to store; ``extra`` has ``sha256``, ``samples``, ``invalid`` and
        ``approx_tokens``.
        """
        with self.tx() as c:
            row = c.execute(
                "SELECT * FROM files WHERE sha256 = ? AND filename = ? AND deleted = 0 "
                "ORDER BY seq LIMIT 1",
                (extra["sha256"], obj["filename"]),
            ).fetchone()
            if row is not None:
                tmp_path.unlink(missing_ok=True)
                return self._file_obj(row)
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM files").fetchone()[0]
            tmp_path.replace(self.files_dir / obj["id"])
            c.execute(
                "INSERT INTO files (id, seq, filename, bytes, created_at, purpose, sample_type, "
                "source, num_lines, mimetype, signature, expires_at, visibility, sha256, samples, "
                "invalid, approx_tokens) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    obj["id"],
                    seq,
                    obj["filename"],
                    obj["bytes"],
                    obj["created_at"],
                    obj["purpose"],
                    obj["sample_type"],
                    obj["source"],
                    obj["num_lines"],
                    obj["mimetype"],
                    obj["signature"],
                    obj["expires_at"],
                    obj["visibility"],
                    extra["sha256"],
                    extra["samples"],
                    extra["invalid"],
                    extra["approx_tokens"],
                ),
            )
            return dict(obj)

    @staticmethod
    def _file_obj(row: sqlite3.Row) -> dict[str, Any]:
        return {
            "id": row["id"],
            "object": "file",
            "bytes": row["bytes"],
            "created_at": row["created_at"],
            "filename": row["filename"],
            "purpose": row["purpose"],
            "sample_type": row["sample_type"],
            "source": row["source"],
            "num_lines": row["num_lines"],
            "mimetype": row["mimetype"],
            "signature": row["signature"],
            "expires_at": row["expires_at"],
            "visibility": row["visibility"],
        }

    def get_file(self, file_id: str) -> StoredFile | None:
        """The live (not deleted) file with this id."""
        with self.lock:
            row = self._conn.execute(
                "SELECT * FROM files WHERE id = ? AND deleted = 0", (file_id,)
            ).fetchone()
        if row is None:
            return None
        return StoredFile(self.files_dir / row["id"], self._file_obj(row))

    def file_rows(self, ids: list[str]) -> dict[str, sqlite3.Row]:
        """Live file rows by id (missing ids are absent from the result)."""
        with self.lock:
            out: dict[str, sqlite3.Row] = {}
            for fid in ids:
                row = self._conn.execute(
                    "SELECT * FROM files WHERE id = ? AND deleted = 0", (fid,)
                ).fetchone()
                if row is not None:
                    out[fid] = row
            return out

    def list_files(
        self,
        *,
        page: int,
        page_size: int,
        sample_types: list[str] | None,
        sources: list[str] | None,
        search: str | None,
        purpose: str | None,
        mimetypes: list[str] | None,
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of live files, newest first, and the total matching."""
        where = ["deleted = 0"]
        args: list[Any] = []
        for column, values in (
            ("sample_type", sample_types),
            ("source", sources),
            ("mimetype", mimetypes),
        ):
            if values:
                where.append(f"{column} IN ({','.join('?' * len(values))})")
                args.extend(values)
        if search:
            # Substring match on the filename, taken literally (no LIKE wildcards).
            where.append("instr(filename, ?) > 0")
            args.append(search)
        if purpose:
            where.append("purpose = ?")
            args.append(purpose)
        clause = " AND ".join(where)
        with self.lock:
            total = self._conn.execute(
                f"SELECT COUNT(*) FROM files WHERE {clause}", args
            ).fetchone()[0]
            rows = self._conn.execute(
                f"SELECT * FROM files WHERE {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*args, page_size, page * page_size],
            ).fetchall()
        return [self._file_obj(r) for r in rows], int(total)

    def delete_file(self, file_id: str) -> bool:
        """Delete a live file (row kept as deleted, bytes removed). False if absent."""
        with self.tx() as c:
            cur = c.execute("UPDATE files SET deleted = 1 WHERE id = ? AND deleted = 0", (file_id,))
            if cur.rowcount == 0:
                return False
        (self.files_dir / file_id).unlink(missing_ok=True)
        return True

    # -- jobs -----------------------------------------------------------------------------

    def create_job(self, job: dict[str, Any], plan: JobPlan) -> str:
        """Insert a job unless a similar one is active (raises :class:`Conflict`).

        ``job`` holds the stored columns (see :data:`SCHEMA`); ``plan`` its fixed future.
        """
        now = time.time()
        with self.tx() as c:
            self._advance(c, now)
            marks = ",".join("?" * len(lifecycle.ACTIVE))
            similar = c.execute(
                f"SELECT id, status FROM jobs WHERE similarity = ? AND status IN ({marks}) LIMIT 1",
                (job["similarity"], *sorted(lifecycle.ACTIVE)),
            ).fetchone()
            if similar is not None:
                raise Conflict(
                    f"A similar job is already {similar['status']} (id {similar['id']}): same "
                    "model, files, hyperparameters, suffix and job type. Cancel it or change the "
                    "request."
                )
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            columns = {
                **job,
                "seq": seq,
                "created": plan.created,
                "status": "QUEUED",
                "modified_at": int(plan.created),
                "steps": plan.steps,
                "validation_error": plan.validation_error,
                "fail_step": plan.fail_step,
                "next_at": plan.created,
            }
            names = ",".join(columns)
            c.execute(
                f"INSERT INTO jobs ({names}) VALUES ({','.join('?' * len(columns))})",
                list(columns.values()),
            )
            self._materialize(
                c, c.execute("SELECT * FROM jobs WHERE id = ?", (job["id"],)).fetchone(), now
            )
        return str(job["id"])

    def advance(self) -> None:
        """Materialise every job transition that is due (see module docstring)."""
        with self.tx() as c:
            self._advance(c, time.time())

    def _advance(self, c: sqlite3.Connection, now: float) -> None:
        rows = c.execute(
            "SELECT * FROM jobs WHERE next_at IS NOT NULL AND next_at <= ?", (now,)
        ).fetchall()
        for row in rows:
            self._materialize(c, row, now)

    def plan_of(self, row: sqlite3.Row) -> JobPlan:
        """The fixed plan of a stored job."""
        return JobPlan(
            job_id=row["id"],
            created=row["created"],
            steps=row["steps"],
            auto_start=bool(row["auto_start"]),
            validation_error=row["validation_error"],
            fail_step=row["fail_step"],
            has_validation=bool(json.loads(row["validation_files"])),
            seed=self.seed,
        )

    def _materialize(self, c: sqlite3.Connection, row: sqlite3.Row, now: float) -> None:
        plan = self.plan_of(row)
        scale = self.time_scale
        transitions = lifecycle.timeline(plan, row["started"], row["cancel_requested"], scale)
        cps = lifecycle.checkpoints(plan, row["started"], row["cancel_requested"], scale)
        n_events = row["n_events"]
        status = row["status"]
        modified = row["modified_at"]
        for idx, tr in enumerate(transitions[n_events:], start=n_events):
            if tr.at > now:
                break
            data: dict[str, Any] = {"status": tr.status}
            if tr.status == "FAILED_VALIDATION" and plan.validation_error:
                data["error"] = plan.validation_error
            if tr.status == "FAILED":
                data["error"] = "The training run failed (injected fault)."
            c.execute(
                "INSERT INTO events (job_id, idx, name, data, created_at) VALUES (?,?,?,?,?)",
                (row["id"], idx, "status-updated", _dumps(data), int(tr.at)),
            )
            n_events = idx + 1
            status = tr.status
            modified = max(modified, int(tr.at))
        n_cps = row["n_checkpoints"]
        for cp in cps[n_cps:]:
            if cp.at > now:
                break
            c.execute(
                "INSERT INTO checkpoints (job_id, step_number, created_at, train_loss, valid_loss, "
                "valid_mean_token_accuracy) VALUES (?,?,?,?,?,?)",
                (
                    row["id"],
                    cp.step,
                    int(cp.at),
                    cp.train_loss,
                    cp.valid_loss,
                    cp.valid_mean_token_accuracy,
                ),
            )
            n_cps += 1
        validated = row["validated"] or int(
            status not in ("QUEUED", "VALIDATING", "FAILED_VALIDATION")
            and any(t.status == "VALIDATED" for t in transitions[:n_events])
        )
        fine_tuned = row["fine_tuned_model"]
        if status == "SUCCESS" and fine_tuned is None:
            fine_tuned = self._create_model(c, row, int(transitions[n_events - 1].at))
        future = [t.at for t in transitions[n_events:]] + [cp.at for cp in cps[n_cps:]]
        next_at = min(future) if future else None
        c.execute(
            "UPDATE jobs SET status = ?, modified_at = ?, n_events = ?, n_checkpoints = ?, "
            "validated = ?, fine_tuned_model = ?, next_at = ? WHERE id = ?",
            (status, modified, n_events, n_cps, validated, fine_tuned, next_at, row["id"]),
        )

    def _create_model(self, c: sqlite3.Connection, row: sqlite3.Row, at: int) -> str:
        date = time.strftime("%Y%m%d", time.gmtime(at))
        middle = row["suffix"] or self.org_id
        prefix = "ft:classifier:" if row["job_type"] == "classifier" else "ft:"
        model_id = f"{prefix}{row['model']}:{middle}:{date}:{row['id'][:8]}"
        c.execute(
            "INSERT OR IGNORE INTO models (id, job_id, root, model_type, created, classifier_targets) "
            "VALUES (?,?,?,?,?,?)",
            (model_id, row["id"], row["model"], row["job_type"], at, row["classifier_targets"]),
        )
        return model_id

    def job_row(self, job_id: str) -> sqlite3.Row | None:
        """The stored job (after advancing), or None."""
        with self.tx() as c:
            self._advance(c, time.time())
            row: sqlite3.Row | None = c.execute(
                "SELECT * FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
            return row

    def job_details(self, job_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(events, checkpoints) of a job, newest first, in API shape."""
        with self.lock:
            events = self._conn.execute(
                "SELECT * FROM events WHERE job_id = ? ORDER BY idx DESC", (job_id,)
            ).fetchall()
            cps = self._conn.execute(
                "SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step_number DESC", (job_id,)
            ).fetchall()
        return (
            [
                {
                    "name": e["name"],
                    "data": json.loads(e["data"]) if e["data"] else None,
                    "created_at": e["created_at"],
                }
                for e in events
            ],
            [
                {
                    "metrics": {
                        "train_loss": cp["train_loss"],
                        "valid_loss": cp["valid_loss"],
                        "valid_mean_token_accuracy": cp["valid_mean_token_accuracy"],
                    },
                    "step_number": cp["step_number"],
                    "created_at": cp["created_at"],
                }
                for cp in cps
            ],
        )

    def list_jobs(
        self,
        *,
        page: int,
        page_size: int,
        model: str | None,
        created_after: float | None,
        created_before: float | None,
        status: str | None,
        wandb_project: str | None,
        wandb_name: str | None,
        suffix: str | None,
    ) -> tuple[list[sqlite3.Row], int]:
        """One page of jobs, newest first, and the total matching (filters combine as AND)."""
        filters: list[tuple[Any, str]] = [
            (model, "model = ?"),
            (created_after, "created >= ?"),
            (created_before, "created <= ?"),
            (status, "status = ?"),
            (suffix, "suffix = ?"),
            (wandb_project, "EXISTS (SELECT 1 FROM json_each(wandb_projects) WHERE value = ?)"),
            (wandb_name, "EXISTS (SELECT 1 FROM json_each(wandb_names) WHERE value = ?)"),
        ]
        where = ["1 = 1"] + [sql for value, sql in filters if value is not None]
        args: list[Any] = [value for value, _ in filters if value is not None]
        clause = " AND ".join(where)
        with self.tx() as c:
            self._advance(c, time.time())
            total = c.execute(f"SELECT COUNT(*) FROM jobs WHERE {clause}", args).fetchone()[0]
            rows = c.execute(
                f"SELECT * FROM jobs WHERE {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*args, page_size, page * page_size],
            ).fetchall()
        return rows, int(total)

    def start_job(self, job_id: str) -> tuple[sqlite3.Row | None, str | None]:
        """Start a VALIDATED job. Returns (row, None) or (row/None, why it cannot start)."""
        now = time.time()
        with self.tx() as c:
            self._advance(c, now)
            row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None, None
            if row["status"] != "VALIDATED":
                return row, (
                    f"Job {job_id} is {row['status']}; only a VALIDATED job can be started."
                )
            c.execute("UPDATE jobs SET started = ?, next_at = ? WHERE id = ?", (now, now, job_id))
            row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            self._materialize(c, row, now)
            return c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone(), None

    def cancel_job(self, job_id: str) -> tuple[sqlite3.Row | None, str | None]:
        """Request cancellation of a job that is not finished (see :meth:`start_job`)."""
        now = time.time()
        with self.tx() as c:
            self._advance(c, now)
            row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None, None
            if row["status"] in lifecycle.TERMINAL or row["cancel_requested"] is not None:
                return row, (
                    f"Job {job_id} is {row['status']}; only a job that has not finished and is "
                    "not already being cancelled can be cancelled."
                )
            c.execute(
                "UPDATE jobs SET cancel_requested = ?, next_at = ? WHERE id = ?", (now, now, job_id)
            )
            row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            self._materialize(c, row, now)
            return c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone(), None

    # -- fine-tuned models ----------------------------------------------------------------

    def model_rows(self) -> list[sqlite3.Row]:
        """Every live fine-tuned model, oldest first."""
        with self.tx() as c:
            self._advance(c, time.time())
            return c.execute(
                "SELECT * FROM models WHERE deleted = 0 ORDER BY created, id"
            ).fetchall()

    def model_row(self, model_id: str) -> sqlite3.Row | None:
        """A live fine-tuned model by id, or None."""
        with self.tx() as c:
            self._advance(c, time.time())
            row: sqlite3.Row | None = c.execute(
                "SELECT * FROM models WHERE id = ? AND deleted = 0", (model_id,)
            ).fetchone()
            return row

    def update_model(self, model_id: str, changes: dict[str, Any]) -> sqlite3.Row | None:
        """Set ``name``/``description``/``archived``/``deleted`` of a live model."""
        allowed = {"name", "description", "archived", "deleted"}
        with self.tx() as c:
            self._advance(c, time.time())
            row = c.execute(
                "SELECT * FROM models WHERE id = ? AND deleted = 0", (model_id,)
            ).fetchone()
            if row is None:
                return None
            sets = {k: v for k, v in changes.items() if k in allowed}
            if sets:
                c.execute(
                    f"UPDATE models SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                    [*sets.values(), model_id],
                )
            result: sqlite3.Row = c.execute(
                "SELECT * FROM models WHERE id = ?", (model_id,)
            ).fetchone()
            return result

    # -- journal --------------------------------------------------------------------------

    def journal_add(
        self,
        *,
        ts: float,
        method: str,
        path: str,
        query: str,
        status: int | None,
        fault: str | None,
        duration_ms: float,
    ) -> None:
        """Record one request."""
        with self.tx() as c:
            c.execute(
                "INSERT INTO journal (ts, method, path, query, status, fault, duration_ms) "
                "VALUES (?,?,?,?,?,?,?)",
                (ts, method, path, query, status, fault, round(duration_ms, 3)),
            )

    def journal(self, since: int = 0) -> list[dict[str, Any]]:
        """Recorded requests with id > ``since``, oldest first."""
        with self.lock:
            rows = self._conn.execute(
                "SELECT * FROM journal WHERE id > ? ORDER BY id", (since,)
            ).fetchall()
        return [dict(r) for r in rows]

    def journal_clear(self) -> int:
        """Forget every recorded request; returns how many were removed."""
        with self.tx() as c:
            return int(c.execute("DELETE FROM journal").rowcount)


def cost_estimate(train_tokens: int) -> float:
    """USD estimate for training ``train_tokens`` tokens (rate plus a minimum fee)."""
    return round(max(MINIMUM_FEE_USD, train_tokens / 1e6 * USD_PER_MILLION_TOKENS), 4)
