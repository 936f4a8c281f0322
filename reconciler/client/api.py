"""MistralClient: typed operations on the Mistral files / fine-tuning / models API.

The same client talks to Mistral's API and to our sandbox (same contract). It owns the policy
that plan and apply rely on:

* **Retries** with exponential backoff and full jitter on 429 (honouring ``Retry-After`` and
  ``x-ratelimit-reset*``), 5xx and transport failures; bounded in attempts and in total time;
  other 4xx are never retried because they would fail the same way.
* **No blind re-creates.** When the answer to a create is lost (the connection dropped or timed
  out after the request went out, or a 5xx that may have come after the commit), the object is
  looked up before anything is sent again: files by name + size (our filenames carry the
  content hash), jobs by their exact request. Found means done; a retry never makes a
  duplicate job, and never re-sends a 500 MB file that already arrived.
* **Throttling** shared by every thread: a token-bucket rate limiter (with a shared pause on
  429) and a bounded semaphore on in-flight requests.
* **Listing walks pages** (``page``/``page_size``/``total``), with the server-side filters the
  API offers, so a refresh of N objects costs about N/100 requests.
* **Streaming uploads** from disk in constant memory with a byte-level progress callback.
* **Secret hygiene**: the key lives in one private attribute and is attached per request, only
  to requests for the configured endpoint (:class:`~reconciler.client.http.BearerAuth`); it is
  never in a repr, a log line or an exception message.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx
import pydantic

from reconciler import __version__
from reconciler.client.http import (
    NOT_SENT,
    BearerAuth,
    backoff_delay,
    parse_rate_limit,
    raise_for_status,
    translate_errors,
)
from reconciler.client.limits import RateLimiter, RequestStats
from reconciler.client.multipart import MultipartFileBody
from reconciler.client.types import JobEstimate, JobStatus, RemoteFile, RemoteJob, RemoteModel
from reconciler.closing import Closing
from reconciler.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    RateLimitedError,
    ReconcilerError,
)
from reconciler.identity import JobLookup, RequestIdentity, matches
from reconciler.redact import scrub

log = logging.getLogger("reconciler.client")

T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_BASE_URL = "https://api.mistral.ai"
"""Mistral's public endpoint (used when a ``mistral`` Provider names no endpoint)."""

LOOKUP_SLACK_SECONDS = 120.0
"""How far before the first create attempt a lost job create is looked for.

Server and client clocks differ; the window must cover the skew, but not reach back so far
that an older identical job (e.g. a failed run being replaced) is taken for the new one.
"""

RATE_HEADROOM = 0.9
"""Fraction of a server-advertised rate limit the client adopts after a 429."""


@dataclass(frozen=True)
class _Found(Generic[T]):
    """Returned by the retry loop when a lost create was resolved by a lookup."""

    value: T


@dataclass
class _Call:
    """One logical operation for the retry loop.

    Attributes:
        op: operation name (for stats and logs), e.g. ``create_job``.
        method: HTTP method.
        path: request path (no query).
        params: query parameters, repeated keys allowed.
        json: JSON body, if any.
        body: builds a fresh streaming body per attempt (uploads).
        timeout: the per-operation timeout.
        resolve_lost: for creates, looks the object up after an attempt whose answer was lost;
            a non-None result ends the operation successfully without another POST.
        resolve_rejected: after a lost attempt, a retry answered with a 4xx (e.g. 409 because
            our first attempt did create the job, 404 because our delete did delete) is
            resolved by this; a non-None result means the operation had in fact succeeded.
        stream: leave the response body unread (downloads).
        accept: the ``Accept`` header, when the answer is not JSON (downloads).
    """

    op: str
    method: str
    path: str
    params: list[tuple[str, str]] | None = None
    json: Any = None
    body: Callable[[], MultipartFileBody] | None = None
    timeout: httpx.Timeout | None = None
    resolve_lost: Callable[[], Any] | None = None
    resolve_rejected: Callable[[ApiError], Any] | None = None
    stream: bool = False
    accept: str | None = None

    def error(
        self, reason: str, status: int | None = None, kind: type[ApiError] = ApiError
    ) -> ApiError:
        """An error (of type ``kind``) of this call: ``reason``, with its method and path."""
        return kind(reason, method=self.method, path=self.path, status=status)


