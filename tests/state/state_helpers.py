"""Helpers for the state tests: processes that hold the lock or write the state, sample states.

Lock and crash behaviour is only meaningful across processes (the kernel releases a flock
when its holder dies), so these tests start real Python processes running the real backend.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from reconciler.engine.state_model import (
    ResourceState,
    State,
    StateBackend,
    StateTarget,
    check_target,
)
from reconciler.errors import StateError
from reconciler.redact import forget_secrets, register_secret

REPO_ROOT = Path(__file__).resolve().parents[2]

HOLDER_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from reconciler.engine.state_file import FileStateBackend

    backend = FileStateBackend(Path(sys.argv[1]))
    info = backend.acquire_lock(sys.argv[2], 0)
    print("LOCKED", info.id, flush=True)
    line = sys.stdin.readline()  # parent says "release" (or dies / kills us)
    backend.release_lock(info)
    print("RELEASED", flush=True)
    """
)


def python_env() -> dict[str, str]:
    """Environment for child processes that import the package from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Holder:
    """A child process holding the state lock until told to release it or killed."""

    def __init__(self, state_path: Path, operation: str = "apply") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER_SCRIPT, str(state_path), operation],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=python_env(),
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("LOCKED "):
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise AssertionError(f"holder did not lock: {line!r} {err}")
        self.lock_id = line.split()[1]
        self.pid = self.proc.pid

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write("release\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "RELEASED"
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def holder_factory() -> Iterator[type[Holder]]:
    """Start lock holders; every one still running at the end of the test is killed."""
    started: list[Holder] = []

    class _Tracked(Holder):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield _Tracked
    for holder in started:
        holder.stop()


def sample_state(n_jobs: int = 2) -> State:
    """A state with typical content: files, jobs with attributes and history."""
    state = State()
    state.resources["dataset.ultrachat[train]"] = ResourceState(
        address="dataset.ultrachat[train]",
        type="file",
        remote_id="5f3c1c3e-0000-4000-8000-000000000001",
        fingerprint="a" * 64,
        attributes={"filename": "ultrachat-train-abc.jsonl", "sha256": "b" * 64, "bytes": 1234},
    )
    for i in range(n_jobs):
        address = f"job.dumbledore-v{i}"
        state.resources[address] = ResourceState(
            address=address,
            type="job",
            remote_id=f"9a1b2c3d-0000-4000-8000-{i:012d}",
            fingerprint=f"{i:064x}",
            attributes={
                "status": "SUCCESS",
                "fine_tuned_model": f"ft:open-mistral-7b:abc:{i}",
                "model": "open-mistral-7b",
                "hyperparameters": {"learning_rate": 0.0001, "training_steps": 10},
                "description": "Zauberer — ünïcödé",
            },
            history=[{"remote_id": "old-job", "status": "CANCELLED", "replaced_at": 1.5}],
        )
    return state


@contextmanager
def state_echoing_a_secret() -> Iterator[tuple[State, str]]:
    """A sample state and a registered secret that one of its jobs holds — in a value and as a
    key, as a server echoing a key into an object's attributes would leave it. The registry of
    secrets is emptied before and after."""
    key = "wandb-" + "0123456789abcdef" * 2
    forget_secrets()
    register_secret(key)
    try:
        state = sample_state(1)
        state.resources["job.x"] = ResourceState(
            address="job.x",
            type="job",
            remote_id="j1",
            fingerprint="f" * 64,
            attributes={"echo": f"server said: bad key {key}", key: "as a key too"},
        )
        yield state, key
    finally:
        forget_secrets()


def check_target_binding(backend: StateBackend) -> None:
    """What every backend does with the target it is bound to (file and postgres alike).

    ``backend`` must hold no state yet.
    """
    old = StateTarget(provider="mistral", endpoint="https://api.mistral.ai")
    new = StateTarget(provider="sandbox", endpoint="http://127.0.0.1:8080")
    # A state written before targets were recorded (no binding given) has none ...
    backend.bind(None)
    legacy = backend.write(sample_state(), None)
    assert legacy.target is None and backend.read() == legacy
    # ... and is adopted silently at the next write of a bound backend.
    backend.bind(old)
    assert check_target(backend.read(), old, "here") is False
    adopted = backend.write(legacy, legacy.serial)
    assert adopted.target == old and backend.read() == adopted
    # Another target is refused, naming both, unless the move is intended.
    with pytest.raises(StateError) as refused:
        check_target(adopted, new, "the state")
    message = str(refused.value)
    assert (
        "mistral https://api.mistral.ai" in message and "sandbox http://127.0.0.1:8080" in message
    )
    assert "--rebind" in message
    # Writes never change a recorded target on their own (e.g. `state rm` run elsewhere) ...
    backend.bind(new)
    kept = backend.write(adopted, adopted.serial)
    assert kept.target == old
    # ... only after an intended move.
    assert check_target(kept, new, "the state", rebind=True) is True
    backend.bind(new, rebind=True)
    moved = backend.write(kept, kept.serial)
    assert moved.target == new and backend.read() == moved
    assert moved.resources == legacy.resources and moved.lineage == legacy.lineage
