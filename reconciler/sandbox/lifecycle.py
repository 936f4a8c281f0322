"""The simulated job lifecycle, as pure functions of time.

A job's whole future is fixed when it is created (:class:`JobPlan`: step count, whether
validation fails, whether and where the run fails) plus the moments that only requests can
set: when it was started (``auto_start`` starts it at validation), when it was paused and
resumed (:class:`Pause`), and when cancellation was requested. From those, :func:`timeline`
gives every status transition with its time and :func:`checkpoints` every checkpoint with
its metrics. The store materialises the part of the timeline that lies in the past on every
read, so progress looks the same in-process, as a server, and after a restart — it never
depends on a background thread. A request only ever adds a moment at the present, so the
part of the timeline already materialised never changes.

A paused job trains no further; resumed, it goes through STARTED again (queued for a
worker) to RUNNING and continues where it stopped.

Nothing is trained: the losses are a deterministic, plausible decreasing curve seeded by the
job id and the server seed.

Timing at ``time_scale`` 1 (divided by the scale): queued 0.3 s, validating 0.7 s, started →
running 0.2 s, 0.3 s per step (the whole run capped at 60 s), cancellation 0.5 s.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

QUEUED_SECONDS = 0.3
VALIDATING_SECONDS = 0.7
STARTING_SECONDS = 0.2
STEP_SECONDS = 0.3
MAX_RUN_SECONDS = 60.0
CANCEL_SECONDS = 0.5

#: Statuses after which nothing changes any more.
TERMINAL = frozenset({"SUCCESS", "FAILED", "FAILED_VALIDATION", "CANCELLED"})
#: Statuses that make a similar new job a 409 conflict.
ACTIVE = frozenset({"QUEUED", "VALIDATING", "VALIDATED", "STARTED", "RUNNING", "PAUSED"})


@dataclass(frozen=True)
class JobPlan:
    """What is decided about a job when it is created.

    Attributes:
        job_id: the job's id (seeds the loss curve).
        created: creation time, UNIX seconds (float, for sub-second timing).
        steps: number of training steps the run will take.
        auto_start: start right after validation.
        validation_error: why validation fails, or ``None`` when it passes.
        fail_step: the step at which the run fails (injected fault), or ``None``.
        has_validation: whether the job has validation files (valid_* metrics).
        seed: server seed mixed into the curve's seed.
    """

    job_id: str
    created: float
    steps: int
    auto_start: bool
    validation_error: str | None = None
    fail_step: int | None = None
    has_validation: bool = False
    seed: int = 0


@dataclass(frozen=True)
class Pause:
    """A pause of a running job.

    Attributes:
        at: when the pause was requested, UNIX seconds.
        resumed: when the job was resumed, or None while it stays paused.
    """

    at: float
    resumed: float | None = None


@dataclass(frozen=True)
class Segment:
    """One stretch of a run: from a start (or a resume) to the next pause.

    Attributes:
        queued: when the job started (or resumed): STARTED.
        running: when it runs (RUNNING) and trains from.
        until: when it was paused (PAUSED), or infinity.
    """

    queued: float
    running: float
    until: float


@dataclass(frozen=True)
class Transition:
    """A status change.

    Attributes:
        at: when it happens, UNIX seconds.
        status: the job status from then on.
    """

    at: float
    status: str


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint of the simulated run.

    Attributes:
        at: when it is written, UNIX seconds.
        step: the training step it follows.
        train_loss: training loss at that step.
        valid_loss: validation loss, or None without validation files.
        valid_mean_token_accuracy: validation token accuracy in [0, 1], or None.
    """

    at: float
    step: int
    train_loss: float
    valid_loss: float | None
    valid_mean_token_accuracy: float | None


def _step_seconds(plan: JobPlan, scale: float) -> float:
    return min(STEP_SECONDS, MAX_RUN_SECONDS / max(plan.steps, 1)) / scale


def validated_at(plan: JobPlan, scale: float) -> float:
    """When validation ends (VALIDATED or FAILED_VALIDATION)."""
    return plan.created + (QUEUED_SECONDS + VALIDATING_SECONDS) / scale


def run_duration(plan: JobPlan, scale: float) -> float:
    """Seconds from STARTED to SUCCESS."""
    return STARTING_SECONDS / scale + plan.steps * _step_seconds(plan, scale)


def start_time(plan: JobPlan, started: float | None, scale: float) -> float | None:
    """When the job starts: at validation with auto_start, else when /start was called."""
    if plan.validation_error is not None:
        return None
    if plan.auto_start:
        return validated_at(plan, scale)
    return started


def segments(
    plan: JobPlan, started: float | None, pauses: Sequence[Pause], scale: float
) -> list[Segment]:
    """The stretches of the run, oldest first: one, plus one per resume (none before start)."""
    begin = start_time(plan, started, scale)
    if begin is None:
        return []
    starts = [begin, *(p.resumed for p in pauses if p.resumed is not None)]
    return [
        Segment(
            queued=start,
            running=start + STARTING_SECONDS / scale,
            until=pauses[i].at if i < len(pauses) else math.inf,
        )
        for i, start in enumerate(starts)
    ]


def _trained_at(parts: list[Segment], seconds: float) -> float | None:
    """When the run has trained ``seconds`` in all, or None if not before a pause that lasts."""
    for part in parts:
        length = max(0.0, part.until - part.running)
        if seconds <= length:
            return part.running + seconds
        seconds -= length
    return None


