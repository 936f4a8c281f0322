"""The ``type: ray`` Provider document and the job fields Ray cannot honour (validate errors)."""

from __future__ import annotations

import pytest
from spec_helpers import WriteTree

from reconciler.spec.loader import check_specs, load_specs
from reconciler.spec.models import Provider, RayResources

RAY_PROVIDER = """\
kind: Provider
name: cluster
type: ray
address: http://127.0.0.1:8265
storage: shared/ft
resources: {gpus: 2, cpus: 8, memory: 64GiB}
price_per_gpu_hour: 2.5
tokens_per_gpu_second: 3000
"""

JOB = """\
kind: Dataset
name: chats
path: chats.jsonl
---
kind: Hyperparameters
name: base
training_steps: 100
learning_rate: 1e-4
---
kind: FineTuningJob
name: tone
model: mistralai/Mistral-7B-v0.3
training_files: [chats]
hyperparameters: base
lora: {rank: 8}
"""


def test_a_ray_provider_loads_with_resources_resolved(write_tree: WriteTree) -> None:
    root = write_tree({"p.yaml": RAY_PROVIDER, "j.yaml": JOB, "chats.jsonl": ""})
    specs = load_specs([root])
    assert specs.provider is not None
    doc = specs.provider.doc
    assert (doc.type, doc.address, doc.storage) == ("ray", "http://127.0.0.1:8265", "shared/ft")
    assert doc.resources == RayResources(gpus=2, cpus=8, memory=64 * 2**30)
    assert specs.jobs["tone"].lora is not None and specs.jobs["tone"].lora.rank == 8


