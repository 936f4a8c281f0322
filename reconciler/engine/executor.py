"""The executor: carries out a plan, exactly once, in dependency order.

Exactly-once rests on three rules:

1. **Intent before create.** Before an upload or a job create is sent, an intent (what is
   being created and how to recognise it remotely) is persisted in the state. The result
   replaces the intent once it is recorded.
2. **Recover before create.** A run first resolves every intent left by an earlier run that
   died (kill -9, lost response, cancelled CI job): it looks the object up remotely — files by
   their content-addressed name and size, jobs by their exact request — and records it if it
   exists. Only then is anything created.
3. **Check before create.** Each create first checks whether the state already has the
   object, and a 409 on a job create is resolved by lookup, not by a second job.

Jobs are created with ``auto_start=false``; the start phase waits for the remote to validate
them, checks the job's budget against the remote's cost estimate, and starts them (or leaves
them validated and reports why). Partial failure keeps what succeeded; the next run converges.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState, IntegrationSpec
from reconciler.engine.observed import ACTIVE_STATUSES, TERMINAL_STATUSES
from reconciler.engine.plan import Action, Change, Plan
from reconciler.engine.state_model import Intent, ResourceState, State, StateBackend
from reconciler.errors import (
    ApiError,
    ConflictError,
    NotFoundError,
    ReconcilerError,
    SecretError,
)
from reconciler.spec.secrets import resolve_secret

if TYPE_CHECKING:
    from reconciler.client.api import MistralClient

WANDB_KEY_LENGTH = 40
"""Length of every W&B API key (the API rejects any other length)."""

RECOVERY_SLACK_SECONDS = 300.0
"""Jobs are searched from this long before an intent's time (clock skew with the remote)."""


class ApplyHooks(Protocol):
    """Progress callbacks; the CLI renders them. All are called from worker threads."""

    def begin(self, change: Change) -> None:
        """Work on a change starts."""

    def upload_progress(self, address: str, sent: int, total: int) -> None:
        """Bytes of an upload sent so far."""

    def note(self, address: str, message: str) -> None:
        """A step within a change (created, validating, started, ...)."""

    def done(self, outcome: Outcome) -> None:
        """A change finished (applied, failed or skipped)."""


class SilentHooks:
    """Hooks that show nothing (``--format json``, tests)."""

    def begin(self, change: Change) -> None:
        """Ignore."""

    def upload_progress(self, address: str, sent: int, total: int) -> None:
        """Ignore."""

    def note(self, address: str, message: str) -> None:
        """Ignore."""

    def done(self, outcome: Outcome) -> None:
        """Ignore."""


@dataclass
class Outcome:
    """What happened to one change.

    Attributes:
        address, action: the change.
        status: ``applied``, ``failed``, ``skipped`` (nothing to do any more, e.g. recovered)
            or ``not-attempted`` (a dependency failed).
        message: one line for humans.
        remote_id: the remote object it ended with, if any.
    """

    address: str
    action: str
    status: str
    message: str = ""
    remote_id: str | None = None


