"""References between documents, hyperparameter profiles, dataset parts and matrix expansion."""

from __future__ import annotations

import hashlib

import pytest
from spec_helpers import WriteTree

from reconciler.errors import Location
from reconciler.spec.loader import check_specs, load_specs
from reconciler.spec.resolve import derive_job_name, expand_matrix, format_matrix_value

DATASETS = """\
kind: Dataset
name: chats
path: chats.jsonl
---
kind: Dataset
name: split-chats
path: more.jsonl
split: {validation_fraction: 0.1}
---
kind: Dataset
name: held-out
path: held.jsonl
---
kind: Hyperparameters
name: base
training_steps: 100
learning_rate: 1e-4
weight_decay: 0.1
---
kind: Hyperparameters
name: gentle
extends: base
learning_rate: 5e-5
---
kind: Hyperparameters
name: gentler
extends: gentle
warmup_fraction: 0.2
---
kind: WandbIntegration
name: team
project: p
api_key: {env: WANDB_API_KEY}
---
kind: WandbIntegration
name: other
project: q
api_key: {file: wandb.key}
"""

JOB_HEAD = "kind: FineTuningJob\nname: job\nmodel: open-mistral-7b\n"


def load_job(write_tree: WriteTree, body: str) -> dict[str, object]:
    root = write_tree({"d.yaml": DATASETS, "j.yaml": JOB_HEAD + body})
    specs = load_specs([root])
    return {name: job for name, job in specs.jobs.items()}


def problems_of(write_tree: WriteTree, body: str, monkeypatch: pytest.MonkeyPatch) -> list:
    root = write_tree({"d.yaml": DATASETS, "j.yaml": JOB_HEAD + body})
    monkeypatch.chdir(root)
    specs, problems = check_specs(["."])
    assert specs is None
    return problems


@pytest.mark.parametrize(
    ("hyperparameters", "expected"),
    [
        (
            "hyperparameters: gentler\n",
            {
                "training_steps": 100,
                "learning_rate": 5e-5,
                "weight_decay": 0.1,
                "warmup_fraction": 0.2,
            },
        ),
        (
            "hyperparameters: {training_steps: 5, epochs: 1.5}\n",
            {"training_steps": 5, "epochs": 1.5},
        ),
        (
            "hyperparameters:\n  extends: gentle\n  training_steps: 7\n",
            {"training_steps": 7, "learning_rate": 5e-5, "weight_decay": 0.1},
        ),
        ("", {}),
    ],
)
def test_hyperparameters_profile_inline_and_overrides(
    write_tree: WriteTree, hyperparameters: str, expected: dict[str, object]
) -> None:
    jobs = load_job(write_tree, "training_files: [chats]\n" + hyperparameters)
    job = jobs["job"]
    assert dict(job.hyperparameters) == expected
    # Field order is the model's, not the order of the chain.
    assert list(job.hyperparameters) == [
        k
        for k in (
            "training_steps",
            "learning_rate",
            "weight_decay",
            "warmup_fraction",
            "epochs",
            "seq_len",
            "fim_ratio",
        )
        if k in expected
    ]


def test_every_resolved_job_field_is_filled(write_tree: WriteTree) -> None:
    body = """\
job_type: classifier
classifier_targets:
  - {name: mood, labels: [happy, sad], weight: 2, loss_function: single_class}
training_files:
  - {dataset: split-chats, weight: 3}
  - chats
validation_files: [split-chats, {dataset: held-out}]
hyperparameters: base
integrations: [other, team]
suffix: s
invalid_sample_skip_percentage: 0.25
start: false
budget: {max_cost: 12.5}
fine_tuned_model: {name: nice, description: d, archived: true}
on_replace: {active_job: keep, previous_model: archive}
labels: {team: ml}
"""
    job = load_job(write_tree, body)["job"]
    assert job.name == job.source == "job"
    assert job.matrix_values == {}
    assert job.model == "open-mistral-7b"
    assert job.job_type == "classifier"
    assert [(t.dataset, t.part, t.weight) for t in job.training_files] == [
        ("split-chats", "train", 3.0),
        ("chats", "all", 1.0),
    ]
    assert [(v.dataset, v.part) for v in job.validation_files] == [
        ("split-chats", "validation"),
        ("held-out", "all"),
    ]
    assert [t.address for t in job.training_files] == [
        "dataset.split-chats[train]",
        "dataset.chats[all]",
    ]
    assert [i.name for i in job.integrations] == ["other", "team"]
    assert job.suffix == "s"
    assert job.invalid_sample_skip_percentage == 0.25
    assert job.classifier_targets is not None and job.classifier_targets[0].labels == [
        "happy",
        "sad",
    ]
    assert job.start is False
    assert job.budget is not None and job.budget.max_cost == 12.5
    assert job.fine_tuned_model is not None and job.fine_tuned_model.archived is True
    assert job.on_replace.previous_model == "archive"
    assert job.labels == {"team": "ml"}
    assert job.location.line == 1 and job.location.file.endswith("j.yaml")
    assert job.address == "job.job"


