"""The sandbox's persistence: one SQLite database plus uploaded contents on disk.

Layout under ``data_dir``: ``sandbox.db`` (the tables of :mod:`.database`) and
``files/<file id>`` (uploaded bytes). One connection is shared by the request threads and
every operation holds :attr:`Store.lock` inside an explicit ``BEGIN IMMEDIATE`` transaction,
so concurrent requests never interleave half-done writes and a crash leaves the database
consistent.

Rows never leave this module: reads return the typed records of :mod:`.records`. The time
comes from one injected :class:`~.clock.Clock`. A data directory belongs to one API dialect
(recorded in it): opening it for another is refused, since the ids and shapes differ.

Lists come two ways: by page (``page``/``page_size``, with a total) for the Mistral dialect,
and by cursor (``after`` an object id, ``limit``, ``has_more``) for the OpenAI one.

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
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from reconciler.sandbox import lifecycle
from reconciler.sandbox.clock import Clock, SystemClock
from reconciler.sandbox.database import connect
from reconciler.sandbox.lifecycle import JobPlan, Pause
from reconciler.sandbox.records import (
    CheckpointRecord,
    EventRecord,
    FileRecord,
    JobRecord,
    JobSpec,
    ModelRecord,
)

#: Columns of ``files`` that :class:`FileRecord` carries, in its field order.
_FILE_FIELDS = tuple(f.name for f in fields(FileRecord))


class Conflict(Exception):
    """A similar job is already active (becomes HTTP 409).

    Attributes:
        job_id: the active similar job.
        status: its status.
    """

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(job_id, status)
        self.job_id = job_id
        self.status = status


class UnknownCursor(Exception):
    """A list's ``after`` names no object of that list (becomes HTTP 400).

    Attributes:
        cursor: the id given.
    """

    def __init__(self, cursor: str) -> None:
        super().__init__(cursor)
        self.cursor = cursor


class WrongDialect(ValueError):
    """The data directory holds another API dialect's objects."""


#: A job's answer to a request that changes its course: (job or None when unknown, refusal).
Outcome = tuple[JobRecord | None, str | None]


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