@dataclass
class ApplyResult:
    """The result of an apply: outcomes per change, recoveries, the final serial."""

    outcomes: list[Outcome] = field(default_factory=list)
    recovered: list[str] = field(default_factory=list)
    serial: int | None = None
    started_jobs: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Outcome]:
        """Outcomes that failed or could not be attempted."""
        return [o for o in self.outcomes if o.status in ("failed", "not-attempted")]

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``apply --format json``."""
        return {
            "outcomes": [o.__dict__ for o in self.outcomes],
            "recovered": self.recovered,
            "serial": self.serial,
            "started_jobs": self.started_jobs,
            "ok": not self.failures,
        }


@dataclass(frozen=True)
class ApplyOptions:
    """How to apply.

    Attributes:
        parallelism: concurrent remote operations.
        allow_duplicates: create jobs the plan flags as possible duplicates anyway.
        start_timeout: seconds to wait for the remote to validate new jobs before giving up
            on starting them in this run (the next plan shows them as ``start``).
        poll_interval: seconds between status polls.
        flush_interval: seconds between state writes of recorded results (intents are
            always written at once).
    """

    parallelism: int = 8
    allow_duplicates: bool = False
    start_timeout: float = 600.0
    poll_interval: float = 0.5
    flush_interval: float = 0.5


class StateRecorder:
    """Thread-safe holder of the working state; persists it with compare-and-swap writes.

    Writes are group-committed: a thread that needs its intent on disk waits for the one
    write in progress, and the next write carries every change made meanwhile, so N
    parallel creates cost far fewer than N state writes while each intent is still on disk
    before its request is sent.
    """

    def __init__(self, backend: StateBackend, state: State | None) -> None:
        self._backend = backend
        self._lock = threading.RLock()  # guards self.state and the counters
        self._io = threading.Lock()  # one backend write at a time
        self._stored_serial = state.serial if state is not None else None
        self.state = state.model_copy(deep=True) if state is not None else State()
        self._version = 0  # bumped by every change
        self._persisted = 0  # version covered by the last write
        self._last_flush = time.monotonic()

    @property
    def serial(self) -> int | None:
        """Serial of the last stored state."""
        return self._stored_serial

    def _changed(self) -> int:
        self._version += 1
        return self._version

    def _write_if_behind(self, needed: int) -> None:
        """Persist unless a write already covered version ``needed``."""
        with self._io:
            with self._lock:
                if self._persisted >= needed:
                    return
                version = self._version
                snapshot = self.state.model_copy(deep=True)
                expected = self._stored_serial
            stored = self._backend.write(snapshot, expected)
            with self._lock:
                self._stored_serial = stored.serial
                self.state.serial = stored.serial
                self._persisted = version
                self._last_flush = time.monotonic()

    def add_intents(self, intents: list[Intent]) -> None:
        """Record intents and persist them before returning (rule 1)."""
        if not intents:
            return
        with self._lock:
            for intent in intents:
                self.state.intents[intent.id] = intent
            needed = self._changed()
        self._write_if_behind(needed)

    def drop_intent(self, intent_id: str) -> None:
        """Forget a resolved intent (persisted with the next flush)."""
        with self._lock:
            if self.state.intents.pop(intent_id, None) is not None:
                self._changed()

    def put(self, resource: ResourceState, *, intent_id: str | None = None) -> None:
        """Record a resource (and drop the intent that created it)."""
        with self._lock:
            self.state.resources[resource.address] = resource
            if intent_id is not None:
                self.state.intents.pop(intent_id, None)
            self._changed()

    def update_attributes(self, address: str, **attributes: Any) -> None:
        """Merge attributes into a recorded resource."""
        with self._lock:
            res = self.state.resources.get(address)
            if res is not None:
                res.attributes.update(attributes)
                self._changed()

    def remove(self, address: str) -> None:
        """Forget an address."""
        with self._lock:
            if self.state.resources.pop(address, None) is not None:
                self._changed()

    def get(self, address: str) -> ResourceState | None:
        """A copy of a recorded resource."""
        with self._lock:
            res = self.state.resources.get(address)
            return res.model_copy(deep=True) if res is not None else None

    def maybe_flush(self, interval: float) -> None:
        """Persist pending results if the last write is older than ``interval`` seconds."""
        with self._lock:
            due = time.monotonic() - self._last_flush >= interval
            version = self._version
        if due:
            self._write_if_behind(version)

    def flush(self) -> None:
        """Persist pending results now."""
        with self._lock:
            version = self._version
        self._write_if_behind(version)


def job_lookup(request: Mapping[str, Any]) -> dict[str, Any]:
    """A job request without secrets: what an intent stores to find the job again."""
    lookup = {k: v for k, v in request.items() if k != "integrations"}
    lookup["integrations"] = [
        {k: v for k, v in i.items() if k != "api_key"} for i in request.get("integrations") or []
    ]
    return lookup


class Executor:
    """Applies one plan against one remote and one state backend."""

    def __init__(
        self,
        client: MistralClient,
        backend: StateBackend,
        state: State | None,
        desired: DesiredState,
        *,
        options: ApplyOptions | None = None,
        hooks: ApplyHooks | None = None,
        secret_resolver: Callable[[IntegrationSpec], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.recorder = StateRecorder(backend, state)
        self.desired = desired
        self.options = options or ApplyOptions()
        self.hooks: ApplyHooks = hooks or SilentHooks()
        self._resolve = secret_resolver or resolve_integration_key
        self._sleep = sleep
        self.result = ApplyResult()
        self._to_start: dict[str, DesiredJob] = {}
        self._staged: dict[str, Intent] = {}
        self._requests: dict[str, dict[str, Any]] = {}
        self._start_lock = threading.Lock()

    # ------------------------------------------------------------------ entry point

    def apply(self, plan: Plan) -> ApplyResult:
        """Recover intents, run every change, start validated jobs; persist the state."""
        try:
            self.recover_intents()
            self._run_changes(plan.actionable)
            self._start_phase()
        finally:
            self.recorder.flush()
            self.result.serial = self.recorder.serial
        return self.result

    # ------------------------------------------------------------------ recovery

    def recover_intents(self) -> None:
        """Resolve intents of earlier runs by looking their objects up remotely (rule 2)."""
        for intent in list(self.recorder.state.intents.values()):
            found: Any = None
            if intent.operation == "upload":
                found = self.client.find_file(
                    str(intent.lookup["filename"]), size=intent.lookup.get("bytes")
                )
                if found is not None:
                    self.recorder.put(
                        ResourceState(
                            address=intent.address,
                            type="file",
                            remote_id=found.id,
                            fingerprint=intent.fingerprint,
                            attributes=dict(intent.lookup.get("attributes") or {}),
                            history=self._history_for(intent.address),
                        ),
                        intent_id=intent.id,
                    )
            else:
                import datetime as _dt

                since = _dt.datetime.fromtimestamp(
                    intent.created_at - RECOVERY_SLACK_SECONDS, _dt.UTC
                )
                matches = self.client.find_jobs(dict(intent.lookup["request"]), created_after=since)
                if matches:
                    found = min(matches, key=lambda j: j.created_at)
                    self.recorder.put(
                        ResourceState(
                            address=intent.address,
                            type="job",
                            remote_id=found.id,
                            fingerprint=intent.fingerprint,
                            attributes={
                                **dict(intent.lookup.get("attributes") or {}),
                                "status": found.status,
                            },
                            history=self._history_for(intent.address),
                        ),
                        intent_id=intent.id,
                    )
            if found is None:
                self.recorder.drop_intent(intent.id)
                self.hooks.note(intent.address, "interrupted create was never received remotely")
            else:
                self.result.recovered.append(intent.address)
                self.hooks.note(intent.address, f"recovered interrupted create: {found.id}")
        self.recorder.flush()

    def _history_for(self, address: str) -> list[dict[str, Any]]:
        res = self.recorder.get(address)
        return list(res.history) if res is not None else []

    # ------------------------------------------------------------------ scheduling

    def _run_changes(self, changes: list[Change]) -> None:
        pending = {c.address: c for c in changes}
        failed: set[str] = set()
        done: set[str] = set()
        futures: dict[Future[Outcome], Change] = {}
        ready: list[Change] = []
        staged_now: set[str] = set()
        with ThreadPoolExecutor(max_workers=max(1, self.options.parallelism)) as pool:
            while pending or futures:
                for address, change in list(pending.items()):
                    deps = [
                        d
                        for d in change.depends_on
                        if d in pending or d in staged_now or _running(futures, d)
                    ]
                    if any(d in failed for d in change.depends_on):
                        del pending[address]
                        failed.add(address)
                        self._finish(
                            Outcome(
                                address,
                                change.action.value,
                                "not-attempted",
                                "a file it depends on failed",
                            )
                        )
                        continue
                    if deps:
                        continue
                    if _prune_waits(change, pending, futures):
                        continue
                    del pending[address]
                    ready.append(change)
                    staged_now.add(address)
                for change in self._stage_intents(ready):
                    self.hooks.begin(change)
                    futures[pool.submit(self._run_one, change)] = change
                ready.clear()
                staged_now.clear()
                if not futures:
                    if pending:  # unreachable dependency: never wait forever
                        for address, change in pending.items():
                            self._finish(
                                Outcome(
                                    address,
                                    change.action.value,
                                    "not-attempted",
                                    "dependency not in this plan",
                                )
                            )
                        pending.clear()
                    break
                finished, _ = wait(
                    list(futures), timeout=self.options.flush_interval, return_when=FIRST_COMPLETED
                )
                for future in finished:
                    change = futures.pop(future)
                    outcome = future.result()
                    (failed if outcome.status == "failed" else done).add(change.address)
                    self._finish(outcome)
                self.recorder.maybe_flush(self.options.flush_interval)
        self.recorder.flush()

    def _stage_intents(self, ready: list[Change]) -> list[Change]:
        """Write the intents of every create in ``ready`` in one state write.

        Returns the changes to run; a job whose request cannot be built (a secret is
        missing, a file failed) is finished here as failed.
        """
        intents: list[Intent] = []
        runnable: list[Change] = []
        for change in ready:
            try:
                intent = self._intent_for(change)
            except ReconcilerError as exc:
                self._finish(Outcome(change.address, change.action.value, "failed", str(exc)))
                continue
            if intent is not None:
                intents.append(intent)
                self._staged[change.address] = intent
            runnable.append(change)
        self.recorder.add_intents(intents)
        return runnable

    def _intent_for(self, change: Change) -> Intent | None:
        """The intent a create will need, or None when it will not send a create."""
        if change.action not in (Action.CREATE, Action.REPLACE):
            return None
        res = self.recorder.get(change.address)
        if change.type == "file":
            f = self.desired.files[change.address]
            if _already_made(res, f.fingerprint, change) or (change.after or {}).get("reuse"):
                return None
            return Intent(
                address=f.address,
                operation="upload",
                fingerprint=f.fingerprint,
                lookup={
                    "filename": f.filename,
                    "bytes": f.bytes,
                    "sha256": f.sha256,
                    "attributes": f.summary(),
                },
                created_at=time.time(),
            )
        job = self.desired.jobs[change.address]
        if _already_made(res, job.fingerprint, change):
            return None
        if change.blocked and not self.options.allow_duplicates:
            return None
        file_ids: dict[str, str] = {}
        for dep in job.depends_on:
            dep_res = self.recorder.get(dep)
            if dep_res is None:
                raise ReconcilerError(f"file {dep} is not uploaded")
            file_ids[dep] = dep_res.remote_id
        request = job.build_request(file_ids, self._resolve)
        self._requests[job.address] = request  # in memory only: it holds resolved secrets
        return Intent(
            address=job.address,
            operation="create_job",
            fingerprint=job.fingerprint,
            lookup={"request": job_lookup(request), "attributes": {"identity": dict(job.identity)}},
            created_at=time.time(),
        )

    def _finish(self, outcome: Outcome) -> None:
        self.result.outcomes.append(outcome)
        self.hooks.done(outcome)

    def _run_one(self, change: Change) -> Outcome:
        try:
            if change.type == "file":
                return self._apply_file(change)
            return self._apply_job(change)
        except ReconcilerError as exc:
            return Outcome(change.address, change.action.value, "failed", str(exc))
        finally:
            self._requests.pop(change.address, None)

    # ------------------------------------------------------------------ files

    def _apply_file(self, change: Change) -> Outcome:
        action = change.action
        if action in (Action.DELETE, Action.FORGET):
            res = self.recorder.get(change.address)
            if res is not None and action is Action.DELETE:
                try:
                    self.client.delete_file(res.remote_id)
                except NotFoundError:
                    pass  # already gone: the goal is reached
            self.recorder.remove(change.address)
            return Outcome(
                change.address,
                action.value,
                "applied",
                "deleted" if action is Action.DELETE else "forgotten",
            )
        desired = self.desired.files[change.address]
        res = self.recorder.get(change.address)
        intent = self._staged.pop(change.address, None)
        if intent is None and _already_made(res, desired.fingerprint, change):
            assert res is not None
            return Outcome(
                change.address, action.value, "skipped", "already recorded", res.remote_id
            )
        history = list(res.history) if res is not None else []
        if res is not None and res.fingerprint != desired.fingerprint:
            history.append(
                {
                    "remote_id": res.remote_id,
                    "filename": res.attributes.get("filename"),
                    "replaced_at": time.time(),
                }
            )
        reuse = (change.after or {}).get("reuse")
        if intent is None and reuse:
            # The refresh saw these exact bytes under this content-addressed name.
            self._record_file(desired, str(reuse), history, None)
            return Outcome(
                change.address,
                action.value,
                "applied",
                f"reused identical remote file {reuse}",
                str(reuse),
            )
        assert intent is not None
        try:
            uploaded = self.client.upload_file(
                desired.path,
                desired.filename,
                sha256=desired.sha256,
                progress=lambda sent, total: self.hooks.upload_progress(
                    desired.address, sent, total
                ),
            )
        except ApiError as exc:
            self._drop_intent_if_refused(intent, exc)
            raise
        self._record_file(desired, uploaded.id, history, intent.id)
        return Outcome(
            change.address,
            action.value,
            "applied",
            f"uploaded {desired.filename} ({desired.bytes} bytes)",
            uploaded.id,
        )

    def _record_file(
        self, f: DesiredFile, remote_id: str, history: list[dict[str, Any]], intent_id: str | None
    ) -> None:
        self.recorder.put(
            ResourceState(
                address=f.address,
                type="file",
                remote_id=remote_id,
                fingerprint=f.fingerprint,
                attributes=f.summary(),
                history=history,
            ),
            intent_id=intent_id,
        )

    # ------------------------------------------------------------------ jobs

    def _apply_job(self, change: Change) -> Outcome:
        action = change.action
        if action is Action.FORGET:
            return self._forget_job(change)
        job = self.desired.jobs[change.address]
        if action is Action.START:
            self._queue_start(job)
            return Outcome(change.address, action.value, "applied", "queued for start")
        if action is Action.UPDATE:
            return self._update_model(change, job)
        return self._create_job(change, job)

    def _create_job(self, change: Change, job: DesiredJob) -> Outcome:
        res = self.recorder.get(job.address)
        intent = self._staged.pop(job.address, None)
        if intent is None and _already_made(res, job.fingerprint, change):
            # Rule 3: an earlier attempt (or the recovery pass) already made it.
            assert res is not None
            if job.job.start:
                self._queue_start(job)
            return Outcome(
                change.address, change.action.value, "skipped", "already created", res.remote_id
            )
        if intent is None:
            assert change.blocked is not None
            return Outcome(change.address, change.action.value, "failed", change.blocked)
        request = self._requests[job.address]
        lookup = intent.lookup["request"]
        history = list(res.history) if res is not None else []
        try:
            created = self.client.create_job(request)
        except ConflictError as exc:
            twins = self.client.find_jobs(lookup)
            if not twins:
                self.recorder.drop_intent(intent.id)
                raise exc.restated(
                    f"{exc.reason}; no job with exactly this request was found, so another job "
                    "occupies the slot: wait for it or cancel it, then apply again"
                ) from exc
            created = min(twins, key=lambda j: j.created_at)
        except ApiError as exc:
            self._drop_intent_if_refused(intent, exc)
            raise
        if res is not None and res.remote_id != created.id:
            history.append(
                {
                    "remote_id": res.remote_id,
                    "replaced_at": time.time(),
                    "fine_tuned_model": res.attributes.get("fine_tuned_model"),
                }
            )
        self.recorder.put(
            ResourceState(
                address=job.address,
                type="job",
                remote_id=created.id,
                fingerprint=job.fingerprint,
                attributes={
                    "identity": dict(job.identity),
                    "status": created.status,
                    "created_at": created.created_at,
                },
                history=history,
            ),
            intent_id=intent.id,
        )
        self.hooks.note(job.address, f"created {created.id} ({created.status})")
        if change.action is Action.REPLACE and change.previous:
            self._retire_previous(job, change.previous)
        if job.job.start:
            self._queue_start(job)
        return Outcome(
            change.address, change.action.value, "applied", f"created job {created.id}", created.id
        )

    def _drop_intent_if_refused(self, intent: Intent, exc: ApiError) -> None:
        """Forget an intent when the remote answered with a refusal (4xx other than 409/429).

        Such an answer means nothing was created; transport errors and 5xx leave the
        intent in place, because the create may have happened.
        """
        if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (409, 429):
            self.recorder.drop_intent(intent.id)

    def _retire_previous(self, job: DesiredJob, previous: Mapping[str, Any]) -> None:
        old_id = str(previous.get("id"))
        if previous.get("disposition") == "cancel":
            try:
                self.client.cancel_job(old_id)
                self.hooks.note(job.address, f"cancelled previous job {old_id}")
                self._mark_history(job.address, old_id, cancelled_by_reconciler=True)
            except ApiError as exc:  # finished meanwhile: keeping it is the policy anyway
                self.hooks.note(job.address, f"previous job {old_id} not cancelled: {exc.reason}")
        model = previous.get("fine_tuned_model")
        if model and previous.get("model_disposition") == "archive":
            self.client.archive_model(str(model))
            self.hooks.note(job.address, f"archived previous model {model}")

    def _mark_history(self, address: str, remote_id: str, **attributes: Any) -> None:
        res = self.recorder.get(address)
        if res is None:
            return
        for entry in res.history:
            if entry.get("remote_id") == remote_id:
                entry.update(attributes)
        self.recorder.put(res)

    def _update_model(self, change: Change, job: DesiredJob) -> Outcome:
        model_id = (change.before or {}).get("fine_tuned_model")
        if not model_id:
            return Outcome(change.address, change.action.value, "skipped", "no model yet")
        fields = change.update_fields
        updates = {k: v["after"] for k, v in fields.items() if k in ("name", "description")}
        if updates:
            self.client.update_model(str(model_id), **updates)
        if "archived" in fields:
            if fields["archived"]["after"]:
                self.client.archive_model(str(model_id))
            else:
                self.client.unarchive_model(str(model_id))
        self.recorder.update_attributes(
            job.address, model=dict((k, v["after"]) for k, v in fields.items())
        )
        return Outcome(
            change.address,
            change.action.value,
            "applied",
            "updated model " + ", ".join(sorted(fields)),
            str(model_id),
        )

    def _forget_job(self, change: Change) -> Outcome:
        res = self.recorder.get(change.address)
        previous = change.previous or {}
        if res is not None and previous.get("disposition") == "cancel":
            try:
                self.client.cancel_job(res.remote_id)
            except ApiError as exc:
                self.hooks.note(change.address, f"not cancelled: {exc.reason}")
        self.recorder.remove(change.address)
        return Outcome(
            change.address,
            change.action.value,
            "applied",
            "cancelled and forgotten"
            if previous.get("disposition") == "cancel"
            else "forgotten (remote job and model kept)",
        )

    # ------------------------------------------------------------------ start phase

    def _queue_start(self, job: DesiredJob) -> None:
        with self._start_lock:
            self._to_start[job.address] = job

    def _start_phase(self) -> None:
        """Wait for validation, check budgets, start (PRODUCT.md §3 'Start and budget gate')."""
        waiting = dict(self._to_start)
        if not waiting:
            return
        deadline = time.monotonic() + self.options.start_timeout
        interval = self.options.poll_interval
        while waiting:
            by_id = {}
            for address in list(waiting):
                res = self.recorder.get(address)
                if res is None:
                    waiting.pop(address)
                    continue
                by_id[res.remote_id] = address
            remote = self._poll(set(by_id))
            for job_id, job_data in remote.items():
                address = by_id[job_id]
                status = job_data.get("status")
                self.recorder.update_attributes(address, status=status)
                if status == "VALIDATED":
                    waiting.pop(address)
                    self._gate_and_start(waiting_job=self._to_start[address], job_data=job_data)
                elif status in TERMINAL_STATUSES or status in ("STARTED", "RUNNING"):
                    waiting.pop(address)
                    if status == "FAILED_VALIDATION":
                        self._finish(
                            Outcome(
                                address,
                                "start",
                                "failed",
                                "the remote refused the training data "
                                "(FAILED_VALIDATION); see 'reconciler status "
                                f"{address}' for its events",
                            )
                        )
            if not waiting:
                break
            if time.monotonic() >= deadline:
                for address in waiting:
                    self._finish(
                        Outcome(
                            address,
                            "start",
                            "failed",
                            f"not validated within {self.options.start_timeout:.0f}s; "
                            "it stays unstarted and the next apply starts it",
                        )
                    )
                break
            self._sleep(interval)
            interval = min(interval * 1.5, 5.0)
        self.recorder.flush()

    def _poll(self, job_ids: set[str]) -> dict[str, dict[str, Any]]:
        if len(job_ids) <= 3:
            return {jid: self.client.get_job(jid).model_dump(mode="json") for jid in job_ids}
        return {j.id: j.model_dump(mode="json") for j in self.client.list_jobs() if j.id in job_ids}

    def _gate_and_start(self, waiting_job: DesiredJob, job_data: Mapping[str, Any]) -> None:
        address = waiting_job.address
        meta = job_data.get("metadata") or {}
        cost, currency = meta.get("cost"), meta.get("cost_currency") or ""
        budget = waiting_job.job.budget
        self.recorder.update_attributes(address, cost=cost, cost_currency=currency)
        if budget is not None:
            if cost is None:
                self._finish(
                    Outcome(
                        address,
                        "start",
                        "failed",
                        "the remote gave no cost estimate, so its budget cannot be "
                        "checked; the job stays VALIDATED (not started)",
                    )
                )
                return
            if float(cost) > budget.max_cost:
                self._finish(
                    Outcome(
                        address,
                        "start",
                        "failed",
                        f"cost estimate {float(cost):.2f} {currency} is over the budget "
                        f"max_cost {budget.max_cost:.2f}; the job stays VALIDATED (not started). "
                        "Raise budget.max_cost or reduce training_steps, then apply again",
                    )
                )
                return
        started = self.client.start_job(str(job_data["id"]))
        self.recorder.update_attributes(address, status=started.status)
        self.result.started_jobs.append(address)
        cost_text = f" (estimate {float(cost):.2f} {currency})" if cost is not None else ""
        self.hooks.note(address, f"started{cost_text}")


def _already_made(res: ResourceState | None, fingerprint: str, change: Change) -> bool:
    """Whether the state already records this exact object (rule 3), so nothing is sent."""
    if res is None or res.fingerprint != fingerprint:
        return False
    # A recorded object the refresh found deleted remotely must be made again.
    return change.reason != "deleted-remotely" and change.reason != "replace-by-request"


def _running(futures: Mapping[Future[Outcome], Change], address: str) -> bool:
    return any(c.address == address for c in futures.values())


def _prune_waits(
    change: Change, pending: Mapping[str, Change], futures: Mapping[Future[Outcome], Change]
) -> bool:
    """File deletions wait until every job change has finished (jobs before their files)."""
    if change.type != "file" or change.action not in (Action.DELETE, Action.FORGET):
        return False
    busy = list(pending.values()) + list(futures.values())
    return any(c.type == "job" for c in busy)


def resolve_integration_key(spec: IntegrationSpec) -> str:
    """The W&B key of an integration, resolved from its reference (at apply time only)."""
    value = resolve_secret(spec.api_key, spec.base_dir, purpose=f"{spec.subject} api_key")
    if len(value) != WANDB_KEY_LENGTH:
        # Checked here so the message names the reference instead of a 422 per job.
        raise SecretError(
            f"{spec.subject} api_key ({spec.api_key.describe()}) is {len(value)} characters long; "
            f"W&B API keys are exactly {WANDB_KEY_LENGTH}. Set it to the key from "
            "https://wandb.ai/authorize"
        )
    return value


__all__ = [
    "ACTIVE_STATUSES",
    "ApplyHooks",
    "ApplyOptions",
    "ApplyResult",
    "Executor",
    "Outcome",
    "SilentHooks",
    "StateRecorder",
    "job_lookup",
]
