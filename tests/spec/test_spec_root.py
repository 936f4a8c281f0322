"""Finding the workspace root like git finds a repository (reconciler/spec/root.py).

The tree of most tests: a repository whose specs live in ``repo/specs/NN-x/`` and whose state
an apply of ``specs/`` wrote to ``repo/specs/.reconciler/state.json``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.spec.root import (
    CEILING_ENV,
    FoundBy,
    RootDiscovery,
    discover_root,
    find_workspace_root,
)


def _touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    _touch(repo / "specs" / "01-tone" / "tone.yaml")
    _touch(repo / "specs" / "02-sql" / "sql.yaml")
    _touch(repo / "specs" / ".reconciler" / "state.json", "{}")
    return repo


def _files(repo: Path) -> list[Path]:
    return sorted(repo.rglob("*.yaml"))


def _discover(paths: list[Path], files: list[Path] | None = None) -> RootDiscovery:
    return discover_root(paths, files or [], environ={})


@pytest.mark.parametrize(
    "given",
    ["specs", "specs/01-tone", "specs/01-tone/tone.yaml", "specs/02-sql/../01-tone"],
)
def test_the_nearest_state_at_or_above_the_path(repo: Path, given: str) -> None:
    found = _discover([repo / given])
    assert found == RootDiscovery(repo / "specs", FoundBy.STATE)
    assert found.state_file == repo / "specs" / ".reconciler" / "state.json"


def test_from_the_repository_top_the_state_below_is_found(repo: Path) -> None:
    found = _discover([repo], _files(repo))
    assert found == RootDiscovery(repo / "specs", FoundBy.BELOW)


def test_specs_outside_the_workspace_below_make_it_a_conflict(repo: Path) -> None:
    _touch(repo / "ci.yaml")
    found = _discover([repo], _files(repo))
    assert found == RootDiscovery(repo, FoundBy.DEFAULT, nested=(repo / "specs",))


def test_several_workspaces_below_are_named(repo: Path) -> None:
    (repo / "specs" / ".reconciler" / "state.json").unlink()
    _touch(repo / "specs" / "01-tone" / ".reconciler" / "state.json", "{}")
    _touch(repo / "specs" / "02-sql" / "reconciler.yaml")
    found = _discover([repo / "specs"], _files(repo / "specs"))
    assert found.root == repo / "specs" and found.found_by is FoundBy.DEFAULT
    assert found.nested == (repo / "specs" / "01-tone", repo / "specs" / "02-sql")


def test_a_cache_only_reconciler_directory_does_not_mark_a_workspace(tmp_path: Path) -> None:
    _touch(tmp_path / "specs" / ".reconciler" / "cache" / "hashes.json")
    _touch(tmp_path / "specs" / "a" / "a.yaml")
    found = _discover([tmp_path / "specs" / "a"], [tmp_path / "specs" / "a" / "a.yaml"])
    assert found == RootDiscovery(tmp_path / "specs" / "a", FoundBy.DEFAULT)


def test_the_marker_declares_the_root_before_any_state(tmp_path: Path) -> None:
    _touch(tmp_path / "reconciler.yaml")
    spec = _touch(tmp_path / "specs" / "a" / "a.yaml")
    assert _discover([spec]) == RootDiscovery(tmp_path, FoundBy.MARKER)
    assert find_workspace_root([tmp_path / "specs"]) == tmp_path


def test_a_marked_root_without_state_names_the_states_below(tmp_path: Path) -> None:
    _touch(tmp_path / "reconciler.yaml")
    _touch(tmp_path / "specs" / ".reconciler" / "state.json", "{}")
    files = [_touch(tmp_path / "specs" / "a.yaml"), _touch(tmp_path / "b.yaml")]
    found = _discover([tmp_path], files)
    assert found == RootDiscovery(tmp_path, FoundBy.MARKER, nested=(tmp_path / "specs",))


def test_paths_of_different_workspaces_conflict(repo: Path) -> None:
    other = repo / "other"
    _touch(other / ".reconciler" / "state.json", "{}")
    found = _discover([repo / "specs" / "01-tone", other])
    assert found == RootDiscovery(repo / "specs", FoundBy.STATE, conflicts=(other,))


def test_no_marker_anywhere_keeps_the_first_path(tmp_path: Path) -> None:
    spec = _touch(tmp_path / "a" / "x.yaml")
    assert _discover([spec, tmp_path]) == RootDiscovery(tmp_path / "a", FoundBy.DEFAULT)


def test_the_upward_search_stops_below_a_ceiling(repo: Path) -> None:
    path = repo / "specs" / "01-tone"
    assert discover_root([path], environ={CEILING_ENV: str(repo)}).root == repo / "specs"
    stopped = discover_root([path], environ={CEILING_ENV: f"/nowhere:{repo / 'specs'}"})
    assert stopped == RootDiscovery(path, FoundBy.DEFAULT)


def test_relative_paths_and_symlinked_paths_resolve(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo.parent / "link").symlink_to(repo / "specs" / "02-sql")
    monkeypatch.chdir(repo / "specs" / "01-tone")
    assert _discover([Path(".")]).root == repo / "specs"
    assert _discover([repo.parent / "link"]).root == repo / "specs"