@pytest.mark.parametrize(
    ("body", "code", "line_col", "fragment"),
    [
        ("training_files: [chat]\n", "unknown-reference", (4, 18), "did you mean 'chats'?"),
        (
            "training_files: [{dataset: held-oot, weight: 2}]\n",
            "unknown-reference",
            (4, 28),
            "did you mean 'held-out'?",
        ),
        (
            "training_files: [chats]\nvalidation_files: [nothing-like-it]\n",
            "unknown-reference",
            (5, 20),
            "known: chats, held-out, split-chats",
        ),
        (
            "training_files: [chats]\nhyperparameters: gentel\n",
            "unknown-reference",
            (5, 18),
            "did you mean 'gentle'?",
        ),
        (
            "training_files: [chats]\nhyperparameters: {extends: bse}\n",
            "unknown-reference",
            (5, 28),
            "did you mean 'base'?",
        ),
        (
            "training_files: [chats]\nintegrations: [team, teem]\n",
            "unknown-reference",
            (5, 22),
            "did you mean 'team'?",
        ),
        (
            "training_files: [{dataset: chats, part: train}]\n",
            "unknown-reference",
            (4, 41),
            "use part: all",
        ),
        (
            "training_files: [{dataset: split-chats, part: all}]\n",
            "unknown-reference",
            (4, 47),
            "use part: train or validation",
        ),
        (
            "training_files: [chats]\nvalidation_files: [{dataset: held-out, part: validation}]\n",
            "unknown-reference",
            (5, 46),
            "no 'split'",
        ),
    ],
)
def test_reference_problems(
    write_tree: WriteTree,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    code: str,
    line_col: tuple[int, int],
    fragment: str,
) -> None:
    problems = problems_of(write_tree, body, monkeypatch)
    assert [(p.code, str(p.location)) for p in problems] == [
        (code, f"j.yaml:{line_col[0]}:{line_col[1]}")
    ]
    assert problems[0].subject == "FineTuningJob/job"
    assert fragment in f"{problems[0].message} {problems[0].hint}"


def test_split_dataset_used_for_train_and_validation_is_fine(write_tree: WriteTree) -> None:
    job = load_job(write_tree, "training_files: [split-chats]\nvalidation_files: [split-chats]\n")[
        "job"
    ]
    assert [t.part for t in job.training_files] == ["train"]
    assert [v.part for v in job.validation_files] == ["validation"]


def test_unknown_profile_in_extends_chain(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"p.yaml": "kind: Hyperparameters\nname: a\nextends: basee\n"})
    monkeypatch.chdir(root)
    _, problems = check_specs(["p.yaml"])
    assert [(p.code, str(p.location), p.hint) for p in problems] == [
        ("unknown-reference", "p.yaml:3:10", "known: a")
    ]


def test_extends_cycles_are_named_once_each(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(
        {
            "p.yaml": "kind: Hyperparameters\nname: c\nextends: a\n---\n"
            "kind: Hyperparameters\nname: a\nextends: b\n---\n"
            "kind: Hyperparameters\nname: b\nextends: c\n---\n"
            "kind: Hyperparameters\nname: self\nextends: self\n---\n"
            "kind: Hyperparameters\nname: tail\nextends: a\n---\n"
            + JOB_HEAD.replace("name: job", "name: uses-cycle")
            + "training_files: [x]\nhyperparameters: tail\n---\n"
            "kind: Dataset\nname: x\npath: x\n"
        }
    )
    monkeypatch.chdir(root)
    _, problems = check_specs(["p.yaml"])
    assert [(p.code, p.message, str(p.location)) for p in problems] == [
        ("reference-cycle", "Hyperparameters extends cycle: a → b → c → a", "p.yaml:7:10"),
        ("reference-cycle", "Hyperparameters extends cycle: self → self", "p.yaml:15:10"),
    ]


# --------------------------------------------------------------------------- matrix


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-4, "1e-4"),
        (0.0001, "1e-4"),
        (2.5e-5, "2.5e-5"),
        (1.25e-3, "1.25e-3"),
        (0.009, "9e-3"),
        (0.01, "0.01"),
        (0.1, "0.1"),
        (1.0, "1.0"),
        (0.0, "0.0"),
        (-3e-4, "-3e-4"),
        (100, "100"),
        (True, "true"),
        ("open-mistral-7b", "open-mistral-7b"),
    ],
)
def test_format_matrix_value(value: object, text: str) -> None:
    assert format_matrix_value(value) == text


