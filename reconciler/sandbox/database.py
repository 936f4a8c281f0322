"""The sandbox's SQLite database: its tables, and how a connection to it is opened.

Tables: ``meta`` (the organisation id and the URL-signing secret), ``files``, ``jobs``,
``events``, ``checkpoints``, ``models`` and ``journal`` (recorded requests). The schema only
ever grows by ``CREATE ... IF NOT EXISTS``, so a data directory written by an older sandbox
opens unchanged. :mod:`.store` is the only user.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

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
    return conn