@pytest.mark.parametrize(
    ("memory", "bytes_"),
    [(17179869184, 17179869184), ("16GiB", 16 * 2**30), ("16 GB", 16 * 10**9), ("512MiB", 2**29)],
)
def test_memory_takes_bytes_or_a_size(memory: int | str, bytes_: int) -> None:
    assert RayResources(memory=memory).memory_bytes == bytes_


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"memory": "lots"}, "is not a size"),
        ({"memory": 0}, "more than 0 bytes"),
        ({"gpus": 1.5}, "whole number"),
        ({"gpus": -1}, "greater than or equal to 0"),
    ],
)
def test_bad_resources_are_refused(fields: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        RayResources.model_validate(fields)


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"type": "ray", "storage": "/s"}, "type: ray needs 'address'"),
        ({"type": "ray", "address": "http://h:8265"}, "needs 'storage'"),
        (
            {
                "type": "ray",
                "address": "http://h:8265",
                "storage": "/s",
                "runtime_env": {"env_vars": {"WANDB_API_KEY": "x" * 40}},
            },
            "must not hold WANDB_API_KEY",
        ),
        (
            {
                "type": "ray",
                "address": "http://h:8265",
                "storage": "/s",
                "runtime_env": {"env_vars": {"N": 3}},
            },
            "map names to strings",
        ),
    ],
)
def test_what_a_ray_provider_needs_is_checked_by_its_model(
    fields: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        Provider.model_validate({"name": "p", **fields})


def _problems(
    write_tree: WriteTree, provider: str, job_fields: str, job: str = JOB
) -> list[tuple[str, str, str]]:
    files = {"j.yaml": job + job_fields, "chats.jsonl": ""}
    if provider:
        files["p.yaml"] = provider
    _, problems = check_specs([write_tree(files)])
    return [(p.code, str(p.location).rsplit("/", 1)[-1], p.message) for p in problems]


@pytest.mark.parametrize(
    ("provider", "line_col", "message"),
    [
        (
            RAY_PROVIDER + "endpoint: http://127.0.0.1:8265\n",
            "p.yaml:9:11",
            "'endpoint' is not supported by ray: it is a setting of mistral or openai or sandbox",
        ),
        (
            RAY_PROVIDER + "prices: {m: {train_per_million_tokens: 1}}\n",
            "p.yaml:9:1",
            "'prices' is not supported by ray: it is a setting of mistral or openai or sandbox",
        ),
        (
            "kind: Provider\nname: m\ntype: mistral\nstorage: /s\n",
            "p.yaml:4:10",
            "'storage' is not supported by mistral: it is a setting of ray",
        ),
        (
            "kind: Provider\nname: s\ntype: sandbox\nresources: {gpus: 1}\n",
            "p.yaml:4:1",
            "'resources' is not supported by sandbox: it is a setting of ray",
        ),
    ],
)
def test_provider_fields_of_another_type_are_errors_at_their_line(
    write_tree: WriteTree, provider: str, line_col: str, message: str
) -> None:
    found = _problems(write_tree, provider, "", job=JOB.replace("lora: {rank: 8}\n", ""))
    assert ("not-supported", line_col, message) in found, found


@pytest.mark.parametrize(
    ("job_fields", "line_col", "fragment"),
    [
        ("fine_tuned_model: {name: tone-v1}\n", "16:26", "fine_tuned_model.name"),
        ("on_replace: {previous_model: archive}\n", "16:30", "previous_model: archive"),
        ("suffix: tone\n", "16:9", "'suffix'"),
        ("invalid_sample_skip_percentage: 0.1\n", "16:33", "invalid_sample_skip_percentage"),
        ("start: false\n", "16:8", "start: false"),
        (
            "job_type: classifier\nclassifier_targets: [{name: t, labels: [a]}]\n",
            "16:11",
            "job_type: classifier",
        ),
    ],
)
def test_what_ray_cannot_do_is_a_validate_error_at_its_line(
    write_tree: WriteTree, job_fields: str, line_col: str, fragment: str
) -> None:
    [(code, where, message)] = _problems(write_tree, RAY_PROVIDER, job_fields)
    assert code == "not-supported"
    assert where == f"j.yaml:{line_col}"
    assert fragment in message and "not supported by ray" in message


def test_two_wandb_runs_and_fim_are_refused_for_ray(write_tree: WriteTree) -> None:
    integrations = "".join(
        f"---\nkind: WandbIntegration\nname: w{i}\nproject: p\napi_key: {{env: K}}\n"
        for i in (1, 2)
    )
    files = {
        "p.yaml": RAY_PROVIDER,
        "j.yaml": JOB.replace("lora:", "integrations: [w1, w2]\nlora:").replace(
            "learning_rate: 1e-4", "learning_rate: 1e-4\nfim_ratio: 0.5"
        )
        + integrations,
        "chats.jsonl": "",
    }
    _, problems = check_specs([write_tree(files)])
    messages = sorted(p.message for p in problems)
    assert messages == [
        "2 W&B integrations: ray takes at most 1 (one run per job)",
        "hyperparameter 'fim_ratio' is not supported by ray (used by FineTuningJob/tone)",
    ]


@pytest.mark.parametrize(
    ("hyper", "what"),
    [("{learning_rate: 1e-4}", "neither"), ("{training_steps: 10, epochs: 1}", "both")],
)
def test_ray_needs_exactly_one_of_steps_and_epochs(
    write_tree: WriteTree, hyper: str, what: str
) -> None:
    job = JOB.replace("hyperparameters: base", f"hyperparameters: {hyper}")
    _, problems = check_specs(
        [write_tree({"p.yaml": RAY_PROVIDER, "j.yaml": job, "chats.jsonl": ""})]
    )
    assert [p.message for p in problems] == [
        f"ray needs exactly one of training_steps and epochs; this job sets {what}"
    ]


def test_a_matrix_reports_a_shared_problem_once(write_tree: WriteTree) -> None:
    job = JOB + "suffix: t\nmatrix: {learning_rate: [1e-4, 2e-4, 3e-4]}\n"
    _, problems = check_specs(
        [write_tree({"p.yaml": RAY_PROVIDER, "j.yaml": job, "chats.jsonl": ""})]
    )
    assert [p.message for p in problems] == [
        "'suffix' is not supported by ray: its models are not named after the job"
    ]


@pytest.mark.parametrize(
    ("provider", "name"),
    [("", "sandbox"), ("kind: Provider\nname: m\ntype: mistral\n", "mistral")],
)
def test_lora_is_only_for_ray(write_tree: WriteTree, provider: str, name: str) -> None:
    [(code, where, message)] = _problems(write_tree, provider, "")
    assert (code, where) == ("not-supported", "j.yaml:15:1")
    assert message == (
        f"'lora' is not supported by {name}: it is a setting of a self-hosted trainer (type: ray)"
    )


def test_validate_names_the_provider_and_exits_1(write_tree: WriteTree, cli: object) -> None:
    root = write_tree(
        {"p.yaml": RAY_PROVIDER, "j.yaml": JOB + "fine_tuned_model: {name: x}\n", "chats.jsonl": ""}
    )
    result = cli("validate", str(root))  # type: ignore[operator]
    assert result.exit_code == 1
    assert "fine_tuned_model.name is not supported by ray" in (result.stdout + result.stderr)


def test_a_ray_workspace_below_others_is_skipped_by_its_parent_and_loads_on_its_own(
    write_tree: WriteTree,
) -> None:
    root = write_tree(
        {
            "shared/j.yaml": "kind: Dataset\nname: plain\npath: p.jsonl\n",
            "ray/p.yaml": RAY_PROVIDER,
            "ray/j.yaml": JOB,
            "ray/reconciler.yaml": "apiVersion: reconciler/v1\n",
        }
    )
    parent = load_specs([root])
    assert sorted(parent.datasets) == ["plain"] and parent.provider is None
    assert [p.code for p in parent.warnings] == ["own-workspace-skipped"]
    alone = load_specs([root / "ray"])
    assert sorted(alone.datasets) == ["chats"] and alone.provider is not None
    assert alone.root == (root / "ray").resolve()
