"""The executor in-process: exactly-once after every crash point, refusals, 409s, the start
gate, partial failure, stage order and the state recorder's group commit.

The remote is the scripted fake of ``tests/client/client_fakes.py`` (served through
``httpx.MockTransport``); the state is a real file backend in ``tmp_path``. A crash is a
``BaseException`` raised inside the transport — before the request reaches the fake, or after
the fake committed it — that nothing in the package catches, like a kill -9 at that moment;
the "next run" then reads the state back from disk, plans and applies again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from reconciler.address import Address
from reconciler.engine import fingerprint
from reconciler.engine.adopt import ContentHasher
from reconciler.engine.adoption import remote_files_to_hash
from reconciler.engine.desired import (
    DesiredFile,
    DesiredState,
    IntegrationSpec,
)
from reconciler.engine.executor import ApplyOptions, Executor
from reconciler.engine.observed import refresh
from reconciler.engine.outcome import ApplyResult, OutcomeStatus
from reconciler.engine.plan import Action, Disposition, FileChange, Plan, Reason
from reconciler.engine.planner import PlanOptions, build_plan
from reconciler.engine.recorder import StateRecorder
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import Intent, State
from reconciler.errors import Location
from reconciler.providers.mistral import MistralProvider
from reconciler.spec.models import Budget, FineTunedModelSpec, OnReplace, SecretRef
from reconciler.spec.resolved import DeclaredImport, DeclaredMove, TrainingInput
from tests.client.client_fakes import KEY, FakeApi, Fault
from tests.engine.factories import desired, resolved_job

pytestmark = pytest.mark.state_backend_independent


class Crash(BaseException):
    """The process dies at this point (raised from the transport; caught by nothing)."""

    def __init__(self, message: str = "", request: Any = None) -> None:
        super().__init__(message)


class FakeClock:
    """Monotonic time that moves only when the executor sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[int], None] = lambda n: None

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.on_sleep(len(self.sleeps))


@dataclass
class World:
    """A fake remote, a file state backend and the prepared files of one workspace."""

    root: Path
    api: FakeApi = field(default_factory=FakeApi)
    clock: FakeClock = field(default_factory=FakeClock)

    def __post_init__(self) -> None:
        self.backend = FileStateBackend(self.root / "state.json")
        self.client = MistralProvider(
            "http://remote.test", KEY, transport=self.api.transport(), sleep=lambda _: None
        )

    def file(self, dataset: str, lines: int = 3) -> DesiredFile:
        content = "".join(f'{{"n": "{dataset}-{i}"}}\n' for i in range(lines)).encode()
        sha = hashlib.sha256(content).hexdigest()
        filename = f"{dataset}-{sha[:12]}.jsonl"
        path = self.root / filename
        path.write_bytes(content)
        return DesiredFile(
            address=Address.dataset(dataset, "all"),
            dataset=dataset,
            part="all",
            filename=filename,
            sha256=sha,
            bytes=len(content),
            num_lines=lines,
            samples=lines,
            path=path,
            fingerprint=fingerprint.file_fingerprint(filename, sha),
        )

    def plan(self, ds: DesiredState, **options: Any) -> tuple[Plan, State | None]:
        state = self.backend.read()
        return build_plan(ds, state, refresh(self.client), PlanOptions(**options)), state

    def executor(self, ds: DesiredState, state: State | None, **options: Any) -> Executor:
        return Executor(
            self.client,
            self.backend,
            state,
            ds,
            options=ApplyOptions(**{"poll_interval": 1.0, **options}),
            sleep=self.clock.sleep,
            clock=self.clock,
        )

    def apply(self, ds: DesiredState, plan_options: Any = None, **options: Any) -> ApplyResult:
        plan, state = self.plan(ds, **(plan_options or {}))
        return self.executor(ds, state, **options).apply(plan)

    def crash(self, ds: DesiredState, **options: Any) -> None:
        with pytest.raises(Crash):
            self.apply(ds, **options)

    def stored(self) -> State:
        state = self.backend.read()
        assert state is not None
        return state


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def outcomes(result: ApplyResult) -> list[tuple[str, str, str]]:
    return sorted((o.address, o.action.value, o.status.value) for o in result.outcomes)


def one_file(world: World) -> tuple[DesiredFile, DesiredState]:
    f = world.file("d")
    return f, desired([f], [])


def file_and_job(world: World, **job: Any) -> tuple[DesiredFile, DesiredState]:
    f = world.file("d")
    return f, desired([f], [resolved_job("j", dataset="d", **job)])


# -- recovery: every crash point, uploads and job creates -------------------------------------


def test_upload_crash_before_the_request_leaves_an_intent_that_is_dropped(world: World) -> None:
    f, ds = one_file(world)
    world.api.fault(Fault("POST", "/v1/files", kind="drop-before", exc=Crash))
    world.crash(ds)
    assert [i.address for i in world.stored().intents.values()] == [f.address]
    assert world.api.files == []

    result = world.apply(ds)
    assert result.recovered == ()
    assert outcomes(result) == [(f.address, "create", "applied")]
    assert [x["filename"] for x in world.api.files] == [f.filename]
    stored = world.stored()
    assert (
        stored.intents == {} and stored.resources[f.address].remote_id == world.api.files[0]["id"]
    )


def test_upload_crash_after_the_request_is_recovered_not_uploaded_again(world: World) -> None:
    f, ds = one_file(world)
    world.api.fault(Fault("POST", "/v1/files", kind="drop-after", exc=Crash))
    world.crash(ds)
    assert len(world.api.files) == 1 and f.address not in world.stored().resources

    plan, state = world.plan(ds)
    assert [(c.action, c.reason) for c in plan.changes] == [(Action.CREATE, Reason.RECOVER_INTENT)]
    result = world.executor(ds, state).apply(plan)
    assert result.recovered == (f.address,)
    assert outcomes(result) == [(f.address, "create", "skipped")]
    assert len(world.api.requests("POST", "/v1/files")) == 1
    stored = world.stored()
    assert (
        stored.intents == {} and stored.resources[f.address].remote_id == world.api.files[0]["id"]
    )


