"""Status rows, the provisional sync classification, renderers and outputs."""

from __future__ import annotations

import io
import json

from observe_jobs import T0, curve, job, status_event
from rich.console import Console

from reconciler.engine.state_model import ResourceState, State
from reconciler.observe.outputs import outputs, outputs_json, render_outputs_text
from reconciler.observe.status import (
    build_rows,
    provisional_sync,
    render_status_markdown,
    render_status_table,
    status_json,
    status_problems,
)

MODEL = "ft:open-mistral-7b:b6e34a5e:20260101:aaaa0001"


def resource(address: str, remote_id: str, kind: str = "job", **attrs: object) -> ResourceState:
    return ResourceState(
        address=address, type=kind, remote_id=remote_id, fingerprint="f" * 64, attributes=attrs
    )


STATE = State(
    resources={
        r.address: r
        for r in [
            resource("job.done", "aaaa0001", status="RUNNING"),
            resource("job.train", "aaaa0002"),
            resource("job.gone", "aaaa0003", status="SUCCESS", fine_tuned_model="ft:old"),
            resource("job.killed", "aaaa0004"),
            resource(
                "dataset.chat[train]", "file-1", kind="file", filename="chat-abc.jsonl", bytes=1234
            ),
            resource("dataset.lost[all]", "file-2", kind="file", filename="lost.jsonl"),
        ]
    }
)
SPEC_ADDRESSES = {
    "job.done",
    "job.train",
    "job.killed",
    "job.new",
    "dataset.chat[train]",
    "dataset.lost[all]",
}
JOBS = {
    # Keyed by address and by remote id: both work.
    "job.done": job(
        "SUCCESS",
        job_id="aaaa0001",
        checkpoints=curve(),
        model=MODEL,
        metadata={"cost": 2.5, "cost_currency": "USD"},
        integrations=[{"type": "wandb", "project": "p", "url": "https://wandb.example/run/7"}],
    ),
    "aaaa0002": job("RUNNING", job_id="aaaa0002", checkpoints=curve()[5:]),
    "job.killed": job("CANCELLED", job_id="aaaa0004", events=[status_event("CANCELLED", T0 + 5)]),
}
FILES = {"file-1": {"id": "file-1", "filename": "chat-abc.jsonl", "bytes": 1234}}


def rows() -> list:  # type: ignore[type-arg]
    sync = provisional_sync(STATE, SPEC_ADDRESSES, JOBS)
    return build_rows(STATE, JOBS, FILES, sync)


def test_provisional_sync_rules() -> None:
    assert provisional_sync(STATE, SPEC_ADDRESSES, JOBS) == {
        "dataset.chat[train]": "in sync",
        "dataset.lost[all]": "in sync",
        "job.done": "in sync",
        "job.gone": "not in spec",
        "job.killed": "drifted",
        "job.new": "changes pending",
        "job.train": "in sync",
    }


def test_rows_join_state_remote_and_sync() -> None:
    by_address = {r.address: r for r in rows()}
    assert list(by_address) == sorted(by_address)
    done = by_address["job.done"]
    assert (done.sync, done.health, done.status) == ("in sync", "succeeded", "SUCCESS")
    assert done.fine_tuned_model == MODEL
    assert done.wandb_url == "https://wandb.example/run/7"
    assert (done.step, done.percent, done.cost) == (100, 100.0, 2.5)
    train = by_address["job.train"]
    assert (train.health, train.step, train.train_loss) == ("running", 50, 1.04)
    killed = by_address["job.killed"]
    assert (killed.sync, killed.health, killed.failure_reason) == (
        "drifted",
        "cancelled",
        "cancelled",
    )
    gone = by_address["job.gone"]  # not refreshed: falls back to the state's attributes
    assert (gone.sync, gone.health, gone.status, gone.fine_tuned_model) == (
        "not in spec",
        None,
        "SUCCESS",
        "ft:old",
    )
    new = by_address["job.new"]
    assert (new.sync, new.remote_id, new.kind) == ("changes pending", None, "job")
    assert by_address["dataset.chat[train]"].health == "available"
    assert by_address["dataset.chat[train]"].bytes == 1234
    assert by_address["dataset.lost[all]"].health == "missing"


