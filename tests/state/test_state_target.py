"""A state is bound to its target: planning it against another remote is an error naming both.

Pointing a state at another endpoint used to plan ``create: deleted-remotely`` for everything
— against a real account, a full retrain. The state records the provider type and endpoint
at its first write (older states at their next one); ``--rebind`` after an intended move
records the new target. The same binding rules hold for the PostgreSQL backend
(tests/postgres/test_state_postgres_target.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from state_helpers import check_target_binding, sample_state
from typer.testing import CliRunner

from reconciler.cli.app import app
from reconciler.engine.state_file import FileStateBackend
from reconciler.engine.state_model import EMBEDDED, StateTarget
from reconciler.errors import StateError
from reconciler.workspace import normalize_endpoint, open_workspace
from tests.engine.project import SANDBOX_KEY_ENV, make_project

KEY = "target-test-key-2b7d"


def test_the_file_backend_records_and_keeps_its_target(tmp_path: Path) -> None:
    check_target_binding(FileStateBackend(tmp_path / ".reconciler" / "state.json"))


def test_a_state_file_without_a_target_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"format_version": 1, "lineage": "l-1", "serial": 3}))
    state = FileStateBackend(path).read()
    assert state is not None and state.target is None and state.serial == 3


@pytest.mark.parametrize(
    ("written", "recorded"),
    [
        ("https://api.mistral.ai", "https://api.mistral.ai"),
        ("https://API.Mistral.ai/", "https://api.mistral.ai"),
        ("http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1"),
    ],
)
def test_endpoints_are_recorded_in_one_spelling(written: str, recorded: str) -> None:
    assert normalize_endpoint(written) == recorded


def test_the_target_description_names_the_embedded_sandbox() -> None:
    assert StateTarget(provider="sandbox", endpoint=EMBEDDED).describe() == "embedded sandbox"


def _ray_project(root: Path, address: str, storage: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "p.yaml").write_text(
        f"kind: Provider\nname: cluster\ntype: ray\naddress: {address}\nstorage: {storage}\n",
        encoding="utf-8",
    )
    return root


@pytest.mark.parametrize(
    ("address", "storage", "what"),
    [
        ("http://localhost:8265", "ft", "address"),  # another cluster
        ("http://127.0.0.1:8265", "ft-other", "storage"),  # the same one, other storage
    ],
)
def test_a_ray_state_is_bound_to_its_address_and_storage(
    tmp_path: Path, address: str, storage: str, what: str
) -> None:
    # The files' ids are sha256s in one storage and the jobs are one cluster's: a state
    # made with another of either would plan everything as deleted remotely.
    project = _ray_project(tmp_path / "project", "http://127.0.0.1:8265/", "ft")
    with open_workspace([project]) as ws:
        bound = StateTarget(
            provider="ray",
            endpoint="http://127.0.0.1:8265",
            storage=str((project / "ft").resolve()),
        )
        assert ws.binding == bound
        assert ws.target == f"ray http://127.0.0.1:8265/ (storage {bound.storage})"
        ws.backend.write(sample_state(), None)
        assert ws.read_state() is not None and not ws.rebinding
    recorded = json.loads((project / ".reconciler" / "state.json").read_text())["target"]
    assert recorded == bound.model_dump()
    # Another provider type's target keeps the layout it always had: no storage key.
    assert "storage" not in StateTarget(provider="mistral", endpoint="https://a.b").model_dump()

    _ray_project(project, address, storage)
    with open_workspace([project]) as ws:
        with pytest.raises(StateError) as refused:
            ws.read_state()
        message = str(refused.value)
        assert f"belongs to ray http://127.0.0.1:8265 (storage {bound.storage})" in message
        assert f"now target {ws.binding.describe()}" in message and "--rebind" in message
        changed = {k for k, v in ws.binding.model_dump().items() if bound.model_dump()[k] != v}
        assert changed == {"endpoint" if what == "address" else "storage"}
        # An intended move is accepted, and the next write records the new target.
        assert ws.read_state(rebind=True) is not None and ws.rebinding


# --------------------------------------------------------------------------- end to end


class _Remote:
    """A sandbox server whose data outlives it: the 'same' remote at a new address."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._server: Any = None

    def start(self) -> str:
        from reconciler.sandbox.app import SandboxConfig
        from reconciler.sandbox.server import EmbeddedSandbox

        self.stop()
        self._server = EmbeddedSandbox(
            SandboxConfig(data_dir=self.data_dir, api_key=KEY, time_scale=50.0)
        )
        self._server.start()
        return str(self._server.base_url)

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[_Remote]:
    pytest.importorskip("reconciler.sandbox.server")
    server = _Remote(tmp_path / "sandbox-data")
    try:
        yield server
    finally:
        server.stop()


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args))
    assert "Traceback" not in result.output
    return result.exit_code, result.stdout, result.stderr


def test_a_moved_endpoint_is_refused_until_rebind(
    remote: _Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SANDBOX_KEY_ENV, KEY)
    project = tmp_path / "project"
    first = remote.start()
    make_project(project, endpoint=first, n_datasets=1, n_jobs=1, extra_job_fields="start: false\n")
    monkeypatch.chdir(project)
    code, out, err = _run("apply", "--yes")
    assert code == 0, out + err
    state_file = FileStateBackend(project / ".reconciler" / "state.json")
    bound = state_file.read()
    assert bound is not None
    assert bound.target == StateTarget(provider="sandbox", endpoint=first)

    # The same remote answers at a new address; the Provider is edited to follow it.
    second = remote.start()
    assert second != first
    make_project(
        project, endpoint=second, n_datasets=1, n_jobs=1, extra_job_fields="start: false\n"
    )
    for command in (["plan"], ["apply", "--yes"], ["status"], ["output"]):
        code, out, err = _run(*command)
        assert code == 1, (command, out, err)
        assert f"belongs to sandbox {first}, but the specs now target sandbox {second}" in err
        assert "--rebind" in err
    assert state_file.read() == bound  # nothing was written

    code, out, err = _run("plan", "--rebind")
    assert code == 0, out + err
    assert "No changes" in out
    assert f"--rebind: the state belongs to sandbox {first}; apply binds it to" in out
    assert state_file.read() == bound  # plan never writes

    code, out, err = _run("apply", "--rebind", "--yes")
    assert code == 0, out + err
    moved = state_file.read()
    assert moved is not None and moved.target == StateTarget(provider="sandbox", endpoint=second)
    assert moved.resources == bound.resources  # the objects were kept, none recreated

    code, out, err = _run("plan", "--detailed-exitcode")
    assert code == 0, out + err
    assert out.splitlines()[0] == (f"Target: sandbox {second}; state: .reconciler/state.json")
