"""Canonical fingerprints of what goes into each create request.

A fingerprint is the sha256 of the canonical JSON (sorted keys, no whitespace, floats in
their shortest round-trip form) of exactly the fields that go into the create request. Two
specs that would send the same request have the same fingerprint, whatever their YAML
looked like; any change that would send a different request changes it.

Jobs reference their files by *content* (upload filename + sha256), not by remote id, so a
job's fingerprint is known before its files are uploaded and does not change when the same
content is uploaded again. Write-only secrets (the W&B ``api_key``) are not part of it: they
can never be read back, so they must never cause a diff.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def canonical_json(value: Any) -> str:
    """Deterministic JSON text: sorted keys, compact separators, UTF-8 kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    """sha256 hex of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def file_fingerprint(filename: str, sha256: str) -> str:
    """Fingerprint of an upload: what the remote dedupes on (name and content)."""
    return digest({"filename": filename, "sha256": sha256})


def job_fingerprint(identity: Mapping[str, Any]) -> str:
    """Fingerprint of a job's create request in its identity form (see ``desired``)."""
    return digest(dict(identity))


def changed_paths(before: Any, after: Any, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two JSON-like values.

    Lists are compared element-wise (``training_files[0].weight``); a length change is
    reported on the list itself.
    """
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        paths: list[str] = []
        for key in sorted(set(before) | set(after)):
            sub = f"{prefix}.{key}" if prefix else str(key)
            if key not in before or key not in after:
                paths.append(sub)
            else:
                paths.extend(changed_paths(before[key], after[key], sub))
        return paths
    if isinstance(before, list) and isinstance(after, list):
        if len(before) != len(after):
            return [prefix or "."]
        paths = []
        for index, (b, a) in enumerate(zip(before, after, strict=True)):
            paths.extend(changed_paths(b, a, f"{prefix}[{index}]"))
        return paths
    return [] if before == after else [prefix or "."]
