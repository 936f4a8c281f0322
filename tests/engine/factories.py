"""Builders of desired state, state and observed remote for the pure planner tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.address import Address
from reconciler.engine import fingerprint
from reconciler.engine.desired import DesiredFile, DesiredJob, DesiredState, _desired_job
from reconciler.engine.observed import Observed
from reconciler.engine.plan import Plan, RunBudgetLimit
from reconciler.engine.planner import PlanOptions, build_plan
from reconciler.engine.state_model import ResourceState, State
from reconciler.errors import Location
from reconciler.spec.models import Budget, FineTunedModelSpec, OnReplace
from reconciler.spec.resolved import ResolvedJob, SpecSet, TrainingInput


def desired_file(
    dataset: str = "d",
    part: str = "all",
    sha: str = "a" * 64,
    size: int = 100,
    tokens: int = 25,
    exact_tokens: int | None = None,
    samples: int = 3,
) -> DesiredFile:
    filename = f"{dataset}-{sha[:12]}.jsonl"
    return DesiredFile(
        address=Address.dataset(dataset, part),
        dataset=dataset,
        part=part,
        filename=filename,
        sha256=sha,
        bytes=size,
        num_lines=samples,
        samples=samples,
        path=Path("/nonexistent"),
        fingerprint=fingerprint.file_fingerprint(filename, sha),
        approx_tokens=tokens,
        exact_tokens=exact_tokens,
    )


def resolved_job(
    name: str = "j", *, dataset: str = "d", part: str = "all", **over: Any
) -> ResolvedJob:
    fields: dict[str, Any] = dict(
        name=name,
        source=name,
        matrix_values={},
        model="open-mistral-7b",
        job_type="completion",
        training_files=(TrainingInput(dataset=dataset, part=part, weight=1.0),),
        validation_files=(),
        hyperparameters={"training_steps": 10, "learning_rate": 1e-4},
        integrations=(),
        suffix=None,
        invalid_sample_skip_percentage=0.0,
        classifier_targets=None,
        start=True,
        budget=None,
        fine_tuned_model=None,
        on_replace=OnReplace(),
        labels={},
        location=Location("specs.yaml", 1, 1),
    )
    fields.update(over)
    return ResolvedJob(**fields)


_SPECS = SpecSet(
    root=Path("."),
    files=(),
    datasets={},
    profiles={},
    integrations={},
    job_documents={},
    jobs={},
    provider=None,
    digest="x",
)


def desired(files: list[DesiredFile], jobs: list[ResolvedJob]) -> DesiredState:
    fmap = {f.address: f for f in files}
    jmap: dict[str, DesiredJob] = {}
    for job in jobs:
        dj = _desired_job(job, fmap, _SPECS)
        jmap[dj.address] = dj
    return DesiredState(files=fmap, jobs=jmap)


def state_with(
    ds: DesiredState,
    *,
    file_ids: dict[str, str],
    job_ids: dict[str, str],
    job_fingerprints: dict[str, str] | None = None,
) -> State:
    st = State(lineage="L", serial=3)
    for address, fid in file_ids.items():
        f = ds.files[address]
        st.resources[address] = ResourceState(
            address=address,
            type="file",
            remote_id=fid,
            fingerprint=f.fingerprint,
            attributes=f.summary(),
        )
    for address, jid in job_ids.items():
        j = ds.jobs[address]
        fp = (job_fingerprints or {}).get(address, j.fingerprint)
        st.resources[address] = ResourceState(
            address=address,
            type="job",
            remote_id=jid,
            fingerprint=fp,
            attributes={"identity": dict(j.identity)},
        )
    return st


def remote_file(fid: str, f: DesiredFile) -> dict[str, Any]:
    return {"id": fid, "filename": f.filename, "bytes": f.bytes, "created_at": 1}


def remote_job(
    jid: str, job: DesiredJob, file_ids: dict[str, str], status: str = "RUNNING", **extra: Any
) -> dict[str, Any]:
    ident = job.identity
    return {
        "id": jid,
        "status": status,
        "model": ident["model"],
        "job_type": ident["job_type"],
        "suffix": ident["suffix"],
        "training_files": [file_ids[f["file"]] for f in ident["training_files"]],
        "validation_files": [file_ids[f["file"]] for f in ident["validation_files"]],
        "hyperparameters": {**ident["hyperparameters"], "epochs": 0.5, "weight_decay": 0.1},
        "integrations": [],
        "created_at": 10,
        **extra,
    }


def observed(
    files: list[dict[str, Any]] = (),
    jobs: list[dict[str, Any]] = (),  # type: ignore[assignment]
    models: list[dict[str, Any]] = (),
) -> Observed:  # type: ignore[assignment]
    return Observed(
        files={f["id"]: f for f in files},
        jobs={j["id"]: j for j in jobs},
        models={m["id"]: m for m in models},
    )


def reviewed_plan(
    ds: DesiredState,
    estimator: Any,
    *,
    state: State | None = None,
    obs: Observed | None = None,
    options: PlanOptions | None = None,
    budget: RunBudgetLimit | None = None,
    start_gate: bool = True,
) -> Plan:
    """The plan as ``make_plan`` makes it: priced by ``estimator`` (a
    :class:`~reconciler.engine.costs.CostEstimator`) while it is made, then reviewed
    (``start_gate``: whether the provider validates jobs before they start)."""
    from dataclasses import replace

    from reconciler.engine import costs

    options = replace(options or PlanOptions(spec_digest="x"), price=costs.pricer(estimator, ds))
    plan = build_plan(ds, state, obs or observed(), options)
    return costs.review_costs(plan, estimator, ds, budget, start_gate=start_gate)


__all__ = ["Budget", "FineTunedModelSpec"]
