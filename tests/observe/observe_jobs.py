"""Builders of API-shaped job dicts (the JSON of GET /v1/fine_tuning/jobs/{id}) for tests."""

from __future__ import annotations

from typing import Any

T0 = 1_717_172_592


def checkpoint(
    step: int,
    created_at: int,
    train: float | None,
    valid: float | None = None,
    acc: float | None = None,
) -> dict[str, Any]:
    return {
        "step_number": step,
        "created_at": created_at,
        "metrics": {
            "train_loss": train,
            "valid_loss": valid,
            "valid_mean_token_accuracy": acc,
        },
    }


def curve(
    steps: int = 100, every: int = 10, seconds_per_step: int = 8, start: int = T0 + 10
) -> list[dict[str, Any]]:
    """Checkpoints with decreasing losses and rising accuracy, newest first like the API."""
    points = []
    for i, step in enumerate(range(every, steps + 1, every)):
        points.append(
            checkpoint(
                step,
                start + step * seconds_per_step,
                round(1.2 - 0.04 * i, 4),
                round(1.3 - 0.035 * i, 4),
                round(0.50 + 0.03 * i, 4),
            )
        )
    return list(reversed(points))


def job(
    status: str,
    *,
    job_id: str = "0f4c9a5e-1111-4222-8333-444455556666",
    steps: int | None = 100,
    checkpoints: list[dict[str, Any]] | None = None,
    events: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    model: str | None = None,
    integrations: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    hyper: dict[str, Any] = {"learning_rate": 0.0001}
    if steps is not None:
        hyper["training_steps"] = steps
    return {
        "id": job_id,
        "object": "job",
        "model": "open-mistral-7b",
        "status": status,
        "job_type": "completion",
        "auto_start": False,
        "created_at": T0,
        "modified_at": T0 + 900,
        "training_files": ["66f96d02-8b51-4c76-a5ac-a78e28b2584f"],
        "validation_files": [],
        "hyperparameters": hyper,
        "fine_tuned_model": model,
        "integrations": integrations or [],
        "trained_tokens": None,
        "metadata": metadata,
        "events": events or [],
        "checkpoints": checkpoints or [],
    }


def status_event(status: str, created_at: int, **data: Any) -> dict[str, Any]:
    return {"name": "status-updated", "data": {"status": status, **data}, "created_at": created_at}
