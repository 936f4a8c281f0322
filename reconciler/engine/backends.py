"""Opening the configured state backend: the JSON file by default, PostgreSQL for teams.

The Provider document's ``state`` section chooses the backend. The PostgreSQL backend and
its driver are optional (the ``postgres`` extra) and imported only when configured, so the
default install never needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler import install_command
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import StateBackend
from reconciler.errors import StateError
from reconciler.spec.models import SecretRef, StateConfig
from reconciler.spec.root import DEFAULT_STATE_FILE
from reconciler.spec.secrets import resolve_secret as resolve_secret_ref

DEFAULT_STATE_PATH = DEFAULT_STATE_FILE
"""Where the file backend keeps the state, relative to the workspace root."""

POSTGRES_INSTALL_HINT = (
    "the postgres state backend needs the psycopg driver, which is not installed: "
    f"{install_command('postgres')} (or only the driver: pip install 'psycopg[binary]>=3.1')"
)
"""The error when psycopg is missing, whether the backend module or its first use finds out."""


def default_state_path(root: Path) -> Path:
    """``root/.reconciler/state.json``."""
    return root / DEFAULT_STATE_PATH


def open_backend(
    config: StateConfig | None,
    root: Path,
    *,
    base_dir: Path | None = None,
    resolve_secret: Callable[[SecretRef], str] | None = None,
) -> StateBackend:
    """The backend ``config`` names (None: the file backend at its default path).

    Args:
        config: the Provider's ``state`` section, or None without a Provider.
        root: the workspace root; the file backend's default path is
            ``root/.reconciler/state.json``, and a ``file`` reference of the postgres ``dsn``
            must stay inside it.
        base_dir: the directory of the Provider's file: a relative ``config.path`` (and a
            ``file`` reference of the postgres ``dsn``) is taken from here, as every path in
            a spec is relative to the file that names it. Default: ``root``.
        resolve_secret: turns the postgres ``dsn`` reference into its value; by default
            :func:`~reconciler.spec.secrets.resolve_secret` (the operator's allowlist,
            confinement to ``root``, scrubbing).

    Raises:
        StateError: the postgres backend is configured but its driver is not installed.
        SecretError: the postgres ``dsn`` is refused by the operator's settings or cannot be
            resolved.
    """
    base = base_dir or root
    if config is None or config.backend == "file":
        if config is not None and config.path:
            path = Path(config.path).expanduser()
            path = path if path.is_absolute() else base / path
        else:
            path = default_state_path(root)
        return FileStateBackend(path)
    if config.dsn is None:  # the model forbids it; kept for a clear message regardless
        raise StateError("the postgres state backend needs 'dsn' in the Provider's state section")
    if resolve_secret is None:
        # Held to the operator's limits, confined to the workspace and registered for
        # scrubbing, like every other secret.
        dsn = resolve_secret_ref(config.dsn, base, purpose="the state backend's dsn", root=root)
    else:
        dsn = resolve_secret(config.dsn)
    try:
        # Imported here so the default install (no driver) never loads it.
        from reconciler.engine.state_postgres import PostgresStateBackend

        backend: StateBackend = PostgresStateBackend(
            dsn, config.workspace, dsn_source=config.dsn.describe()
        )
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] == "psycopg":
            raise StateError(POSTGRES_INSTALL_HINT) from exc
        raise StateError(f"the postgres state backend cannot be loaded: {exc}") from exc
    return backend
