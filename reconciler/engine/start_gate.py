"""The start gate (PRODUCT.md §3 'Start and budget gate'): start validated jobs within budget.

Jobs are created with ``auto_start=false``. The gate waits for the remote to validate each
queued job, checks its budget against the remote's cost estimate, and starts it — or leaves
it VALIDATED and reports why (over budget, no estimate, not validated in time, the remote
refused the start). Each job is gated on its own: a failure is that job's outcome, and the
other jobs still start. A job left unstarted is planned as ``start`` by the next plan.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from reconciler.client.types import JobStatus
from reconciler.engine.desired import DesiredJob
from reconciler.engine.outcome import Outcome, OutcomeStatus
from reconciler.engine.plan import Action
from reconciler.engine.recorder import StateRecorder
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from reconciler.providers.base import Provider

MAX_POLL_INTERVAL = 5.0
"""Seconds between status polls at most (the interval grows by half each round)."""


class StartGate:
    """Collects the jobs to start while jobs are created, then starts them in :meth:`run`.

    Args:
        client: the remote.
        recorder: the working state (statuses and cost estimates are recorded there).
        start_timeout: seconds to wait for validation before giving up in this run.
        poll_interval: seconds between the first status polls.
        report: called with the outcome of each job the gate refuses to start.
        note: called with (address, message) for each job it starts.
        sleep, clock: how to wait and what time it is (monotonic seconds).
        stop: once set, the gate stops waiting; the jobs not started yet stay unstarted (the
            next plan shows them as ``start``).
    """

    def __init__(
        self,
        client: Provider,
        recorder: StateRecorder,
        *,
        start_timeout: float,
        poll_interval: float,
        report: Callable[[Outcome], None],
        note: Callable[[str, str], None],
        sleep: Callable[[float], None],
        clock: Callable[[], float],
        stop: threading.Event | None = None,
    ) -> None:
        self._client = client
        self._recorder = recorder
        self._start_timeout = start_timeout
        self._poll_interval = poll_interval
        self._report = report
        self._note = note
        self._sleep = sleep
        self._clock = clock
        self._stop = stop
        self._queued: dict[str, DesiredJob] = {}
        self._lock = threading.Lock()

    def queue(self, job: DesiredJob) -> None:
        """Start this job once validated (thread-safe; called while jobs are created)."""
        with self._lock:
            self._queued[job.address] = job

    def run(self) -> list[str]:
        """Wait for validation, check budgets, start. Returns the addresses started."""
        waiting = dict(self._queued)
        started: list[str] = []
        if not waiting:
            return started
        deadline = self._clock() + self._start_timeout
        interval = self._poll_interval
        while waiting and not (self._stop is not None and self._stop.is_set()):
            by_id = {}
            for address in list(waiting):
                res = self._recorder.get(address)
                if res is None:
                    waiting.pop(address)
                    continue
                by_id[res.remote_id] = address
            polled, errors = self._poll(set(by_id))
            for job_id, error in errors.items():
                waiting.pop(by_id[job_id])
                self._refuse(by_id[job_id], f"its status could not be read: {error}")
            for job_id, job_data in polled.items():
                address = by_id[job_id]
                raw_status = job_data.get("status")
                self._recorder.update_attributes(address, status=raw_status)
                status = JobStatus.of(raw_status)
                if status is JobStatus.VALIDATED:
                    waiting.pop(address)
                    if self._gate_and_start(self._queued[address], job_data):
                        started.append(address)
                elif status is not None and (status.is_terminal or status.is_running):
                    waiting.pop(address)
                    if status is JobStatus.FAILED_VALIDATION:
                        self._refuse(
                            address,
                            "the remote refused the training data (FAILED_VALIDATION); see "
                            f"'reconciler status {address}' for its events",
                        )
            if not waiting:
                break
            if self._clock() >= deadline:
                for address in waiting:
                    self._refuse(
                        address,
                        f"not validated within {self._start_timeout:.0f}s; "
                        "it stays unstarted and the next apply starts it",
                    )
                break
            self._sleep(interval)
            interval = min(interval * 1.5, MAX_POLL_INTERVAL)
        self._recorder.flush()
        return started

    def _refuse(self, address: str, message: str) -> None:
        self._report(Outcome(address, Action.START, OutcomeStatus.FAILED, message))

    def _poll(self, job_ids: set[str]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
        """(job id → job, job id → why it could not be read) of the jobs still waiting."""
        if len(job_ids) > 3:
            listed = self._client.list_jobs()
            return {j.id: j.model_dump(mode="json") for j in listed if j.id in job_ids}, {}
        found: dict[str, dict[str, Any]] = {}
        errors: dict[str, str] = {}
        for jid in job_ids:
            try:
                found[jid] = self._client.get_job(jid).model_dump(mode="json")
            except ReconcilerError as exc:
                errors[jid] = str(exc)  # this job stops waiting; the others go on
        return found, errors

    def _gate_and_start(self, job: DesiredJob, job_data: Mapping[str, Any]) -> bool:
        """Check the budget and start the job; False when the gate keeps it VALIDATED."""
        address = job.address
        meta = job_data.get("metadata") or {}
        cost, currency = meta.get("cost"), meta.get("cost_currency") or ""
        budget = job.job.budget
        self._recorder.update_attributes(address, cost=cost, cost_currency=currency)
        if budget is not None:
            if cost is None:
                self._refuse(
                    address,
                    "the remote gave no cost estimate, so its budget cannot be "
                    "checked; the job stays VALIDATED (not started)",
                )
                return False
            if float(cost) > budget.max_cost:
                self._refuse(
                    address,
                    f"cost estimate {float(cost):.2f} {currency} is over the budget "
                    f"max_cost {budget.max_cost:.2f}; the job stays VALIDATED (not started). "
                    "Raise budget.max_cost or reduce training_steps, then apply again",
                )
                return False
        try:
            started = self._client.start_job(str(job_data["id"]))
        except ReconcilerError as exc:
            self._refuse(address, f"the start failed: {exc}; the next apply starts it again")
            return False
        self._recorder.update_attributes(address, status=started.status)
        cost_text = f" (estimate {float(cost):.2f} {currency})" if cost is not None else ""
        self._note(address, f"started{cost_text}")
        return True
