"""Fixtures for the PostgreSQL tests: skip without a server; a fresh schema per test.

Each test gets its own PostgreSQL schema (through ``search_path`` in the DSN), so the
backend's self-created tables start from nothing and tests never see each other's rows.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_helpers import DSN_ENV, Holder, server_status


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test of this directory ``postgres`` (select with ``-m postgres``)."""
    here = str(Path(__file__).parent)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def server_dsn() -> str:
    """The test server's DSN, or skip with the reason it is not usable."""
    usable, reason = server_status()
    if not usable:
        pytest.skip(reason)
    return os.environ[DSN_ENV]


@pytest.fixture
def pg_dsn(server_dsn: str) -> Iterator[str]:
    """A DSN whose ``search_path`` is a new, empty schema (dropped after the test)."""
    import psycopg
    from psycopg import conninfo

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        try:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip("the test role may not create schemas (needs CREATE on the database)")
    try:
        yield conninfo.make_conninfo(server_dsn, options=f"-csearch_path={schema}")
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def holders() -> Iterator[type[Holder]]:
    """Start lock-holding child processes; any still running at the end is killed."""
    started: list[Holder] = []

    class _Tracked(Holder):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield _Tracked
    for holder in started:
        holder.stop()
