"""The Dockerfile, without a Docker engine: its instructions are read and checked, and its
install step is reproduced from exactly the files it copies (after ``.dockerignore``), which
must build the package under its distribution name with the ``reconciler`` command."""

from __future__ import annotations

import email
import fnmatch
import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from examples_cli_lines import check_invocation, cli_root, shell_commands

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        pending += line
        keyword, _, args = pending.partition(" ")
        out.append((keyword.upper(), " ".join(args.split())))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return out


DOCKERFILE = instructions((REPO / "Dockerfile").read_text(encoding="utf-8"))
IGNORED = [
    line.strip()
    for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.startswith("#")
]


def _all(keyword: str) -> list[str]:
    return [args for kw, args in DOCKERFILE if kw == keyword]


def _copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY."""
    out = []
    for args in _all("COPY"):
        *sources, dest = shlex.split(args)
        assert not any(s.startswith("--") for s in sources), "COPY flags are not expected"
        out.append((sources, dest))
    return out


def _ignored(path: str) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern) or fnmatch.fnmatch(path, pattern.removeprefix("**/"))
        for pattern in IGNORED
    )


def test_the_image_is_python_3_11_slim_and_runs_the_command_as_a_non_root_user() -> None:
    assert DOCKERFILE[0] == ("FROM", "python:3.11-slim")
    keywords = [kw for kw, _ in DOCKERFILE]
    user = _all("USER")
    assert user and user[-1] not in ("root", "0"), "the image must not run as root"
    # The switch to the user comes after the installation (which needs root).
    install = next(i for i, (kw, a) in enumerate(DOCKERFILE) if kw == "RUN" and "pip install" in a)
    assert keywords.index("USER") > install
    [entrypoint] = _all("ENTRYPOINT")
    assert json.loads(entrypoint) == ["reconciler"]
    assert "reconciler" in PYPROJECT["scripts"]


def test_the_install_step_names_the_distribution_and_existing_extras() -> None:
    [run] = [a for a in _all("RUN") if "pip install" in a]
    commands = list(shell_commands(run))  # redirections dropped
    install = next(c for c in commands if c[:2] == ["pip", "install"])
    target = install[-1]
    match = re.fullmatch(r"\.\[(?P<extras>[\w,]+)\]", target)
    assert match, f"installs {target!r}, not the checkout with extras"
    assert set(match["extras"].split(",")) <= set(PYPROJECT["optional-dependencies"])
    assert ["pip", "show", PYPROJECT["name"]] in commands, "checks the installed name"
    assert ["reconciler", "--version"] in commands, "checks the command runs"


def test_what_the_image_copies_exists_and_is_not_ignored() -> None:
    copies = _copies()
    copied = {source for sources, _ in copies for source in sources}
    # The package, its build configuration and the readme its metadata names.
    assert {"pyproject.toml", PYPROJECT["readme"], "reconciler"} <= copied
    for source in copied:
        assert (REPO / source).exists(), source
        assert not _ignored(source), f".dockerignore drops {source}"


def test_the_documented_run_command_exists() -> None:
    header = (REPO / "Dockerfile").read_text(encoding="utf-8")
    runs = re.findall(r"docker run .*?reconciler (\w[^\n]*)", header.replace("\\\n#", ""))
    assert runs, "the header shows how to run the image"
    root = cli_root()
    for args in runs:
        assert check_invocation(root, shlex.split(args)) == [], args


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_the_copied_files_build_the_package_under_its_distribution_name(tmp_path: Path) -> None:
    # Reproduce the build context: what the COPY lines take, minus .dockerignore.
    context = tmp_path / "src"
    context.mkdir()
    for sources, _ in _copies():
        for source in sources:
            path = REPO / source
            if path.is_dir():
                shutil.copytree(
                    path,
                    context / source,
                    ignore=lambda d, names: [n for n in names if _ignored(n)],
                )
            else:
                shutil.copy2(path, context / source)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(tmp_path / "dist"),
            str(context),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [wheel] = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        metadata = email.message_from_bytes(
            zf.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        )
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert metadata["Name"] == PYPROJECT["name"] == "finetune-reconciler"
    assert "reconciler/__init__.py" in names and "reconciler/cli/app.py" in names
    assert "reconciler = reconciler.cli.app:main" in entry_points