class Store:
    """SQLite-backed state of one sandbox (see module docstring).

    Attributes:
        data_dir: the data directory.
        files_dir: where uploaded contents are stored (``data_dir/files``).
        clock: the time source, with the simulated-time scale.
        seed: server seed (loss curves).
        lock: held around every database operation.
        org_id: the sandbox's 8-hex organisation id (persisted).
        url_secret: the key signing file URLs (persisted).
        dialect: the API dialect whose objects the directory holds (persisted).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        clock: Clock | None = None,
        seed: int = 0,
        dialect: str = "mistral",
    ) -> None:
        self.data_dir = data_dir
        self.files_dir = data_dir / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.seed = seed
        self.lock = threading.RLock()
        self._conn = connect(data_dir / "sandbox.db")
        try:
            with self.tx() as c:
                self.org_id = self._meta(c, "org_id", lambda: secrets.token_hex(4))
                self.url_secret = self._meta(c, "url_secret", lambda: secrets.token_hex(32))
                # A directory written before dialects existed holds Mistral objects, if any.
                used = c.execute(
                    "SELECT EXISTS (SELECT 1 FROM files) OR EXISTS (SELECT 1 FROM jobs)"
                ).fetchone()[0]
                owner = self._meta(c, "dialect", lambda: "mistral" if used else dialect)
        except BaseException:
            self._conn.close()
            raise
        if owner != dialect:
            self._conn.close()
            raise WrongDialect(
                f"the data directory {data_dir} holds the files and jobs of the {owner} "
                f"dialect, which the {dialect} dialect cannot serve: give it another data "
                f"directory, or serve this one with the {owner} dialect"
            )
        self.dialect = dialect

    # -- plumbing -------------------------------------------------------------------------

    @property
    def time_scale(self) -> float:
        """Speed of simulated time (the clock's scale)."""
        return self.clock.scale

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

    @contextmanager
    def _advanced(self) -> Iterator[sqlite3.Connection]:
        """A transaction in which every due job transition is materialised first."""
        with self.tx() as c:
            self._advance(c, self.clock.now())
            yield c

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

    def file_path(self, file_id: str) -> Path:
        """Where the bytes of a file are stored."""
        return self.files_dir / file_id

    def add_file(self, tmp_path: Path, file: FileRecord, *, dedupe: bool = True) -> FileRecord:
        """Store an uploaded file.

        With ``dedupe`` (the Mistral way), an upload with the content and name of a live file
        returns that file instead. ``tmp_path`` holds the bytes: moved into place, or removed
        on a dedupe hit.
        """
        with self.tx() as c:
            row = (
                c.execute(
                    "SELECT * FROM files WHERE sha256 = ? AND filename = ? "
                    "AND deleted = 0 ORDER BY seq LIMIT 1",
                    (file.sha256, file.filename),
                ).fetchone()
                if dedupe
                else None
            )
            if row is not None:
                tmp_path.unlink(missing_ok=True)
                return _file_record(row)
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM files").fetchone()[0]
            tmp_path.replace(self.file_path(file.id))
            values = {**asdict(file), "problems": json.dumps(list(file.problems))}
            c.execute(
                f"INSERT INTO files (seq, {', '.join(values)}) "
                f"VALUES (?, {','.join('?' * len(values))})",
                (seq, *values.values()),
            )
            return file

    def get_file(self, file_id: str) -> FileRecord | None:
        """The live (not deleted) file with this id."""
        return self.files([file_id]).get(file_id)

    def files(self, ids: list[str]) -> dict[str, FileRecord]:
        """Live files by id (missing ids are absent from the result)."""
        with self.lock:
            out: dict[str, FileRecord] = {}
            for fid in ids:
                row = self._conn.execute(
                    "SELECT * FROM files WHERE id = ? AND deleted = 0", (fid,)
                ).fetchone()
                if row is not None:
                    out[fid] = _file_record(row)
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
    ) -> tuple[list[FileRecord], int]:
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
        return [_file_record(r) for r in rows], int(total)

    def files_after(
        self, *, after: str | None, limit: int, purpose: str | None, newest_first: bool
    ) -> tuple[list[FileRecord], bool]:
        """Up to ``limit`` live files after the file ``after`` (a cursor), and whether more
        follow. Raises :class:`UnknownCursor` when ``after`` names no file."""
        where, args = ["deleted = 0"], []
        if purpose is not None:
            where.append("purpose = ?")
            args.append(purpose)
        with self.lock:
            rows, more = self._page(self._conn, "files", where, args, after, limit, newest_first)
        return [_file_record(r) for r in rows], more

    @staticmethod
    def _page(
        c: sqlite3.Connection,
        table: str,
        where: list[str],
        args: list[Any],
        after: str | None,
        limit: int,
        newest_first: bool,
    ) -> tuple[list[sqlite3.Row], bool]:
        """One cursor page of ``table`` in creation order: rows after ``after``, more?"""
        if after is not None:
            # A deleted object's row stays, so its id still marks a place in the list.
            row = c.execute(f"SELECT seq FROM {table} WHERE id = ?", (after,)).fetchone()
            if row is None:
                raise UnknownCursor(after)
            where = [*where, "seq < ?" if newest_first else "seq > ?"]
            args = [*args, row["seq"]]
        rows = c.execute(
            f"SELECT * FROM {table} WHERE {' AND '.join(where)} "
            f"ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?",
            [*args, limit + 1],
        ).fetchall()
        return rows[:limit], len(rows) > limit

    def delete_file(self, file_id: str) -> bool:
        """Delete a live file (row kept as deleted, bytes removed). False if absent."""
        with self.tx() as c:
            cur = c.execute("UPDATE files SET deleted = 1 WHERE id = ? AND deleted = 0", (file_id,))
            if cur.rowcount == 0:
                return False
        self.file_path(file_id).unlink(missing_ok=True)
        return True

    # -- jobs -----------------------------------------------------------------------------

    def create_job(self, spec: JobSpec) -> JobRecord:
        """Insert a job unless one with the same similarity key is active.

        Raises :class:`Conflict` naming the active one. Checked and inserted in one
        transaction, so of concurrent similar requests exactly one wins.
        """
        now = self.clock.now()
        with self.tx() as c:
            self._advance(c, now)
            marks = ",".join("?" * len(lifecycle.ACTIVE))
            similar = c.execute(
                f"SELECT id, status FROM jobs WHERE similarity = ? AND status IN ({marks}) LIMIT 1",
                (spec.similarity, *sorted(lifecycle.ACTIVE)),
            ).fetchone()
            if similar is not None:
                raise Conflict(similar["id"], similar["status"])
            seq = c.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            columns = {
                **_job_columns(spec),
                "seq": seq,
                "status": "QUEUED",
                "modified_at": int(spec.plan.created),
                "next_at": spec.plan.created,
            }
            c.execute(
                f"INSERT INTO jobs ({','.join(columns)}) VALUES ({','.join('?' * len(columns))})",
                list(columns.values()),
            )
            return self._materialize(c, self._job(c, spec.id), now)

    def advance(self) -> None:
        """Materialise every job transition that is due (see module docstring)."""
        with self._advanced():
            pass

    def _advance(self, c: sqlite3.Connection, now: float) -> None:
        rows = c.execute(
            "SELECT * FROM jobs WHERE next_at IS NOT NULL AND next_at <= ?", (now,)
        ).fetchall()
        for row in rows:
            self._materialize(c, self._job_record(row), now)

    def _job_record(self, row: sqlite3.Row) -> JobRecord:
        validation_files = tuple(json.loads(row["validation_files"]))
        pauses = tuple(Pause(at, resumed) for at, resumed in json.loads(row["pauses"]))
        return JobRecord(
            plan=JobPlan(
                job_id=row["id"],
                created=row["created"],
                steps=row["steps"],
                auto_start=bool(row["auto_start"]),
                validation_error=row["validation_error"],
                fail_step=row["fail_step"],
                has_validation=bool(validation_files),
                seed=self.seed,
            ),
            model=row["model"],
            job_type=row["job_type"],
            suffix=row["suffix"],
            training_files=tuple(json.loads(row["training_files"])),
            validation_files=validation_files,
            hyperparameters=json.loads(row["hyperparameters"]),
            integrations=_loads(row["integrations"]),
            repositories=json.loads(row["repositories"]),
            classifier_targets=_loads(row["classifier_targets"]),
            similarity=row["similarity"],
            tokens_per_step=int(row["tokens_per_step"]),
            data_tokens=int(row["data_tokens"]),
            model_name=row["model_name"],
            metadata=_loads(row["metadata"]),
            extra=json.loads(row["extra"]),
            status=row["status"],
            modified_at=int(row["modified_at"]),
            started=row["started"],
            cancel_requested=row["cancel_requested"],
            n_events=int(row["n_events"]),
            n_checkpoints=int(row["n_checkpoints"]),
            validated=bool(row["validated"]),
            fine_tuned_model=row["fine_tuned_model"],
            pauses=pauses,
        )

    def _job(self, c: sqlite3.Connection, job_id: str) -> JobRecord:
        return self._job_record(c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def _materialize(self, c: sqlite3.Connection, job: JobRecord, now: float) -> JobRecord:
        """Record the job's transitions and checkpoints up to ``now``; returns it updated."""
        plan = job.plan
        scale = self.clock.scale
        transitions = lifecycle.timeline(plan, job.started, job.cancel_requested, scale, job.pauses)
        cps = lifecycle.checkpoints(plan, job.started, job.cancel_requested, scale, job.pauses)
        n_events = job.n_events
        status = job.status
        modified = job.modified_at
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
                (job.id, idx, "status-updated", _dumps(data), int(tr.at)),
            )
            n_events = idx + 1
            status = tr.status
            modified = max(modified, int(tr.at))
        n_cps = job.n_checkpoints
        for cp in cps[n_cps:]:
            if cp.at > now:
                break
            c.execute(
                "INSERT INTO checkpoints (job_id, step_number, created_at, train_loss, valid_loss, "
                "valid_mean_token_accuracy) VALUES (?,?,?,?,?,?)",
                (
                    job.id,
                    cp.step,
                    int(cp.at),
                    cp.train_loss,
                    cp.valid_loss,
                    cp.valid_mean_token_accuracy,
                ),
            )
            n_cps += 1
        validated = job.validated or (
            status not in ("QUEUED", "VALIDATING", "FAILED_VALIDATION")
            and any(t.status == "VALIDATED" for t in transitions[:n_events])
        )
        fine_tuned = job.fine_tuned_model
        if status == "SUCCESS" and fine_tuned is None:
            fine_tuned = self._create_model(c, job, int(transitions[n_events - 1].at))
        future = [t.at for t in transitions[n_events:]] + [cp.at for cp in cps[n_cps:]]
        next_at = min(future) if future else None
        c.execute(
            "UPDATE jobs SET status = ?, modified_at = ?, n_events = ?, n_checkpoints = ?, "
            "validated = ?, fine_tuned_model = ?, next_at = ? WHERE id = ?",
            (status, modified, n_events, n_cps, int(validated), fine_tuned, next_at, job.id),
        )
        return self._job(c, job.id)

    def _create_model(self, c: sqlite3.Connection, job: JobRecord, at: int) -> str:
        model_id = job.model_name
        if model_id is None:
            date = time.strftime("%Y%m%d", time.gmtime(at))
            middle = job.suffix or self.org_id
            prefix = "ft:classifier:" if job.job_type == "classifier" else "ft:"
            model_id = f"{prefix}{job.model}:{middle}:{date}:{job.id[:8]}"
        # The base the model descends from (the base's own root when it is fine-tuned too).
        root = job.extra.get("root", job.model)
        targets = job.classifier_targets
        c.execute(
            "INSERT OR IGNORE INTO models (id, job_id, root, model_type, created, classifier_targets) "
            "VALUES (?,?,?,?,?,?)",
            (
                model_id,
                job.id,
                root,
                job.job_type,
                at,
                json.dumps(targets) if targets is not None else None,
            ),
        )
        return model_id

    def job(self, job_id: str) -> JobRecord | None:
        """The stored job (after advancing), or None."""
        with self._advanced() as c:
            row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            return self._job_record(row) if row is not None else None

    def job_details(self, job_id: str) -> tuple[list[EventRecord], list[CheckpointRecord]]:
        """(events, checkpoints) of a job, newest first."""
        with self.lock:
            events = self._conn.execute(
                "SELECT name, data, created_at FROM events WHERE job_id = ? ORDER BY idx DESC",
                (job_id,),
            ).fetchall()
            cps = self._conn.execute(
                "SELECT step_number, created_at, train_loss, valid_loss, valid_mean_token_accuracy "
                "FROM checkpoints WHERE job_id = ? ORDER BY step_number DESC",
                (job_id,),
            ).fetchall()
        return (
            [EventRecord(e["name"], _loads(e["data"]), e["created_at"]) for e in events],
            [CheckpointRecord(*cp) for cp in cps],
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
    ) -> tuple[list[JobRecord], int]:
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
        with self._advanced() as c:
            total = c.execute(f"SELECT COUNT(*) FROM jobs WHERE {clause}", args).fetchone()[0]
            rows = c.execute(
                f"SELECT * FROM jobs WHERE {clause} ORDER BY seq DESC LIMIT ? OFFSET ?",
                [*args, page_size, page * page_size],
            ).fetchall()
        return [self._job_record(r) for r in rows], int(total)

    def jobs_after(
        self, *, after: str | None, limit: int, metadata: Mapping[str, str] | None
    ) -> tuple[list[JobRecord], bool]:
        """Up to ``limit`` jobs after the job ``after`` (a cursor), newest first, and whether
        more follow. ``metadata``: only jobs carrying every pair; an empty mapping means jobs
        without metadata. Raises :class:`UnknownCursor` when ``after`` names no job."""
        where: list[str] = ["1 = 1"]
        args: list[Any] = []
        if metadata is not None and not metadata:
            where.append("metadata IS NULL")
        for key, value in (metadata or {}).items():
            where.append(
                "EXISTS (SELECT 1 FROM json_each(jobs.metadata) WHERE key = ? AND value = ?)"
            )
            args.extend([key, value])
        with self._advanced() as c:
            rows, more = self._page(c, "jobs", where, args, after, limit, True)
        return [self._job_record(r) for r in rows], more

    def start_job(self, job_id: str) -> Outcome:
        """Start a VALIDATED job. Returns (job, None) or (job or None, why it cannot start)."""

        def refusal(job: JobRecord) -> str | None:
            if job.status == "VALIDATED":
                return None
            return f"Job {job_id} is {job.status}; only a VALIDATED job can be started."

        return self._change(job_id, refusal, lambda job, now: {"started": now})

    def cancel_job(self, job_id: str) -> Outcome:
        """Request cancellation of a job that is not finished (see :meth:`start_job`)."""

        def refusal(job: JobRecord) -> str | None:
            if job.status not in lifecycle.TERMINAL and job.cancel_requested is None:
                return None
            return (
                f"Job {job_id} is {job.status}; only a job that has not finished and is "
                "not already being cancelled can be cancelled."
            )

        return self._change(job_id, refusal, lambda job, now: {"cancel_requested": now})

    def pause_job(self, job_id: str) -> Outcome:
        """Pause a RUNNING job (see :meth:`start_job`)."""

        def refusal(job: JobRecord) -> str | None:
            if job.status == "RUNNING" and job.cancel_requested is None:
                return None
            return f"Job {job_id} is {job.status}; only a RUNNING job can be paused."

        return self._change(
            job_id, refusal, lambda job, now: {"pauses": _pauses([*job.pauses, Pause(now)])}
        )

    def resume_job(self, job_id: str) -> Outcome:
        """Resume a PAUSED job (see :meth:`start_job`)."""

        def refusal(job: JobRecord) -> str | None:
            if job.status == "PAUSED" and job.cancel_requested is None:
                return None
            return f"Job {job_id} is {job.status}; only a PAUSED job can be resumed."

        def resumed(job: JobRecord, now: float) -> dict[str, Any]:
            *before, last = job.pauses
            return {"pauses": _pauses([*before, Pause(last.at, now)])}

        return self._change(job_id, refusal, resumed)

    def _change(
        self,
        job_id: str,
        refusal: Callable[[JobRecord], str | None],
        change: Callable[[JobRecord, float], dict[str, Any]],
    ) -> Outcome:
        """Record a request that changes a job's course now (the columns ``change`` gives
        for the job and the time), unless ``refusal`` says why the job's status forbids it."""
        now = self.clock.now()
        with self.tx() as c:
            self._advance(c, now)
            row = c.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None, None
            job = self._job_record(row)
            problem = refusal(job)
            if problem:
                return job, problem
            sets = {**change(job, now), "next_at": now}
            c.execute(
                f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in sets)} WHERE id = ?",
                [*sets.values(), job_id],
            )
            return self._materialize(c, self._job(c, job_id), now), None

    # -- fine-tuned models ----------------------------------------------------------------

    @staticmethod
    def _model_record(row: sqlite3.Row) -> ModelRecord:
        return ModelRecord(
            id=row["id"],
            job_id=row["job_id"],
            root=row["root"],
            model_type=row["model_type"],
            created=row["created"],
            name=row["name"],
            description=row["description"],
            archived=bool(row["archived"]),
            classifier_targets=_loads(row["classifier_targets"]),
        )

    def models(self) -> list[ModelRecord]:
        """Every live fine-tuned model, oldest first."""
        with self._advanced() as c:
            rows = c.execute(
                "SELECT * FROM models WHERE deleted = 0 ORDER BY created, id"
            ).fetchall()
        return [self._model_record(r) for r in rows]

    def model(self, model_id: str) -> ModelRecord | None:
        """A live fine-tuned model by id, or None."""
        return self.update_model(model_id, {})

    def update_model(self, model_id: str, changes: dict[str, Any]) -> ModelRecord | None:
        """Set ``name``/``description``/``archived``/``deleted`` of a live model.

        Returns the model as it was left (None if there is no live model with that id).
        """
        allowed = {"name", "description", "archived", "deleted"}
        with self._advanced() as c:
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
                row = c.execute("SELECT * FROM models WHERE id = ?", (model_id,)).fetchone()
            return self._model_record(row)

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
        """Recorded requests with id > ``since``, oldest first (the API's JSON objects)."""
        with self.lock:
            rows = self._conn.execute(
                "SELECT * FROM journal WHERE id > ? ORDER BY id", (since,)
            ).fetchall()
        return [dict(r) for r in rows]

    def journal_clear(self) -> int:
        """Forget every recorded request; returns how many were removed."""
        with self.tx() as c:
            return int(c.execute("DELETE FROM journal").rowcount)


