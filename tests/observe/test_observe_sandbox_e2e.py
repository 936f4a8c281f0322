"""End to end against the real sandbox on 127.0.0.1, on a fast time scale.

Two layers: the observe functions fed by a real client (jobs created with raw API calls, one
of them made to fail validation), and the ``status`` / ``output`` commands after a waited
``apply`` of a matrix of jobs.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sandbox_server = pytest.importorskip(
    "reconciler.sandbox.server", reason="the sandbox server (EmbeddedSandbox) is not available"
)
from reconciler.client.api import MistralClient  # noqa: E402
from reconciler.engine.state_model import ResourceState, State  # noqa: E402
from reconciler.observe.outputs import outputs  # noqa: E402
from reconciler.observe.plot import plot_jobs, terminal_plot  # noqa: E402
from reconciler.observe.progress import failed  # noqa: E402
from reconciler.observe.status import build_rows, provisional_sync, status_json  # noqa: E402
from reconciler.observe.watch import follow_jobs  # noqa: E402
from reconciler.sandbox.app import SandboxConfig  # noqa: E402

TIME_SCALE = 200.0


def _sample(i: int) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"Question number {i}: what is {i} plus {i}?"},
                {
                    "role": "assistant",
                    "content": f"The answer is {2 * i}, because {i}+{i}={2 * i}.",
                },
            ]
        }
    )


def _write_data(path: Path, count: int, offset: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(_sample(offset + i) + "\n" for i in range(count)))
    return path


@pytest.fixture()
def client(tmp_path: Path) -> Iterator[MistralClient]:
    server = sandbox_server.EmbeddedSandbox(
        SandboxConfig(data_dir=tmp_path / "sandbox", api_key=None, time_scale=TIME_SCALE)
    )
    server.start()
    try:
        with MistralClient(server.base_url, None) as api:
            yield api
    finally:
        server.stop()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def test_watch_plot_status_and_outputs_against_the_sandbox(
    client: MistralClient, tmp_path: Path
) -> None:
    train = client.upload_file(_write_data(tmp_path / "train.jsonl", 40), "train.jsonl")
    valid = client.upload_file(_write_data(tmp_path / "valid.jsonl", 8, 1000), "valid.jsonl")

    def create(lr: float, validation: str) -> str:
        job = client.create_job(
            {
                "model": "open-mistral-7b",
                "hyperparameters": {"training_steps": 20, "learning_rate": lr},
                "training_files": [{"file_id": train.id, "weight": 1}],
                "validation_files": [validation],
                "auto_start": True,
            }
        )
        return job.id

    ids = {
        "job.sweep-lr-1e-4": create(1e-4, valid.id),
        "job.sweep-lr-1e-5": create(1e-5, valid.id),
        # Training data used for validation too: the remote fails the validation.
        "job.bad": create(2e-5, train.id),
    }

    def fetch() -> dict[str, dict[str, Any]]:
        return {a: client.get_job(i).model_dump(mode="json") for a, i in ids.items()}

    out = io.StringIO()
    progress = follow_jobs(fetch, interval=0.05, mode="plain", out=out, timeout=60)
    log = out.getvalue()

    assert progress["job.sweep-lr-1e-4"].status == "SUCCESS"
    assert progress["job.sweep-lr-1e-5"].status == "SUCCESS"
    assert progress["job.sweep-lr-1e-4"].fine_tuned_model
    assert progress["job.sweep-lr-1e-4"].percent == 100.0
    bad = failed(progress)
    assert [a for a, _ in bad] == ["job.bad"]
    assert "training and validation" in bad[0][1]
    assert "job.bad FAILED_VALIDATION reason:" in log
    assert log.splitlines()[-1].startswith("2 of 3 job(s) succeeded, 1 ended without a model")

    final = fetch()
    picture = plot_jobs(
        {a: j for a, j in final.items() if a.startswith("job.sweep")}, tmp_path / "sweep.png"
    )
    assert picture.stat().st_size > 10_000
    assert _png_size(picture) == (1200, 900)
    text = terminal_plot(final, width=90, height=18)
    assert "job.sweep-lr-1e-4 train" in text and "job.sweep-lr-1e-5 valid" in text

    state = State(
        resources={
            a: ResourceState(address=a, type="job", remote_id=i, fingerprint="f")
            for a, i in ids.items()
        }
    )
    sync = provisional_sync(state, set(ids), final)
    document = status_json(build_rows(state, final, {}, sync))
    rows = {r["address"]: r for r in document["resources"]}
    assert rows["job.sweep-lr-1e-4"]["health"] == "succeeded"
    assert rows["job.sweep-lr-1e-4"]["valid_loss"] is not None
    assert rows["job.bad"]["health"] == "failed"
    assert outputs(state, final)["job.sweep-lr-1e-5"]["fine_tuned_model"] == (
        progress["job.sweep-lr-1e-5"].fine_tuned_model
    )
