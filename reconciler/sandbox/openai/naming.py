"""Ids and names the OpenAI way: ``file-…``, ``ftjob-…``, ``ftevent-…``, ``ftckpt_…``,
``org-…`` and fine-tuned models named ``ft:<base>:<organization>:<suffix>:<id>``.

New objects get random ids; events and checkpoints, which the sandbox derives from a job's
lifecycle rather than stores, get ids derived from the job's id and their place in it, so
the same event has the same id on every read.
"""

from __future__ import annotations

import hashlib
import secrets
import string

#: The characters of OpenAI's ids.
_ALPHABET = string.digits + string.ascii_letters
#: The organisation name in fine-tuned model names (the service uses the organisation's).
ORGANIZATION_NAME = "sandbox"


def _encode(number: int, length: int) -> str:
    out = []
    for _ in range(length):
        number, digit = divmod(number, len(_ALPHABET))
        out.append(_ALPHABET[digit])
    return "".join(out)


def random_id(prefix: str, length: int = 24) -> str:
    """A new id: ``prefix`` and ``length`` random letters and digits."""
    return prefix + _encode(secrets.randbits(6 * length), length)


def derived_id(prefix: str, *parts: str, length: int = 24) -> str:
    """An id that is always the same for the same ``parts``."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return prefix + _encode(int.from_bytes(digest, "big"), length)


def organization_id(org: str) -> str:
    """The ``organization_id`` of the sandbox's organisation (``org`` is its stored id)."""
    return f"org-{org}"


def fine_tuned_name(base: str, suffix: str | None, job_id: str) -> str:
    """The model a job produces: ``ft:gpt-4o-mini-2024-07-18:sandbox:my-suffix:AbC12xYz``
    (``...:sandbox::AbC12xYz`` without suffix)."""
    return f"ft:{base}:{ORGANIZATION_NAME}:{suffix or ''}:{derived_id('', job_id, length=8)}"