def _seg(value: str) -> str:
    # Ids go into the path: quote them so an odd id can never address another resource.
    return quote(value, safe=":")


def _iso(value: datetime) -> str:
    # The API takes ISO-8601; a naive datetime is taken to be UTC, not local time.
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _as_list(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _first_error(exc: pydantic.ValidationError) -> str:
    # "field.path: message" of the first problem: enough to see what the server sent wrong.
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"


class HttpApi(Closing):
    """The plumbing every HTTP API client here shares: retries, throttling, error translation.

    A subclass adds the endpoints of one service (:class:`MistralClient`, the OpenAI provider
    of :mod:`reconciler.providers.openai`) on top of :meth:`_execute`: the retry loop with
    lost-response resolution, the shared rate limiter and concurrency bound, and translation
    of every transport failure and error status into :mod:`reconciler.errors`. Page-numbered
    listing (:meth:`_paginate`) and the streaming upload to ``/v1/files`` (whose lost answer
    is looked up with the subclass's :meth:`find_file`) are shared too: both services take
    the same multipart form.

    Thread-safe: one instance is meant to be shared by all the parallel work of a command, so
    that the rate limit and the concurrency bound hold for the whole process.

    Args:
        base_url: API root, e.g. ``https://api.mistral.ai`` or ``http://127.0.0.1:8765``
            (a trailing ``/v1`` is tolerated: request paths carry it).
        api_key: bearer key, or ``None`` for a sandbox without a key.
        transport: httpx transport (tests pass ``httpx.MockTransport``).
        max_attempts: attempts per request, including the first.
        max_retry_seconds: total time one operation may spend retrying.
        rate_limit: client-side cap in requests per second (``None``: no cap).
        concurrency: maximum requests in flight at once across threads.
        timeout: seconds for ordinary requests.
        upload_timeout: seconds for uploads and downloads (read/write of large bodies).
        sleep: how to wait between attempts (tests pass a recorder).
        user_agent: the ``User-Agent`` header.
        extra_headers: further headers sent with every request (e.g. OpenAI's organisation).
    """

    compatible = "a Mistral-compatible API"
    """What the endpoint should be, for messages about answers that do not parse."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        transport: httpx.BaseTransport | None = None,
        max_attempts: int = 6,
        max_retry_seconds: float = 120.0,
        rate_limit: float | None = None,
        concurrency: int = 8,
        timeout: float = 30.0,
        upload_timeout: float = 600.0,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = f"reconciler/{__version__}",
        extra_headers: Mapping[str, str] | None = None,
    ) -> None:
        base = base_url.strip().rstrip("/")
        if base.endswith("/v1"):
            base = base[: -len("/v1")]
        if not re.match(r"^https?://[^/\s]+", base):
            raise ReconcilerError(
                f"invalid API endpoint {base_url!r}: expected an http(s) URL such as "
                "https://api.example.com or http://127.0.0.1:8765; fix Provider.endpoint"
            )
        key = api_key.strip() if api_key is not None else None
        if key is not None and (not key or re.search(r"[\s\x00-\x1f\x7f]", key)):
            # Said without the value: httpx would otherwise echo the bad header in its error.
            raise ReconcilerError(
                "the API key is empty or contains whitespace/control characters; "
                "check the environment variable or file the Provider's api_key points to"
            )
        if max_attempts < 1 or concurrency < 1:
            raise ValueError("max_attempts and concurrency must be at least 1")
        self.base_url = base
        self.__api_key = key
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self.timeout = httpx.Timeout(timeout)
        self.upload_timeout = httpx.Timeout(upload_timeout, connect=timeout)
        self.stats = RequestStats()
        self._sleep = sleep
        self._limiter = RateLimiter(rate_limit, sleep=sleep)
        self._slots = threading.BoundedSemaphore(concurrency)
        headers = {"User-Agent": user_agent, "Accept": "application/json", **(extra_headers or {})}
        self._http = httpx.Client(
            base_url=base,
            headers=headers,
            # Per request and only for this endpoint's origin, never as a default header.
            auth=BearerAuth(key, base) if key else None,
            transport=transport or httpx.HTTPTransport(retries=0),
            timeout=self.timeout,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
        )

    # -- plumbing -----------------------------------------------------------------------

    def __repr__(self) -> str:
        key = "<set>" if self.__api_key else None
        return f"{type(self).__name__}(base_url={self.base_url!r}, api_key={key})"

    @property
    def _secret(self) -> str | None:
        """The key, for scrubbing it from messages (never for anything else)."""
        return self.__api_key

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    @property
    def rate_limiter(self) -> RateLimiter:
        """The limiter shared by every request of this client."""
        return self._limiter

    def _execute(self, call: _Call) -> httpx.Response | _Found[Any]:
        """Send ``call`` with retries; return the response or a lookup's result."""
        started = time.monotonic()
        waited = 0.0
        lost = False  # an earlier attempt may have reached (and changed) the server
        error: ApiError | None = None
        for attempt in range(1, self.max_attempts + 1):
            throttled = self._limiter.acquire()
            waited += throttled
            if throttled:
                self.stats.add(waited_seconds=throttled)
            try:
                with self._slots:
                    self.stats.count_request(call.method, call.op, retry=attempt > 1)
                    response = self._send_once(call)
                log.debug("%s %s -> %s", call.method, call.path, response.status_code)
                return response
            except ApiError as exc:
                error = exc
            status = error.status
            log.debug("%s %s -> %s", call.method, call.path, status or "no response")
            if status is not None and status < 500 and status != 429:
                if lost and call.resolve_rejected is not None:
                    value = self._resolve(call.resolve_rejected, error, error)
                    if value is not None:
                        log.info(
                            "%s %s: HTTP %s after an earlier lost response; the earlier "
                            "attempt had succeeded",
                            call.method,
                            call.path,
                            status,
                        )
                        return _Found(value)
                raise error
            maybe_committed = status is not None and status >= 500
            if status is None and not isinstance(error.__cause__, NOT_SENT):
                maybe_committed = True
            if maybe_committed:
                lost = True
                if call.resolve_lost is not None:
                    self.stats.add(lookups=1)
                    log.info(
                        "%s %s: response lost (%s); looking the object up before retrying",
                        call.method,
                        call.path,
                        status or "no response",
                    )
                    value = self._resolve(call.resolve_lost, error)
                    if value is not None:
                        log.info(
                            "%s %s: found the object created by the lost attempt",
                            call.method,
                            call.path,
                        )
                        return _Found(value)
            if attempt == self.max_attempts:
                break
            hinted = error.retry_after if isinstance(error, RateLimitedError) else None
            if hinted is not None:
                # The server said when; a little jitter keeps parallel workers apart.
                delay = hinted + backoff_delay(1, base=min(1.0, 0.1 * hinted + 0.05))
            else:
                delay = backoff_delay(attempt)
            spent = max(time.monotonic() - started, waited)
            if spent + delay > self.max_retry_seconds:
                self._log_failed_attempt(
                    call,
                    attempt,
                    status,
                    "not retrying: waiting %.1fs more would exceed the %.0fs retry budget",
                    delay,
                    self.max_retry_seconds,
                )
                break
            self._log_failed_attempt(call, attempt, status, "retrying in %.1fs", delay)
            if status == 429:
                self._learn_rate_limit(error)
                # One thread's 429 is everyone's: hold all workers, this one included (the
                # next acquire() does the waiting).
                self._limiter.pause(delay)
            else:
                self._sleep(delay)
                waited += delay
                self.stats.add(waited_seconds=delay)
        assert error is not None
        raise error

    def _log_failed_attempt(
        self, call: _Call, attempt: int, status: int | None, then: str, *args: Any
    ) -> None:
        """Log a failed attempt of ``call`` and ``then`` (a format with ``args``): what next."""
        log.info(
            "%s %s: attempt #%d/%d failed (%s); " + then,
            call.method,
            call.path,
            attempt,
            self.max_attempts,
            status or "no response",
            *args,
        )

    def _resolve(self, resolver: Callable[..., Any], error: ApiError, *args: Any) -> Any:
        """Run a lost-response resolver; if it fails too, say that the outcome is unknown."""
        try:
            return resolver(*args)
        except ApiError as lookup_error:
            raise error.restated(
                f"{error.reason}; the request may have been applied, and looking it up failed "
                f"as well ({lookup_error}). Run the command again once the API answers: it "
                "looks the object up before creating anything"
            ) from lookup_error

    def _learn_rate_limit(self, error: ApiError) -> None:
        cause = error.__cause__
        if not isinstance(cause, httpx.HTTPStatusError):
            return
        limit = parse_rate_limit(cause.response.headers)
        # Stay a little under the advertised limit: requests bunch up on the way there.
        if limit is not None and self._limiter.adopt(limit * RATE_HEADROOM):
            log.info(
                "the server limits requests to %.3g/s; throttling this client to %.3g/s",
                limit,
                limit * RATE_HEADROOM,
            )

    def _send_once(self, call: _Call) -> httpx.Response:
        body = call.body() if call.body is not None else None
        headers: dict[str, str] = {}
        content = None
        if body is not None:
            headers["Content-Type"] = body.content_type
            headers["Content-Length"] = str(body.content_length)
            content = body
        if call.accept is not None:
            headers["Accept"] = call.accept
        with translate_errors(
            call.method, call.path, base_url=self.base_url, secret=self.__api_key
        ):
            request = self._http.build_request(
                call.method,
                call.path,
                params=tuple(call.params) if call.params else None,
                json=call.json,
                content=content,
                headers=headers or None,
                timeout=call.timeout or self.timeout,
            )
            response = self._http.send(request, stream=call.stream)
            if call.stream and response.is_error:
                try:
                    response.read()
                finally:
                    response.close()
            raise_for_status(response)
        return response

    def _call(self, call: _Call) -> httpx.Response:
        result = self._execute(call)
        assert isinstance(result, httpx.Response)
        return result

    def _parse(self, model: type[M], data: Any, call: _Call, status: int = 200) -> M:
        try:
            return model.model_validate(data)
        except pydantic.ValidationError as exc:
            raise self._unexpected(call, f"{model.__name__}.{_first_error(exc)}", status) from exc

    def _unexpected(self, call: _Call, what: str, status: int | None = None) -> ApiError:
        """An answer of the wrong shape (``what`` is wrong with it): perhaps the endpoint is
        not the kind of API it should be."""
        return call.error(
            f"unexpected response: {what} (is the endpoint {self.compatible}?)", status
        )

    def _json(self, response: httpx.Response, call: _Call) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise call.error(
                f"the response is not JSON: {scrub(response.text, (self.__api_key,))[:120]!r} "
                f"(is the endpoint {self.compatible}?)",
                response.status_code,
            ) from exc

    def _one(self, model: type[M], call: _Call) -> M:
        response = self._call(call)
        return self._parse(model, self._json(response, call), call, response.status_code)

    def _paginate(
        self, op: str, path: str, params: list[tuple[str, str]], model: type[M], page_size: int
    ) -> list[M]:
        if page_size < 1:
            raise ValueError("page_size must be at least 1")
        items: list[M] = []
        seen: set[str] = set()
        page = 0
        while True:
            call = _Call(
                op,
                "GET",
                path,
                params=[*params, ("page", str(page)), ("page_size", str(page_size))],
            )
            response = self._call(call)
            body = self._json(response, call)
            data = self._data_list(body, call, response)
            fresh = 0
            for raw in data:
                obj = self._parse(model, raw, call)
                key = str(getattr(obj, "id", ""))
                # Objects created while we page shift older ones onto the next page.
                if key not in seen:
                    seen.add(key)
                    items.append(obj)
                    fresh += 1
            page += 1
            total = body.get("total")
            # `total` (when the server sends one that is not already exceeded) decides whether
            # more remain: a server may send pages shorter than asked. Without it, a short
            # page is the last one.
            if not isinstance(total, int) or isinstance(total, bool) or total < len(items):
                total = None
            if not data:
                if total is not None and len(items) < total:
                    log.warning(
                        "GET %s: page %d is empty although the list's total says %d more "
                        "remain; stopping with the %d objects read",
                        path,
                        page - 1,
                        total - len(items),
                        len(items),
                    )
                break
            if not fresh:
                # A page of nothing new: the server ignores `page`; stop, do not spin.
                log.warning("GET %s: page %d repeated earlier results; stopping", path, page - 1)
                break
            last = len(items) >= total if total is not None else len(data) < page_size
            if last:
                break
        return items

    def _data_list(self, body: Any, call: _Call, response: httpx.Response) -> list[Any]:
        """The ``data`` array of a list answer (a JSON object); an absent or null one is an
        empty list (the contract makes ``data`` optional in the jobs and models lists)."""
        if isinstance(body, dict):
            data = body.get("data")
            if data is None:
                return []
            if isinstance(data, list):
                return data
        raise self._unexpected(call, "no 'data' list", response.status_code)

    # -- files ----------------------------------------------------------------------------

    def upload_file(
        self,
        path: Path,
        filename: str,
        *,
        purpose: str = "fine-tune",
        sha256: str | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> RemoteFile:
        """Upload ``path`` as ``filename``, streaming from disk; return the remote file.

        If the answer is lost, the file is looked up by name and size before it is sent again.
        The server dedupes on (content, filename) too, but the lookup still matters: it saves
        re-sending up to 512 MB, and it does not depend on the server's dedupe having seen the
        first attempt's commit (a dedupe that races with an in-flight commit, or a server
        without dedupe, would otherwise store a second copy).

        Args:
            path: the file to send.
            filename: the remote name; ours carry the content hash, so name + size identify
                the content.
            purpose: the ``purpose`` form field.
            sha256: expected content digest; checked while streaming, and a mismatch aborts
                the upload before it completes (:class:`~reconciler.errors.DataError`).
            progress: called with ``(bytes_sent, total_bytes)`` as the file streams.
        """
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise ReconcilerError(
                f"cannot upload {path}: {exc.strerror or exc}; check that the file exists"
            ) from exc

        def body() -> MultipartFileBody:
            return MultipartFileBody(
                path,
                filename,
                fields={"purpose": purpose},
                sha256=sha256,
                progress=progress,
                on_bytes=lambda n: self.stats.add(bytes_uploaded=n),
            )

        call = _Call(
            "upload_file",
            "POST",
            "/v1/files",
            body=body,
            timeout=self.upload_timeout,
            resolve_lost=lambda: self.find_file(filename, size=size),
        )
        result = self._execute(call)
        if isinstance(result, _Found):
            found: RemoteFile = result.value
            return found
        return self._parse(RemoteFile, self._json(result, call), call, result.status_code)

    def find_file(self, filename: str, *, size: int | None = None) -> RemoteFile | None:
        """The newest file named ``filename`` (and of ``size`` bytes), or None: how a lost
        upload is looked up. Each service's client lists its files its own way."""
        raise NotImplementedError

    # -- jobs -----------------------------------------------------------------------------

    def _create_job_once(
        self, body: dict[str, Any], find: Callable[[datetime], list[RemoteJob]]
    ) -> RemoteJob:
        """POST ``body`` to ``/v1/fine_tuning/jobs``, creating one job at most.

        If the answer is lost, the jobs this create made are looked up with ``find(since)``
        (the service's own way of telling them, created after ``since``: shortly before the
        first attempt, :data:`LOOKUP_SLACK_SECONDS`) and the newest is returned instead of
        posting again. A 409 is a :class:`~reconciler.errors.ConflictError` (a similar job is
        active), unless it answers a retry after a lost attempt and the lookup finds that
        attempt's job.
        """
        since = datetime.now(UTC) - timedelta(seconds=LOOKUP_SLACK_SECONDS)

        def lookup() -> RemoteJob | None:
            found = find(since)
            return max(found, key=lambda j: j.created_at) if found else None

        call = _Call(
            "create_job",
            "POST",
            "/v1/fine_tuning/jobs",
            json=body,
            resolve_lost=lookup,
            resolve_rejected=lambda e: lookup() if isinstance(e, ConflictError) else None,
        )
        result = self._execute(call)
        if isinstance(result, _Found):
            job: RemoteJob = result.value
            return job
        return self._created_job(result, call)

    def _created_job(self, response: httpx.Response, call: _Call) -> RemoteJob:
        """The job a create answered with (in the service's own shape)."""
        return self._parse(RemoteJob, self._json(response, call), call, response.status_code)


class MistralClient(HttpApi):
    """Client of the Mistral files / fine-tuning / models API (and the sandbox).

    See :class:`HttpApi` for the arguments, the plumbing and the upload; this class adds the
    rest of Mistral's endpoints and its lost-create lookups.
    """

    def list_files(
        self,
        *,
        purpose: str | None = None,
        search: str | None = None,
        sample_type: str | Sequence[str] | None = None,
        source: str | Sequence[str] | None = None,
        page_size: int = 100,
    ) -> list[RemoteFile]:
        """Every file matching the filters (walks all pages)."""
        params: list[tuple[str, str]] = []
        if purpose is not None:
            params.append(("purpose", purpose))
        if search is not None:
            params.append(("search", search))
        params += [("sample_type", v) for v in _as_list(sample_type)]
        params += [("source", v) for v in _as_list(source)]
        return self._paginate("list_files", "/v1/files", params, RemoteFile, page_size)

    def _delete(self, operation: str, what: str, path: str) -> None:
        """DELETE ``path`` (the object ``what``, e.g. ``file 1234``).

        A 404 on a retry means the lost first attempt already worked. An answer that says
        ``deleted: false`` is a failure: the object is still there.
        """
        call = _Call(
            operation,
            "DELETE",
            path,
            resolve_rejected=lambda e: True if isinstance(e, NotFoundError) else None,
        )
        result = self._execute(call)
        if not isinstance(result, _Found):
            self._check_done(result, call, "deleted", True, f"{what} was not deleted")

    def _check_done(
        self, response: httpx.Response, call: _Call, flag: str, wanted: bool, failure: str
    ) -> None:
        """Raise when a 2xx answer's ``flag`` says the action did not happen.

        The contract answers deletes with ``deleted`` and (un)archives with ``archived``;
        a 2xx whose flag contradicts the action is a refusal, not a success. An answer
        without the flag (or without JSON) does not contradict its status.
        """
        try:
            body = response.json()
        except ValueError:
            return
        if isinstance(body, dict) and body.get(flag) is (not wanted):
            raise call.error(
                f"{failure}: the server answered '{flag}: {str(not wanted).lower()}'. Run the "
                "command again, or make the change by hand if this persists",
                response.status_code,
            )

    def get_file(self, file_id: str) -> RemoteFile:
        """One file by id.

        Raises:
            NotFoundError: it does not exist, or the server returns it marked
                ``deleted: true`` (a deleted file is gone, whatever else the answer says).
        """
        call = _Call("get_file", "GET", f"/v1/files/{_seg(file_id)}")
        response = self._call(call)
        found = self._parse(RemoteFile, self._json(response, call), call, response.status_code)
        if found.deleted:
            raise call.error(
                f"file {file_id} was deleted (the server returned it marked 'deleted: true'); "
                "run `reconciler plan` to refresh",
                response.status_code,
                NotFoundError,
            )
        return found

    def delete_file(self, file_id: str) -> None:
        """Delete a file. A retry that finds it gone after a lost answer counts as done."""
        self._delete("delete_file", f"file {file_id}", f"/v1/files/{_seg(file_id)}")

    def download_file(self, file_id: str, dest: Path) -> None:
        """Stream a file's content to ``dest`` (written to a temporary name, then renamed)."""
        call = _Call(
            "download_file",
            "GET",
            f"/v1/files/{_seg(file_id)}/content",
            timeout=self.upload_timeout,
            stream=True,
            # The content is answered as application/octet-stream: a server that negotiates
            # would refuse the client-wide `Accept: application/json` (406).
            accept="application/octet-stream, application/json;q=0.5",
        )
        response = self._call(call)
        tmp = dest.with_name(f".{dest.name}.part")
        try:
            with translate_errors("GET", call.path, base_url=self.base_url, secret=self._secret):
                with open(tmp, "wb") as fh:
                    for chunk in response.iter_bytes(1024 * 1024):
                        fh.write(chunk)
            tmp.replace(dest)
        except OSError as exc:
            raise ReconcilerError(
                f"cannot write the download of file {file_id} to {dest}: "
                f"{exc.strerror or exc}; check the directory exists and is writable"
            ) from exc
        finally:
            response.close()
            tmp.unlink(missing_ok=True)

    def signed_url(self, file_id: str, expiry_hours: int = 24) -> str:
        """A temporary download URL for a file (``expiry`` in hours)."""
        call = _Call(
            "signed_url",
            "GET",
            f"/v1/files/{_seg(file_id)}/url",
            params=[("expiry", str(expiry_hours))],
        )
        response = self._call(call)
        body = self._json(response, call)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            raise call.error("unexpected response: no 'url'", response.status_code)
        return str(body["url"])

    def find_file(self, filename: str, *, size: int | None = None) -> RemoteFile | None:
        """The newest file named exactly ``filename`` (and of ``size`` bytes, if given).

        A file whose size the server does not report (``bytes: null``, as in the contract's
        own examples) matches by name alone: our filenames carry the content hash.
        """
        candidates = [
            f
            for f in self.list_files(search=filename)
            if f.filename == filename
            and (size is None or f.bytes is None or f.bytes == size)
            and not f.deleted
        ]
        return max(candidates, key=lambda f: f.created_at) if candidates else None

    # -- jobs -------------------------------------------------------------------------------

    def create_job(self, request: dict[str, Any], lookup: JobLookup = JobLookup()) -> RemoteJob:
        """Create a fine-tuning job from a JobIn body; never creates it twice.

        If the answer is lost, jobs matching the request exactly and created since shortly
        before the first attempt are looked up; a match is returned instead of posting again
        (see :meth:`_create_job_once`).

        Args:
            request: the JobIn body.
            lookup: its ``exclude`` are ids of jobs the lookup must never take for this one
                (the caller's record says another request made them, e.g. the job a
                replacement replaces, whose readable request may equal this one). Mistral
                jobs cannot carry its ``tag``: the request is their identity.
        """
        return self._create_job_once(
            request, lambda since: self.find_jobs(request, replace(lookup, created_after=since))
        )

    def estimate_job(self, request: dict[str, Any]) -> JobEstimate:
        """Cost / duration estimate for a JobIn body (``dry_run=true``; creates nothing)."""
        return self._one(
            JobEstimate,
            _Call(
                "estimate_job",
                "POST",
                "/v1/fine_tuning/jobs",
                params=[("dry_run", "true")],
                json=request,
            ),
        )

    def list_jobs(
        self,
        *,
        model: str | None = None,
        status: str | None = None,
        suffix: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        created_by_me: bool | None = None,
        wandb_project: str | None = None,
        wandb_name: str | None = None,
        page_size: int = 100,
    ) -> list[RemoteJob]:
        """Every job matching the filters (walks all pages)."""
        params: list[tuple[str, str]] = []
        for key, value in (
            ("model", model),
            ("status", status),
            ("suffix", suffix),
            ("wandb_project", wandb_project),
            ("wandb_name", wandb_name),
        ):
            if value is not None:
                params.append((key, value))
        if created_after is not None:
            params.append(("created_after", _iso(created_after)))
        if created_before is not None:
            params.append(("created_before", _iso(created_before)))
        if created_by_me is not None:
            params.append(("created_by_me", "true" if created_by_me else "false"))
        return self._paginate("list_jobs", "/v1/fine_tuning/jobs", params, RemoteJob, page_size)

    def get_job(self, job_id: str) -> RemoteJob:
        """One job, detailed (events, checkpoints)."""
        return self._one(RemoteJob, _Call("get_job", "GET", f"/v1/fine_tuning/jobs/{_seg(job_id)}"))

    def start_job(self, job_id: str) -> RemoteJob:
        """Start a VALIDATED job (one created with ``auto_start=false``)."""
        return self._job_action("start_job", job_id, "start", lambda s: s.has_started)

    def cancel_job(self, job_id: str) -> RemoteJob:
        """Request cancellation of a job."""
        return self._job_action("cancel_job", job_id, "cancel", lambda s: s.is_cancelled)

    def _job_action(
        self, op: str, job_id: str, action: str, took_effect: Callable[[JobStatus], bool]
    ) -> RemoteJob:
        """POST a job action; a refusal after a lost attempt whose effect shows is success."""

        def resolve(err: ApiError) -> RemoteJob | None:
            job = self.get_job(job_id)
            status = JobStatus.of(job.status)
            return job if status is not None and took_effect(status) else None

        call = _Call(
            op, "POST", f"/v1/fine_tuning/jobs/{_seg(job_id)}/{action}", resolve_rejected=resolve
        )
        result = self._execute(call)
        if isinstance(result, _Found):
            job: RemoteJob = result.value
            return job
        return self._parse(RemoteJob, self._json(result, call), call, result.status_code)

    def find_jobs(
        self, request: dict[str, Any], lookup: JobLookup = JobLookup()
    ) -> list[RemoteJob]:
        """Jobs that are what ``request`` (a JobIn body) would create, as far as readable.

        Narrowed server-side by ``model``, ``suffix`` and ``lookup.created_after`` so the scan
        stays a few pages; compared client-side by :func:`reconciler.identity.matches`.
        Classifier jobs whose list entry lacks the targets are fetched individually to compare
        them. Jobs whose id is in ``lookup.exclude`` are left out; ``lookup.tag`` is not used
        (Mistral jobs cannot carry it).
        """
        created_after = lookup.created_after
        identity = RequestIdentity.of_request(request)
        model = request.get("model")
        jobs = self.list_jobs(
            model=str(model) if model is not None else None,
            suffix=request.get("suffix") or None,
            created_after=created_after,
        )
        if created_after is not None:
            # Do not trust the server filter alone: a server that ignores it must not make an
            # old identical job look like the one we just created.
            floor = created_after.replace(tzinfo=created_after.tzinfo or UTC).timestamp()
            jobs = [j for j in jobs if j.created_at >= floor]
        out = []
        for job in jobs:
            if job.id in lookup.exclude or not matches(identity, job.model_dump(mode="json")):
                continue
            if identity.classifier_targets and job.classifier_targets is None:
                job = self.get_job(job.id)
                if not matches(identity, job.model_dump(mode="json")):
                    continue
            out.append(job)
        return out

    # -- fine-tuned models --------------------------------------------------------------------

    def list_models(self) -> list[RemoteModel]:
        """All models visible to the key (base and fine-tuned; see ``is_fine_tuned``)."""
        call = _Call("list_models", "GET", "/v1/models")
        response = self._call(call)
        body = self._json(response, call)
        data = body if isinstance(body, list) else self._data_list(body, call, response)
        models: list[RemoteModel] = []
        unreadable: list[str] = []
        for raw in data:
            try:
                models.append(RemoteModel.model_validate(raw))
            except pydantic.ValidationError as exc:
                # One odd card (say, a new base model's) must not stop a refresh; the cards
                # reconciler reads are its own fine-tuned models, which it still gets.
                card = raw.get("id") if isinstance(raw, dict) else None
                unreadable.append(f"{card or '(no id)'}: {_first_error(exc)}")
        if unreadable:
            self.stats.add(skipped_objects=len(unreadable))
            log.warning(
                "GET %s: skipped %d model card(s) that do not parse: %s",
                call.path,
                len(unreadable),
                "; ".join(unreadable[:3]) + (" ..." if len(unreadable) > 3 else ""),
            )
        return models

    def get_model(self, model_id: str) -> RemoteModel:
        """One model by id."""
        return self._one(RemoteModel, _Call("get_model", "GET", f"/v1/models/{_seg(model_id)}"))

    def delete_model(self, model_id: str) -> None:
        """Delete a fine-tuned model. A retry finding it gone after a lost answer is done."""
        self._delete("delete_model", f"model {model_id}", f"/v1/models/{_seg(model_id)}")

    def update_model(
        self, model_id: str, *, name: str | None = None, description: str | None = None
    ) -> RemoteModel:
        """Set a fine-tuned model's name and/or description (``None`` leaves it unchanged)."""
        body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        return self._one(
            RemoteModel,
            _Call("update_model", "PATCH", f"/v1/fine_tuning/models/{_seg(model_id)}", json=body),
        )

    def archive_model(self, model_id: str) -> None:
        """Archive a fine-tuned model (idempotent); an answer ``archived: false`` fails."""
        call = _Call("archive_model", "POST", f"/v1/fine_tuning/models/{_seg(model_id)}/archive")
        self._check_done(
            self._call(call), call, "archived", True, f"model {model_id} was not archived"
        )

    def unarchive_model(self, model_id: str) -> None:
        """Unarchive a fine-tuned model (idempotent); an answer ``archived: true`` fails."""
        call = _Call(
            "unarchive_model", "DELETE", f"/v1/fine_tuning/models/{_seg(model_id)}/archive"
        )
        self._check_done(
            self._call(call), call, "archived", False, f"model {model_id} was not unarchived"
        )


__all__ = ["DEFAULT_BASE_URL", "HttpApi", "MistralClient"]
