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
   object, and a 409 on a job create is resolved by lookup, not by a second job.

:meth:`Executor.apply` runs the stages in this order, each a method of its own:

1. :meth:`~Executor.recover_intents` — rule 2;
2. :meth:`~Executor.upload_files` — new and changed files, in parallel;
3. :meth:`~Executor.create_jobs` — new and replaced jobs (``auto_start=false``), in
   parallel; a job whose file failed is not attempted; jobs to start are queued;
4. :meth:`~Executor.start_jobs` — the start and budget gate
   (:mod:`~reconciler.engine.start_gate`);
5. :meth:`~Executor.update_models` — fine-tuned model name, description, archived;
6. :meth:`~Executor.prune` — jobs the specs no longer name (cancelled if active, then
   forgotten), then their files.

Apply decides from the action and the typed fields of each change (``force_new``,
``after.reuse``, ``previous.disposition``, ``blocked``), never from its reason. Partial
failure keeps what succeeded; the next run converges.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from reconciler.address import ResourceType
from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState, IntegrationSpec
from reconciler.engine.intents import (
    intent_tag,
    job_intent,
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
from reconciler.engine.start_gate import StartGate
from reconciler.engine.state_model import Intent, ResourceState, State, StateBackend
from reconciler.errors import ApiError, ConflictError, NotFoundError, ReconcilerError, SecretError
from reconciler.providers.base import JobTag
from reconciler.spec.secrets import resolve_secret

if TYPE_CHECKING:
    from reconciler.providers.base import Provider

WANDB_KEY_LENGTH = 40
"""Length of every W&B API key (the API rejects any other length)."""

C = TypeVar("C", FileChange, JobChange)


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
        self.recorder = StateRecorder(backend, state, clock=clock)
        self.desired = desired
        self.options = options or ApplyOptions()
        self.hooks: ApplyHooks = hooks or SilentHooks()
        self._resolve = secret_resolver or resolve_integration_key
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
        )

    # ------------------------------------------------------------------ entry point

    def apply(self, plan: Plan) -> ApplyResult:
        """Run every stage on the plan's changes; persist the state; return the result."""
        changes = plan.actionable
        files = [c for c in changes if isinstance(c, FileChange)]
        jobs = [c for c in changes if isinstance(c, JobChange)]
        try:
            self.recover_intents()
            self.upload_files([c for c in files if c.action.makes_new])
            self.create_jobs([c for c in jobs if c.action.makes_new or c.action is Action.START])
            self.start_jobs()
            self.update_models([c for c in jobs if c.action is Action.UPDATE])
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

    def upload_files(self, changes: list[FileChange]) -> None:
        """Stage 2: upload new and changed files (or record identical remote ones)."""
        self._run_stage(changes, self._upload)

    def create_jobs(self, changes: list[JobChange]) -> None:
        """Stage 3: create new and replacement jobs; queue jobs to start.

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
        """Stage 4: wait for validation, check budgets, start the queued jobs."""
        self._started.extend(self.gate.run())

    def update_models(self, changes: list[JobChange]) -> None:
        """Stage 5: update fine-tuned models' name, description and archived flag."""
        self._run_stage(changes, self._update_model)

    def prune(self, jobs: list[JobChange], files: list[FileChange]) -> None:
        """Stage 6: forget jobs the specs no longer name, then delete or forget their files."""
        self._run_stage(jobs, self._forget_job)
        self._run_stage(files, self._remove_file)

    # ------------------------------------------------------------------ running a stage

    def _run_stage(self, changes: list[C], work: Callable[[C], Outcome]) -> None:
        """Run changes in parallel, their intents written first in one state write."""
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
        tag = None
        if self.client.capabilities.job_metadata:
            # The jobs this address had before (its history, plus the recorded one): a
            # replacement, even of an unchanged spec, is a new identity.
            generation = len(res.history) + 1 if res is not None else 0
            tag = JobTag(job.address, job.fingerprint, generation)
        return job_intent(job, request, tag)

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
                attributes=f.summary(),
                history=history,
            ),
            intent_id=intent_id,
        )

    def _remove_file(self, change: FileChange) -> Outcome:
        res = self.recorder.get(change.address)
        if res is not None and change.action is Action.DELETE:
            try:
                self.client.delete_file(res.remote_id)
            except NotFoundError:
                pass  # already gone: the goal is reached
        self.recorder.remove(change.address)
        return self._outcome(
            change,
            OutcomeStatus.APPLIED,
            "deleted" if change.action is Action.DELETE else "forgotten",
        )

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
            if self._gated(job):
                self.gate.queue(job)
            return self._outcome(change, OutcomeStatus.SKIPPED, "already created", res.remote_id)
        if intent is None:
            assert change.blocked is not None
            return self._outcome(change, OutcomeStatus.FAILED, change.blocked)
        request = self._requests[job.address]
        lookup = intent.lookup["request"]
        tag = intent_tag(intent)
        history = list(res.history) if res is not None else []
        try:
            created = self.client.create_job(request, tag=tag)
        except ConflictError as exc:
            twins = self.client.find_jobs(lookup, tag=tag)
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
                type=ResourceType.JOB,
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
        if change.action is Action.REPLACE and change.previous is not None:
            self._retire_previous(job, change.previous)
        if self._gated(job):
            self.gate.queue(job)
        return self._outcome(change, OutcomeStatus.APPLIED, f"created job {created.id}", created.id)

    def _gated(self, job: DesiredJob) -> bool:
        """Whether the start gate starts this job: it is to start, and the provider creates
        jobs unstarted (``auto_start``). Elsewhere (Ray) a job runs as soon as it is created."""
        return job.job.start and self.client.capabilities.auto_start

    def _drop_intent_if_refused(self, intent: Intent, exc: ApiError) -> None:
        """Forget an intent when the remote's answer means nothing was created."""
        if refused(exc):
            self.recorder.drop_intent(intent.id)

    def _retire_previous(self, job: DesiredJob, previous: JobPrevious) -> None:
        old_id = previous.id
        if previous.disposition is Disposition.CANCEL:
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

    def _mark_history(self, address: str, remote_id: str, **attributes: Any) -> None:
        res = self.recorder.get(address)
        if res is None:
            return
        for entry in res.history:
            if entry.get("remote_id") == remote_id:
                entry.update(attributes)
        self.recorder.put(res)

    def _update_model(self, change: JobChange) -> Outcome:
        model_id = change.before.fine_tuned_model if change.before is not None else None
        if not model_id:
            return self._outcome(change, OutcomeStatus.SKIPPED, "no model yet")
        fields = change.update_fields
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

    def _forget_job(self, change: JobChange) -> Outcome:
        res = self.recorder.get(change.address)
        cancel = change.previous is not None and change.previous.disposition is Disposition.CANCEL
        owner = self.recorder.managed_elsewhere(change.address, res.remote_id) if res else None
        if owner is not None:
            # A create in this run adopted the job (a 409 resolved by lookup, as when a job
            # is renamed): it is that address's job now, and is not cancelled.
            self.recorder.remove(change.address)
            return self._outcome(
                change, OutcomeStatus.APPLIED, f"forgotten (the remote job is now {owner}'s)"
            )
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


def _already_made(res: ResourceState | None, fingerprint: str, change: Change) -> bool:
    """Whether the state already records this exact object (rule 3), so nothing is sent."""
    if res is None or res.fingerprint != fingerprint:
        return False
    # A record the plan says not to count (gone remotely, replacement requested) is made again.
    return not change.force_new


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
