"""Paths named in specs stay in the workspace: dataset sources and secret files.

Refusals happen before the file is opened: an audit hook records every ``open`` of the
process while a path is checked and resolved.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from reconciler.data.prepare import prepare_dataset
from reconciler.errors import DataError, SecretError, SpecError
from reconciler.spec.loader import load_specs
from reconciler.spec.models import SecretRef
from reconciler.spec.secrets import resolve_secret
from reconciler.spec.trust import PATHS_ENV, SECRETS_ENV

CHAT = (
    '{"messages": [{"role": "user", "content": "CANARY"}, {"role": "assistant", "content": "x"}]}\n'
)

_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _opened is not None and args:
        _opened.append(os.fsdecode(args[0]) if isinstance(args[0], str | bytes) else "")


sys.addaudithook(_audit)  # audit hooks cannot be removed: it records only inside opens()


@contextmanager
def opens() -> Iterator[list[str]]:
    """Every path this process opens inside the block."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


@pytest.fixture
def world(tmp_path: Path) -> dict[str, Path]:
    """A workspace ``ws/`` with data and links, next to an ``outside/`` directory."""
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "data" / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jsonl").write_text(CHAT)
    (outside / "key").write_text("outside-key-value-123\n")
    (ws / "data" / "ok.jsonl").write_text(CHAT)
    (ws / "data" / "link-out.jsonl").symlink_to(outside / "secret.jsonl")
    (ws / "data" / "link-in.jsonl").symlink_to(ws / "data" / "ok.jsonl")
    (ws / "data" / "dir-out").symlink_to(outside)
    (ws / "data" / "root-link").symlink_to("/")
    os.mkfifo(ws / "data" / "fifo.jsonl")
    (ws / "keys").mkdir()
    (ws / "keys" / "w.key").write_text("inside-key-value-456\n")
    (ws / "keys" / "link.key").symlink_to(outside / "key")
    os.mkfifo(ws / "keys" / "fifo.key")
    return {"ws": ws, "outside": outside}


def _load_dataset(ws: Path, written: str) -> Any:
    # The spec file, not the directory: walking ws/ would follow root-link to / (discovery is
    # the loader's, and not what is tested here). The root is the file's directory either way.
    (ws / "specs.yaml").write_text(f"kind: Dataset\nname: d\npath: '{written}'\n")
    return load_specs([ws / "specs.yaml"]).datasets["d"]


ALLOWED = [
    "data/ok.jsonl",
    "data/sub/../ok.jsonl",
    "./data/ok.jsonl",
    "data/link-in.jsonl",
    "data",
    "data/missing.jsonl",  # not refused here: the data package reports it missing
]


@pytest.mark.parametrize("written", ALLOWED)
def test_paths_inside_the_workspace_resolve(world: dict[str, Path], written: str) -> None:
    doc = _load_dataset(world["ws"], written)
    resolved = doc.resolve_path(written)
    assert resolved == (world["ws"] / written).resolve()


REFUSED = [
    ("../outside/secret.jsonl", "leads out of the workspace root"),
    ("../../../../../../etc/passwd", "leads out of the workspace root"),
    ("data/../../outside/secret.jsonl", "leads out of the workspace root"),
    ("/etc/passwd", "absolute paths are not allowed"),
    ("{ws}/data/ok.jsonl", "absolute paths are not allowed"),
    ("data/link-out.jsonl", "symbolic link"),
    ("data/dir-out/secret.jsonl", "symbolic link"),
    ("data/root-link/etc/passwd", "symbolic link"),
    ("data/fifo.jsonl", "a FIFO"),
]


@pytest.mark.parametrize(("written", "why"), REFUSED, ids=[r[0] for r in REFUSED])
def test_paths_out_of_the_workspace_are_refused_before_any_read(
    world: dict[str, Path], written: str, why: str
) -> None:
    written = written.format(ws=world["ws"])
    doc = _load_dataset(world["ws"], written)
    with opens() as opened, pytest.raises(SpecError) as info:
        doc.resolve_path(written)
    [problem] = info.value.problems
    assert problem.code == "path-not-allowed" and why in problem.message
    assert str(problem.location) == f"{world['ws'] / 'specs.yaml'}:3:7"
    assert problem.hint and (PATHS_ENV in problem.hint or why == "a FIFO")
    assert not [p for p in opened if "outside" in p or p.startswith("/etc") or "fifo" in p]


def test_the_operator_can_allow_a_directory(
    world: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PATHS_ENV, str(world["outside"]))
    ws, target = world["ws"], (world["outside"] / "secret.jsonl").resolve()
    for written in ("../outside/secret.jsonl", str(target), "data/link-out.jsonl"):
        assert _load_dataset(ws, written).resolve_path(written) == target
    with pytest.raises(SpecError, match="absolute paths"):
        _load_dataset(ws, "/etc/passwd").resolve_path("/etc/passwd")


def test_a_paths_entry_is_located_at_its_list_item(world: dict[str, Path]) -> None:
    ws = world["ws"]
    (ws / "specs.yaml").write_text(
        "kind: Dataset\nname: d\npaths:\n  - data/ok.jsonl\n  - ../outside/secret.jsonl\n"
    )
    doc = load_specs([ws / "specs.yaml"]).datasets["d"]
    with pytest.raises(SpecError) as info:
        doc.resolve_path("../outside/secret.jsonl")
    assert str(info.value.problems[0].location).endswith("specs.yaml:5:5")