def _file_record(row: sqlite3.Row) -> FileRecord:
    values = {name: row[name] for name in _FILE_FIELDS}
    values["problems"] = tuple(json.loads(values["problems"]))
    return FileRecord(**values)


def _pauses(pauses: list[Pause]) -> str:
    return json.dumps([[p.at, p.resumed] for p in pauses])


def _job_columns(spec: JobSpec) -> dict[str, Any]:
    """The stored columns of a new job."""
    plan = spec.plan
    integrations = spec.integrations or []
    return {
        "id": spec.id,
        "created": plan.created,
        "model": spec.model,
        "job_type": spec.job_type,
        "auto_start": int(plan.auto_start),
        "suffix": spec.suffix,
        "training_files": json.dumps(list(spec.training_files)),
        "validation_files": json.dumps(list(spec.validation_files)),
        "hyperparameters": json.dumps(spec.hyperparameters),
        "integrations": json.dumps(spec.integrations) if spec.integrations is not None else None,
        "repositories": json.dumps(spec.repositories),
        "classifier_targets": (
            json.dumps(spec.classifier_targets) if spec.classifier_targets is not None else None
        ),
        "similarity": spec.similarity,
        "steps": plan.steps,
        "tokens_per_step": spec.tokens_per_step,
        "data_tokens": spec.data_tokens,
        "validation_error": plan.validation_error,
        "fail_step": plan.fail_step,
        # Denormalised for the list filters (json_each in SQL).
        "wandb_projects": json.dumps([i["project"] for i in integrations if "project" in i]),
        "wandb_names": json.dumps([i["name"] for i in integrations if i.get("name")]),
        "model_name": spec.model_name,
        "metadata": json.dumps(spec.metadata) if spec.metadata is not None else None,
        "extra": json.dumps(spec.extra),
    }