@pytest.mark.parametrize(
    ("cell", "name"),
    [
        ({"learning_rate": 1e-4, "training_steps": 10}, "sweep-lr-1e-4-steps-10"),
        ({"training_steps": 10, "learning_rate": 1e-4}, "sweep-steps-10-lr-1e-4"),
        ({"learning_rate": 2.5e-5}, "sweep-lr-2p5e-5"),
        ({"weight_decay": 0.1, "warmup_fraction": 0.05}, "sweep-wd-0p1-warmup-0p05"),
        ({"epochs": 1.5, "seq_len": 8192, "fim_ratio": 0.9}, "sweep-epochs-1p5-seq-8192-fim-0p9"),
        ({"model": "Open_Mistral 7B"}, "sweep-model-open-mistral-7b"),
        ({"model": "ministral--8b//latest"}, "sweep-model-ministral-8b-latest"),
    ],
)
def test_derive_job_name(cell: dict[str, object], name: str) -> None:
    assert derive_job_name("sweep", cell) == name


def test_long_derived_names_are_cut_with_a_hash() -> None:
    base = "a-very-long-job-name-that-goes-on-and-on-and-on"
    cell = {"learning_rate": 1e-4, "training_steps": 12345, "model": "open-mistral-nemo"}
    full = f"{base}-lr-1e-4-steps-12345-model-open-mistral-nemo"
    name = derive_job_name(base, cell)
    assert len(name) == 63
    assert name == full[:54] + "-" + hashlib.sha256(full.encode()).hexdigest()[:8]
    other = derive_job_name(base, {**cell, "model": "open-mistral-nemo-2"})
    assert other != name and other[:54] == name[:54]


def test_expand_matrix_order_is_as_written() -> None:
    cells = expand_matrix({"training_steps": [10, 20], "learning_rate": [1e-4, 1e-5, 1e-6]})
    assert cells[:3] == [
        {"training_steps": 10, "learning_rate": 1e-4},
        {"training_steps": 10, "learning_rate": 1e-5},
        {"training_steps": 10, "learning_rate": 1e-6},
    ]
    assert len(cells) == 6
    assert expand_matrix(None) == [{}]


def test_matrix_expands_into_jobs_with_values(write_tree: WriteTree) -> None:
    body = (
        "training_files: [chats]\nhyperparameters: base\n"
        "matrix:\n  learning_rate: [1e-4, 1E-5]\n  training_steps: [10, 20]\n"
    )
    jobs = load_job(write_tree, body)
    assert list(jobs) == [
        "job-lr-1e-4-steps-10",
        "job-lr-1e-4-steps-20",
        "job-lr-1e-5-steps-10",
        "job-lr-1e-5-steps-20",
    ]
    cell = jobs["job-lr-1e-5-steps-20"]
    assert cell.source == "job"
    assert cell.matrix_values == {"learning_rate": 1e-5, "training_steps": 20}
    assert cell.hyperparameters == {
        "training_steps": 20,
        "learning_rate": 1e-5,
        "weight_decay": 0.1,
    }


def test_matrix_over_models(write_tree: WriteTree) -> None:
    jobs = load_job(
        write_tree,
        "training_files: [chats]\nmatrix:\n  model: [open-mistral-7b, mistral-small-latest]\n",
    )
    assert {n: j.model for n, j in jobs.items()} == {
        "job-model-open-mistral-7b": "open-mistral-7b",
        "job-model-mistral-small-latest": "mistral-small-latest",
    }


@pytest.mark.parametrize(
    ("matrix", "code", "line_col", "fragment"),
    [
        ("  learning_rate: [1e-4, 2]\n", "out-of-range", (6, 25), "less than or equal to 1"),
        ("  training_steps: [10, 0]\n", "out-of-range", (6, 24), "greater than or equal to 1"),
        ("  training_steps: [10, 1.5]\n", "wrong-type", (6, 24), "integer"),
        ("  seq_len: [fast]\n", "wrong-type", (6, 13), "integer"),
        ("  model: [7]\n", "wrong-type", (6, 11), "model name"),
    ],
)
def test_matrix_values_are_range_checked_at_their_entry(
    write_tree: WriteTree,
    monkeypatch: pytest.MonkeyPatch,
    matrix: str,
    code: str,
    line_col: tuple[int, int],
    fragment: str,
) -> None:
    problems = problems_of(write_tree, "training_files: [chats]\nmatrix:\n" + matrix, monkeypatch)
    assert [(p.code, str(p.location)) for p in problems] == [
        (code, f"j.yaml:{line_col[0]}:{line_col[1]}")
    ]
    assert fragment in problems[0].message


