"""The process-wide registry of secret values, and the scrubbing of text against it.

Every secret a run resolves (provider keys, W&B keys, DSNs; see
:func:`reconciler.spec.secrets.resolve_secret`) is registered here the moment it is read. From
then on the value is replaced by ``***`` wherever text leaves the process: in the message of
every :class:`~reconciler.errors.ReconcilerError`, in remote error messages (a server that
echoes a request body), in log records, and in the state and plan files before they are written.

Scrubbing is a second line of defence: the first is never to put a secret into a message at
all. Values shorter than :data:`MIN_LENGTH` are not registered: replacing them would mangle
ordinary words, and nothing that short is a credential worth the name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, unquote, urlsplit

MASK = "***"
"""What a secret prints as."""

MIN_LENGTH = 8
"""Shortest value that is registered (and so scrubbed)."""

_lock = threading.Lock()
# A tuple, replaced (never mutated) under the lock: readers take a consistent snapshot
# without locking. Longest first, so a value that contains another is replaced whole.
_values: tuple[str, ...] = ()
_factory_installed = False


def _variants(value: str) -> set[str]:
    """The forms a value can take in text: as is, JSON-escaped, as in a Python repr (a dict
    in a log line), URL-encoded; for a URL with a password (a DSN), the password alone too."""
    forms = {value, json.dumps(value)[1:-1], repr(value)[1:-1], quote(value, safe="")}
    try:
        parts = urlsplit(value)
        password = parts.password if parts.scheme and parts.netloc else None
    except ValueError:
        password = None
    if password:
        forms.update({password, unquote(password)})
    return {f for f in forms if len(f) >= MIN_LENGTH}


def register_secret(value: str) -> None:
    """Scrub ``value`` (and its escaped forms) from every message of this process from now on."""
    global _values
    forms = _variants(value)
    if not forms:
        return
    with _lock:
        if forms <= set(_values):
            return
        _values = tuple(sorted(set(_values) | forms, key=lambda v: (-len(v), v)))
        _install_log_factory()


def registered_count() -> int:
    """How many values (forms included) are registered; for tests and diagnostics."""
    return len(_values)


def forget_secrets() -> None:
    """Empty the registry (for tests that must not see each other's secrets)."""
    global _values
    with _lock:
        _values = ()


def scrub(text: str, extra: Iterable[str | None] = ()) -> str:
    """``text`` with every registered secret, and every value of ``extra``, replaced by ``***``."""
    values = _values
    more = [v for v in extra if v and len(v) >= 4 and v not in values]
    if not values and not more:
        return text
    for value in (*sorted(more, key=len, reverse=True), *values):
        if value in text:
            text = text.replace(value, MASK)
    return text


def scrub_obj(value: Any, extra: Iterable[str | None] = ()) -> Any:
    """:func:`scrub` applied to every string (keys included) inside a JSON-like value."""
    extra = tuple(extra)
    if isinstance(value, str):
        return scrub(value, extra)
    if isinstance(value, list | tuple):
        return [scrub_obj(v, extra) for v in value]
    if isinstance(value, dict):
        return {scrub_obj(k, extra): scrub_obj(v, extra) for k, v in value.items()}
    return value


def _install_log_factory() -> None:
    """Wrap the log record factory so every record's message is scrubbed when it is made.

    Installed once, when the first secret is registered. A factory rather than a handler
    filter: handlers are the embedding application's business, while every record of the
    process passes through the factory. Records are made only for enabled levels, so the
    formatting it does early costs nothing for the debug messages nobody reads.
    """
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if _values:
            try:
                message = record.getMessage()
            except Exception:  # noqa: BLE001 - a bad format is the logging module's to report
                return record
            cleaned = scrub(message)
            if cleaned != message:
                record.msg, record.args = cleaned, None
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
