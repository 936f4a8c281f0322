"""Operator-owned trust settings: which endpoints, secret references, paths and storage specs
may use.

Specs are written by whoever can open a pull request; the environment a command runs in is
the operator's. The operator's limits therefore live outside the specs, in four environment
variables read here (see ``SECURITY.md``):

``RECONCILER_ALLOWED_ENDPOINTS``
    Comma-separated endpoints a Provider may point at, beyond the official endpoint of its
    ``type``. An entry is a URL prefix (``https://proxy.example.com/mistral``) or a host with an
    optional port (``proxy.example.com``, ``proxy.example.com:8443``, meaning https). An
    endpoint matches an entry when scheme, host and port are equal (the default port of the
    scheme when none is written) and its path is the entry's path or below it, segment by
    segment. Nothing else: no substring or suffix matching, so ``https://api.mistral.ai.evil.com``
    and ``https://api.mistral.ai@evil.com`` match nothing. A ``ray`` Provider's ``address``
    (its cluster's Jobs API) is its endpoint. Unset: the official endpoints, and a ``sandbox``
    or ``ray`` Provider on a loopback address (127.0.0.0/8, ``::1``, ``localhost``). Set (even
    empty): the official endpoints and the entries, nothing else.
``RECONCILER_ALLOWED_SECRETS``
    Comma-separated environment variable names and file paths that ``{env: ...}`` and
    ``{file: ...}`` references may name, with shell-style globs (``WANDB_*``, ``/run/secrets/*``;
    ``*`` also matches ``/``). An entry made of letters, digits, ``_`` and glob characters is a
    variable name; any other entry is a path, relative ones taken from the current directory.
    Unset: any variable and any file in the workspace (the behaviour of earlier versions).
    Set (even empty): only these.
``RECONCILER_ALLOWED_PATHS``
    Comma-separated directories outside the workspace root that dataset paths, secret files
    and a ``ray`` Provider's local ``storage`` may name (absolute paths are allowed only inside
    them).
``RECONCILER_ALLOWED_STORAGE``
    Comma-separated storage URIs (``s3://bucket/prefix``, ``gs://bucket``) that a ``ray``
    Provider's ``storage`` may name: one matches an entry when scheme and bucket are the
    entry's and its path is the entry's or below it, segment by segment (as endpoints match).
    Unset or empty: no URI; a local directory (a path, or ``file://``) is a path like any other.

Paths are confined by :func:`confine_path`, the one check every path named in a spec passes
through before anything opens it.
"""

from __future__ import annotations

import ipaddress
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from reconciler.errors import InvalidValueError

ENDPOINTS_ENV = "RECONCILER_ALLOWED_ENDPOINTS"
SECRETS_ENV = "RECONCILER_ALLOWED_SECRETS"
PATHS_ENV = "RECONCILER_ALLOWED_PATHS"
STORAGE_ENV = "RECONCILER_ALLOWED_STORAGE"

LOOPBACK_TYPES = frozenset({"sandbox", "ray"})
"""Provider types that may use a loopback endpoint while the operator allows no more: a local
sandbox server, a Ray head started on this machine."""

OFFICIAL_ENDPOINTS: Mapping[str, str] = {
    "mistral": "https://api.mistral.ai",
    "openai": "https://api.openai.com/v1",
}
"""Provider type → the endpoint it may always use."""

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_HOST = rf"(?P<host>{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
_PORT = r"(?::(?P<port>[0-9]{1,5}))?"
_PATH = r"(?P<path>(?:/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*)/?"
# Deliberately narrow: what is not matched here is refused, so no URL can mean one host to
# this check and another to the HTTP client (no user info, query, fragment, backslash or space).
_URL = re.compile(rf"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://{_HOST}{_PORT}{_PATH}")
_HOST_ENTRY = re.compile(rf"{_HOST}{_PORT}")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ENV_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!]+")


