"""The executor: carries out a plan, exactly once, in named stages.

Exactly-once rests on three rules:

1. **Intent before create.** Before an upload or a job create is sent, an intent (what is
   being created and how to recognise it remotely) is persisted in the state. The result
   replaces the intent once it is recorded. The intents of one stage are written together,
   in one state write, before the stage sends anything (:mod:`~reconciler.engine.recorder`).
2. **Recover before create.** A run first resolves every intent left by an earlier run that
   died (kill -9, lost response, cancelled CI job): it looks the object up remotely — files by
   their content-addressed name and size, jobs by their exact request — and records it if it
   exists (:mod:`~reconciler.engine.intents`). Only then is anything created.
3. **Check before create.** Each create first checks whether the state already has the
   object, and a 409 on a job create is resolved by lookup, not by a second job. A lookup —
   here, in recovery and in the client after a lost answer — never binds a job that any
   address holds or held (:mod:`reconciler.identity`: the remote cannot show every field of a
   request, so only the record says which request made a job).

On providers whose jobs carry metadata (``capabilities.job_metadata``), every job is created
with its identity tag (address, fingerprint, generation: :class:`~reconciler.providers.base.
JobTag`), recorded in its intent, and looked up by it: recognising a job is exact.

:meth:`Executor.apply` runs the stages in this order, each a method of its own:

1. :meth:`~Executor.recover_intents` — rule 2;
2. :meth:`~Executor.adopt` — what ``Moved`` and ``Import`` documents do (``moved_from``,
   ``import_id``) and ``restore`` changes: records only, nothing is created; a change whose
   adoption fails goes no further;
3. :meth:`~Executor.upload_files` — new and changed files, in parallel;
4. :meth:`~Executor.create_jobs` — new and replaced jobs (``auto_start=false``), in
   parallel; a job whose file failed is not attempted; a replacement with ``cancel_first``
   cancels the previous job and waits for it to stop before it creates; jobs to start are
   queued;
5. :meth:`~Executor.start_jobs` — the start and budget gate
   (:mod:`~reconciler.engine.start_gate`), each job on its own: one failing start does not
   keep the others from starting. On providers that start jobs when creating them (no
   ``auto_start`` capability) there is no gate: the plan's budget errors are the only check
   (:func:`~reconciler.engine.costs.review_costs`; apply refuses a plan with errors);
6. :meth:`~Executor.update_models` — fine-tuned model name, description, archived, the
   deletion of previous models whose replacement has succeeded (``delete_models``), and
   pausing or resuming jobs (``paused``) on providers with pause;
7. :meth:`~Executor.prune` — jobs the specs no longer name (cancelled if active, then
   forgotten), then their files (deleted only when nothing else uses them).

Apply decides from the action and the typed fields of each change (``force_new``,
``after.reuse``, ``previous.disposition``, ``blocked``), never from its reason. Partial
failure keeps what succeeded; the next run converges. A stop request
(:attr:`ApplyOptions.stop`, set by a signal handler) lets the operations in flight finish and
be recorded, then skips the remaining stages and stops every wait (for a previous job to stop,
for new jobs to be validated): the next run picks up from there.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.address import ResourceType
from reconciler.client.types import JobStatus
from reconciler.engine.adopt import file_record, job_record
from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState, IntegrationSpec
from reconciler.engine.intents import (
    find_created_job,
    intent_tag,
    job_history,
    job_intent,
    job_lookup,
    recover_intents,
    refused,
    upload_intent,
)
from reconciler.engine.outcome import (
    ApplyHooks,
    ApplyResult,
    Outcome,
    OutcomeStatus,
    SilentHooks,
)
from reconciler.engine.plan import (
    Action,
    Change,
    Disposition,
    FieldUpdate,
    FileChange,
    JobChange,
    JobPrevious,
    ModelDisposition,
    Plan,
)
from reconciler.engine.recorder import StateRecorder
from reconciler.engine.start_gate import MAX_POLL_INTERVAL, StartGate
from reconciler.engine.state_model import Intent, ResourceState, State, StateBackend
from reconciler.errors import ApiError, ConflictError, NotFoundError, ReconcilerError, SecretError
from reconciler.providers.base import JobLookup, JobTag, Pausable
from reconciler.spec.secrets import resolve_secret

if TYPE_CHECKING:
    from reconciler.providers.base import Provider

WANDB_KEY_LENGTH = 40
"""Length of every W&B API key (the API rejects any other length)."""

C = TypeVar("C", FileChange, JobChange)

POLL_INTERVAL = 0.5
"""Default seconds between the first status polls (:attr:`ApplyOptions.poll_interval`); read
when options are made, so that tests running whole commands against sandboxes at many times
real speed can poll faster."""


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
        cancel_timeout: seconds to wait for a previous job to stop before its replacement
            is created (changes with ``cancel_first``); the replacement is not created in
            this run when it has not stopped by then.
        stop: once set (from another thread or a signal handler), no further stage starts,
            the start gate stops waiting, and a replacement waiting for its previous job to
            stop is not created (it fails, for the next run); what is in flight finishes and
            is recorded.
    """

    parallelism: int = 8
    allow_duplicates: bool = False
    start_timeout: float = 600.0
    poll_interval: float = field(default_factory=lambda: POLL_INTERVAL)
    flush_interval: float = 0.5
    cancel_timeout: float = 600.0
    stop: threading.Event | None = None


