"""Secret references (``{env: NAME}`` / ``{file: PATH}``) resolved into masked values.

Specs never hold secrets, only references; they are resolved where the value is needed (apply,
a request to the remote), not at ``validate``. The resolved value travels as :class:`Secret`,
whose ``repr``/``str`` are ``***`` so it cannot leak into logs, plans or tracebacks by accident.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from reconciler.errors import SecretError
from reconciler.spec.models import SecretRef

MASK = "***"
"""What a secret prints as."""


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


def resolve_secret(
    ref: SecretRef,
    base_dir: Path,
    *,
    purpose: str,
    environ: Mapping[str, str] | None = None,
) -> str:
    """The value a secret reference points to.

    Args:
        ref: the reference from the spec.
        base_dir: directory that a relative ``file`` is relative to (the spec file's directory).
        purpose: what needs it, for the error message, e.g. ``WandbIntegration/team api_key``.
        environ: environment to read (default ``os.environ``).

    Raises:
        SecretError: the variable is unset or empty, or the file is missing, unreadable or
            empty. The message names the variable or file and ``purpose``, never a value.
    """
    env = os.environ if environ is None else environ
    if ref.env is not None:
        value = env.get(ref.env)
        if not value:
            state = "is empty" if value == "" else "is not set"
            raise SecretError(
                f"{purpose}: environment variable {ref.env} {state}. "
                f"Export it before running, e.g. `export {ref.env}=...`, "
                "or change the reference in the spec."
            )
        return value
    assert ref.file is not None  # SecretRef guarantees exactly one of env/file
    path = Path(ref.file).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise SecretError(
            f"{purpose}: secret file {path} does not exist. Create it (e.g. with mode 600) "
            "or change the reference in the spec; relative paths are relative to the spec file."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretError(
            f"{purpose}: cannot read secret file {path}: {reason}. "
            "Make it a readable UTF-8 text file."
        ) from None
    if not value:
        raise SecretError(f"{purpose}: secret file {path} is empty. Put the secret in it.")
    return value


def resolve_secret_masked(
    ref: SecretRef,
    base_dir: Path,
    *,
    purpose: str,
    environ: Mapping[str, str] | None = None,
) -> Secret:
    """Like :func:`resolve_secret` but returns a :class:`Secret` that prints as ``***``."""
    return Secret(
        resolve_secret(ref, base_dir, purpose=purpose, environ=environ), source=ref.describe()
    )