def test_derived_name_colliding_with_another_job(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(
        {
            "d.yaml": DATASETS,
            "j.yaml": JOB_HEAD + "training_files: [chats]\nmatrix:\n  training_steps: [10, 20]\n"
            "---\nkind: FineTuningJob\nname: job-steps-20\nmodel: m\ntraining_files: [chats]\n",
        }
    )
    monkeypatch.chdir(root)
    _, problems = check_specs(["."])
    assert [(p.code, p.subject) for p in problems] == [
        ("duplicate-name", "FineTuningJob/job-steps-20")
    ]
    assert "job-steps-20" in problems[0].message
    assert problems[0].location == Location("j.yaml", 9, 7)


# --------------------------------------------------------------------------- Import / Moved

ADOPT_JOBS = """\
kind: FineTuningJob
name: tone
model: open-mistral-7b
training_files: [chats]
rerun: "2026-02"
---
kind: FineTuningJob
name: sweep
model: open-mistral-7b
training_files: [chats]
suffix: sweep
matrix: {learning_rate: [1e-4, 2e-4]}
"""


def adoption(write_tree: WriteTree, docs: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    root = write_tree({"d.yaml": DATASETS, "j.yaml": ADOPT_JOBS, "a.yaml": docs})
    monkeypatch.chdir(root)
    return check_specs(["."])


def test_import_and_moved_documents_are_checked_and_kept(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs, problems = adoption(
        write_tree,
        "kind: Moved\nname: rename\nfrom: job.tone-v1\nto: job.tone\n---\n"
        "kind: Import\nname: adopt\nto: job.sweep-lr-2e-4\nid: abc\n---\n"
        "kind: Import\nname: adopt-file\nto: dataset.split-chats[train]\nid: f-1\n",
        monkeypatch,
    )
    assert problems == [] and specs is not None
    assert [(m.source, m.address, m.location.line) for m in specs.moves] == [
        ("job.tone-v1", "job.tone", 1)
    ]
    assert [(i.address, i.remote_id) for i in specs.imports] == [
        ("job.sweep-lr-2e-4", "abc"),
        ("dataset.split-chats[train]", "f-1"),
    ]
    assert specs.jobs["tone"].rerun == "2026-02"


@pytest.mark.parametrize(
    ("docs", "code", "line_col", "fragment"),
    [
        (
            "kind: Moved\nname: m\nfrom: job.old\nto: job.tnoe\n",
            "unknown-reference",
            (4, 5),
            "did you mean 'job.tone'?",
        ),
        (
            "kind: Moved\nname: m\nfrom: job.sweep-lr-1e-4\nto: job.tone\n",
            "invalid-value",
            (3, 7),
            "'from' names job.sweep-lr-1e-4, which the specs still declare",
        ),
        (
            "kind: Moved\nname: m\nfrom: dataset.chats[all]\nto: job.tone\n",
            "invalid-value",
            (4, 5),
            "a move keeps the type",
        ),
        (
            "kind: Moved\nname: m\nfrom: jobold\nto: job.tone\n",
            "invalid-value",
            (3, 7),
            "not an address: expected job.NAME or dataset.NAME[PART]",
        ),
        (
            "kind: Import\nname: i\nto: dataset.chats[train]\nid: x\n",
            "unknown-reference",
            (3, 5),
            "which the specs do not declare",
        ),
        (
            "kind: Import\nname: i\nto: job.tone\nid: x\n---\n"
            "kind: Moved\nname: m\nfrom: job.old\nto: job.tone\n",
            "conflicting-adoption",
            (9, 5),
            "job.tone is also the 'to' of Import/i at",
        ),
        (
            "kind: Import\nname: i\nto: job.tone\nid: x\n---\n"
            "kind: Import\nname: j\nto: job.sweep-lr-1e-4\nid: x\n",
            "conflicting-adoption",
            (9, 5),
            "remote object x is also imported by Import/i",
        ),
        (
            "kind: Moved\nname: m\nfrom: job.a\nto: job.tone\n---\n"
            "kind: Moved\nname: n\nfrom: job.a\nto: job.sweep-lr-1e-4\n",
            "conflicting-adoption",
            (8, 7),
            "job.a is also the 'from' of Moved/m",
        ),
        ("kind: Import\nname: i\nto: job.tone\n", "missing-field", (1, 1), "'id'"),
    ],
    ids=[
        "unknown to",
        "from still declared",
        "other type",
        "not an address",
        "no such part",
        "two documents into one address",
        "one remote object twice",
        "one from twice",
        "no id",
    ],
)
def test_bad_import_and_moved_documents_are_located(
    write_tree: WriteTree,
    monkeypatch: pytest.MonkeyPatch,
    docs: str,
    code: str,
    line_col: tuple[int, int],
    fragment: str,
) -> None:
    specs, problems = adoption(write_tree, docs, monkeypatch)
    assert specs is None
    assert [p.code for p in problems] == [code]
    problem = problems[0]
    assert problem.location == Location("a.yaml", *line_col)
    assert fragment in problem.message + (problem.hint or "")
