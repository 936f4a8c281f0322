"""Cache of file hashes and validation reports, so an unchanged file is not re-read.

Entries are keyed by (absolute path, role, exact-token flag, data format, chat dialect) and
valid while the file's size and ``mtime_ns`` are unchanged, like ``make`` and ``git``'s index
do: a multi-GB training file is hashed and validated once, and every later ``plan`` answers
from the cache. The
cache also remembers prepared datasets (conversion/split/skip outputs, keyed by their inputs)
and train/validation overlap counts (keyed by the two content hashes).

Stored as one JSON file (``hashes.json`` under the cache directory), written atomically
(temporary file + ``os.replace``) so a crash never leaves a torn cache; an unreadable cache
is treated as empty.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import orjson

from reconciler.data.report import FileReport

CACHE_FILE = "hashes.json"
CACHE_VERSION = 1


class DataCache:
    """File hash/report cache under ``cache_dir``.

    Attributes:
        cache_dir: directory holding ``hashes.json`` and ``prepared/``.
        hits / misses: lookups answered from the cache / not (for ``--verbose`` and tests).
    """

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir
        self.hits = 0
        self.misses = 0
        self._data: dict[str, Any] | None = None
        self._dirty = False

    @property
    def prepared_dir(self) -> Path:
        """Where prepared (converted/split/cleaned) files are kept, named by their sha256."""
        return self.cache_dir / "prepared"

    def _load(self) -> dict[str, Any]:
        if self._data is None:
            data: Any = None
            try:
                data = orjson.loads((self.cache_dir / CACHE_FILE).read_bytes())
            except (OSError, orjson.JSONDecodeError):
                data = None
            if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
                data = {"version": CACHE_VERSION, "files": {}, "prepared": {}, "overlaps": {}}
            self._data = data
        return self._data

    @staticmethod
    def _key(path: Path, role: str, exact_tokens: bool, data_format: str, dialect: str) -> str:
        # Callers pass resolved paths; abspath only guards a relative one without the
        # syscalls of resolve(), which dominated a warm plan over a thousand datasets.
        key = f"{os.path.abspath(path)}|{role}|{int(exact_tokens)}"
        # Mistral-dialect chat keys are as they were before formats and dialects existed, so
        # their entries stay valid; any other format or dialect has its own entry, so a
        # report made under one dialect's rules is never answered for another's.
        if data_format != "chat":
            key = f"{key}|{data_format}"
        return key if dialect == "mistral" else f"{key}|dialect={dialect}"

    def get_report(
        self,
        path: Path,
        *,
        role: str,
        exact_tokens: bool,
        display_name: str,
        data_format: str = "chat",
        dialect: str = "mistral",
    ) -> FileReport | None:
        """The cached report of an unchanged file, renamed to ``display_name``; else None.

        ``dialect`` names the chat rules the report was made with (``ChatRules.name``).
        """
        try:
            st = path.stat()
        except OSError:
            return None
        entry = self._load()["files"].get(self._key(path, role, exact_tokens, data_format, dialect))
        if (
            not isinstance(entry, dict)
            or not stat.S_ISREG(st.st_mode)
            or entry.get("size") != st.st_size
            or entry.get("mtime_ns") != st.st_mtime_ns
        ):
            self.misses += 1
            return None
        try:
            report = FileReport.from_dict(entry["report"])
        except (KeyError, TypeError, ValueError):
            self.misses += 1
            return None
        self.hits += 1
        return _renamed(report, display_name)

    def put_report(
        self,
        path: Path,
        report: FileReport,
        *,
        exact_tokens: bool,
        data_format: str = "chat",
        dialect: str = "mistral",
    ) -> None:
        """Remember a report (its file's current size and mtime make the key)."""
        try:
            st = path.stat()
        except OSError:
            return
        if st.st_size != report.bytes:
            return  # the file changed while we read it: do not cache a mix
        self._load()["files"][self._key(path, report.role, exact_tokens, data_format, dialect)] = {
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "report": report.to_dict(),
        }
        self._dirty = True

    def get_prepared(self, key: str) -> dict[str, Any] | None:
        """A prepared-dataset manifest stored under ``key`` (see :mod:`prepare`)."""
        entry = self._load()["prepared"].get(key)
        if isinstance(entry, dict):
            self.hits += 1
            return entry
        self.misses += 1
        return None

    def put_prepared(self, key: str, manifest: dict[str, Any]) -> None:
        """Remember a prepared-dataset manifest."""
        self._load()["prepared"][key] = manifest
        self._dirty = True

    def get_overlap(self, train_sha: str, validation_sha: str) -> int | None:
        """Cached number of training samples that also occur in the validation file."""
        value = self._load()["overlaps"].get(f"{train_sha}:{validation_sha}")
        return value if isinstance(value, int) else None

    def put_overlap(self, train_sha: str, validation_sha: str, count: int) -> None:
        """Remember an overlap count (content-keyed, so it never goes stale)."""
        self._load()["overlaps"][f"{train_sha}:{validation_sha}"] = count
        self._dirty = True

    def save(self) -> None:
        """Write the cache atomically if anything changed; errors are ignored (it's a cache)."""
        if not self._dirty or self._data is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".hashes-", suffix=".tmp", dir=self.cache_dir)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(orjson.dumps(self._data))
                os.replace(tmp, self.cache_dir / CACHE_FILE)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError:
            return
        self._dirty = False


def _renamed(report: FileReport, display_name: str) -> FileReport:
    """A cached report shown under the name the user uses now (cwd may differ)."""
    if report.path == display_name:
        return report
    old = report.path
    report.path = display_name
    import dataclasses

    report.problems = [
        dataclasses.replace(p, location=dataclasses.replace(p.location, file=display_name))
        if p.location is not None and p.location.file == old
        else p
        for p in report.problems
    ]
    return report
