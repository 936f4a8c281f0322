"""Spec discovery on hostile trees: symlinked directories, FIFOs, devices, root markers.

Specs may come from a pull request, and Git carries symbolic links: a link to ``/`` made
``validate`` run for more than 900 s, a link to ``/usr`` loaded thousands of unrelated YAML
files, and a FIFO named ``x.yaml`` (or ``x.yaml -> /dev/stdin``) blocked forever. Discovery
never follows a symlinked directory and reads regular files only, saying what it skipped. The
tests that used to hang carry a timeout, so a regression fails instead of hanging.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import Result
from spec_helpers import WriteTree

from reconciler.errors import Problem, Severity
from reconciler.spec.loader import check_specs, load_specs

DS = "kind: Dataset\nname: own\npath: data/own.jsonl\n"
HANGS = pytest.mark.timeout(60)
"""Tests of inputs that once hung or ran for minutes: fail instead of waiting forever."""


def _warnings(problems: list[Problem]) -> dict[str, str]:
    return {str(p.location): p.code for p in problems if p.severity is Severity.WARNING}


@HANGS
@pytest.mark.parametrize("target", ["/", "/usr"])
def test_a_symlinked_directory_is_never_followed(write_tree: WriteTree, target: str) -> None:
    root = write_tree({"specs/own.yaml": DS})
    os.symlink(target, root / "specs" / "linked")
    specs, problems = check_specs([root / "specs"])
    assert specs is not None and list(specs.datasets) == ["own"]
    assert _warnings(problems) == {str(root / "specs" / "linked"): "symlink-not-followed"}
    warning = problems[0]
    assert "never followed" in warning.message and warning.hint
    assert specs.warnings == (warning,)


def test_a_symlinked_directory_inside_the_tree_is_skipped_too(write_tree: WriteTree) -> None:
    root = write_tree({"specs/own.yaml": DS, "specs/sub/other.yaml": DS.replace("own", "sub")})
    os.symlink("sub", root / "specs" / "again")
    os.symlink("..", root / "specs" / "sub" / "up")
    specs, problems = check_specs([root / "specs"])
    assert specs is not None and sorted(specs.datasets) == ["own", "sub"]
    assert set(_warnings(problems).values()) == {"symlink-not-followed"}
    assert len(_warnings(problems)) == 2


@HANGS
def test_a_fifo_named_like_a_spec_is_skipped_without_blocking(write_tree: WriteTree) -> None:
    root = write_tree({"specs/own.yaml": DS})
    os.mkfifo(root / "specs" / "x.yaml")
    os.mkfifo(root / "fifo")
    os.symlink(root / "fifo", root / "specs" / "y.yaml")
    specs, problems = check_specs([root / "specs"])
    assert specs is not None and list(specs.datasets) == ["own"]
    assert _warnings(problems) == {
        str(root / "specs" / "x.yaml"): "not-a-regular-file",
        str(root / "specs" / "y.yaml"): "not-a-regular-file",
    }
    messages = {str(p.location): p.message for p in problems}
    assert "a FIFO (named pipe)" in messages[str(root / "specs" / "x.yaml")]
    assert "the link leads to a FIFO" in messages[str(root / "specs" / "y.yaml")]


@HANGS
def test_a_link_to_stdin_is_skipped_whatever_stdin_is(write_tree: WriteTree) -> None:
    root = write_tree({"specs/own.yaml": DS})
    os.symlink("/dev/stdin", root / "specs" / "x.yaml")
    specs, problems = check_specs([root / "specs"])
    assert specs is not None and list(specs.datasets) == ["own"]
    # A terminal, a pipe, /dev/null or a file elsewhere: never read.
    assert _warnings(problems) == {str(root / "specs" / "x.yaml"): "not-a-regular-file"}


def test_a_link_to_a_file_is_read_only_inside_the_directory(write_tree: WriteTree) -> None:
    root = write_tree(
        {
            "specs/own.yaml": DS,
            "specs/shared/common.yaml": DS.replace("own", "common"),
            "outside/secret.yaml": DS.replace("own", "secret"),
        }
    )
    os.symlink("shared/common.yaml", root / "specs" / "alias.yaml")
    os.symlink(root / "outside" / "secret.yaml", root / "specs" / "leak.yaml")
    specs, problems = check_specs([root / "specs"])
    assert specs is not None and sorted(specs.datasets) == ["common", "own"]
    assert _warnings(problems) == {str(root / "specs" / "leak.yaml"): "not-a-regular-file"}
    assert "leads out of" in problems[0].message


@HANGS
@pytest.mark.parametrize("path", ["/dev/null", "fifo"])
def test_a_path_that_is_neither_directory_nor_file_is_an_error(
    tmp_path: Path, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    specs, problems = check_specs([path])
    assert specs is None
    [problem] = problems
    assert (problem.code, problem.severity, str(problem.location)) == (
        "not-a-spec-path",
        Severity.ERROR,
        path,
    )
    assert "not a directory of specs or a spec file" in problem.message


def test_apply_on_dev_null_is_an_error_and_creates_nothing(cli: object) -> None:
    existed = os.path.exists("/dev/.reconciler")
    result: Result = cli("apply", "/dev/null", "--yes")  # type: ignore[operator]
    assert result.exit_code == 1
    assert "/dev/null: error: not a directory of specs or a spec file" in result.output
    assert os.path.exists("/dev/.reconciler") == existed


def test_validate_reports_what_it_skipped(
    write_tree: WriteTree, cli: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"specs/own.yaml": DS, "specs/data/own.jsonl": ""})
    os.symlink("/usr", root / "specs" / "usr")
    monkeypatch.chdir(root)
    result: Result = cli("validate", "specs")  # type: ignore[operator]
    assert "specs/usr: warning: symbolic link to a directory" in result.stdout
    assert "[symlink-not-followed]" in result.stdout


# --------------------------------------------------------------------------- the root marker


@pytest.mark.parametrize(
    "content",
    [
        "",
        "# the workspace root\n",
        "apiVersion: reconciler/v1\n",
        "---\napiVersion: reconciler/v1\n",
    ],
)
def test_the_root_marker_is_not_a_spec(write_tree: WriteTree, content: str) -> None:
    root = write_tree({"reconciler.yaml": content, "specs/own.yaml": DS})
    specs, problems = check_specs([root])
    assert problems == []
    assert specs is not None and list(specs.datasets) == ["own"]
    assert specs.root == root.resolve()


@pytest.mark.parametrize(
    ("content", "code", "line"),
    [
        (DS, "invalid-root-marker", 1),
        ("apiVersion: reconciler/v1\nkind: Dataset\n", "invalid-root-marker", 1),
        ("- a list\n", "invalid-root-marker", 1),
        ("apiVersion: reconciler/v9\n", "unknown-api-version", 1),
    ],
)
def test_a_root_marker_with_content_is_an_error(
    write_tree: WriteTree, content: str, code: str, line: int
) -> None:
    root = write_tree({"reconciler.yaml": content, "specs/own.yaml": DS})
    specs, problems = check_specs([root])
    assert specs is None
    [problem] = problems
    assert problem.code == code and problem.hint
    assert problem.location is not None
    assert (problem.location.file, problem.location.line) == (str(root / "reconciler.yaml"), line)


def test_the_marker_is_checked_once_whatever_the_spelling(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"reconciler.yaml": DS, "specs/own.yaml": DS})
    monkeypatch.chdir(root)
    for paths in (["."], [], [str(root)], [".", "reconciler.yaml"]):
        specs, problems = check_specs(paths)
        assert specs is None
        assert [p.code for p in problems] == ["invalid-root-marker"], paths


def test_the_marker_above_the_paths_is_checked_too(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"reconciler.yaml": DS, "specs/own.yaml": DS})
    monkeypatch.chdir(root / "specs")
    specs, problems = check_specs(["."])
    assert specs is None
    assert [(p.code, str(p.location)) for p in problems] == [
        ("invalid-root-marker", "../reconciler.yaml:1:1")
    ]


def test_load_specs_carries_the_root_found(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = write_tree({"reconciler.yaml": "", "specs/a/own.yaml": DS})
    monkeypatch.chdir(root / "specs" / "a")
    specs = load_specs([])
    assert specs.root == root.resolve()
    assert specs.discovery is not None and specs.discovery.found_by == "marker"


def test_a_directory_with_its_own_root_marker_is_a_workspace_of_its_own(
    write_tree: WriteTree, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = "kind: Provider\nname: elsewhere\ntype: openai\n---\n" + DS.replace("own", "apart")
    root = write_tree(
        {
            "specs/own.yaml": DS,
            "specs/apart/reconciler.yaml": "apiVersion: reconciler/v1\n",
            "specs/apart/apart.yaml": other,
        }
    )
    monkeypatch.chdir(root)
    # Loading the parent skips it (its Provider would apply to the parent's documents), and
    # says so; its documents are not read.
    specs, problems = check_specs(["specs"])
    assert specs is not None and list(specs.datasets) == ["own"] and specs.provider is None
    [note] = problems
    assert (str(note.location), note.severity) == ("specs/apart", Severity.WARNING)
    assert note.render().startswith(
        "specs/apart: warning: a workspace of its own; apply it on its own"
    )
    assert "reconciler apply specs/apart" in (note.hint or "")
    assert specs.root == (root / "specs").resolve()
    # Named, or by a file in it, it is loaded as its own workspace.
    for path in ("specs/apart", "specs/apart/apart.yaml"):
        alone = load_specs([path])
        assert list(alone.datasets) == ["apart"] and alone.provider is not None, path
        assert alone.root == (root / "specs" / "apart").resolve()


def test_a_directory_holding_only_workspaces_of_their_own_names_them(
    write_tree: WriteTree,
) -> None:
    root = write_tree({"specs/a/reconciler.yaml": "", "specs/a/own.yaml": DS})
    specs, problems = check_specs([root / "specs"])
    assert specs is None
    error = next(p for p in problems if p.severity is Severity.ERROR)
    assert error.code == "no-specs" and "outside the workspaces of their own" in error.message
    assert error.hint == f"name one of them instead: {root / 'specs' / 'a'}"
