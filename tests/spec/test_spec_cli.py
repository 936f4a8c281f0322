"""``reconciler validate`` and ``reconciler schema`` end to end: exit codes, formats, corpus.

The corpus (tests/spec/corpus/<case>/) holds one bad input per case with ``expected.json``
(code and file:line:column). Cases that git cannot store (symlink loops, empty directories,
missing paths) are built in tmp_path.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from spec_helpers import VALID_CHAT_LINE, WriteTree

from reconciler.spec.schema import SCHEMA_FILENAME, schema_text, spec_reference_markdown
from tests.cli_inprocess import run_cli

CORPUS = Path(__file__).resolve().parent / "corpus"
Cli = Callable[..., Result]


def test_example_set_is_valid_and_shows_expansion(
    cli: Cli, write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spec_helpers import EXAMPLE_SPECS

    sweep = (
        "---\nkind: FineTuningJob\nname: sweep\nmodel: open-mistral-7b\n"
        "training_files: [dumbledore-train]\nhyperparameters: {extends: short}\n"
        "matrix:\n  learning_rate: [1e-4, 2e-4]\n  training_steps: [10, 20]\n"
    )
    root = write_tree(
        {"specs/all.yaml": EXAMPLE_SPECS + sweep, "specs/data/train.jsonl": VALID_CHAT_LINE * 12}
    )
    monkeypatch.chdir(root)
    result = cli("validate", "specs")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "Provider: embedded sandbox (no Provider document)"
    assert (
        "FineTuningJob/sweep → 4 jobs: sweep-lr-1e-4-steps-10, sweep-lr-1e-4-steps-20, "
        "sweep-lr-2e-4-steps-10, sweep-lr-2e-4-steps-20" in lines
    )
    assert "FineTuningJob/dumbledore-v1 → job.dumbledore-v1" in lines
    assert "Dataset/dumbledore-train: data/train.jsonl → part(s) all" in lines
    assert any(line.startswith("Dataset ") and "12 samples" in line for line in lines)
    assert lines[-1] == "Valid."


def test_import_and_moved_documents_are_listed_by_validate(
    cli: Cli, write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spec_helpers import EXAMPLE_SPECS

    adoption = (
        "---\nkind: Moved\nname: rename\nfrom: job.dumbledore-v0\nto: job.dumbledore-v1\n"
        "---\nkind: Import\nname: adopt\nto: dataset.dumbledore-train[all]\nid: file-1\n"
    )
    root = write_tree(
        {
            "specs/all.yaml": EXAMPLE_SPECS + adoption,
            "specs/data/train.jsonl": VALID_CHAT_LINE * 12,
        }
    )
    monkeypatch.chdir(root)
    result = cli("validate", "specs")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Moved/rename: job.dumbledore-v0 → job.dumbledore-v1" in lines
    assert "Import/adopt: file-1 → dataset.dumbledore-train[all]" in lines
    documents = json.loads(cli("validate", "specs", "--format", "json").stdout)["documents"]
    assert [d["kind"] for d in documents][-2:] == ["Moved", "Import"]


def test_default_path_is_the_current_directory(
    cli: Cli, example_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(example_dir)
    result = cli("validate")
    assert result.exit_code == 0, result.output
    assert "Loaded 4 document(s) from 1 file(s)" in result.stdout


def test_json_format(cli: Cli, example_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(example_dir)
    result = cli("validate", "specs.yaml", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["format_version"] == 1 and data["valid"] is True
    assert data["error_count"] == 0
    assert data["provider"] is None
    assert [(d["kind"], d["name"], d["line"]) for d in data["documents"]] == [
        ("Dataset", "dumbledore-train", 1),
        ("Hyperparameters", "short", 5),
        ("WandbIntegration", "team", 10),
        ("FineTuningJob", "dumbledore-v1", 15),
    ]
    (job,) = data["jobs"]
    assert job["name"] == "dumbledore-v1" and job["source"] == "dumbledore-v1"
    assert job["matrix_values"] == {}
    assert job["hyperparameters"] == {"training_steps": 10, "learning_rate": 0.0001}
    assert job["training_files"] == [{"dataset": "dumbledore-train", "part": "all", "weight": 1.0}]
    assert data["datasets_checked"] is True
    assert [d["path"] for d in data["datasets"]] == ["data/train.jsonl"]


def test_json_format_lists_problems_as_data(
    cli: Cli, write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree(
        {
            "a.yaml": "kind: Dataset\nname: d\npaht: x\n---\nkind: Hyperparameters\nname: p\n"
            "learning_rate: 9\n"
        }
    )
    monkeypatch.chdir(root)
    result = cli("validate", "a.yaml", "--format", "json")
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["valid"] is False and data["error_count"] == 2
    assert [
        (p["code"], p["file"], p["line"], p["column"], p["subject"]) for p in data["problems"]
    ] == [
        ("unknown-field", "a.yaml", 3, 1, "Dataset/d"),
        ("out-of-range", "a.yaml", 7, 16, "Hyperparameters/p"),
    ]
    assert data["problems"][0]["hint"] == "did you mean 'path'?"
    assert data["jobs"] == [] and data["datasets"] == []


def test_github_format(cli: Cli, write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_tree({"a.yaml": "kind: Dataset\nname: d\npaht: x\n"})
    monkeypatch.chdir(root)
    result = cli("validate", "a.yaml", "--format", "github")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "::error file=a.yaml,line=3,col=1,title=unknown-field::Dataset/d: unknown field 'paht'"
        "%0Ahint: did you mean 'path'?",
        "Invalid: 1 error(s).",
    ]


def test_bad_dataset_line_is_reported(
    cli: Cli, example_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with (example_dir / "data" / "train.jsonl").open("a") as handle:
        handle.write('{"messages": [{"role": "user", "content": "hi"}\n')
    monkeypatch.chdir(example_dir)
    result = cli("validate", "specs.yaml")
    assert result.exit_code == 1
    assert "data/train.jsonl:2" in result.stdout
    assert "Traceback" not in result.output
    as_json = json.loads(cli("validate", "specs.yaml", "--format", "json").stdout)
    bad = [p for p in as_json["problems"] if p["severity"] == "error"]
    assert bad and bad[0]["file"] == "data/train.jsonl" and bad[0]["line"] == 2


def test_data_option_checks_files_without_specs(
    cli: Cli, write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"good.jsonl": VALID_CHAT_LINE * 10, "bad.jsonl": "not json\n"})
    monkeypatch.chdir(root)
    good = cli("validate", "--data", "good.jsonl")
    assert good.exit_code == 0, good.output
    assert "Provider:" not in good.stdout
    bad = cli("validate", "--data", "good.jsonl", "--data", "bad.jsonl", "-f", "json")
    assert bad.exit_code == 1
    problems = json.loads(bad.stdout)["problems"]
    assert any(p["file"] == "bad.jsonl" and p["line"] == 1 for p in problems)


def test_dataset_checks_wait_for_valid_specs(
    cli: Cli, write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"a.yaml": "kind: Dataset\nname: d\npath: missing.jsonl\nextra: 1\n"})
    monkeypatch.chdir(root)
    result = cli("validate", "a.yaml")
    assert result.exit_code == 1
    assert "Dataset contents not checked: fix the spec errors first." in result.stdout
    assert "missing.jsonl" not in result.stdout


def _corpus_cases() -> list[str]:
    return sorted(p.name for p in CORPUS.iterdir() if (p / "expected.json").is_file())


def _build(case: str, tmp_path: Path) -> tuple[list[str], str, str]:
    """Lay out one case in tmp_path; returns (validate args, expected code, location)."""
    if case in _corpus_cases():
        shutil.copytree(CORPUS / case, tmp_path / case)
        expected = json.loads((CORPUS / case / "expected.json").read_text())
        return ["specs"], expected["code"], expected["location"]
    specs = tmp_path / case / "specs"
    if case == "path-does-not-exist":
        (tmp_path / case).mkdir()
        return ["specs/nope.yaml"], "path-not-found", "specs/nope.yaml"
    if case == "empty-directory":
        specs.mkdir(parents=True)
        return ["specs"], "no-specs", "specs"
    if case == "symlink-loop":
        specs.mkdir(parents=True)
        (specs / "a.yaml").write_text("kind: Dataset\nname: d\npath: d.jsonl\n")
        # A link to a directory is never followed (a warning, tests/spec/test_spec_discovery.py);
        # a spec file that links to itself cannot be read: an error.
        os.symlink("loop.yaml", specs / "loop.yaml")
        return ["specs"], "symlink-loop", "specs/loop.yaml"
    raise AssertionError(case)


GENERATED = ["empty-directory", "path-does-not-exist", "symlink-loop"]


def test_corpus_covers_every_bad_input_of_the_issue() -> None:
    cases = set(_corpus_cases()) | set(GENERATED)
    assert cases >= {
        "malformed-yaml",
        "non-mapping-document",
        "missing-kind",
        "missing-name",
        "unknown-kind",
        "unknown-field",
        "wrong-type",
        "out-of-range",
        "duplicate-names",
        "unknown-reference",
        "reference-cycle",
        "literal-secret",
        "path-does-not-exist",
        "symlink-loop",
        "empty-directory",
        "binary-garbage",
        "duplicate-key",
    }


@pytest.mark.parametrize("case", _corpus_cases() + GENERATED)
def test_corpus_case(cli: Cli, case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    args, code, location = _build(case, tmp_path)
    monkeypatch.chdir(tmp_path / case)
    result = cli("validate", *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert f"{location}: error: " in result.stdout
    assert f"[{code}]" in result.stdout
    first = result.stdout.splitlines()[0]
    assert first.startswith(f"{location}: error: ") and first.endswith(f"[{code}]"), first
    data = json.loads(cli("validate", *args, "--format", "json").stdout)
    found = [p for p in data["problems"] if p["code"] == code]
    assert found, data["problems"]
    loc = found[0]["file"]
    if found[0]["line"]:
        loc += f":{found[0]['line']}:{found[0]['column']}"
    assert loc == location


def test_literal_secret_is_not_echoed(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(CORPUS / "literal-secret", tmp_path / "c")
    monkeypatch.chdir(tmp_path / "c")
    secret = "0123456789abcdef0123456789abcdef01234567"
    for fmt in ("text", "json", "github"):
        result = cli("validate", "specs", "--format", fmt)
        assert result.exit_code == 1
        assert secret not in result.output


def test_schema_command(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    printed = cli("schema")
    assert printed.exit_code == 0 and printed.stdout == schema_text()
    missing = cli("schema", "--check")
    assert missing.exit_code == 1 and "does not exist" in missing.output
    wrote = cli("schema", "--write")
    assert wrote.exit_code == 0
    assert (tmp_path / "schemas" / SCHEMA_FILENAME).read_text() == schema_text()
    assert cli("schema", "--check").exit_code == 0
    other = cli("schema", "out", "--write")
    assert other.exit_code == 0 and (tmp_path / "out" / SCHEMA_FILENAME).exists()
    (tmp_path / "schemas" / SCHEMA_FILENAME).write_text("{}\n")
    drift = cli("schema", "--check")
    assert drift.exit_code == 1 and "differs" in drift.output
    markdown = cli("schema", "--markdown")
    assert markdown.exit_code == 0 and markdown.stdout == spec_reference_markdown()


def test_committed_schema_passes_check(cli: Cli, repo_root: Path) -> None:
    assert cli("schema", str(repo_root / "schemas"), "--check").exit_code == 0


def test_console_entry_point_runs_validate(example_dir: Path, repo_root: Path) -> None:
    # The one run through the interpreter: `python -m reconciler` reaches the command.
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    ok = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "specs.yaml"],
        cwd=example_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "FineTuningJob/dumbledore-v1 → job.dumbledore-v1" in ok.stdout
    # Bad input through the same entry point, in this process: a clean error, exit 1.
    (example_dir / "bad.yaml").write_bytes(b"kind: Dataset\n\x00\x01garbage")
    bad = run_cli(["validate", "."], cwd=example_dir, env=env)
    assert bad.returncode == 1
    assert "bad.yaml:2:1: error: file contains NUL bytes" in bad.stdout
    assert "Traceback" not in bad.stdout + bad.stderr