SECRET_REFUSED = [
    ("../outside/key", "leads out of the workspace root"),
    ("{outside}/key", "absolute paths are not allowed"),
    ("~/.ssh/id_rsa", "absolute paths are not allowed"),
    ("keys/link.key", "symbolic link"),
    ("keys/fifo.key", "a FIFO"),
]


@pytest.mark.parametrize(("written", "why"), SECRET_REFUSED, ids=[r[0] for r in SECRET_REFUSED])
def test_secret_files_out_of_the_workspace_are_refused_before_any_read(
    world: dict[str, Path], written: str, why: str
) -> None:
    ref = SecretRef(file=written.format(outside=world["outside"]))
    with opens() as opened, pytest.raises(SecretError) as info:
        resolve_secret(ref, world["ws"], purpose="W/w api_key", root=world["ws"])
    assert why in str(info.value) and "nothing was read" in str(info.value)
    assert "outside-key-value" not in str(info.value)
    assert not [p for p in opened if "outside" in p or "fifo" in p or ".ssh" in p]


def test_a_secret_file_defaults_to_its_spec_directory_as_root(world: dict[str, Path]) -> None:
    # Without a workspace root, the narrowest one: the spec file's own directory.
    ref = SecretRef(file="../keys/w.key")
    with pytest.raises(SecretError, match="leads out"):
        resolve_secret(ref, world["ws"] / "data", purpose="p")
    with opens() as opened:  # and the audit hook does see the files that are read
        value = resolve_secret(ref, world["ws"] / "data", purpose="p", root=world["ws"])
    assert value == "inside-key-value-456"
    assert [p for p in opened if p.endswith("keys/w.key")]


def test_secret_files_the_operator_allows(world: dict[str, Path]) -> None:
    ws, outside = world["ws"], world["outside"]
    environ = {PATHS_ENV: str(outside)}
    ref = SecretRef(file=str(outside / "key"))
    assert resolve_secret(ref, ws, purpose="p", root=ws, environ=environ) == "outside-key-value-123"
    # RECONCILER_ALLOWED_SECRETS narrows further: only the files (and variables) it lists.
    narrow = {**environ, SECRETS_ENV: "MISTRAL_API_KEY"}
    for written in (str(outside / "key"), "keys/w.key"):
        with pytest.raises(SecretError, match=SECRETS_ENV):
            resolve_secret(SecretRef(file=written), ws, purpose="p", root=ws, environ=narrow)
    listed = {**environ, SECRETS_ENV: f"MISTRAL_API_KEY,{outside}/*"}
    assert resolve_secret(ref, ws, purpose="p", root=ws, environ=listed) == "outside-key-value-123"


def test_a_huge_secret_file_is_refused(world: dict[str, Path]) -> None:
    big = world["ws"] / "keys" / "big.key"
    big.write_bytes(b"x" * (1024 * 1024))
    with pytest.raises(SecretError, match="larger than"):
        resolve_secret(SecretRef(file="big.key"), big.parent, purpose="p", root=world["ws"])


def test_files_found_in_a_dataset_directory_are_held_to_the_same_rules(
    world: dict[str, Path],
) -> None:
    ws = world["ws"]
    doc = _load_dataset(ws, "data")
    data = doc.resolve_path("data")
    assert doc.resolve_found_file(data / "ok.jsonl", "path") == data / "ok.jsonl"
    assert doc.resolve_found_file(data / "link-in.jsonl", "path") == data / "ok.jsonl"
    for name, why in [
        ("link-out.jsonl", "symbolic link"),
        ("fifo.jsonl", "a FIFO, not a regular file"),
        ("sub", "a directory, not a regular file"),
    ]:
        with opens() as opened, pytest.raises(SpecError) as info:
            doc.resolve_found_file(data / name, "path")
        [problem] = info.value.problems
        assert why in problem.message and f"'data/{name}'" in problem.message
        assert str(problem.location).endswith("specs.yaml:3:7")
        assert not [p for p in opened if "outside" in p or "fifo" in p]


def test_preparing_a_directory_dataset_never_follows_a_link_out(tmp_path: Path) -> None:
    ws, outside = tmp_path / "ws", tmp_path / "outside"
    (ws / "data").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jsonl").write_text(CHAT)
    (ws / "data" / "own.jsonl").write_text(CHAT)
    (ws / "data" / "same.jsonl").symlink_to("own.jsonl")  # a link that stays inside: fine
    (ws / "specs.yaml").write_text("kind: Dataset\nname: d\npath: data\n")
    prepared = prepare_dataset(load_specs([ws / "specs.yaml"]).datasets["d"], tmp_path / "c1")
    assert prepared.parts["all"].num_lines == 2
    (ws / "data" / "zz-out.jsonl").symlink_to(outside / "secret.jsonl")
    doc = load_specs([ws / "specs.yaml"]).datasets["d"]
    with opens() as opened, pytest.raises(DataError) as info:
        prepare_dataset(doc, tmp_path / "c2")
    [problem] = info.value.problems
    assert problem.code == "path-not-allowed" and "'data/zz-out.jsonl'" in problem.message
    assert "symbolic link" in problem.message and str(problem.location).endswith("specs.yaml:3:7")
    assert not [p for p in opened if "outside" in p]