def timeline(
    plan: JobPlan,
    started: float | None,
    cancel_requested: float | None,
    scale: float,
    pauses: Sequence[Pause] = (),
) -> list[Transition]:
    """Every status transition of the job, oldest first, including future ones."""
    out = [
        Transition(plan.created, "QUEUED"),
        Transition(plan.created + QUEUED_SECONDS / scale, "VALIDATING"),
    ]
    v_at = validated_at(plan, scale)
    if plan.validation_error is not None:
        out.append(Transition(v_at, "FAILED_VALIDATION"))
    else:
        out.append(Transition(v_at, "VALIDATED"))
        parts = segments(plan, started, pauses, scale)
        for part in parts:
            out.append(Transition(part.queued, "STARTED"))
            if part.running <= part.until:
                out.append(Transition(part.running, "RUNNING"))
            if part.until < math.inf:
                out.append(Transition(part.until, "PAUSED"))
        if parts:
            last = plan.fail_step if plan.fail_step is not None else plan.steps
            end = _trained_at(parts, last * _step_seconds(plan, scale))
            if end is not None:
                out.append(Transition(end, "FAILED" if plan.fail_step is not None else "SUCCESS"))
        # Stable: transitions at the same moment keep the order they were added in.
        out.sort(key=lambda t: t.at)
    if cancel_requested is not None:
        # "<=" like the store's materialisation (transitions at <= now are in the past), so
        # what was already recorded before the cancel is always kept.
        out = [t for t in out if t.at <= cancel_requested]
        out.append(Transition(cancel_requested, "CANCELLATION_REQUESTED"))
        out.append(Transition(cancel_requested + CANCEL_SECONDS / scale, "CANCELLED"))
    return out


def status_at(transitions: list[Transition], now: float) -> str:
    """The status at ``now`` (the last transition not in the future)."""
    current = transitions[0].status
    for t in transitions:
        if t.at <= now:
            current = t.status
    return current


def checkpoint_steps(steps: int) -> list[int]:
    """Steps that get a checkpoint: every 10% of the run (every step for short runs)."""
    return sorted({max(1, round(steps * k / 10)) for k in range(1, 11)})


def checkpoints(
    plan: JobPlan,
    started: float | None,
    cancel_requested: float | None,
    scale: float,
    pauses: Sequence[Pause] = (),
) -> list[Checkpoint]:
    """Every checkpoint the run produces, oldest first, including future ones."""
    parts = segments(plan, started, pauses, scale)
    if not parts:
        return []
    step_s = _step_seconds(plan, scale)
    last = plan.fail_step if plan.fail_step is not None else plan.steps
    curve = loss_curve(plan)
    out: list[Checkpoint] = []
    for step in checkpoint_steps(plan.steps):
        # A failing run dies at its fail step; a cancelled one keeps what came before.
        if step > last or (step == last and plan.fail_step is not None):
            break
        at = _trained_at(parts, step * step_s)
        if at is None or (cancel_requested is not None and at > cancel_requested):
            break
        train, valid, acc = curve[step]
        out.append(Checkpoint(at, step, train, valid, acc))
    return out


def loss_curve(plan: JobPlan) -> dict[int, tuple[float, float | None, float | None]]:
    """Deterministic metrics per checkpoint step: (train_loss, valid_loss, accuracy).

    An exponential decay towards a floor with a little multiplicative noise; each value is
    kept strictly below the previous one so the curve always falls.
    """
    rng = random.Random(f"{plan.seed}:{plan.job_id}")
    start = rng.uniform(1.6, 2.4)
    floor = start * rng.uniform(0.35, 0.55)
    rate = rng.uniform(2.5, 4.0)
    gap = rng.uniform(1.03, 1.12)
    out: dict[int, tuple[float, float | None, float | None]] = {}
    prev_train = prev_valid = math.inf
    for step in checkpoint_steps(plan.steps):
        frac = step / max(plan.steps, 1)
        base = floor + (start - floor) * math.exp(-rate * frac)
        train = min(base * rng.uniform(0.985, 1.015), prev_train * 0.998)
        prev_train = train
        valid: float | None = None
        acc: float | None = None
        if plan.has_validation:
            valid = min(train * gap * rng.uniform(0.99, 1.01), prev_valid * 0.998)
            prev_valid = valid
            progress = (start - valid) / (start - floor) if start > floor else 0.0
            acc = round(min(0.99, max(0.0, 0.42 + 0.45 * progress)), 6)
            valid = round(valid, 6)
        out[step] = (round(train, 6), valid, acc)
    return out


def token_accuracy(loss: float) -> float:
    """A plausible mean token accuracy for a loss: higher as the loss falls, below 1."""
    return round(min(0.99, 1.1 / (1.0 + loss)), 6)


def steps_done(
    plan: JobPlan,
    started: float | None,
    cancel_requested: float | None,
    scale: float,
    now: float,
    pauses: Sequence[Pause] = (),
) -> int:
    """How many training steps are complete at ``now``."""
    until = now if cancel_requested is None else min(now, cancel_requested)
    trained = sum(
        max(0.0, min(until, part.until) - part.running)
        for part in segments(plan, started, pauses, scale)
    )
    if trained <= 0:
        return 0
    done = int(trained / _step_seconds(plan, scale) + 1e-9)
    last = plan.fail_step if plan.fail_step is not None else plan.steps
    return max(0, min(done, last))
