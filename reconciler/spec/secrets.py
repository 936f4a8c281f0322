"""Secret references (``{env: NAME}`` / ``{file: PATH}``) resolved into masked values.

Specs never hold secrets, only references; they are resolved where the value is needed (apply,
a request to the remote), not at ``validate``. Before anything is read, the reference is held
against the operator's limits (:mod:`reconciler.spec.trust`: which variables and files specs
may name, files confined to the workspace). Every value read is registered with
:mod:`reconciler.redact`, which scrubs it from every message of the run. The resolved value
can travel as :class:`Secret`, whose ``repr``/``str`` are ``***`` so it cannot leak into logs,
plans or tracebacks by accident.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import Location, SecretError
from reconciler.redact import MASK, register_secret
from reconciler.spec.models import SecretRef
from reconciler.spec.trust import SECRETS_ENV, PathRefused, TrustSettings, confine_path

__all__ = ["MASK", "Secret", "check_secret_ref", "resolve_secret"]


class Secret:
    """A secret value that prints as ``***``; call :meth:`reveal` where the value is needed.

    Attributes:
        source: masked description of where it came from, e.g. ``env:WANDB_API_KEY``.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: str, source: str = "") -> None:
        self._value = value
        self.source = source

    def reveal(self) -> str:
        """The secret value itself. Never print or log it."""
        return self._value

    def __repr__(self) -> str:
        return MASK

    def __str__(self) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


MAX_SECRET_BYTES = 64 * 1024
"""Largest secret file read; keys, tokens and DSNs are far smaller."""


def _where(purpose: str, location: Location | None) -> str:
    return f"{location}: {purpose}" if location is not None else purpose


def check_secret_ref(
    ref: SecretRef,
    base_dir: Path,
    *,
    purpose: str,
    root: Path | None = None,
    location: Location | None = None,
    environ: Mapping[str, str] | None = None,
) -> Path | None:
    """Check a reference against the operator's limits, without reading anything.

    ``{env: NAME}`` must be allowed by ``RECONCILER_ALLOWED_SECRETS`` (when it is set);
    ``{file: PATH}`` must stay inside the workspace ``root`` (or a directory
    ``RECONCILER_ALLOWED_PATHS`` allows), be a regular file if it exists, and be allowed by
    ``RECONCILER_ALLOWED_SECRETS`` (when it is set).

    Args:
        ref: the reference from the spec.
        base_dir: directory a relative ``file`` is relative to (the spec file's directory).
        purpose: what needs it, e.g. ``WandbIntegration/team api_key``.
        root: the workspace root (default: ``base_dir``, the narrowest choice).
        location: where the reference is written, for the message.
        environ: environment holding the operator's settings (default ``os.environ``).

    Returns:
        The resolved path of a ``file`` reference; None for an ``env`` reference.

    Raises:
        SecretError: the reference is refused; the message names the variable or path, where
            it is written and the setting that would allow it, never a value.
        InvalidValueError: a trust setting in the environment is malformed.
    """
    settings = TrustSettings.from_environ(environ)
    where = _where(purpose, location)
    if ref.env is not None:
        if not settings.secret_name_allowed(ref.env):
            raise SecretError(
                f"{where}: the environment variable {ref.env} is not among the secrets the "
                f"operator allows ({SECRETS_ENV}); nothing was read. If the specs may use it, "
                f"add {ref.env} to {SECRETS_ENV}."
            )
        return None
    assert ref.file is not None  # SecretRef guarantees exactly one of env/file
    written = os.path.expanduser(ref.file)
    try:
        path = confine_path(written, base_dir, root or base_dir, allowed=settings.paths)
    except PathRefused as exc:
        raise SecretError(
            f"{where}: secret file {ref.file}: {exc.reason}; nothing was read. Hint: {exc.hint}."
        ) from None
    if not settings.secret_file_allowed(path):
        raise SecretError(
            f"{where}: secret file {path} is not among the secrets the operator allows "
            f"({SECRETS_ENV}); nothing was read. If the specs may use it, add its path to "
            f"{SECRETS_ENV}."
        )
    return path


def resolve_secret(
    ref: SecretRef,
    base_dir: Path,
    *,
    purpose: str,
    environ: Mapping[str, str] | None = None,
    root: Path | None = None,
    location: Location | None = None,
) -> str:
    """The value a secret reference points to, registered for scrubbing.

    The reference is first checked (:func:`check_secret_ref`); the value is then registered
    with :mod:`reconciler.redact`, so it is replaced by ``***`` in every message of the run.

    Args:
        ref: the reference from the spec.
        base_dir: directory that a relative ``file`` is relative to (the spec file's directory).
        purpose: what needs it, for the error message, e.g. ``WandbIntegration/team api_key``.
        environ: environment to read (default ``os.environ``), the operator's settings included.
        root: the workspace root a ``file`` must stay in (default: ``base_dir``).
        location: where the reference is written, for messages.

    Raises:
        SecretError: the reference is refused, the variable is unset or empty, or the file is
            missing, unreadable, too large or empty. The message names the variable or file
            and ``purpose``, never a value.
    """
    env = os.environ if environ is None else environ
    path = check_secret_ref(
        ref, base_dir, purpose=purpose, root=root, location=location, environ=env
    )
    where = _where(purpose, location)
    if path is None:
        assert ref.env is not None
        value = env.get(ref.env)
        if not value:
            state = "is empty" if value == "" else "is not set"
            raise SecretError(
                f"{where}: environment variable {ref.env} {state}. "
                f"Export it before running, e.g. `export {ref.env}=...`, "
                "or change the reference in the spec."
            )
    else:
        value = _read_secret_file(path, where)
    register_secret(value)
    return value


def _read_secret_file(path: Path, where: str) -> str:
    try:
        # Non-blocking open and a check of what was opened: a FIFO swapped in after the path
        # was checked must not hang the run.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise SecretError(f"{where}: secret file {path} is not a regular file.")
            raw = handle.read(MAX_SECRET_BYTES + 1)
        if len(raw) > MAX_SECRET_BYTES:
            raise SecretError(
                f"{where}: secret file {path} is larger than {MAX_SECRET_BYTES // 1024} KiB; "
                "a secret file holds the secret only."
            )
        value = raw.decode("utf-8").strip()
    except FileNotFoundError:
        raise SecretError(
            f"{where}: secret file {path} does not exist. Create it (e.g. with mode 600) "
            "or change the reference in the spec; relative paths are relative to the spec file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretError(
            f"{where}: cannot read secret file {path}: {reason}. "
            "Make it a readable UTF-8 text file."
        ) from None
    if not value:
        raise SecretError(f"{where}: secret file {path} is empty. Put the secret in it.")
    return value
