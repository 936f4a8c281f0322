"""The postgres backend binds its state to a target exactly like the file backend."""

from __future__ import annotations

from pg_helpers import unique_workspace

from reconciler.engine.state_postgres import PostgresStateBackend
from tests.state.state_helpers import check_target_binding


def test_the_postgres_backend_records_and_keeps_its_target(pg_dsn: str) -> None:
    backend = PostgresStateBackend(pg_dsn, unique_workspace())
    try:
        check_target_binding(backend)
    finally:
        backend.close()
