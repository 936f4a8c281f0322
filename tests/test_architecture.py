"""The layer order of the package, enforced: lower layers never import upper ones.

ARCHITECTURE.md draws the same picture. Each top-level unit of ``reconciler`` (a subpackage or
a top-level module) has a rank; an import from a unit to one of a higher rank, or to one
outside its allowed set, fails here with the file and line. A new unit must be given a rank
(or the test fails), so the order is decided when the unit is added, not discovered later.

The sandbox is special: it stands for the remote API and depends only on the contract and the
data validator (it validates uploads with the same rules as ``validate``), never on the engine.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "reconciler"

RANKS: dict[str, int] = {
    "__init__": 0,
    "errors": 1,
    "files": 2,
    "address": 0,
    "identity": 0,
    "redact": 0,
    "closing": 0,
    "chat": 0,
    "spec": 3,
    "client": 4,
    "data": 4,
    "train": 4,
    "ray": 5,
    "providers": 5,
    "engine": 6,
    "observe": 7,
    "render": 7,
    "sandbox": 7,
    "workspace": 8,
    "operations": 9,
    # Continuous reconcile: rounds of the operations' plan and apply.
    "reconcile": 10,
    "cli": 11,
    "__main__": 12,
}
"""Rank of each unit: a unit may import units of a lower rank only (and itself)."""

ONLY: dict[str, set[str]] = {
    "sandbox": {"__init__", "closing", "data", "errors", "spec"},
    "train": {"__init__", "chat", "errors"},
}
"""Units held to an explicit list instead of everything below them."""

EXCEPTIONS: dict[str, set[str]] = {
    # The workspace starts the embedded sandbox in-process (lazily, only for that target).
    "workspace": {"sandbox"},
    # The ray provider is the Ray Jobs client behind the provider interface.
    "providers": {"ray"},
}


def _unit(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] != "reconciler":
                continue
            found.append((node.lineno, parts[1] if len(parts) > 1 else "__init__"))
    return found


def _violations() -> list[str]:
    problems: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        if unit not in RANKS:
            problems.append(f"{path.relative_to(PACKAGE.parent)}: unit {unit!r} has no rank")
            continue
        for line, target in _imports(path):
            if target == unit:
                continue
            if target not in RANKS:
                problems.append(f"{path.relative_to(PACKAGE.parent)}:{line}: unknown unit {target}")
                continue
            allowed = (
                target in ONLY[unit]
                if unit in ONLY
                else RANKS[target] < RANKS[unit] or target in EXCEPTIONS.get(unit, set())
            )
            if not allowed:
                problems.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line}: {unit} (rank {RANKS[unit]}) "
                    f"imports {target} (rank {RANKS[target]})"
                )
    return problems


def test_lower_layers_never_import_upper_ones() -> None:
    assert _violations() == []


def test_the_check_catches_an_upward_import(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The guard itself can fail: a planted upward import is reported with file and line."""
    fake = tmp_path / "reconciler"
    (fake / "spec").mkdir(parents=True)
    (fake / "engine").mkdir()
    (fake / "spec" / "models.py").write_text(
        "from reconciler.engine.plan import Plan\n", encoding="utf-8"
    )
    (fake / "engine" / "plan.py").write_text("import reconciler.spec.models\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _violations() == ["reconciler/spec/models.py:1: spec (rank 3) imports engine (rank 6)"]