def test_status_json_shape() -> None:
    document = status_json(rows(), target="embedded sandbox (.reconciler/sandbox)")
    # The document must survive a JSON round trip unchanged (no sets, no objects).
    assert json.loads(json.dumps(document)) == document
    assert document["format_version"] == 1
    assert document["target"] == "embedded sandbox (.reconciler/sandbox)"
    assert document["summary"] == {
        "total": 7,
        "sync": {"changes pending": 1, "drifted": 1, "in sync": 4, "not in spec": 1},
        "health": {
            "available": 1,
            "cancelled": 1,
            "missing": 1,
            "running": 1,
            "succeeded": 1,
            "unknown": 2,
        },
    }
    first = document["resources"][0]
    assert set(first) >= {
        "address",
        "kind",
        "sync",
        "health",
        "remote_id",
        "status",
        "step",
        "percent",
        "train_loss",
        "valid_loss",
        "valid_mean_token_accuracy",
        "wandb_url",
        "fine_tuned_model",
        "cost",
    }


def test_table_and_markdown_show_both_axes() -> None:
    console = Console(file=io.StringIO(), width=250, color_system=None)
    console.print(render_status_table(rows()))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    for needle in (
        "job.done",
        "in sync",
        "succeeded",
        "100/100 (100%)",
        MODEL,
        "drifted",
        "dataset.chat[train]",
        "2.50 USD",
        "https://wandb.example/run/7",
    ):
        assert needle in text, needle
    markdown = render_status_markdown(rows())
    assert markdown.splitlines()[0].startswith("**7 object(s)**: 1 changes pending, 1 drifted")
    assert f"`{MODEL}` ([W&B](https://wandb.example/run/7))" in markdown
    assert "| `job.killed` | drifted | cancelled |" in markdown
    assert markdown.splitlines()[-1] == "- job.killed: cancelled"


def test_problems_name_the_job_and_the_reason() -> None:
    failing = job(
        "FAILED_VALIDATION",
        job_id="aaaa0002",
        events=[status_event("FAILED_VALIDATION", T0 + 2, error="file x is in both")],
    )
    state_rows = build_rows(STATE, {**JOBS, "aaaa0002": failing}, FILES, {})
    assert status_problems(state_rows) == [
        "job.killed: cancelled",
        "job.train: failed validation: file x is in both",
    ]


def test_outputs_prefer_the_refreshed_job() -> None:
    values = outputs(STATE, JOBS)
    assert values == {
        "job.done": {"fine_tuned_model": MODEL, "job_id": "aaaa0001", "status": "SUCCESS"},
        "job.gone": {"fine_tuned_model": "ft:old", "job_id": "aaaa0003", "status": "SUCCESS"},
        "job.killed": {"fine_tuned_model": None, "job_id": "aaaa0004", "status": "CANCELLED"},
        "job.train": {"fine_tuned_model": None, "job_id": "aaaa0002", "status": "RUNNING"},
    }
    assert outputs_json(values) == {"format_version": 1, "outputs": values}
    assert render_outputs_text(values).splitlines() == [
        f"job.done = {MODEL}",
        "job.gone = ft:old",
        "job.killed = (no model yet: CANCELLED)",
        "job.train = (no model yet: RUNNING)",
    ]


def test_outputs_without_state_is_empty() -> None:
    assert outputs(None, {}) == {}


def test_sync_from_the_planners_plan() -> None:
    from reconciler.engine.plan import Action, Drift, FileChange, JobChange, Plan, Reason
    from reconciler.observe.status import sync_from_plan

    plan = Plan(
        tool_version="0",
        created_at=0.0,
        target="embedded sandbox (.reconciler/sandbox)",
        spec_paths=["."],
        lineage=None,
        serial=None,
        spec_digest="d",
        changes=[
            FileChange(address="dataset.chat[train]", action=Action.NOOP, reason=Reason.IN_SYNC),
            JobChange(address="job.new", action=Action.CREATE, reason=Reason.NOT_IN_STATE),
            JobChange(address="job.hold", action=Action.START, reason=Reason.VALIDATED_NOT_STARTED),
            JobChange(address="job.killed", action=Action.NOOP, reason=Reason.IN_SYNC),
            JobChange(address="job.gone", action=Action.FORGET, reason=Reason.NOT_IN_SPEC),
        ],
        drift=[Drift(address="job.killed", remote_id="x", kind="cancelled", message="m")],
        not_in_spec=["job.gone"],
    )
    assert sync_from_plan(plan) == {
        "dataset.chat[train]": "in sync",
        "job.new": "changes pending",
        "job.hold": "changes pending",
        "job.killed": "drifted",
        "job.gone": "not in spec",
    }
