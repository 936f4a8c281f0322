"""The loader: finding files, validating documents, and every problem with its location."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from spec_helpers import EXAMPLE_SPECS, WriteTree

from reconciler.errors import Location, Problem, SpecError
from reconciler.spec.loader import check_specs, load_specs
from reconciler.spec.models import Dataset

DS = "kind: Dataset\nname: train\npath: data/train.jsonl\n"


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [p.render() for p in problems]
    return problems[0]


def test_example_document_set_loads(example_dir: Path) -> None:
    specs = load_specs([example_dir / "specs.yaml"])
    assert sorted(specs.datasets) == ["dumbledore-train"]
    assert specs.profiles["short"].doc.learning_rate == 1e-4
    job = specs.jobs["dumbledore-v1"]
    assert job.hyperparameters == {"training_steps": 10, "learning_rate": 1e-4}
    assert [i.name for i in job.integrations] == ["team"]
    assert job.training_files[0].part == "all" and job.training_files[0].weight == 1.0
    assert specs.root == example_dir.resolve()
    assert specs.files == (example_dir / "specs.yaml",)
    loaded = specs.datasets["dumbledore-train"]
    assert loaded.base_dir == example_dir.resolve()
    assert loaded.resolve_path("data/train.jsonl") == (example_dir / "data/train.jsonl").resolve()
    assert loaded.location == Location(str(example_dir / "specs.yaml"), 1, 1)
    assert specs.job_documents["dumbledore-v1"].locate("suffix").line == 23


# (case, files, expected [(code, "file:line:col", subject, fragment of message or hint)])
ERROR_CASES = [
    (
        "unknown field with did-you-mean",
        {"a.yaml": "kind: Dataset\nname: train\npaht: x.jsonl\n"},
        [("unknown-field", "a.yaml:3:1", "Dataset/train", "did you mean 'path'?")],
    ),
    (
        "unknown nested field names its parent",
        {
            "a.yaml": DS + "---\nkind: FineTuningJob\nname: j\nmodel: m\ntraining_files:\n"
            "  - {dataset: train, wieght: 2}\n"
        },
        [("unknown-field", "a.yaml:9:22", "FineTuningJob/j", "did you mean 'weight'?")],
    ),
    (
        "unknown field inside inline hyperparameters",
        {
            "a.yaml": DS + "---\nkind: FineTuningJob\nname: j\nmodel: m\ntraining_files: [train]\n"
            "hyperparameters:\n  learning_rte: 1e-4\n"
        },
        [("unknown-field", "a.yaml:10:3", "FineTuningJob/j", "did you mean 'learning_rate'?")],
    ),
    (
        "wrong type",
        {"a.yaml": "kind: Hyperparameters\nname: p\ntraining_steps: [1]\n"},
        [("wrong-type", "a.yaml:3:17", "Hyperparameters/p", "training_steps")],
    ),
    (
        "wrong type in a union names both shapes",
        {"a.yaml": DS + "---\nkind: FineTuningJob\nname: j\nmodel: m\ntraining_files: [7]\n"},
        [("wrong-type", "a.yaml:8:18", "FineTuningJob/j", "a mapping or a string")],
    ),
    (
        "out of range",
        {"a.yaml": "kind: Hyperparameters\nname: p\nweight_decay: -0.5\n"},
        [("out-of-range", "a.yaml:3:15", "Hyperparameters/p", "greater than or equal to 0")],
    ),
    (
        "infinite and NaN numbers",
        {"a.yaml": "kind: Hyperparameters\nname: p\nepochs: .inf\nlearning_rate: .nan\n"},
        [
            ("out-of-range", "a.yaml:3:9", "Hyperparameters/p", "finite number"),
            ("out-of-range", "a.yaml:4:16", "Hyperparameters/p", "finite number"),
        ],
    ),
    (
        "unquoted date where a string belongs",
        {"a.yaml": "kind: Dataset\nname: 5\npath: 2024-01-01\n"},
        [
            ("wrong-type", "a.yaml:2:7", "Dataset/5", "valid string"),
            ("wrong-type", "a.yaml:3:7", "Dataset/5", "quote it"),
        ],
    ),
    (
        "suffix longer than 18",
        {
            "a.yaml": DS + "---\nkind: FineTuningJob\nname: j\nmodel: m\ntraining_files: [train]\n"
            "suffix: abcdefghijklmnopqrstuvwxyz\n"
        },
        [("out-of-range", "a.yaml:9:9", "FineTuningJob/j", "18")],
    ),
    (
        "skip percentage over 0.5",
        {
            "a.yaml": DS + "---\nkind: FineTuningJob\nname: j\nmodel: m\ntraining_files: [train]\n"
            "invalid_sample_skip_percentage: 0.9\n"
        },
        [("out-of-range", "a.yaml:9:33", "FineTuningJob/j", "0.5")],
    ),
    (
        "invalid literal value",
        {"a.yaml": DS + "on_invalid: ignore\n"},
        [("invalid-value", "a.yaml:4:13", "Dataset/train", "'error' or 'skip'")],
    ),
    (
        "bad name",
        {"a.yaml": "kind: Dataset\nname: Train_1\npath: x\n"},
        [("invalid-value", "a.yaml:2:7", "Dataset/Train_1", "lower-case")],
    ),
    (
        "model-level rule points at the document",
        {"a.yaml": "kind: Dataset\nname: d\n"},
        [("invalid-value", "a.yaml:1:1", "Dataset/d", "exactly one of 'path' or 'paths'")],
    ),
    (
        "classifier job without targets",
        {
            "a.yaml": DS + "---\nkind: FineTuningJob\nname: j\nmodel: m\njob_type: classifier\n"
            "training_files: [train]\n"
        },
        [("invalid-value", "a.yaml:5:1", "FineTuningJob/j", "classifier_targets")],
    ),
    (
        "missing required field",
        {"a.yaml": "kind: WandbIntegration\nname: w\napi_key: {env: K}\n"},
        [("missing-field", "a.yaml:1:1", "WandbIntegration/w", "'project'")],
    ),
    (
        "missing nested field points at its parent",
        {"a.yaml": DS + "split: {seed: 3}\n"},
        [("missing-field", "a.yaml:4:1", "Dataset/train", "'validation_fraction' in 'split'")],
    ),
    (
        "missing kind",
        {"a.yaml": "name: x\n"},
        [("missing-field", "a.yaml:1:1", "?/x", "no 'kind'")],
    ),
    (
        "unknown kind",
        {"a.yaml": "kind: finetuningjob\nname: x\n"},
        [("unknown-kind", "a.yaml:1:7", "finetuningjob/x", "did you mean 'FineTuningJob'?")],
    ),
    (
        "kind of the wrong type",
        {"a.yaml": "kind: [Dataset]\nname: x\n"},
        [("unknown-kind", "a.yaml:1:7", "?/x", "kinds are")],
    ),
    (
        "unknown apiVersion",
        {"a.yaml": "apiVersion: v1\n" + DS},
        [("unknown-api-version", "a.yaml:1:13", "Dataset/train", "reconciler/v1")],
    ),
    (
        "non-mapping document",
        {"a.yaml": "just a string\n"},
        [("not-a-mapping", "a.yaml:1:1", None, "not a string")],
    ),
    (
        "literal W&B key",
        {"a.yaml": "kind: WandbIntegration\nname: w\nproject: p\napi_key: s3cr3t-value\n"},
        [("literal-secret", "a.yaml:4:10", "WandbIntegration/w", "{env: NAME}")],
    ),
    (
        "literal provider key and dsn",
        {
            "a.yaml": "kind: Provider\nname: p\ntype: mistral\napi_key: s3cr3t-value\n"
            "state:\n  backend: postgres\n  dsn: postgresql://u:s3cr3t-value@h/db\n"
        },
        [
            ("literal-secret", "a.yaml:4:10", "Provider/p", "'api_key'"),
            ("literal-secret", "a.yaml:7:8", "Provider/p", "'state.dsn'"),
        ],
    ),
    (
        "secret reference with both env and file",
        {"a.yaml": "kind: WandbIntegration\nname: w\nproject: p\napi_key: {env: A, file: b}\n"},
        [("invalid-value", "a.yaml:4:10", "WandbIntegration/w", "exactly one of 'env' or 'file'")],
    ),
    (
        "duplicate key",
        {"a.yaml": DS + "path: other.jsonl\n"},
        [("duplicate-key", "a.yaml:4:1", None, "'path'")],
    ),
    (
        "matrix key that is not a hyperparameter",
        {
            "a.yaml": DS + "---\nkind: FineTuningJob\nname: j\nmodel: m\ntraining_files: [train]\n"
            "matrix:\n  dropout: [1, 2]\n"
        },
        [("invalid-value", "a.yaml:10:3", "FineTuningJob/j", "dropout")],
    ),
]


@pytest.mark.parametrize(
    ("case", "files", "expected"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES]
)
def test_each_error_has_code_location_subject_and_hint(
    case: str,
    files: dict[str, str],
    expected: list[tuple[str, str, str | None, str]],
    write_tree: WriteTree,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = write_tree(files)
    monkeypatch.chdir(root)
    specs, problems = check_specs(["a.yaml"])
    assert specs is None
    got = [(p.code, str(p.location), p.subject) for p in problems]
    assert got == [(code, loc, subject) for code, loc, subject, _ in expected], case
    for problem, (_, _, _, fragment) in zip(problems, expected, strict=True):
        assert fragment in f"{problem.message} {problem.hint}"
        assert problem.severity == "error"


def test_literal_secret_value_never_appears_in_any_message(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-THE-ACTUAL-SECRET-1234567890"
    root = write_tree(
        {
            "a.yaml": f"kind: WandbIntegration\nname: w\nproject: p\napi_key: {secret}\n---\n"
            f"kind: Provider\nname: p\ntype: mistral\napi_key: [{secret}]\n"
            f"state: {{backend: postgres, dsn: {{env: {secret}}}}}\n"
        }
    )
    monkeypatch.chdir(root)
    with pytest.raises(SpecError) as info:
        load_specs(["a.yaml"])
    text = str(info.value) + repr([p.to_dict() for p in info.value.problems])
    assert secret not in text
    assert {p.code for p in info.value.problems} >= {"literal-secret"}


def test_all_problems_of_all_files_are_reported_in_one_run(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(
        {
            "specs/a.yaml": "kind: Dataset\nname: a\npaht: x\n---\nkind: Nope\nname: b\n",
            "specs/b.yaml": "kind: Hyperparameters\nname: p\nlearning_rate: 7\n",
            "specs/sub/c.yml": "a: [\n",
            "specs/notes.txt": "not a spec",
        }
    )
    monkeypatch.chdir(root)
    with pytest.raises(SpecError) as info:
        load_specs(["specs"])
    got = [(p.code, str(p.location)) for p in info.value.problems]
    assert got == [
        ("unknown-field", "specs/a.yaml:3:1"),
        ("unknown-kind", "specs/a.yaml:5:7"),
        ("out-of-range", "specs/b.yaml:3:16"),
        ("yaml-syntax", "specs/sub/c.yml:2:1"),
    ]
    assert "3 file(s)" in str(info.value).splitlines()[0]


def test_directories_load_recursively_in_sorted_order_skipping_hidden(
    write_tree: WriteTree,
) -> None:
    root = write_tree(
        {
            "b.yaml": "kind: Dataset\nname: b\npath: b.jsonl\n",
            "a/z.yml": "kind: Dataset\nname: z\npath: z.jsonl\n",
            "a/y.yaml": "kind: Dataset\nname: y\npath: ../y.jsonl\n",
            ".reconciler/state.yaml": "garbage: [",
            ".git/x.yaml": "garbage: [",
            "a/.hidden.yaml": "garbage: [",
            "README.md": "# not a spec",
        }
    )
    specs = load_specs([root])
    assert [f.relative_to(root).as_posix() for f in specs.files] == [
        "a/y.yaml",
        "a/z.yml",
        "b.yaml",
    ]
    assert specs.datasets["y"].resolve_path("../y.jsonl") == (root / "y.jsonl").resolve()
    assert specs.root == root.resolve()


def test_root_is_parent_of_a_first_file_and_default_path_is_cwd(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"specs/one.yaml": DS})
    assert load_specs([root / "specs" / "one.yaml"]).root == (root / "specs").resolve()
    monkeypatch.chdir(root / "specs")
    specs = load_specs([])
    assert list(specs.datasets) == ["train"]
    assert specs.root == (root / "specs").resolve()


def test_digest_is_stable_across_file_order_and_changes_with_content(
    write_tree: WriteTree,
) -> None:
    root = write_tree(
        {
            "x/1.yaml": "kind: Dataset\nname: a\npath: a.jsonl\n",
            "x/2.yaml": "kind: Dataset\nname: b\npath: b.jsonl\n",
            "y/1.yaml": "kind: Dataset\nname: b\npath: b.jsonl\n",
            "y/2.yaml": "kind: Dataset\n# reordered keys and a comment\npath: a.jsonl\nname: a\n",
            "z/1.yaml": "kind: Dataset\nname: a\npath: a2.jsonl\n---\n"
            "kind: Dataset\nname: b\npath: b.jsonl\n",
        }
    )
    x = load_specs([root / "x"]).digest
    assert x == load_specs([root / "y"]).digest
    assert x != load_specs([root / "z"]).digest
    assert len(x) == 64


def test_duplicate_names_per_kind_with_both_locations(write_tree: WriteTree) -> None:
    root = write_tree(
        {
            "a.yaml": DS + "---\nkind: Hyperparameters\nname: train\n",
            "b.yaml": "\n" + DS,
        }
    )
    _, problems = check_specs([root])
    problem = only(problems)
    assert problem.code == "duplicate-name"
    assert problem.location == Location(str(root / "b.yaml"), 3, 7)
    assert f"{root / 'a.yaml'}:1:1" in problem.message


def test_only_one_provider(write_tree: WriteTree) -> None:
    root = write_tree(
        {
            "a.yaml": "kind: Provider\nname: p\ntype: sandbox\n---\nkind: Provider\nname: q\n"
            "type: mistral\n"
        }
    )
    problem = only(check_specs([root])[1])
    assert problem.code == "duplicate-provider"
    assert problem.location is not None and problem.location.line == 5


def test_provider_is_loaded(write_tree: WriteTree) -> None:
    root = write_tree(
        {"a.yaml": "kind: Provider\nname: p\ntype: mistral\napi_key: {env: MISTRAL_API_KEY}\n"}
    )
    specs = load_specs([root])
    assert specs.provider is not None
    assert specs.provider.doc.api_key is not None
    assert specs.provider.doc.api_key.env == "MISTRAL_API_KEY"


def test_provider_prices_and_run_budget(write_tree: WriteTree) -> None:
    root = write_tree(
        {
            "a.yaml": "kind: Provider\nname: p\ntype: mistral\nbudget: {max_cost: 250}\n"
            "prices:\n  mistral-small-latest: {train_per_million_tokens: 3}\n"
            "  open-mistral-7b: {train_per_million_tokens: 1.5, storage_per_month: 1, "
            "minimum_fee: 0}\n"
        }
    )
    provider = load_specs([root]).provider
    assert provider is not None and provider.doc.budget is not None
    assert provider.doc.budget.max_cost == 250
    small, seven = (
        provider.doc.prices["mistral-small-latest"],
        provider.doc.prices["open-mistral-7b"],
    )
    assert (small.train_per_million_tokens, small.storage_per_month) == (3, None)
    assert (seven.storage_per_month, seven.minimum_fee) == (1, 0)


def test_provider_prices_with_a_typo_or_a_negative_price_are_errors(write_tree: WriteTree) -> None:
    root = write_tree(
        {
            "a.yaml": "kind: Provider\nname: p\ntype: mistral\nprices:\n"
            "  m: {train_per_milion_tokens: 3}\n  n: {train_per_million_tokens: -1}\n"
            "budget: {max_cost: 0}\n"
        }
    )
    found = {(p.code, p.location.line if p.location else None) for p in check_specs([root])[1]}
    assert {("unknown-field", 5), ("out-of-range", 6), ("out-of-range", 7)} <= found


@pytest.mark.parametrize(
    ("setup", "arg", "code", "location"),
    [
        ("missing", "nope", "path-not-found", "nope"),
        ("missing", "nope/deeper.yaml", "path-not-found", "nope/deeper.yaml"),
        ("empty", "empty", "no-specs", "empty"),
        ("only-other-files", "docs", "no-specs", "docs"),
        ("file-loop", "specs", "symlink-loop", "specs/self.yaml"),
        ("file-loop-arg", "specs/self.yaml", "symlink-loop", "specs/self.yaml"),
        ("dangling", "specs", "path-not-found", "specs/gone.yaml"),
    ],
)
def test_path_problems(
    setup: str,
    arg: str,
    code: str,
    location: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    if setup == "empty":
        (tmp_path / "empty" / "sub").mkdir(parents=True)
    elif setup == "only-other-files":
        (tmp_path / "docs").mkdir()
        (tmp_path / "docs" / "readme.md").write_text("x")
    elif setup != "missing":
        specs = tmp_path / "specs"
        specs.mkdir()
        (specs / "ok.yaml").write_text(DS)
        if setup.startswith("file-loop"):
            os.symlink("self.yaml", specs / "self.yaml")
        elif setup == "dangling":
            os.symlink("nowhere.yaml", specs / "gone.yaml")
    specs_set, problems = check_specs([arg])
    assert specs_set is None
    assert code in [p.code for p in problems]
    found = next(p for p in problems if p.code == code)
    assert str(found.location) == location
    assert found.hint


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read files without permission")
def test_unreadable_file(write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree({"a.yaml": DS})
    (root / "a.yaml").chmod(0)
    monkeypatch.chdir(root)
    try:
        problem = only(check_specs(["a.yaml"])[1])
    finally:
        (root / "a.yaml").chmod(0o644)
    assert (problem.code, str(problem.location)) == ("unreadable-file", "a.yaml")


def test_same_file_named_twice_loads_once(write_tree: WriteTree) -> None:
    root = write_tree({"a.yaml": DS})
    specs = load_specs([root, root / "a.yaml"])
    assert list(specs.datasets) == ["train"]


def test_problem_rendering_and_json_form(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"a.yaml": "kind: Dataset\nname: train\npaht: x\n"})
    monkeypatch.chdir(root)
    problem = only(check_specs(["a.yaml"])[1])
    assert problem.render() == (
        "a.yaml:3:1: error: Dataset/train: unknown field 'paht' [unknown-field]\n"
        "    hint: did you mean 'path'?"
    )
    assert problem.to_dict() == {
        "code": "unknown-field",
        "severity": "error",
        "message": "unknown field 'paht'",
        "file": "a.yaml",
        "line": 3,
        "column": 1,
        "subject": "Dataset/train",
        "hint": "did you mean 'path'?",
    }


def test_valid_documents_keep_their_types(write_tree: WriteTree) -> None:
    root = write_tree({"a.yaml": DS + "split: {validation_fraction: 0.1, seed: 7}\n"})
    loaded = load_specs([root]).datasets["train"]
    assert isinstance(loaded.doc, Dataset)
    assert loaded.doc.parts == ("train", "validation")
    assert loaded.locate("split", "seed") == Location(str(root / "a.yaml"), 4, 41)
    assert loaded.locate("split", "nonexistent") == Location(str(root / "a.yaml"), 4, 1)


def test_example_text_is_the_issue_text() -> None:
    # Guards the fixture itself: 1.0e-4 must stay written the way the issue writes it.
    assert "learning_rate: 1.0e-4" in EXAMPLE_SPECS
