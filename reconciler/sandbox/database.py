"""The sandbox's SQLite database: its tables, and how a connection to it is opened.

Tables: ``meta`` (the organisation id, the URL-signing secret and the API dialect the data
belongs to), ``files``, ``jobs``, ``events``, ``checkpoints``, ``models`` and ``journal``
(recorded requests). The schema only ever grows — by ``CREATE ... IF NOT EXISTS`` and by the
columns of :data:`ADDED_COLUMNS`, added when missing — so a data directory written by an
older sandbox opens unchanged. :mod:`.store` is the only user.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

#: Largest integer SQLite stores: request numbers beyond it are refused before they reach it.
INT64_MAX = 2**63 - 1

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


#: Columns added after the first release, per table: name -> declaration. Every one has a
#: default, so rows written before it existed read as that default.
ADDED_COLUMNS: dict[str, dict[str, str]] = {
    "files": {
        # The first problems found in the file, rendered (JSON list of strings).
        "problems": "TEXT NOT NULL DEFAULT '[]'",
    },
    "jobs": {
        # Pauses of the run (JSON list of [paused_at, resumed_at or null]).
        "pauses": "TEXT NOT NULL DEFAULT '[]'",
        # The fine-tuned model's id when it is decided at creation, else NULL.
        "model_name": "TEXT",
        # User metadata (JSON object of strings), or NULL.
        "metadata": "TEXT",
        # What only one API dialect knows about the job (JSON object).
        "extra": "TEXT NOT NULL DEFAULT '{}'",
    },
}


def _add_columns(conn: sqlite3.Connection) -> None:
    """Add the columns of :data:`ADDED_COLUMNS` that a table lacks."""
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for name, declaration in columns.items():
            if name in present:
                continue
            try:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {declaration}")
            except sqlite3.OperationalError as exc:
                # Another process opening the same directory added it first.
                if "duplicate column" not in str(exc):
                    raise


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the database at ``path``: WAL mode, rows by name, autocommit.

    Autocommit (``isolation_level=None``) because the store runs its own ``BEGIN IMMEDIATE``
    transactions; the connection is shared by the server's threads under the store's lock.
    """
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    # executescript runs its own COMMIT, so it runs before any transaction of the store.
    conn.executescript(SCHEMA)
    _add_columns(conn)
    return conn
