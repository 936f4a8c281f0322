"""The Ray Jobs API client without a Ray head: its status mapping, an unreachable head.

What it does against a real head — one run per submission id (a second submission with the id
refused), metadata and a masked secret handed back, logs, a stop that reaches the run as
SIGTERM — is checked on the jobs the provider's tests submit (test_ray_provider.py), which run
the stand-in trainer (ray_stub_trainer.py). The real trainer runs on Ray in test_ray_apply.py's
last test, and its own handling of SIGTERM is checked in test_train_cpu.py.
"""

from __future__ import annotations

import socket

import pytest

from reconciler.errors import TransportError
from reconciler.ray import RayJobsClient, job_status


@pytest.mark.parametrize(
    ("ray", "ours"),
    [
        ("PENDING", "QUEUED"),
        ("RUNNING", "RUNNING"),
        ("SUCCEEDED", "SUCCESS"),
        ("FAILED", "FAILED"),
        ("STOPPED", "CANCELLED"),
        ("stopped", "CANCELLED"),
        ("SOMETHING_NEW", "UNKNOWN"),
    ],
)
def test_status_mapping(ray: str, ours: str) -> None:
    assert job_status(ray) == ours


def test_an_unreachable_head_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens
    with RayJobsClient(f"http://127.0.0.1:{port}", timeout=5) as client:
        with pytest.raises(TransportError, match="could not connect"):
            client.version()