def test_job_create_crash_before_the_request_leaves_an_intent_that_is_dropped(
    world: World,
) -> None:
    f, ds = file_and_job(world)
    world.api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-before", exc=Crash))
    world.crash(ds)
    stored = world.stored()
    assert f.address in stored.resources
    assert [i.address for i in stored.intents.values()] == ["job.j"]
    assert world.api.jobs == []

    result = world.apply(ds)
    assert result.recovered == ()
    assert ("job.j", "create", "applied") in outcomes(result)
    assert len(world.api.jobs) == 1 and world.api.jobs[0]["status"] == "RUNNING"
    assert result.started_jobs == ("job.j",)
    assert world.stored().intents == {}


def test_job_create_crash_after_the_request_is_recovered_not_created_again(
    world: World,
) -> None:
    f, ds = file_and_job(world)
    world.api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-after", exc=Crash))
    world.crash(ds)
    assert len(world.api.jobs) == 1 and "job.j" not in world.stored().resources

    result = world.apply(ds)
    assert result.recovered == ("job.j",)
    assert outcomes(result) == [("job.j", "create", "skipped")]
    assert len(world.api.requests("POST", "/v1/fine_tuning/jobs")) == 2  # create + start
    assert world.api.jobs[0]["status"] == "RUNNING"  # the recovered job is started
    stored = world.stored()
    assert stored.intents == {} and stored.resources["job.j"].remote_id == world.api.jobs[0]["id"]


def test_intent_of_an_address_no_longer_in_the_specs_is_still_resolved(world: World) -> None:
    f, ds = one_file(world)
    world.api.fault(Fault("POST", "/v1/files", kind="drop-after", exc=Crash))
    world.crash(ds)
    empty = desired([], [])
    plan, state = world.plan(empty)
    assert any("interrupted create" in w for w in plan.warnings)
    result = world.executor(empty, state).apply(plan)
    assert result.recovered == (f.address,)
    assert world.stored().intents == {} and f.address in world.stored().resources


# -- refusals and conflicts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "intent_kept"),
    [
        (Fault("POST", "/v1/files", status=422), False),
        (Fault("POST", "/v1/files", status=400), False),
        (Fault("POST", "/v1/files", status=503, times=6), True),
        (Fault("POST", "/v1/files", kind="drop-before", exc=httpx.ConnectError, times=6), True),
    ],
    ids=["422", "400", "503", "transport"],
)
def test_a_refused_upload_drops_its_intent_an_unknown_outcome_keeps_it(
    world: World, fault: Fault, intent_kept: bool
) -> None:
    f, ds = one_file(world)
    world.api.fault(fault)
    result = world.apply(ds)
    world.api.faults.clear()
    assert outcomes(result) == [(f.address, "create", "failed")]
    assert [i.address for i in world.stored().intents.values()] == (
        [f.address] if intent_kept else []
    )
    # Either way the next run converges to exactly one upload.
    world.apply(ds)
    assert len(world.api.files) == 1 and world.stored().intents == {}


@pytest.mark.parametrize(("status", "intent_kept"), [(422, False), (503, True)], ids=["422", "503"])
def test_a_refused_job_create_drops_its_intent_an_unknown_outcome_keeps_it(
    world: World, status: int, intent_kept: bool
) -> None:
    f, ds = file_and_job(world)
    world.api.fault(Fault("POST", "/v1/fine_tuning/jobs", status=status, times=6))
    result = world.apply(ds)
    world.api.faults.clear()
    assert (f.address, "create", "applied") in outcomes(result)
    assert ("job.j", "create", "failed") in outcomes(result)
    assert [i.address for i in world.stored().intents.values()] == (
        ["job.j"] if intent_kept else []
    )
    world.apply(ds)
    assert len(world.api.jobs) == 1 and world.stored().intents == {}


def test_409_is_resolved_by_adopting_the_job_with_exactly_this_request(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)  # uploads the file and creates job.j
    first = world.api.jobs[0]
    # The state loses the job (as after 'state rm'); its twin is still active remotely, so
    # the create gets a 409 — which apply resolves by finding the identical job.
    state = world.stored()
    del state.resources["job.j"]
    world.backend.write(state, state.serial)
    first["status"] = "VALIDATED"
    plan = build_plan(ds, world.backend.read(), refresh(world.client), PlanOptions())
    job_change = plan.changes[1]
    assert job_change.blocked is not None  # the plan flags the possible duplicate
    result = world.executor(ds, world.backend.read(), allow_duplicates=True).apply(plan)
    assert ("job.j", "create", "applied") in outcomes(result)
    assert len(world.api.jobs) == 1
    assert world.stored().resources["job.j"].remote_id == first["id"]