@dataclass(frozen=True)
class Endpoint:
    """A parsed http(s) URL: what endpoint matching compares.

    Attributes:
        scheme: ``http`` or ``https``, lower case.
        host: lower case; IPv6 addresses keep their brackets.
        port: explicit, or the scheme's default.
        path: without a trailing ``/`` (``""`` for the root).
    """

    scheme: str
    host: str
    port: int
    path: str

    @property
    def origin(self) -> str:
        """``scheme://host:port``, e.g. for the value to put in the allowlist."""
        return f"{self.scheme}://{self.host}:{self.port}"

    def covers(self, other: Endpoint) -> bool:
        """Whether ``other`` is this endpoint or below it (same origin, path prefix by segment)."""
        if (self.scheme, self.host, self.port) != (other.scheme, other.host, other.port):
            return False
        return _path_within(other.path, self.path)

    @property
    def is_loopback(self) -> bool:
        """Whether the host is a loopback address (or ``localhost``)."""
        host = self.host.strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False


def _path_within(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or below it, segment by segment: ``/v1`` covers
    ``/v1/jobs`` but not ``/v10`` (both without a trailing ``/``; ``""`` covers every path)."""
    return path == prefix or path.startswith(prefix + "/")


def parse_endpoint(url: str) -> Endpoint | None:
    """``url`` as an :class:`Endpoint`, or None when it is not a plain http(s) URL."""
    match = _URL.fullmatch(url.strip())
    if match is None or match["scheme"].lower() not in _DEFAULT_PORTS:
        return None
    return _endpoint(match["scheme"].lower(), match["host"], match["port"], match["path"])


def _endpoint(scheme: str, host: str, port: str | None, path: str | None) -> Endpoint | None:
    number = int(port) if port else _DEFAULT_PORTS[scheme]
    if not 0 < number < 65536:
        return None
    return Endpoint(scheme, host.lower(), number, (path or "").rstrip("/"))


def _endpoint_entry(entry: str) -> Endpoint:
    if "://" in entry:
        parsed = parse_endpoint(entry)
    else:
        match = _HOST_ENTRY.fullmatch(entry)
        parsed = _endpoint("https", match["host"], match["port"], "") if match else None
    if parsed is None:
        raise InvalidValueError(
            f"environment variable {ENDPOINTS_ENV}: {entry!r} is neither an http(s) URL "
            "(scheme://host[:port][/path]) nor a host[:port]; fix the entry or unset the variable"
        )
    return parsed


_STORAGE_URI = re.compile(
    rf"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<bucket>[A-Za-z0-9][A-Za-z0-9._-]*){_PATH}"
)


@dataclass(frozen=True)
class StorageUri:
    """A parsed storage URI (``s3://bucket/prefix``): what storage matching compares.

    Attributes:
        scheme: the filesystem's scheme, lower case (``s3``, ``gs``, ``az``...).
        bucket: the bucket or container, as written.
        path: the key prefix, without a trailing ``/`` (``""`` for the whole bucket).
    """

    scheme: str
    bucket: str
    path: str

    def covers(self, other: StorageUri) -> bool:
        """Whether ``other`` is this location or below it (same bucket, path by segment)."""
        if (self.scheme, self.bucket) != (other.scheme, other.bucket):
            return False
        return _path_within(other.path, self.path)


def parse_storage_uri(uri: str) -> StorageUri | None:
    """``uri`` as a :class:`StorageUri`, or None when it is not a plain ``scheme://bucket/path``
    (no user info, port, query, fragment, ``..`` or empty segment)."""
    match = _STORAGE_URI.fullmatch(uri.strip())
    if match is None or match["scheme"] == "file":
        return None
    path = (match["path"] or "").rstrip("/")
    if any(part in (".", "..") for part in path.split("/")[1:]):
        return None
    return StorageUri(match["scheme"], match["bucket"], path)


def local_storage_path(storage: str) -> str | None:
    """The local directory a ``storage`` value names (a path, or a ``file://`` URI), or None
    for a URI of another filesystem."""
    if storage.startswith("file://"):
        return storage.removeprefix("file://") or "/"
    return None if "://" in storage else storage


def _storage_entry(entry: str) -> StorageUri:
    parsed = parse_storage_uri(entry)
    if parsed is None:
        raise InvalidValueError(
            f"environment variable {STORAGE_ENV}: {entry!r} is not a storage URI "
            "(scheme://bucket[/prefix], e.g. s3://my-bucket/fine-tuning); fix the entry or "
            "unset the variable"
        )
    return parsed


def _entries(environ: Mapping[str, str], name: str) -> list[str] | None:
    raw = environ.get(name)
    if raw is None:
        return None
    return [e.strip() for e in raw.split(",") if e.strip()]


@dataclass(frozen=True)
class TrustSettings:
    """The operator's limits, read from the environment.

    Attributes:
        endpoints: allowed endpoints beyond the official ones; None when the variable is unset.
        secret_names: allowed environment variable patterns; None when unset.
        secret_files: allowed secret file patterns (absolute); None when unset.
        paths: directories outside the workspace root that specs may name.
        storage: storage URIs a ray Provider's ``storage`` may name.
    """

    endpoints: tuple[Endpoint, ...] | None = None
    secret_names: tuple[str, ...] | None = None
    secret_files: tuple[str, ...] | None = None
    paths: tuple[Path, ...] = ()
    storage: tuple[StorageUri, ...] = ()

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> TrustSettings:
        """The settings in ``environ`` (default ``os.environ``).

        Raises:
            InvalidValueError: an entry is malformed; the message names the variable.
        """
        env = os.environ if environ is None else environ
        endpoints = _entries(env, ENDPOINTS_ENV)
        secrets = _entries(env, SECRETS_ENV)
        names: tuple[str, ...] | None = None
        files: tuple[str, ...] | None = None
        if secrets is not None:
            names = tuple(e for e in secrets if _ENV_PATTERN.fullmatch(e))
            files = tuple(_absolute(e) for e in secrets if not _ENV_PATTERN.fullmatch(e))
        paths = tuple(Path(_absolute(p)) for p in _entries(env, PATHS_ENV) or [])
        return cls(
            endpoints=None if endpoints is None else tuple(map(_endpoint_entry, endpoints)),
            secret_names=names,
            secret_files=files,
            paths=paths,
            storage=tuple(map(_storage_entry, _entries(env, STORAGE_ENV) or [])),
        )

    # ------------------------------------------------------------------ endpoints

    def endpoint_refusal(self, endpoint: str, provider_type: str) -> str | None:
        """Why a Provider of ``provider_type`` may not use ``endpoint``; None when it may."""
        parsed = parse_endpoint(endpoint)
        if parsed is None:
            return (
                "it is not a plain http(s) URL (scheme://host[:port][/path], without user "
                "name, password, query or fragment)"
            )
        official = OFFICIAL_ENDPOINTS.get(provider_type)
        official_endpoint = parse_endpoint(official) if official else None
        if official_endpoint is not None and official_endpoint.covers(parsed):
            return None
        if self.endpoints is None:
            if provider_type in LOOPBACK_TYPES and parsed.is_loopback:
                return None
            if official:
                return f"a {provider_type} Provider uses {official} unless the operator allows more"
            return (
                f"a {provider_type} Provider may use a loopback address only, unless the "
                "operator allows more"
            )
        if any(allowed.covers(parsed) for allowed in self.endpoints):
            return None
        return f"it is not among the endpoints {ENDPOINTS_ENV} allows"

    # ------------------------------------------------------------------ storage

    def storage_refusal(self, uri: str) -> str | None:
        """Why a ray Provider may not use the storage URI ``uri``; None when it may.

        Local directories are not decided here: they are paths (:func:`confine_path`).
        """
        parsed = parse_storage_uri(uri)
        if parsed is None:
            return (
                "it is not a plain storage URI (scheme://bucket[/prefix], without user name, "
                "port, query, fragment or '..')"
            )
        if any(allowed.covers(parsed) for allowed in self.storage):
            return None
        if not self.storage:
            return f"no storage URI is allowed unless the operator lists it in {STORAGE_ENV}"
        return f"it is not among the storage URIs {STORAGE_ENV} allows"

    # ------------------------------------------------------------------ secrets

    def secret_name_allowed(self, name: str) -> bool:
        """Whether ``{env: name}`` may be read."""
        return self.secret_names is None or any(fnmatchcase(name, p) for p in self.secret_names)

    def secret_file_allowed(self, path: Path) -> bool:
        """Whether the secret file at ``path`` (absolute, resolved) may be read."""
        if self.secret_files is None:
            return True
        return any(fnmatchcase(str(path), pattern) for pattern in self.secret_files)


def _absolute(entry: str) -> str:
    return os.path.abspath(os.path.expanduser(entry))


# --------------------------------------------------------------------------- paths


class PathRefused(ValueError):
    """A path named in a spec may not be used.

    Attributes:
        reason: what is wrong, one line (the path is named by the caller).
        hint: how to fix it.
    """

    def __init__(self, reason: str, hint: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


def _inside(path: str, directories: tuple[str, ...]) -> bool:
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in directories)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def confine_path(
    written: str,
    base_dir: Path,
    root: Path,
    *,
    allowed: tuple[Path, ...] = (),
    directories: bool = False,
) -> Path:
    """The resolved path a spec names, checked to stay inside the workspace.

    Args:
        written: the path as written in the spec.
        base_dir: the directory of the spec file (relative paths start here).
        root: the workspace root; every path must lead into it, or into ``allowed``.
        allowed: directories outside the root the operator allows (``RECONCILER_ALLOWED_PATHS``).
        directories: whether a directory is acceptable (dataset sources); otherwise only a
            regular file is.

    Returns:
        The absolute path with every symbolic link resolved. It may not exist (the caller says
        so in its own words); if it exists it is a regular file (or a directory, if allowed).

    Raises:
        PathRefused: the path is absolute outside ``allowed``, leads out of the root with
            ``..``, resolves through a symbolic link to a place outside, or is a FIFO, device
            or socket (opening those can block forever or read without end).
    """
    allow_hint = f"or allow the directory with {PATHS_ENV}"
    inside_root = (str(root), os.path.realpath(root))
    extra = tuple(str(p) for p in allowed) + tuple(os.path.realpath(p) for p in allowed)
    if os.path.isabs(written):
        lexical = os.path.normpath(written)
        if not _inside(lexical, extra):
            raise PathRefused(
                "absolute paths are not allowed",
                f"write the path relative to the spec file, inside {root}, {allow_hint}",
            )
    else:
        lexical = os.path.normpath(os.path.join(base_dir, written))
        if not _inside(lexical, inside_root + extra):
            raise PathRefused(
                f"the path leads out of the workspace root {root}",
                f"keep data and secret files inside {root}, {allow_hint}",
            )
    real = os.path.realpath(lexical)
    if not _inside(real, inside_root + extra):
        raise PathRefused(
            f"the path resolves through a symbolic link to {real}, outside the workspace "
            f"root {root}",
            f"copy the file into the workspace instead of linking to it, {allow_hint}",
        )
    try:
        mode = os.stat(real).st_mode
    except OSError:
        return Path(real)  # missing or unreadable: the caller reports it when it reads
    if stat.S_ISREG(mode) or (directories and stat.S_ISDIR(mode)):
        return Path(real)
    wanted = "a regular file or a directory" if directories else "a regular file"
    raise PathRefused(f"it is {_kind(mode)}, not {wanted}", f"name {wanted} instead")
