"""Sandbox configuration: the server's knobs, its exposure rule and the fault-injection spec.

:class:`SandboxConfig` is what :func:`reconciler.sandbox.app.create_app` takes;
:func:`check_exposure` refuses to listen beyond loopback without an API key;
:func:`parse_faults` turns the ``--faults`` text (``"500=0.1,503=0.1,429=0.05,drop=0.05"``)
into a :class:`FaultSpec`; :func:`parse_rate` reads ``--rate-limit`` (``"5"``, ``"5/s"``,
``"120/min"``). Parse errors raise :class:`ValueError` with a message that says what to write
instead; the command line turns them into clean errors.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import math
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from reconciler.sandbox.clock import Clock, SystemClock, check_scale

MIB = 1024 * 1024

#: Fault kinds accepted in a fault spec and what each does to a matching request.
FAULT_KINDS: dict[str, str] = {
    "500": "answer 500 Internal Server Error without doing anything",
    "502": "answer 502 Bad Gateway without doing anything",
    "503": "answer 503 Service Unavailable without doing anything",
    "504": "answer 504 Gateway Timeout without doing anything",
    "429": "answer 429 with Retry-After without doing anything",
    "drop": "close the connection without any response, without doing anything",
    "timeout_after_commit": "do the request fully (create, upload, start...), then close the "
    "connection without a response",
}

#: Job-level fault: probability that a started job ends FAILED instead of SUCCESS.
JOB_FAILURE = "job_failure"

#: The API dialects a sandbox can speak (see :mod:`.dialects`); the first is the default.
DIALECT_NAMES = ("mistral", "openai")


@dataclass(frozen=True)
class FaultSpec:
    """Per-request fault probabilities, deterministic for a given seed.

    Attributes:
        probabilities: fault kind (a key of :data:`FAULT_KINDS`) -> probability in [0, 1].
            At most one fault is injected per request; kinds are tried in a fixed order.
        job_failure: probability that a job that runs ends ``FAILED`` rather than ``SUCCESS``.
        methods: HTTP methods the request faults apply to (upper case); empty means all.
        paths: glob patterns (``fnmatch``) on the request path; empty means every ``/v1/*`` path.
        retry_after: the ``Retry-After`` seconds sent with an injected 429.
        seed: seed of the fault decisions; ``None`` means use the server's ``seed``.
    """

    probabilities: dict[str, float] = field(default_factory=dict)
    job_failure: float = 0.0
    methods: frozenset[str] = frozenset()
    paths: tuple[str, ...] = ()
    retry_after: int = 1
    seed: int | None = None

    def applies_to(self, method: str, path: str) -> bool:
        """Whether request faults may hit ``method path`` (only ``/v1/*`` paths ever do)."""
        if not path.startswith("/v1/"):
            return False
        if self.methods and method.upper() not in self.methods:
            return False
        if self.paths and not any(fnmatch.fnmatchcase(path, p) for p in self.paths):
            return False
        return True

    def describe(self) -> str:
        """Round-trippable text form, e.g. ``500=0.1,drop=0.05,methods=POST``."""
        parts = [f"{k}={v:g}" for k, v in self.probabilities.items()]
        if self.job_failure:
            parts.append(f"{JOB_FAILURE}={self.job_failure:g}")
        if self.methods:
            parts.append("methods=" + "|".join(sorted(self.methods)))
        if self.paths:
            parts.append("paths=" + "|".join(self.paths))
        if self.retry_after != 1:
            parts.append(f"retry_after={self.retry_after}")
        if self.seed is not None:
            parts.append(f"seed={self.seed}")
        return ",".join(parts)


_SYNTAX = (
    "write comma-separated KEY=VALUE items, e.g. "
    "'500=0.1,503=0.1,429=0.05,drop=0.05,timeout_after_commit=0.05,job_failure=0.2,"
    "methods=POST|DELETE,paths=/v1/fine_tuning/*,retry_after=2,seed=7'"
)


def parse_faults(text: str) -> FaultSpec:
    """Parse a fault spec such as ``"500=0.1,drop=0.05,methods=POST"``.

    Keys: the fault kinds of :data:`FAULT_KINDS` and ``job_failure`` take a probability in
    [0, 1]; ``methods`` and ``paths`` take ``|``-separated lists; ``retry_after`` and ``seed``
    take integers. Raises ValueError naming the bad item and the expected syntax.
    """
    probabilities: dict[str, float] = {}
    job_failure = 0.0
    methods: set[str] = set()
    paths: list[str] = []
    retry_after = 1
    seed: int | None = None
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or not value:
            raise ValueError(f"fault spec item {item!r} has no value: {_SYNTAX}")
        if key in FAULT_KINDS or key == JOB_FAILURE:
            try:
                prob = float(value)
            except ValueError:
                raise ValueError(
                    f"fault spec item {item!r}: {value!r} is not a probability; "
                    "use a number between 0 and 1"
                ) from None
            if not 0.0 <= prob <= 1.0:
                raise ValueError(f"fault spec item {item!r}: probability must be between 0 and 1")
            if key == JOB_FAILURE:
                job_failure = prob
            else:
                probabilities[key] = prob
        elif key in ("methods", "method"):
            methods.update(m.strip().upper() for m in value.split("|") if m.strip())
        elif key in ("paths", "path"):
            paths.extend(p.strip() for p in value.split("|") if p.strip())
        elif key in ("retry_after", "seed"):
            try:
                number = int(value)
            except ValueError:
                raise ValueError(f"fault spec item {item!r}: {value!r} is not an integer") from None
            if key == "seed":
                seed = number
            elif number < 0:
                raise ValueError(f"fault spec item {item!r}: retry_after must be >= 0")
            else:
                retry_after = number
        else:
            known = ", ".join(
                [*FAULT_KINDS, JOB_FAILURE, "methods", "paths", "retry_after", "seed"]
            )
            raise ValueError(f"fault spec item {item!r}: unknown key {key!r} (known: {known})")
    if sum(probabilities.values()) > 1.0:
        raise ValueError("fault spec: the request fault probabilities add up to more than 1")
    return FaultSpec(
        probabilities=probabilities,
        job_failure=job_failure,
        methods=frozenset(methods),
        paths=tuple(paths),
        retry_after=retry_after,
        seed=seed,
    )


def parse_rate(text: str) -> float:
    """Parse a rate limit: ``"5"`` or ``"5/s"`` (per second), ``"300/min"``, ``"1000/h"``."""
    value, _, unit = text.strip().partition("/")
    per = {
        "": 1.0,
        "s": 1.0,
        "sec": 1.0,
        "second": 1.0,
        "m": 60.0,
        "min": 60.0,
        "minute": 60.0,
        "h": 3600.0,
        "hour": 3600.0,
    }.get(unit.strip().lower())
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if per is None or number <= 0:
        raise ValueError(
            f"rate limit {text!r} is not valid: write requests per second such as '5', '5/s', "
            "'300/min' or '1000/h' (a positive number)"
        )
    return number / per


@dataclass
class SandboxConfig:
    """How a sandbox server behaves.

    Attributes:
        data_dir: directory holding ``sandbox.db`` (SQLite) and ``files/<id>`` (uploaded
            contents); created if missing. Reusing it after a restart keeps every object.
        api_key: bearer token every ``/v1`` request must carry; ``None`` disables auth.
        time_scale: speed of simulated time; 10 makes jobs progress ten times faster
            (finite, > 0). With a ``clock``, its scale.
        faults: request/job fault injection, or ``None`` for none.
        rate_limit: token-bucket limit in requests per second (burst = max(1, rate)), or
            ``None`` for no limit.
        seed: seed of fault decisions and of the simulated training curves.
        max_upload_bytes: largest accepted upload; larger gets 413.
        clock: where the sandbox reads the time; ``None`` means the real clock at
            ``time_scale``. Tests pass a :class:`~.clock.ManualClock` to drive jobs forward.
        max_body_bytes: largest body of any other request (JSON); larger gets 413.
        public_url: base of the signed download URLs, e.g. ``https://sandbox.example:8443``;
            ``None`` means the address the client connected to (never the ``Host`` header).
        header_timeout: seconds a connection may take to send a request's headers (from
            when it opens, or from the previous response); then it is closed.
        idle_timeout: seconds an idle keep-alive connection stays open.
        body_timeout: longest silence, in seconds, while a request body arrives (408).
        max_connections: connections served at once; a request arriving over the limit is
            answered 503 and its connection closed (lowered to half the process's open-file
            limit when that is smaller).
        dialect: the API it speaks: ``mistral`` (the Mistral files and fine-tuning API) or
            ``openai`` (OpenAI's files, fine-tuning and models API). A data directory holds
            one dialect's objects.
    """

    data_dir: Path
    api_key: str | None = None
    time_scale: float = 1.0
    faults: FaultSpec | None = None
    rate_limit: float | None = None
    seed: int = 0
    max_upload_bytes: int = 512 * MIB
    clock: Clock | None = None
    max_body_bytes: int = 4 * MIB
    public_url: str | None = None
    header_timeout: float = 10.0
    idle_timeout: float = 5.0
    body_timeout: float = 30.0
    max_connections: int = 512
    dialect: str = DIALECT_NAMES[0]

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        if self.dialect not in DIALECT_NAMES:
            raise ValueError(
                f"unknown dialect {self.dialect!r}: use one of {', '.join(DIALECT_NAMES)}"
            )
        if self.api_key is not None and not self.api_key.strip():
            # An empty key used to mean "no auth" without a word; say so instead.
            raise ValueError(
                "the API key is empty: give a non-empty key, or none at all to serve without "
                "auth (allowed on a loopback address only)"
            )
        if self.public_url is not None:
            self.public_url = check_public_url(self.public_url)
        for name in ("header_timeout", "idle_timeout", "body_timeout"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")
        for name in ("max_upload_bytes", "max_body_bytes", "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        if self.clock is None:
            self.clock = SystemClock(check_scale(self.time_scale))
        elif self.time_scale not in (1.0, self.clock.scale):
            raise ValueError(
                f"time_scale {self.time_scale:g} disagrees with the clock's scale "
                f"{self.clock.scale:g}: give the scale to the clock only"
            )
        else:
            self.time_scale = self.clock.scale
        if self.rate_limit is not None and self.rate_limit <= 0:
            raise ValueError(f"rate_limit must be > 0 requests/s, got {self.rate_limit}")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to listen on) is only reachable locally."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def check_exposure(host: str, api_key: str | None) -> None:
    """Refuse (ValueError) to serve on ``host`` without a key unless it is loopback-only."""
    if api_key is None and not is_loopback(host):
        raise ValueError(
            f"refusing to listen on {host} without an API key: every host that can reach it "
            "could upload, create and read everything. Give a key (--api-key or "
            "RECONCILER_SANDBOX_API_KEY), or listen on 127.0.0.1"
        )


def check_public_url(url: str) -> str:
    """``url`` without its trailing slash if it is a usable public base URL, else ValueError."""
    parts = urlsplit(url.strip())
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.username is not None
        or parts.query
        or parts.fragment
    ):
        raise ValueError(
            f"public URL {url!r} is not valid: write the base URL clients reach the sandbox "
            "at, such as http://sandbox.internal:8080 or https://example.com/sandbox "
            "(http or https, a host, no query)"
        )
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise ValueError(f"public URL {url!r} has an invalid port") from None
    return url.strip().rstrip("/")