def test_409_without_an_identical_job_fails_and_drops_the_intent(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(desired([f], []))
    occupant = resolved_job("j", dataset="d", hyperparameters={"training_steps": 99})
    occupied = desired([f], [occupant])
    world.apply(occupied)  # another job with the same model, suffix and files is active
    state = world.stored()
    del state.resources["job.j"]
    world.backend.write(state, state.serial)
    result = world.apply(ds)
    failure = [o for o in result.outcomes if o.address == "job.j"]
    assert [o.status for o in failure] == [OutcomeStatus.FAILED]
    assert "another job occupies the slot" in failure[0].message
    assert world.stored().intents == {} and len(world.api.jobs) == 1


def test_a_blocked_create_fails_without_sending_anything(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    state = world.stored()
    del state.resources["job.j"]
    world.backend.write(state, state.serial)
    sent = len(world.api.requests("POST"))
    result = world.apply(ds)
    failure = [o for o in result.outcomes if o.address == "job.j"]
    assert [o.status for o in failure] == [OutcomeStatus.FAILED]
    assert "possible duplicate" in failure[0].message
    assert len(world.api.requests("POST")) == sent and world.stored().intents == {}


# -- apply decides on typed fields, not on reasons --------------------------------------------


def test_force_new_makes_a_recorded_file_again_and_the_reason_is_not_read(world: World) -> None:
    f, ds = one_file(world)
    world.apply(ds)
    world.api.files.clear()  # deleted outside reconciler
    plan, state = world.plan(ds)
    change = plan.changes[0]
    assert (change.reason, change.force_new) == (Reason.DELETED_REMOTELY, True)

    ignored = plan.model_copy(update={"changes": (change.model_copy(update={"force_new": False}),)})
    result = world.executor(ds, state).apply(ignored)
    assert outcomes(result) == [(f.address, "create", "skipped")] and world.api.files == []

    result = world.executor(ds, world.backend.read()).apply(plan)
    assert outcomes(result) == [(f.address, "create", "applied")]
    assert len(world.api.files) == 1
    assert world.stored().resources[f.address].remote_id == world.api.files[0]["id"]


def test_reuse_records_the_identical_remote_file_without_uploading(world: World) -> None:
    f, ds = one_file(world)
    world.apply(ds)
    remote_id = world.api.files[0]["id"]
    world.backend.write(State(lineage=world.stored().lineage), world.stored().serial)
    plan, state = world.plan(ds)
    change = plan.changes[0]
    assert isinstance(change, FileChange) and change.after and change.after.reuse == remote_id
    result = world.executor(ds, state).apply(plan)
    assert outcomes(result) == [(f.address, "create", "applied")]
    assert len(world.api.requests("POST", "/v1/files")) == 1
    assert world.stored().resources[f.address].remote_id == remote_id


# -- the start gate ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "metadata", "started", "message"),
    [
        (None, None, True, None),
        (Budget(max_cost=5), {"cost": 3.0, "cost_currency": "USD"}, True, None),
        (Budget(max_cost=2), {"cost": 3.0, "cost_currency": "USD"}, False, "over the budget"),
        (Budget(max_cost=5), None, False, "no cost estimate"),
    ],
    ids=["no-budget", "within-budget", "over-budget", "no-estimate"],
)
def test_budget_gate(
    world: World,
    budget: Budget | None,
    metadata: dict[str, Any] | None,
    started: bool,
    message: str | None,
) -> None:
    f, ds = file_and_job(world, budget=budget)
    world.api.new_job_metadata = metadata
    result = world.apply(ds)
    job = world.api.jobs[0]
    assert job["status"] == ("RUNNING" if started else "VALIDATED")
    assert result.started_jobs == (("job.j",) if started else ())
    refusals = [o for o in result.outcomes if o.action is Action.START]
    if message is None:
        assert refusals == []
    else:
        assert [o.status for o in refusals] == [OutcomeStatus.FAILED]
        assert message in refusals[0].message
        # Not started, so the next plan proposes the start again.
        plan, _ = world.plan(ds)
        assert plan.changes[1].action is Action.START
    attributes = world.stored().resources["job.j"].attributes
    assert attributes["status"] == job["status"]
    assert attributes["cost"] == (metadata or {}).get("cost")


def test_start_timeout_leaves_the_job_unstarted_without_waiting_for_real(world: World) -> None:
    f, ds = file_and_job(world)
    world.api.new_job_status = "VALIDATING"
    result = world.apply(ds, start_timeout=60.0)
    refusals = [o for o in result.outcomes if o.action is Action.START]
    assert [o.status for o in refusals] == [OutcomeStatus.FAILED]
    assert "not validated within 60s" in refusals[0].message
    assert world.api.jobs[0]["status"] == "VALIDATING"
    assert sum(world.clock.sleeps) >= 60.0
    assert world.clock.sleeps[:3] == [1.0, 1.5, 2.25] and max(world.clock.sleeps) == 5.0


def test_a_job_validated_while_polling_is_started(world: World) -> None:
    f, ds = file_and_job(world)
    world.api.new_job_status = "VALIDATING"

    def validate_on_second_sleep(n: int) -> None:
        if n == 2:
            world.api.jobs[0]["status"] = "VALIDATED"

    world.clock.on_sleep = validate_on_second_sleep
    result = world.apply(ds, start_timeout=60.0)
    assert result.started_jobs == ("job.j",) and not result.failures
    assert world.api.jobs[0]["status"] == "RUNNING" and len(world.clock.sleeps) == 2


def test_failed_validation_is_reported_and_not_started(world: World) -> None:
    f, ds = file_and_job(world)
    world.api.new_job_status = "FAILED_VALIDATION"
    result = world.apply(ds)
    refusals = [o for o in result.outcomes if o.action is Action.START]
    assert [o.status for o in refusals] == [OutcomeStatus.FAILED]
    assert "FAILED_VALIDATION" in refusals[0].message and result.started_jobs == ()


# -- partial failure --------------------------------------------------------------------------


def test_a_failed_file_leaves_its_jobs_unattempted_and_the_rest_applied(world: World) -> None:
    bad, good = world.file("bad"), world.file("good")
    ds = desired(
        [bad, good],
        [resolved_job("on-bad", dataset="bad"), resolved_job("on-good", dataset="good")],
    )
    world.api.fault(Fault("POST", "/v1/files", status=422, match=bad.filename.encode()))
    result = world.apply(ds)
    assert outcomes(result) == [
        (bad.address, "create", "failed"),
        (good.address, "create", "applied"),
        ("job.on-bad", "create", "not-attempted"),
        ("job.on-good", "create", "applied"),
    ]
    assert {o.address for o in result.failures} == {bad.address, "job.on-bad"}
    assert [j["suffix"] for j in world.api.jobs] == [None]
    assert set(world.stored().resources) == {good.address, "job.on-good"}

    again = world.apply(ds)
    assert not again.failures and len(world.api.jobs) == 2 and len(world.api.files) == 2


# -- stages -----------------------------------------------------------------------------------


def test_stages_run_in_order_uploads_creates_start_updates_prune(world: World) -> None:
    old_file, kept_file = world.file("old"), world.file("kept")
    first = desired(
        [old_file, kept_file],
        [resolved_job("old", dataset="old"), resolved_job("kept", dataset="kept")],
    )
    world.apply(first)
    kept_id = world.stored().resources["job.kept"].remote_id
    kept_job = next(j for j in world.api.jobs if j["id"] == kept_id)
    kept_job.update(status="SUCCESS", fine_tuned_model="ft:kept")
    world.api.models.append(
        {"id": "ft:kept", "object": "model", "name": None, "description": None, "archived": False}
    )
    new_file = world.file("new")
    second = desired(
        [kept_file, new_file],
        [
            resolved_job(
                "kept", dataset="kept", fine_tuned_model=FineTunedModelSpec(name="kept-v1")
            ),
            resolved_job("new", dataset="new"),
        ],
    )
    stored = world.stored().resources
    old_job_id, old_file_id = stored["job.old"].remote_id, stored[old_file.address].remote_id
    mark = len(world.api.log)
    result = world.apply(second, plan_options={"prune": True})
    assert not result.failures
    new_job_id = world.stored().resources["job.new"].remote_id
    assert [(m, p) for m, p, _ in world.api.log[mark:] if m != "GET"] == [
        ("POST", "/v1/files"),  # 2. upload
        ("POST", "/v1/fine_tuning/jobs"),  # 3. create
        ("POST", f"/v1/fine_tuning/jobs/{new_job_id}/start"),  # 4. start gate
        ("PATCH", "/v1/fine_tuning/models/ft:kept"),  # 5. model update
        ("POST", f"/v1/fine_tuning/jobs/{old_job_id}/cancel"),  # 6. prune: the job first...
        ("DELETE", f"/v1/files/{old_file_id}"),  # ...then its file
    ]
    assert set(world.stored().resources) == {
        kept_file.address,
        new_file.address,
        "job.kept",
        "job.new",
    }
    assert world.api.models[0]["name"] == "kept-v1"


def test_apply_is_a_no_op_the_second_time(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    mark = len(world.api.log)
    plan, state = world.plan(ds)
    assert not plan.has_changes
    result = world.executor(ds, state).apply(plan)
    assert result.outcomes == ()
    assert [m for m, _, _ in world.api.log[mark:] if m != "GET"] == []


# -- the state recorder -----------------------------------------------------------------------


class CountingBackend(FileStateBackend):
    """A file backend that counts writes and can hold the first one until released."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[set[str]] = []  # intent addresses on disk after each write
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def write(self, state: State, expected_serial: int | None) -> State:
        self.entered.set()
        self.release.wait(timeout=10)
        stored = super().write(state, expected_serial)
        self.writes.append({i.address for i in stored.intents.values()})
        return stored


def intent(address: str) -> Intent:
    return Intent(address=address, operation="upload", fingerprint="f", created_at=0.0)


def test_parallel_intents_are_group_committed(tmp_path: Path) -> None:
    backend = CountingBackend(tmp_path / "state.json")
    recorder = StateRecorder(backend, None)
    backend.release.clear()
    addresses = [f"dataset.d{i}[all]" for i in range(8)]
    threads = [
        threading.Thread(target=recorder.add_intents, args=([intent(a)],)) for a in addresses
    ]
    threads[0].start()
    assert backend.entered.wait(timeout=10)  # the first write is in progress...
    for t in threads[1:]:
        t.start()
    waited = 0
    while len(recorder.state.intents) < len(addresses) and waited < 1000:
        threading.Event().wait(0.01)  # ...while every other thread records its intent
        waited += 1
    backend.release.set()
    for t in threads:
        t.join(timeout=10)
    # Eight intents, each on disk when its add_intents returned, in two writes.
    assert len(backend.writes) == 2
    assert backend.writes[-1] == set(addresses)


def test_results_wait_for_the_flush_interval_intents_do_not(tmp_path: Path) -> None:
    backend = CountingBackend(tmp_path / "state.json")
    clock = FakeClock()
    recorder = StateRecorder(backend, None, clock=clock)
    recorder.add_intents([intent("dataset.d[all]")])
    assert len(backend.writes) == 1
    recorder.drop_intent(next(iter(recorder.state.intents)))
    recorder.maybe_flush(0.5)
    assert len(backend.writes) == 1
    clock.now += 0.5
    recorder.maybe_flush(0.5)
    assert backend.writes == [{"dataset.d[all]"}, set()]
    recorder.flush()  # nothing new: no write
    assert len(backend.writes) == 2


def test_each_intent_is_on_disk_before_its_upload_is_sent(world: World) -> None:
    files = [world.file(f"d{i}") for i in range(6)]
    ds = desired(files, [])
    backend = CountingBackend(world.root / "counted.json")
    world.backend = backend
    seen: list[bool] = []
    handler = world.api.__call__

    def check_then_handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path == "/v1/files":
            state = backend.read()
            names = {str(i.lookup["filename"]) for i in (state.intents.values() if state else ())}
            seen.append(any(name.encode() in request.read() for name in names))
        return handler(request)

    world.client = MistralProvider(
        "http://remote.test", KEY, transport=httpx.MockTransport(check_then_handle)
    )
    result = world.apply(ds, parallelism=4)
    assert not result.failures
    assert seen == [True] * 6
    # One write for the six intents; results in far fewer writes than one per upload.
    assert backend.writes[0] == {f.address for f in files}
    assert len(backend.writes) < 6


# -- replacements, model updates, prune edge cases --------------------------------------------


def test_replacing_a_running_job_creates_the_new_one_then_cancels_the_old(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    old = world.api.jobs[0]
    changed = desired([f], [resolved_job("j", dataset="d", suffix="v2")])
    plan, state = world.plan(changed)
    assert [c.action for c in plan.changes] == [Action.NOOP, Action.REPLACE]
    mark = len(world.api.log)
    result = world.executor(changed, state).apply(plan)
    assert outcomes(result) == [("job.j", "replace", "applied")]
    new = world.api.jobs[1]
    assert (old["status"], new["status"]) == ("CANCELLED", "RUNNING")
    writes = [p for m, p, _ in world.api.log[mark:] if m == "POST"]
    assert writes == [
        "/v1/fine_tuning/jobs",
        f"/v1/fine_tuning/jobs/{old['id']}/cancel",
        f"/v1/fine_tuning/jobs/{new['id']}/start",
    ]
    recorded = world.stored().resources["job.j"]
    assert recorded.remote_id == new["id"]
    assert [(h["remote_id"], h.get("cancelled_by_reconciler")) for h in recorded.history] == [
        (old["id"], True)
    ]
    # A cancel this tool made is not drift.
    again, _ = world.plan(changed)
    assert again.drift == () and not again.has_changes


def test_replacing_a_finished_job_keeps_it_and_archives_its_model(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    old = world.api.jobs[0]
    old.update(status="SUCCESS", fine_tuned_model="ft:old")
    world.api.models.append({"id": "ft:old", "object": "model", "archived": False})
    policy = OnReplace(active_job="cancel", previous_model="archive")
    changed = desired([f], [resolved_job("j", dataset="d", suffix="v2", on_replace=policy)])
    result = world.apply(changed)
    assert outcomes(result) == [("job.j", "replace", "applied")]
    assert old["status"] == "SUCCESS" and world.api.models[0]["archived"] is True
    assert not any(p.endswith("/cancel") for _, p, _ in world.api.log)
    history = world.stored().resources["job.j"].history
    assert [(h["remote_id"], h["fine_tuned_model"]) for h in history] == [(old["id"], None)]


def test_changed_data_is_uploaded_anew_and_the_old_file_kept_in_history(world: World) -> None:
    first = world.file("d", lines=3)
    world.apply(desired([first], []))
    old_id = world.stored().resources[first.address].remote_id
    second = world.file("d", lines=4)
    result = world.apply(desired([second], []))
    assert outcomes(result) == [(second.address, "replace", "applied")]
    recorded = world.stored().resources[second.address]
    assert recorded.remote_id != old_id and len(world.api.files) == 2
    assert [(h["remote_id"], h["filename"]) for h in recorded.history] == [(old_id, first.filename)]


def test_a_raised_budget_starts_the_validated_job_without_a_new_one(world: World) -> None:
    f, ds = file_and_job(world, budget=Budget(max_cost=2))
    world.api.new_job_metadata = {"cost": 3.0, "cost_currency": "USD"}
    assert world.apply(ds).started_jobs == ()
    raised = desired([f], [resolved_job("j", dataset="d", budget=Budget(max_cost=5))])
    plan, state = world.plan(raised)
    assert (plan.changes[1].action, plan.changes[1].reason) == (
        Action.START,
        Reason.VALIDATED_NOT_STARTED,
    )
    result = world.executor(raised, state).apply(plan)
    assert outcomes(result) == [("job.j", "start", "applied")]
    assert result.started_jobs == ("job.j",)
    assert len(world.api.jobs) == 1 and world.api.jobs[0]["status"] == "RUNNING"


@pytest.mark.parametrize(
    ("value", "message"),
    [(None, "EXECUTOR_TEST_WANDB_KEY"), ("short", "is 5 characters long")],
    ids=["unset", "wrong-length"],
)
def test_a_job_whose_key_cannot_be_resolved_fails_alone(
    world: World, monkeypatch: pytest.MonkeyPatch, value: str | None, message: str
) -> None:
    if value is None:
        monkeypatch.delenv("EXECUTOR_TEST_WANDB_KEY", raising=False)
    else:
        monkeypatch.setenv("EXECUTOR_TEST_WANDB_KEY", value)
    f = world.file("d")
    ds = desired([f], [resolved_job("a", dataset="d"), resolved_job("b", dataset="d", suffix="b")])
    # job.b sends a W&B integration whose key comes from the environment.
    identity = {
        **ds.jobs["job.b"].identity,
        "integrations": [{"type": "wandb", "project": "p", "name": None, "run_name": None}],
    }
    keyed = dataclasses.replace(
        ds.jobs["job.b"],
        identity=identity,
        fingerprint=fingerprint.job_fingerprint(identity),
        integrations=(
            IntegrationSpec(
                project="p",
                name=None,
                run_name=None,
                api_key=SecretRef(env="EXECUTOR_TEST_WANDB_KEY"),
                base_dir=world.root,
                subject="WandbIntegration/w",
            ),
        ),
    )
    ds = DesiredState(files=ds.files, jobs={**ds.jobs, "job.b": keyed})
    result = world.apply(ds)
    assert outcomes(result) == [
        (f.address, "create", "applied"),
        ("job.a", "create", "applied"),
        ("job.b", "create", "failed"),
    ]
    assert message in result.failures[0].message
    assert [j["suffix"] for j in world.api.jobs] == [None]
    assert world.stored().intents == {}


def test_model_metadata_is_updated_archived_and_unarchived(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    world.api.jobs[0].update(status="SUCCESS", fine_tuned_model="ft:m")
    world.api.models.append(
        {"id": "ft:m", "object": "model", "name": None, "description": None, "archived": False}
    )
    spec = FineTunedModelSpec(name="n", description="d", archived=True)
    result = world.apply(desired([f], [resolved_job("j", dataset="d", fine_tuned_model=spec)]))
    assert outcomes(result) == [("job.j", "update", "applied")]
    assert result.outcomes[0].message == "updated model archived, description, name"
    model = world.api.models[0]
    assert (model["name"], model["description"], model["archived"]) == ("n", "d", True)
    assert world.stored().resources["job.j"].attributes["model"] == {
        "name": "n",
        "description": "d",
        "archived": True,
    }
    unarchive = FineTunedModelSpec(name="n", description="d", archived=False)
    world.apply(desired([f], [resolved_job("j", dataset="d", fine_tuned_model=unarchive)]))
    assert model["archived"] is False
    assert [m for m, p, _ in world.api.log if p.endswith("/archive")] == ["POST", "DELETE"]


def test_prune_of_objects_gone_since_the_plan_still_forgets_them(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    plan, state = world.plan(desired([], []), prune=True)
    assert [(c.address, c.action) for c in plan.changes] == [
        ("job.j", Action.FORGET),
        (f.address, Action.DELETE),
    ]
    world.api.jobs.clear()
    world.api.files.clear()
    result = world.executor(desired([], []), state).apply(plan)
    assert outcomes(result) == [(f.address, "delete", "applied"), ("job.j", "forget", "applied")]
    assert world.stored().resources == {}


def test_a_renamed_active_job_is_neither_bound_twice_nor_cancelled(world: World) -> None:
    # Before: the new address's create got a 409 and took the old address's job. Now the plan
    # blocks the create (the job is the old address's), and the prune only forgets the old
    # address: the job some spec asks for is not cancelled.
    f = world.file("d")
    world.apply(desired([f], [resolved_job("old-name", dataset="d")]))
    job = world.api.jobs[0]
    renamed = desired([f], [resolved_job("new-name", dataset="d")])
    plan, state = world.plan(renamed, prune=True)
    new, old = plan.actionable
    assert (new.address, new.action, old.address, old.action) == (
        "job.new-name",
        Action.CREATE,
        "job.old-name",
        Action.FORGET,
    )
    assert (
        new.blocked
        and f"reconciler state rm job.old-name' then 'reconciler import job.new-name {job['id']}'"
        in new.blocked
    )
    assert old.previous is not None and old.previous.disposition is Disposition.KEEP
    result = world.executor(renamed, state).apply(plan)
    assert outcomes(result) == [
        ("job.new-name", "create", "failed"),
        ("job.old-name", "forget", "applied"),
    ]
    assert len(world.api.jobs) == 1 and job["status"] == "RUNNING"
    assert world.stored().resources == {f.address: world.stored().resources[f.address]}


# -- one remote job, one address (issue 13, problems 1 and 6) ---------------------------------


def test_two_jobs_the_remote_cannot_tell_apart_never_share_one_remote_job(world: World) -> None:
    # Before: the second create got a 409 and adopted the first address's job, so both
    # addresses were "created" with one id. (validate refuses such specs; this is the
    # executor's own guarantee.)
    f = world.file("d")
    ds = desired([f], [resolved_job("first", dataset="d"), resolved_job("second", dataset="d")])
    result = world.apply(ds, parallelism=1)  # the fake's 409 check is not atomic
    assert len(world.api.jobs) == 1
    jobs = {a: r.remote_id for a, r in world.stored().resources.items() if a.startswith("job.")}
    assert jobs == {"job.first": world.api.jobs[0]["id"]}
    failed = [o for o in result.outcomes if o.status is OutcomeStatus.FAILED]
    assert [o.address for o in failed] == ["job.second"]
    assert "of job.first has the same readable request" in failed[0].message
    assert "cannot tell them apart. Give one of them a distinct suffix" in failed[0].message


def _weighted(weight: float, **over: Any) -> Any:
    return resolved_job(
        "j", training_files=(TrainingInput(dataset="d", part="all", weight=weight),), **over
    )


class CancelLater:
    """A transport that makes a cancel take effect only after ``sleeps`` executor sleeps."""

    def __init__(self, world: World, sleeps: int | None) -> None:
        self.world, self.sleeps, self.seen = world, sleeps, []
        world.clock.on_sleep = self.on_sleep
        world.client = MistralProvider(
            "http://remote.test", KEY, transport=httpx.MockTransport(self), sleep=lambda _: None
        )
        self.cancelled: list[dict[str, Any]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST" and path == "/v1/fine_tuning/jobs":
            # What the remote holds when the replacement is created.
            self.seen.append([j["status"] for j in self.world.api.jobs])
        response = self.world.api(request)
        if path.endswith("/cancel"):
            job = next(j for j in self.world.api.jobs if path.split("/")[4] == j["id"])
            job["status"] = "CANCELLATION_REQUESTED"
            self.cancelled.append(job)
            return httpx.Response(200, json=job)
        return response

    def on_sleep(self, n: int) -> None:
        if self.sleeps is not None and n >= self.sleeps:
            for job in self.cancelled:
                job["status"] = "CANCELLED"


def test_a_weight_only_change_of_a_running_job_cancels_it_first_then_replaces_it(
    world: World,
) -> None:
    # Before: the new create got a 409, the handler took the *old* job as the new one and
    # then cancelled it as "previous": one cancelled job, no replacement, "No changes" next.
    f = world.file("d")
    world.apply(desired([f], [_weighted(1.0)]))
    old = world.api.jobs[0]
    assert old["status"] == "RUNNING"
    heavier = desired([f], [_weighted(2.0)])
    plan, state = world.plan(heavier)
    change = plan.changes[1]
    assert change.action is Action.REPLACE and change.replace_paths == ("training_files[0].weight",)
    assert change.cancel_first  # the plan says so: the reviewer sees the gap
    remote = CancelLater(world, sleeps=2)
    mark = len(world.api.log)
    result = world.executor(heavier, state).apply(plan)
    assert outcomes(result) == [("job.j", "replace", "applied")]
    new = world.api.jobs[1]
    assert (old["status"], new["status"]) == ("CANCELLED", "RUNNING")
    assert remote.seen == [["CANCELLED"]]  # created only once the old job had stopped
    writes = [p for m, p, _ in world.api.log[mark:] if m == "POST"]
    assert writes == [
        f"/v1/fine_tuning/jobs/{old['id']}/cancel",
        "/v1/fine_tuning/jobs",
        f"/v1/fine_tuning/jobs/{new['id']}/start",
    ]
    recorded = world.stored().resources["job.j"]
    assert recorded.remote_id == new["id"]
    assert [(h["remote_id"], h.get("cancelled_by_reconciler")) for h in recorded.history] == [
        (old["id"], True)
    ]
    again, _ = world.plan(heavier)
    assert again.drift == () and not again.has_changes


def test_replace_of_a_running_job_by_request_cancels_first(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    old = world.api.jobs[0]
    result = world.apply(ds, plan_options={"replace": ("job.j",)})
    assert outcomes(result) == [("job.j", "replace", "applied")]
    assert len(world.api.jobs) == 2 and old["status"] == "CANCELLED"
    assert world.stored().resources["job.j"].remote_id == world.api.jobs[1]["id"]


def _replacing_a_job_that_will_not_stop(world: World) -> DesiredState:
    """A running job applied, and the specs of its replacement (cancel first); the remote
    leaves the job CANCELLATION_REQUESTED after its cancel."""
    f = world.file("d")
    world.apply(desired([f], [_weighted(1.0)]))
    CancelLater(world, sleeps=None)
    return desired([f], [_weighted(2.0)])


def test_a_previous_job_that_does_not_stop_in_time_is_not_replaced_in_this_run(
    world: World,
) -> None:
    heavier = _replacing_a_job_that_will_not_stop(world)
    result = world.apply(heavier, cancel_timeout=30.0)
    failure = [o for o in result.outcomes if o.status is OutcomeStatus.FAILED]
    assert [o.address for o in failure] == ["job.j"]
    assert "still CANCELLATION_REQUESTED 30s after its cancel" in failure[0].message
    assert len(world.api.jobs) == 1 and world.stored().intents == {}
    # It is this tool's cancel: not drift; the next apply creates the replacement.
    world.api.jobs[0]["status"] = "CANCELLED"
    plan, _ = world.plan(heavier)
    assert plan.drift == () and plan.changes[1].action is Action.REPLACE
    assert not plan.changes[1].cancel_first


def test_a_stop_while_waiting_for_the_previous_job_leaves_the_replacement_to_the_next_run(
    world: World,
) -> None:
    heavier = _replacing_a_job_that_will_not_stop(world)
    stop = threading.Event()
    world.clock.on_sleep = lambda n: stop.set()  # a signal arrives during the wait
    result = world.apply(heavier, stop=stop)
    [failure] = [o for o in result.outcomes if o.status is OutcomeStatus.FAILED]
    assert failure.address == "job.j" and failure.message.startswith("stopped while previous")
    assert len(world.clock.sleeps) == 1  # it did not wait out cancel_timeout
    assert len(world.api.jobs) == 1 and world.stored().intents == {}


def test_a_409_never_binds_the_job_the_address_holds(world: World) -> None:
    f = world.file("d")
    world.apply(desired([f], [_weighted(1.0)]))
    old = world.api.jobs[0]
    heavier = desired([f], [_weighted(2.0)])
    plan, state = world.plan(heavier)
    # A plan made without the cancel-first step (an older version, a hand edit): the 409
    # must not make the old job the new one.
    unsafe = plan.model_copy(
        update={
            "changes": (plan.changes[0], plan.changes[1].model_copy(update={"cancel_first": False}))
        }
    )
    result = world.executor(heavier, state).apply(unsafe)
    failure = [o for o in result.outcomes if o.status is OutcomeStatus.FAILED]
    assert [o.address for o in failure] == ["job.j"]
    assert f"this address's own job {old['id']}" in failure[0].message
    assert "plan again" in failure[0].message
    assert old["status"] == "RUNNING" and len(world.api.jobs) == 1
    assert world.stored().resources["job.j"].remote_id == old["id"]


def test_recovery_never_takes_the_replaced_job_for_the_new_one(world: World) -> None:
    f = world.file("d")
    world.apply(desired([f], [_weighted(1.0, on_replace=OnReplace(active_job="keep"))]))
    old = world.api.jobs[0]
    old["status"] = "SUCCESS"
    heavier = desired([f], [_weighted(2.0)])
    # The create is lost before it reaches the remote: the intent stays; the old job has the
    # same readable request and was created moments ago, but it is this address's old job.
    world.api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-before", exc=Crash))
    world.crash(heavier)
    result = world.apply(heavier)
    assert result.recovered == ()
    assert ("job.j", "replace", "applied") in outcomes(result)
    assert len(world.api.jobs) == 2
    assert world.stored().resources["job.j"].remote_id == world.api.jobs[1]["id"]


# -- shared files and start failures (problems 8 and 9) ---------------------------------------


def test_pruning_one_of_two_datasets_on_one_remote_file_keeps_the_file(world: World) -> None:
    f = world.file("d")
    twin = f.model_copy(update={"address": Address.dataset("e", "all"), "dataset": "e"})
    world.apply(desired([f, twin], [resolved_job("j", dataset="e")]))
    assert len(world.api.files) == 1
    stored = world.stored().resources
    assert stored[f.address].remote_id == stored[twin.address].remote_id
    result = world.apply(desired([twin], [resolved_job("j", dataset="e")]), {"prune": True})
    assert outcomes(result) == [(f.address, "forget", "applied")]
    assert "still used by dataset.e[all], job.j" in result.outcomes[0].message
    assert len(world.api.files) == 1 and world.api.requests("DELETE") == []


def test_one_failing_start_does_not_keep_the_other_jobs_from_starting(world: World) -> None:
    f = world.file("d")
    held = [resolved_job(n, dataset="d", suffix=n, start=False) for n in ("a", "b", "c")]
    world.apply(desired([f], held))
    assert [j["status"] for j in world.api.jobs] == ["VALIDATED"] * 3
    ids = {r.address: r.remote_id for r in world.stored().resources.values()}
    world.api.fault(Fault("POST", f"/v1/fine_tuning/jobs/{ids['job.a']}/start", status=422))
    start = desired([f], [resolved_job(n, dataset="d", suffix=n) for n in ("a", "b", "c")])
    result = world.apply(start)
    assert outcomes(result) == [
        ("job.a", "start", "applied"),
        ("job.a", "start", "failed"),
        ("job.b", "start", "applied"),
        ("job.c", "start", "applied"),
    ]
    failure = [o for o in result.outcomes if o.status is OutcomeStatus.FAILED][0]
    assert "the start failed" in failure.message and "HTTP 422" in failure.message
    assert set(result.started_jobs) == {"job.b", "job.c"}
    status = {j["id"]: j["status"] for j in world.api.jobs}
    assert [status[ids[a]] for a in ("job.a", "job.b", "job.c")] == [
        "VALIDATED",
        "RUNNING",
        "RUNNING",
    ]


def test_a_recovered_replacement_still_retires_the_job_it_replaces(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    old = world.api.jobs[0]
    changed = desired([f], [resolved_job("j", dataset="d", suffix="v2")])
    world.api.fault(Fault("POST", "/v1/fine_tuning/jobs", kind="drop-after", exc=Crash))
    world.crash(changed)
    assert len(world.api.jobs) == 2 and old["status"] == "RUNNING"
    result = world.apply(changed)
    assert result.recovered == ("job.j",)
    new = world.api.jobs[1]
    assert (old["status"], new["status"]) == ("CANCELLED", "RUNNING")
    recorded = world.stored().resources["job.j"]
    assert recorded.remote_id == new["id"]
    assert [(h["remote_id"], h.get("cancelled_by_reconciler")) for h in recorded.history] == [
        (old["id"], True)
    ]


# -- adoption, moves, reverts, retention (issue 14) -------------------------------------------


def _posts(world: World, mark: int) -> list[str]:
    return [f"{m} {p}" for m, p, _ in world.api.log[mark:] if m in ("POST", "PATCH", "DELETE")]


def test_a_moved_job_is_recorded_under_its_new_address_and_nothing_is_sent(world: World) -> None:
    f, ds = file_and_job(world)
    world.apply(ds)
    job_id = world.stored().resources["job.j"].remote_id
    renamed = dataclasses.replace(
        desired([f], [resolved_job("tone", dataset="d")]),
        moves={
            "job.tone": DeclaredMove(
                source=Address("job.j"),
                address=Address("job.tone"),
                location=Location("specs.yaml", 4, 1),
            )
        },
    )
    plan, state = world.plan(renamed)
    mark = len(world.api.log)
    result = world.executor(renamed, state).apply(plan)
    assert outcomes(result) == [("job.tone", "move", "applied")]
    assert result.outcomes[0].message == "moved from job.j"
    assert _posts(world, mark) == []
    stored = world.stored().resources
    assert "job.j" not in stored and stored["job.tone"].remote_id == job_id
    # Applying the same plan again (a retry) finds it moved: idempotent.
    again = world.executor(renamed, world.stored()).apply(plan)
    assert [o.message for o in again.outcomes] == ["already moved from job.j"]
    assert not world.plan(renamed)[0].has_changes


def _sdk_world(world: World, status: str = "SUCCESS") -> tuple[DesiredFile, DesiredState, str]:
    """A file uploaded by hand under its own name and a job made from it, with the spec's
    exact data and request."""
    f = world.file("d")
    sdk_file = world.api.add_file("notebook-upload.jsonl", f.path.read_bytes())
    ds = desired([f], [resolved_job("j", dataset="d")])
    request = ds.jobs["job.j"].build_request({f.address: sdk_file["id"]}, lambda _: "")
    job = world.api._store_job({**request, "auto_start": True})
    job["status"] = status
    return f, ds, job["id"]


def test_an_import_records_the_job_and_its_file_by_content_without_a_create(
    world: World,
) -> None:
    f, ds, job_id = _sdk_world(world)
    sdk_file = world.api.files[0]["id"]
    declared = dataclasses.replace(
        ds,
        imports={
            "job.j": DeclaredImport(
                address=Address("job.j"), remote_id=job_id, location=Location("specs.yaml", 7, 1)
            )
        },
    )
    observed = refresh(world.client)
    hasher = ContentHasher(world.client, world.root / "scratch")
    observed.content.update(hasher.hashes(remote_files_to_hash(declared, None, observed)))
    assert hasher.downloads == 1 and not any((world.root / "scratch").iterdir())
    plan = build_plan(declared, None, observed, PlanOptions())
    assert [(c.address, c.action, c.import_id) for c in plan.changes] == [
        (f.address, Action.IMPORT, sdk_file),
        ("job.j", Action.IMPORT, job_id),
    ]
    mark = len(world.api.log)
    result = world.executor(declared, None).apply(plan)
    assert outcomes(result) == [(f.address, "import", "applied"), ("job.j", "import", "applied")]
    assert _posts(world, mark) == []
    stored = world.stored().resources
    assert (stored[f.address].remote_id, stored["job.j"].remote_id) == (sdk_file, job_id)
    assert stored[f.address].fingerprint == f.fingerprint
    assert stored[f.address].attributes["filename"] == "notebook-upload.jsonl"
    assert stored["job.j"].attributes["imported"] is True
    # The next plan has nothing to do (the Import left in the specs is harmless).
    assert not build_plan(
        declared, world.stored(), refresh(world.client), PlanOptions()
    ).has_changes
    again = world.executor(declared, world.stored()).apply(plan)
    assert {o.address: o.message for o in again.outcomes} == {
        f.address: f"already imported {sdk_file}",
        "job.j": f"already imported {job_id}",
    }


def test_a_revert_restores_the_job_that_made_the_request_and_trains_nothing(
    world: World,
) -> None:
    f = world.file("d")

    def at(steps: int) -> DesiredState:
        return desired(
            [f], [resolved_job("j", dataset="d", hyperparameters={"training_steps": steps})]
        )

    world.apply(at(30))
    first = world.api.jobs[0]
    first.update(status="SUCCESS", fine_tuned_model="ft:30")
    world.api.models.append({"id": "ft:30", "object": "model", "archived": False})
    world.apply(at(32))
    second = world.api.jobs[1]
    assert second["status"] == "RUNNING"
    plan, state = world.plan(at(30))
    change = plan.changes[1]
    assert (change.action, getattr(change, "restores", None)) == (Action.RESTORE, first["id"])
    mark = len(world.api.log)
    result = world.executor(at(30), state).apply(plan)
    assert outcomes(result) == [("job.j", "restore", "applied")]
    assert f"restored previous job {first['id']} (ft:30)" in result.outcomes[0].message
    # Nothing created; the 32-step job the revert replaces is cancelled, as a replacement's is.
    assert _posts(world, mark) == [f"POST /v1/fine_tuning/jobs/{second['id']}/cancel"]
    assert len(world.api.jobs) == 2
    recorded = world.stored().resources["job.j"]
    assert recorded.remote_id == first["id"] and recorded.attributes["restored"] is True
    assert [h["remote_id"] for h in recorded.history] == [second["id"]]
    assert not world.plan(at(30))[0].has_changes
    # --replace still asks for a new run.
    rerun, _ = world.plan(at(30), replace=("job.j",))
    assert rerun.changes[1].action is Action.REPLACE


def test_a_previous_model_is_deleted_once_its_replacement_has_succeeded(world: World) -> None:
    f = world.file("d")
    policy = OnReplace(previous_model="delete")

    def spec(suffix: str) -> DesiredState:
        return desired([f], [resolved_job("j", dataset="d", suffix=suffix, on_replace=policy)])

    world.apply(spec("v1"))
    first = world.api.jobs[0]
    first.update(status="SUCCESS", fine_tuned_model="ft:1")
    world.api.models.append({"id": "ft:1", "object": "model", "archived": False})
    mark = len(world.api.log)
    world.apply(spec("v2"))
    assert not any(p.startswith("/v1/models/") for _, p, _ in world.api.log[mark:])
    entry = world.stored().resources["job.j"].history[0]
    assert entry["model_disposition"] == "delete"
    # While the replacement runs (or if it fails), the previous model stays.
    assert not world.plan(spec("v2"))[0].has_changes
    second = world.api.jobs[1]
    second.update(status="SUCCESS", fine_tuned_model="ft:2")
    world.api.models.append({"id": "ft:2", "object": "model", "archived": False})
    plan, state = world.plan(spec("v2"))
    assert plan.models_deleted == 1
    mark = len(world.api.log)
    result = world.executor(spec("v2"), state).apply(plan)
    assert outcomes(result) == [("job.j", "update", "applied")]
    assert _posts(world, mark) == ["DELETE /v1/models/ft:1"]
    assert [m["id"] for m in world.api.models] == ["ft:2"]
    assert world.stored().resources["job.j"].history[0]["model_deleted"] is True
    assert not world.plan(spec("v2"))[0].has_changes
