"""Duration parsing and backend selection."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from reconciler.engine.backends import default_state_path, open_backend
from reconciler.engine.duration import format_duration, parse_duration
from reconciler.engine.state_file import FileStateBackend
from reconciler.errors import ReconcilerError, SecretError, StateError
from reconciler.redact import forget_secrets, register_secret, scrub
from reconciler.spec.models import SecretRef, StateConfig
from reconciler.spec.trust import SECRETS_ENV


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("90", 90.0),
        ("1.5", 1.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("2m30s", 150.0),
        ("1d2h", 93600.0),
        ("1.5h", 5400.0),
        ("250ms", 0.25),
        ("1m500ms", 60.5),
        (" 10S ", 10.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty duration"),
        ("   ", "empty duration"),
        ("-5s", "expected a number with a unit"),
        ("5x", "expected a number with a unit"),
        ("m", "expected a number with a unit"),
        ("5 m", "expected a number with a unit"),
        ("1h30", "expected a number with a unit"),
        ("30m1h", "units must go from largest to smallest"),
        ("1m1m", "units must go from largest to smallest"),
        ("abc", "expected a number with a unit"),
    ],
)
def test_parse_duration_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    # also in the one error tree, so a command that calls it directly reports it cleanly
    assert isinstance(info.value, ReconcilerError)
    assert message in str(info.value)
    assert "e.g. 30s, 5m, 1h30m" in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "text"), [(0, "0s"), (1.5, "1.5s"), (300, "5m"), (5400, "1h30m"), (3661, "1h1m1s")]
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (None, ".reconciler/state.json"),
        (StateConfig(), ".reconciler/state.json"),
        (StateConfig(path="state/prod.json"), "state/prod.json"),
    ],
)
def test_file_backend_paths(tmp_path: Path, config: StateConfig | None, expected: str) -> None:
    backend = open_backend(config, tmp_path)
    assert isinstance(backend, FileStateBackend)
    assert backend.path == tmp_path / expected
    assert backend.describe() == f"file {tmp_path / expected}"


def test_file_backend_absolute_path(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "s.json"
    backend = open_backend(StateConfig(path=str(target)), tmp_path / "specs")
    assert isinstance(backend, FileStateBackend) and backend.path == target
    assert default_state_path(tmp_path) == tmp_path / ".reconciler" / "state.json"


def test_postgres_uses_resolver_and_never_connects_on_open(tmp_path: Path) -> None:
    seen: list[SecretRef] = []

    def resolve(ref: SecretRef) -> str:
        seen.append(ref)
        return "postgresql://ci:pw@127.0.0.1:1/db"

    config = StateConfig(backend="postgres", dsn=SecretRef(env="PG_DSN"), workspace="ml")
    backend = open_backend(config, tmp_path, resolve_secret=resolve)
    assert seen == [SecretRef(env="PG_DSN")]
    assert "ml" in backend.describe() and "pw" not in backend.describe()


def test_postgres_default_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = StateConfig(backend="postgres", dsn=SecretRef(env="RECONCILER_TEST_NO_SUCH_DSN"))
    monkeypatch.delenv("RECONCILER_TEST_NO_SUCH_DSN", raising=False)
    with pytest.raises(SecretError, match="RECONCILER_TEST_NO_SUCH_DSN is not set"):
        open_backend(config, tmp_path)
    (tmp_path / "dsn.txt").write_text("postgresql://ci@127.0.0.1:1/db\n", encoding="utf-8")
    backend = open_backend(StateConfig(backend="postgres", dsn=SecretRef(file="dsn.txt")), tmp_path)
    assert "default" in backend.describe()
    with pytest.raises(SecretError, match="none.txt does not exist"):
        open_backend(StateConfig(backend="postgres", dsn=SecretRef(file="none.txt")), tmp_path)


def test_postgres_default_resolution_is_held_to_the_operators_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The default resolver is resolve_secret: allowlist, confinement to the root, scrubbing.
    monkeypatch.setenv("RECONCILER_TEST_STATE_DSN", "postgresql://ci:pg-secret-77@127.0.0.1:1/db")
    monkeypatch.setenv(SECRETS_ENV, "RECONCILER_PG_DSN")
    config = StateConfig(backend="postgres", dsn=SecretRef(env="RECONCILER_TEST_STATE_DSN"))
    with pytest.raises(
        SecretError, match=f"not among the secrets the operator allows \\({SECRETS_ENV}"
    ):
        open_backend(config, tmp_path)
    monkeypatch.delenv(SECRETS_ENV)
    (tmp_path / "outside.txt").write_text("postgresql://ci@127.0.0.1:1/db\n", encoding="utf-8")
    outside = StateConfig(backend="postgres", dsn=SecretRef(file="../outside.txt"))
    with pytest.raises(SecretError, match="leads out of the workspace root"):
        open_backend(outside, tmp_path / "specs")
    forget_secrets()
    try:
        open_backend(config, tmp_path)
        assert scrub("connect failed: pg-secret-77") == "connect failed: ***"
    finally:
        forget_secrets()


def test_postgres_without_driver_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Make the driver and the backend module unimportable, as in an install without extras.
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "reconciler.engine.state_postgres", raising=False)
    config = StateConfig(backend="postgres", dsn=SecretRef(env="X"))
    try:
        backend = open_backend(config, tmp_path, resolve_secret=lambda ref: "postgresql://h/db")
        backend.read()  # a backend that imports its driver lazily fails here instead
    except StateError as exc:
        assert "pip install 'finetune-reconciler[postgres]'" in str(exc)
    else:
        raise AssertionError("no error without the driver")


def test_postgres_messages_are_scrubbed_of_every_secret_of_the_run() -> None:
    # Built without connecting: what the backend puts into a driver's message before it
    # becomes an error is scrubbed of the DSN's password and of every registered secret.
    from reconciler.engine.state_postgres import PostgresStateBackend

    key = "wandb-" + "0123456789abcdef" * 2
    backend = PostgresStateBackend("postgresql://ci:pw-31337@127.0.0.1:1/db", "w")
    forget_secrets()
    register_secret(key)
    try:
        said = backend._scrub(f"server echoed pw-31337 and {key}")
        assert said == "server echoed *** and ***"
    finally:
        forget_secrets()