class Executor:
    """Applies one plan against one remote and one state backend.

    Args:
        client: the remote.
        backend: the state backend (its lock is held by the caller).
        state: the state read under the lock (None: none yet).
        desired: the desired state the plan was made from (apply needs the prepared files
            and the jobs' requests).
        options: see :class:`ApplyOptions`.
        hooks: progress callbacks.
        secret_resolver: resolves an integration's key (default: from its reference).
        sleep, clock: how to wait and what time it is (monotonic seconds); tests pass fakes.
    """

    def __init__(
        self,
        client: Provider,
        backend: StateBackend,
        state: State | None,
        desired: DesiredState,
        *,
        options: ApplyOptions | None = None,
        hooks: ApplyHooks | None = None,
        secret_resolver: Callable[[IntegrationSpec], str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.capabilities = client.capabilities
        self.recorder = StateRecorder(backend, state, clock=clock)
        self.desired = desired
        self.options = options or ApplyOptions()
        self.hooks: ApplyHooks = hooks or SilentHooks()
        self._resolve = secret_resolver or resolve_integration_key
        self._sleep = sleep
        self._clock = clock
        self._outcomes: list[Outcome] = []
        self._recovered: list[str] = []
        self._started: list[str] = []
        self._failed: set[str] = set()
        self._staged: dict[str, Intent] = {}
        self._requests: dict[str, dict[str, Any]] = {}
        self.gate = StartGate(
            client,
            self.recorder,
            start_timeout=self.options.start_timeout,
            poll_interval=self.options.poll_interval,
            report=self._finish,
            note=self.hooks.note,
            sleep=sleep,
            clock=clock,
            stop=self.options.stop,
        )

    # ------------------------------------------------------------------ entry point

    def apply(self, plan: Plan) -> ApplyResult:
        """Run every stage on the plan's changes; persist the state; return the result."""
        try:
            self.recover_intents()
            self.adopt([c for c in plan.actionable if _adopting(c)])
            changes = [c for c in plan.actionable if c.address not in self._failed]
            files = [c for c in changes if isinstance(c, FileChange)]
            jobs = [c for c in changes if isinstance(c, JobChange)]
            self.upload_files([c for c in files if c.action.makes_new])
            self.create_jobs([c for c in jobs if c.action.makes_new or c.action is Action.START])
            self.start_jobs()
            self.update_models([c for c in jobs if c.action is Action.UPDATE or c.delete_models])
            self.prune([c for c in jobs if c.action.prunes], [c for c in files if c.action.prunes])
        finally:
            self.recorder.flush()
        return self.result

    @property
    def result(self) -> ApplyResult:
        """What has happened so far (the whole result once :meth:`apply` returned)."""
        return ApplyResult(
            outcomes=tuple(self._outcomes),
            recovered=tuple(self._recovered),
            serial=self.recorder.serial,
            started_jobs=tuple(self._started),
        )

    # ------------------------------------------------------------------ stages

    def recover_intents(self) -> None:
        """Stage 1: resolve the intents of earlier runs (rule 2)."""
        self._recovered.extend(recover_intents(self.client, self.recorder, self.hooks))

    def adopt(self, changes: list[FileChange | JobChange]) -> None:
        """Stage 2: record moved, imported and restored objects (see :func:`_adopting`).

        Moves first, then imports, then restores. Only the state changes, besides reading an
        imported or restored job's status and retiring the job a restore replaces as its
        policy says. A change that does nothing else is finished here; a failed one is not
        acted on by later stages.
        """
        for change in sorted(changes, key=_adopt_order):
            try:
                message, remote_id = self._adopt_one(change)
            except ReconcilerError as exc:
                self._failed.add(change.address)
                self._finish(self._outcome(change, OutcomeStatus.FAILED, str(exc)))
                continue
            if change.action.adopts:
                self._finish(self._outcome(change, OutcomeStatus.APPLIED, message, remote_id))
            else:
                self.hooks.note(change.address, message)
        self.recorder.flush()

    def upload_files(self, changes: list[FileChange]) -> None:
        """Stage 3: upload new and changed files (or record identical remote ones)."""
        self._run_stage(changes, self._upload)

    def create_jobs(self, changes: list[JobChange]) -> None:
        """Stage 4: create new and replacement jobs; queue jobs to start.

        A job whose file failed in stage 2 is not attempted.
        """
        runnable: list[JobChange] = []
        for change in changes:
            if any(d in self._failed for d in change.depends_on):
                self._failed.add(change.address)
                self._finish(
                    self._outcome(
                        change, OutcomeStatus.NOT_ATTEMPTED, "a file it depends on failed"
                    )
                )
            else:
                runnable.append(change)
        self._run_stage(runnable, self._apply_job)

    def start_jobs(self) -> None:
        """Stage 5: wait for validation, check budgets, start the queued jobs."""
        self._started.extend(self.gate.run())

    def update_models(self, changes: list[JobChange]) -> None:
        """Stage 6: update fine-tuned models' name, description and archived flag; delete
        the previous models whose replacement has succeeded."""
        self._run_stage(changes, self._update_model)

    def prune(self, jobs: list[JobChange], files: list[FileChange]) -> None:
        """Stage 7: forget jobs the specs no longer name, then delete or forget their files."""
        self._run_stage(jobs, self._forget_job)
        self._run_stage(files, self._remove_file)

    # ------------------------------------------------------------------ running a stage

    @property
    def _stopping(self) -> bool:
        """A stop was requested (:attr:`ApplyOptions.stop`): start nothing new, wait no more."""
        return self.options.stop is not None and self.options.stop.is_set()

    def _run_stage(self, changes: list[C], work: Callable[[C], Outcome]) -> None:
        """Run changes in parallel, their intents written first in one state write."""
        if self._stopping:
            return  # no new stage starts (and no intent is written)
        runnable = self._stage_intents(changes)
        if not runnable:
            return
        with ThreadPoolExecutor(max_workers=max(1, self.options.parallelism)) as pool:
            futures: dict[Future[Outcome], C] = {}
            for change in runnable:
                self.hooks.begin(change)
                futures[pool.submit(self._run_one, work, change)] = change
            pending: Iterable[Future[Outcome]] = futures
            while pending:
                finished, pending = wait(
                    pending, timeout=self.options.flush_interval, return_when=FIRST_COMPLETED
                )
                for future in finished:
                    outcome = future.result()
                    if outcome.status is OutcomeStatus.FAILED:
                        self._failed.add(futures[future].address)
                    self._finish(outcome)
                self.recorder.maybe_flush(self.options.flush_interval)
        self.recorder.flush()

    def _stage_intents(self, changes: list[C]) -> list[C]:
        """Write the intents of every create among ``changes`` in one state write (rule 1).

        Returns the changes to run; one whose request cannot be built (a secret is missing,
        a file is not uploaded) is finished here as failed.
        """
        intents: list[Intent] = []
        runnable: list[C] = []
        for change in changes:
            try:
                intent = self._intent_for(change)
            except ReconcilerError as exc:
                self._failed.add(change.address)
                self._finish(self._outcome(change, OutcomeStatus.FAILED, str(exc)))
                continue
            if intent is not None:
                intents.append(intent)
                self._staged[change.address] = intent
            runnable.append(change)
        self.recorder.add_intents(intents)
        return runnable

    def _intent_for(self, change: Change) -> Intent | None:
        """The intent a change will need, or None when it will not send a create."""
        if not change.action.makes_new:
            return None
        res = self.recorder.get(change.address)
        if isinstance(change, FileChange):
            f = self.desired.files[change.address]
            if _already_made(res, f.fingerprint, change) or (change.after and change.after.reuse):
                return None
            return upload_intent(f)
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
        return job_intent(job, request, self._tag(job, res))

    def _tag(self, job: DesiredJob, res: ResourceState | None) -> JobTag | None:
        """The identity a new job of ``job`` carries, on providers whose jobs carry one.

        The generation is how many jobs the address had before this one: the recorded job
        and its history (a ``--replace`` of an unchanged spec is thus a new identity).
        """
        if not self.capabilities.job_metadata:
            return None
        generation = len(res.history) + 1 if res is not None else 0
        return JobTag(str(job.address), job.fingerprint, generation)

    def _run_one(self, work: Callable[[C], Outcome], change: C) -> Outcome:
        try:
            return work(change)
        except ReconcilerError as exc:
            return self._outcome(change, OutcomeStatus.FAILED, str(exc))
        finally:
            self._requests.pop(change.address, None)

    def _finish(self, outcome: Outcome) -> None:
        self._outcomes.append(outcome)
        self.hooks.done(outcome)

    @staticmethod
    def _outcome(
        change: Change, status: OutcomeStatus, message: str, remote_id: str | None = None
    ) -> Outcome:
        return Outcome(change.address, change.action, status, message, remote_id)

    # ------------------------------------------------------------------ adoption

    def _adopt_one(self, change: FileChange | JobChange) -> tuple[str, str | None]:
        """Move, import and restore what the change says; (what was done, remote id)."""
        done: list[str] = []
        remote_id: str | None = None
        if change.moved_from:
            moved = self.recorder.move(change.moved_from, change.address)
            done.append(f"{'moved' if moved else 'already moved'} from {change.moved_from}")
        if change.import_id:
            done.append(self._import(change, change.import_id))
            remote_id = change.import_id
        if isinstance(change, JobChange) and change.restores:
            done.append(self._restore(change, change.restores))
            remote_id = change.restores
        return "; ".join(done), remote_id

    def _import(self, change: FileChange | JobChange, remote_id: str) -> str:
        """Record the remote object an Import adopts (once: a repeat finds it recorded)."""
        res = self.recorder.get(change.address)
        if res is not None:
            if res.remote_id == remote_id:
                return f"already imported {remote_id}"
            raise ReconcilerError(
                f"recorded as {res.remote_id} since the plan was made, not imported; plan again"
            )
        if isinstance(change, FileChange):
            part = self.desired.files[change.address]
            filename = change.before.filename if change.before is not None else None
            self.recorder.put(file_record(part, remote_id, filename, imported=True))
            return f"imported file {remote_id} (same content)"
        remote = self.client.get_job(remote_id)
        job = self.desired.jobs[change.address]
        self.recorder.put(job_record(job, remote.model_dump(mode="json"), imported=True))
        return f"imported job {remote_id} ({remote.status})"

    def _restore(self, change: JobChange, remote_id: str) -> str:
        """Point the address back at an earlier job of it that made this exact request."""
        res = self.recorder.get(change.address)
        if res is not None and res.remote_id == remote_id:
            return f"already restored {remote_id}"
        remote = self.client.get_job(remote_id)
        if JobStatus.of(remote.status) is not JobStatus.SUCCESS:
            raise ReconcilerError(
                f"previous job {remote_id} is {remote.status} now, not SUCCESS: not restored; "
                "plan again"
            )
        job = self.desired.jobs[change.address]
        record = job_record(job, remote.model_dump(mode="json"), restored=True)
        self.recorder.put(record.model_copy(update={"history": job_history(res, remote_id)}))
        previous = change.previous
        if previous is not None and res is not None and previous.id == res.remote_id:
            self._retire_previous(job, previous)
        return f"restored previous job {remote_id} ({remote.fine_tuned_model})"

    # ------------------------------------------------------------------ files

    def _upload(self, change: FileChange) -> Outcome:
        desired = self.desired.files[change.address]
        res = self.recorder.get(change.address)
        intent = self._staged.pop(change.address, None)
        if intent is None and _already_made(res, desired.fingerprint, change):
            assert res is not None
            return self._outcome(change, OutcomeStatus.SKIPPED, "already recorded", res.remote_id)
        history = list(res.history) if res is not None else []
        if res is not None and res.fingerprint != desired.fingerprint:
            history.append(
                {
                    "remote_id": res.remote_id,
                    "filename": res.attributes.get("filename"),
                    "replaced_at": time.time(),
                }
            )
        reuse = change.after.reuse if change.after is not None else None
        if intent is None and reuse:
            # The refresh saw these exact bytes under this content-addressed name.
            self._record_file(desired, reuse, history, None)
            return self._outcome(
                change, OutcomeStatus.APPLIED, f"reused identical remote file {reuse}", reuse
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
        return self._outcome(
            change,
            OutcomeStatus.APPLIED,
            f"uploaded {desired.filename} ({desired.bytes} bytes)",
            uploaded.id,
        )

    def _record_file(
        self, f: DesiredFile, remote_id: str, history: list[dict[str, Any]], intent_id: str | None
    ) -> None:
        self.recorder.put(
            ResourceState(
                address=f.address,
                type=ResourceType.FILE,
                remote_id=remote_id,
                fingerprint=f.fingerprint,
                attributes={**f.summary(), "labels": dict(f.labels)},
                history=history,
            ),
            intent_id=intent_id,
        )

    def _remove_file(self, change: FileChange) -> Outcome:
        res = self.recorder.get(change.address)
        user = self.recorder.managed_elsewhere(change.address, res.remote_id) if res else None
        if res is not None and change.action is Action.DELETE and user is None:
            try:
                self.client.delete_file(res.remote_id)
            except NotFoundError:
                pass  # already gone: the goal is reached
        self.recorder.remove(change.address)
        if change.action is Action.DELETE and user is None:
            message = "deleted"
        elif change.used_by or user is not None:
            users = ", ".join(change.used_by) if change.used_by else str(user)
            message = f"forgotten (the remote file is still used by {users})"
        else:
            message = "forgotten"
        return self._outcome(change, OutcomeStatus.APPLIED, message)

    # ------------------------------------------------------------------ jobs

    def _apply_job(self, change: JobChange) -> Outcome:
        job = self.desired.jobs[change.address]
        if change.action is Action.START:
            self.gate.queue(job)
            return self._outcome(change, OutcomeStatus.APPLIED, "queued for start")
        return self._create_job(change, job)

    def _create_job(self, change: JobChange, job: DesiredJob) -> Outcome:
        res = self.recorder.get(job.address)
        intent = self._staged.pop(job.address, None)
        if intent is None and _already_made(res, job.fingerprint, change):
            # Rule 3: an earlier attempt (or the recovery stage) already made it.
            assert res is not None
            previous = change.previous if change.action is Action.REPLACE else None
            if previous is not None and previous.id != res.remote_id:
                # Recovered a replacement's create: what the plan says of the old job holds.
                self._retire_previous(job, previous)
            if job.job.start and self.capabilities.auto_start:
                self.gate.queue(job)
            return self._outcome(change, OutcomeStatus.SKIPPED, "already created", res.remote_id)
        if intent is None:
            assert change.blocked is not None
            return self._outcome(change, OutcomeStatus.FAILED, change.blocked)
        request = self._requests[job.address]
        previous = change.previous if change.action is Action.REPLACE else None
        if (
            change.cancel_first
            and previous is not None
            and res is not None
            and res.remote_id == previous.id
        ):
            try:
                self._stop_previous(job.address, res)
            except ReconcilerError:
                self.recorder.drop_intent(intent.id)  # nothing was sent
                raise
            res = self.recorder.get(job.address) or res
        _, held = self.recorder.job_bindings()
        try:
            created = self.client.create_job(
                request, JobLookup(tag=intent_tag(intent), exclude=held)
            )
        except ConflictError as exc:
            # Refused: nothing was made. The job that occupies the slot is our own create
            # only if it is new since the intent and no address holds or held it.
            found = find_created_job(self.client, self.recorder, intent)
            if found is None:
                self.recorder.drop_intent(intent.id)
                raise exc.restated(self._conflict_reason(exc, job.address, request)) from exc
            created = found
        except ApiError as exc:
            self._drop_intent_if_refused(intent, exc)
            raise
        history = job_history(res, created.id)
        self.recorder.put(
            ResourceState(
                address=job.address,
                type=ResourceType.JOB,
                remote_id=created.id,
                fingerprint=job.fingerprint,
                attributes={
                    "identity": dict(job.identity),
                    "labels": dict(job.labels),
                    "status": created.status,
                    "created_at": created.created_at,
                },
                history=history,
            ),
            intent_id=intent.id,
        )
        self.hooks.note(job.address, f"created {created.id} ({created.status})")
        if previous is not None:
            self._retire_previous(job, previous, cancelled=change.cancel_first)
        if not self.capabilities.auto_start:
            self._started.append(job.address)  # the provider started it when creating it
        elif job.job.start:
            self.gate.queue(job)
        return self._outcome(change, OutcomeStatus.APPLIED, f"created job {created.id}", created.id)

    def _stop_previous(self, address: str, res: ResourceState) -> None:
        """Cancel the job a replacement replaces and wait until it has stopped.

        For a replacement the remote would refuse (409) while the previous job is active.
        Raises a ReconcilerError when it has not stopped within ``cancel_timeout``: the
        replacement is then not created in this run (the next apply creates it).
        """
        try:
            job = self.client.get_job(res.remote_id)
        except NotFoundError:
            return  # gone remotely: nothing occupies the slot
        status = JobStatus.of(job.status)
        if status is not None and status.is_active and not status.is_cancelled:
            job = self.client.cancel_job(res.remote_id)
            self.hooks.note(address, f"cancelled previous job {res.remote_id} first")
        self.recorder.update_attributes(address, cancelled_by_reconciler=True)
        deadline = self._clock() + self.options.cancel_timeout
        interval = self.options.poll_interval
        while (status := JobStatus.of(job.status)) is not None and status.is_active:
            if self._stopping:
                raise ReconcilerError(
                    f"stopped while previous job {res.remote_id} was still {job.status} after "
                    "its cancel: the replacement was not created; the next run creates it "
                    "once the previous job has stopped"
                )
            if self._clock() >= deadline:
                raise ReconcilerError(
                    f"previous job {res.remote_id} is still {job.status} "
                    f"{self.options.cancel_timeout:.0f}s after its cancel, and the remote "
                    "refuses a similar job while it is active: the replacement was not "
                    "created; apply again once it has stopped"
                )
            self._sleep(interval)
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)
            job = self.client.get_job(res.remote_id)
        self.hooks.note(address, f"previous job {res.remote_id} stopped ({job.status})")

    def _conflict_reason(self, exc: ConflictError, address: str, request: dict[str, Any]) -> str:
        """What a 409 on a create means, and what to do: which job occupies the slot."""
        bound, held = self.recorder.job_bindings()
        twins = self.client.find_jobs(job_lookup(request))
        for twin in twins:
            owner = bound.get(twin.id)
            if owner == address:
                return (
                    f"{exc.reason}; it is this address's own job {twin.id} ({twin.status}), "
                    "which the plan did not expect to be active: plan again (the new plan "
                    "cancels it before creating the replacement)"
                )
            if owner is not None:
                return (
                    f"{exc.reason}; job {twin.id} ({twin.status}) of {owner} has the same "
                    f"readable request: the remote cannot tell them apart. Give one of them a "
                    "distinct suffix"
                )
            if twin.id in held:
                return (
                    f"{exc.reason}; job {twin.id} ({twin.status}), replaced earlier but still "
                    "active, has the same readable request: wait for it or cancel it, then "
                    "apply again"
                )
            return (
                f"{exc.reason}; job {twin.id} ({twin.status}) was made outside this state "
                "from the same readable request (training-file weights and "
                "invalid_sample_skip_percentage cannot be read back, so it is not adopted "
                f"silently): if it is this job, adopt it with 'reconciler import {address} "
                f"{twin.id}'; otherwise cancel it, then apply again"
            )
        return (
            f"{exc.reason}; no job with exactly this request was found, so another job "
            "occupies the slot: wait for it or cancel it, then apply again"
        )

    def _drop_intent_if_refused(self, intent: Intent, exc: ApiError) -> None:
        """Forget an intent when the remote's answer means nothing was created."""
        if refused(exc):
            self.recorder.drop_intent(intent.id)

    def _retire_previous(
        self, job: DesiredJob, previous: JobPrevious, *, cancelled: bool = False
    ) -> None:
        """Cancel (unless ``cancelled`` already) and archive what the policy says."""
        old_id = previous.id
        if previous.disposition is Disposition.CANCEL and not cancelled:
            try:
                self.client.cancel_job(old_id)
                self.hooks.note(job.address, f"cancelled previous job {old_id}")
                self._mark_history(job.address, old_id, cancelled_by_reconciler=True)
            except ApiError as exc:  # finished meanwhile: keeping it is the policy anyway
                self.hooks.note(job.address, f"previous job {old_id} not cancelled: {exc.reason}")
        model = previous.fine_tuned_model
        if model and previous.model_disposition is ModelDisposition.ARCHIVE:
            self.client.archive_model(model)
            self.hooks.note(job.address, f"archived previous model {model}")
        elif model and previous.model_disposition is ModelDisposition.DELETE:
            # Never now: a later plan deletes it once the replacement has succeeded.
            self._mark_history(
                job.address,
                old_id,
                model_disposition=ModelDisposition.DELETE,
                fine_tuned_model=model,
            )
            self.hooks.note(
                job.address, f"previous model {model} is deleted once this job has succeeded"
            )

    def _mark_history(self, address: str, remote_id: str, **attributes: Any) -> None:
        res = self.recorder.get(address)
        if res is None:
            return
        for entry in res.history:
            if entry.get("remote_id") == remote_id:
                entry.update(attributes)
        self.recorder.put(res)

    def _update_model(self, change: JobChange) -> Outcome:
        fields = dict(change.update_fields)
        paused = fields.pop("paused", None)
        if paused is not None:
            return self._pause_or_resume(change, bool(paused.after))
        deleted = [self._delete_previous_model(change.address, m) for m in change.delete_models]
        if deleted and not fields:
            return self._outcome(
                change, OutcomeStatus.APPLIED, "deleted previous model " + ", ".join(deleted)
            )
        model_id = change.before.fine_tuned_model if change.before is not None else None
        if not model_id:
            return self._outcome(change, OutcomeStatus.SKIPPED, "no model yet")
        name, description = _new_text(fields.get("name")), _new_text(fields.get("description"))
        if name is not None or description is not None:
            self.client.update_model(model_id, name=name, description=description)
        if "archived" in fields:
            if fields["archived"].after:
                self.client.archive_model(model_id)
            else:
                self.client.unarchive_model(model_id)
        self.recorder.update_attributes(
            change.address, model={k: v.after for k, v in fields.items()}
        )
        return self._outcome(
            change,
            OutcomeStatus.APPLIED,
            "updated model " + ", ".join(sorted(fields)),
            model_id,
        )

    def _pause_or_resume(self, change: JobChange, pause: bool) -> Outcome:
        """Pause (or resume) the job in place: an update, not a new job."""
        res = self.recorder.get(change.address)
        if res is None:
            return self._outcome(change, OutcomeStatus.SKIPPED, "no job recorded")
        client = self.client
        if not self.capabilities.pause or not isinstance(client, Pausable):
            raise ReconcilerError(
                f"{self.capabilities.name} cannot pause or resume jobs; remove 'paused' from "
                "the spec"
            )
        job = client.pause_job(res.remote_id) if pause else client.resume_job(res.remote_id)
        self.recorder.update_attributes(change.address, status=job.status)
        return self._outcome(
            change,
            OutcomeStatus.APPLIED,
            f"{'paused' if pause else 'resumed'} job {res.remote_id} ({job.status})",
            res.remote_id,
        )

    def _delete_previous_model(self, address: str, model: str) -> str:
        """Delete a previous job's model (its replacement has succeeded); mark it deleted."""
        try:
            self.client.delete_model(model)
        except NotFoundError:
            pass  # already gone: the goal is reached
        res = self.recorder.get(address)
        for entry in res.history if res is not None else []:
            if entry.get("fine_tuned_model") == model:
                self._mark_history(address, str(entry.get("remote_id")), model_deleted=True)
        self.hooks.note(address, f"deleted previous model {model}")
        return model

    def _forget_job(self, change: JobChange) -> Outcome:
        res = self.recorder.get(change.address)
        cancel = change.previous is not None and change.previous.disposition is Disposition.CANCEL
        if res is not None and cancel:
            try:
                self.client.cancel_job(res.remote_id)
            except ApiError as exc:
                self.hooks.note(change.address, f"not cancelled: {exc.reason}")
        self.recorder.remove(change.address)
        return self._outcome(
            change,
            OutcomeStatus.APPLIED,
            "cancelled and forgotten" if cancel else "forgotten (remote job and model kept)",
        )


def _new_text(update: FieldUpdate | None) -> str | None:
    """The new value of a text field of the model (None: not updated)."""
    return update.after if update is not None and isinstance(update.after, str) else None


def _adopting(change: Change) -> bool:
    """Whether the adopt stage has something to record for a change."""
    restores = isinstance(change, JobChange) and change.restores is not None
    return bool(change.moved_from or change.import_id or restores)


def _adopt_order(change: Change) -> int:
    """Moves, then imports, then restores."""
    return 0 if change.moved_from else 1 if change.import_id else 2


def _already_made(res: ResourceState | None, fingerprint: str, change: Change) -> bool:
    """Whether the state already records this exact object (rule 3), so nothing is sent."""
    if res is None or res.fingerprint != fingerprint:
        return False
    # A record the plan says not to count (gone remotely, replacement requested) is made again.
    return not change.force_new


def resolve_integration_key(spec: IntegrationSpec) -> str:
    """The W&B key of an integration, resolved from its reference (at apply time only)."""
    if spec.api_key is None:  # build_request asks only for keys that are set
        raise SecretError(f"{spec.subject} has no api_key to resolve")
    value = resolve_secret(
        spec.api_key, spec.base_dir, purpose=f"{spec.subject} api_key", root=spec.root
    )
    if len(value) != WANDB_KEY_LENGTH:
        # Checked here so the message names the reference instead of a 422 per job.
        raise SecretError(
            f"{spec.subject} api_key ({spec.api_key.describe()}) is {len(value)} characters long; "
            f"W&B API keys are exactly {WANDB_KEY_LENGTH}. Set it to the key from "
            "https://wandb.ai/authorize"
        )
    return value


__all__ = [
    "ApplyHooks",
    "ApplyOptions",
    "ApplyResult",
    "Executor",
    "Outcome",
    "OutcomeStatus",
    "SilentHooks",
    "StateRecorder",
    "resolve_integration_key",
]
