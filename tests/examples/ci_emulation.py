"""What the GitHub Actions and GitLab CI emulations of the recipe tests share.

The recipes in ``examples/ci/`` only ever run on a CI service, so the tests run them here, as
shipped: every shell step for real, in order, with ``bash --noprofile --norc -eo pipefail`` (what
both services use), in a checkout of a throwaway Git repository of specs (:class:`SpecsRepo`),
against a sandbox on 127.0.0.1. Only what cannot run offline is replaced, and each replacement is
listed in :data:`SHELL_SUBSTITUTIONS` (lines of shell) or in the service's own table of actions.

Every ``reconciler`` command line of a step is checked against the CLI's command tree before the
step runs (:func:`check_reconciler_calls`), so a command or flag that does not exist fails the test
even when the step would swallow the error.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from examples_cli_lines import check_invocation, cli_root, reconciler_invocations
from packaging.requirements import InvalidRequirement, Requirement

from tests.cli_relay import Relay

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
DISTRIBUTION = PYPROJECT["project"]["name"]

INSTALL_URL = re.compile(r"git\+https://github\.com/<your-fork>/reconciler@<commit>")
"""The install source every recipe names: a Git URL pinned to a commit, with placeholders."""

INSTALL_LINE = re.compile(r"^\s*python -m pip install '(?P<requirement>[^']+)'\s*$")
APT_LINE = re.compile(r"^\s*apt-get update\b.*&& apt-get install\b.*$")


class RecipeError(Exception):
    """A recipe does something this emulation cannot run or does not allow (a test failure)."""


def check_install_requirement(requirement: str) -> list[str]:
    """Problems with the requirement a recipe installs: the distribution name, its extras and
    the pinned Git URL."""
    try:
        req = Requirement(requirement)
    except InvalidRequirement as exc:
        return [f"not a valid requirement: {requirement!r} ({exc})"]
    problems = []
    if req.name != DISTRIBUTION:
        problems.append(f"installs {req.name!r}, but the distribution is {DISTRIBUTION!r}")
    unknown = set(req.extras) - set(PYPROJECT["project"]["optional-dependencies"])
    if unknown:
        problems.append(f"extras {sorted(unknown)} do not exist")
    if not req.url or not INSTALL_URL.fullmatch(req.url):
        problems.append(f"{req.url!r} is not a commit-pinned Git URL of the reconciler repository")
    return problems


def _install_substitute(match: re.Match[str]) -> str:
    problems = check_install_requirement(match["requirement"])
    if problems:
        raise RecipeError(f"install line {match.group(0).strip()!r}: {'; '.join(problems)}")
    return ": the package under test is already installed"


SHELL_SUBSTITUTIONS: list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str]]] = [
    (
        "python -m pip install '<requirement>': checked (distribution name, extras, a Git URL "
        "pinned to a commit), not run: no network here, and the checkout under test is already "
        "importable (PYTHONPATH) with its console script on PATH",
        INSTALL_LINE,
        _install_substitute,
    ),
    (
        "apt-get update && apt-get install ...: not run; git, curl and jq are on this machine "
        "(the tests skip otherwise)",
        APT_LINE,
        lambda _match: ": system packages are already there",
    ),
]
"""Shell lines the emulations replace: (why, pattern of the whole line, replacement)."""


def substitute_shell(script: str) -> tuple[str, list[str]]:
    """``script`` with the lines of :data:`SHELL_SUBSTITUTIONS` replaced, and which were."""
    used: list[str] = []
    lines = []
    for line in script.splitlines():
        for why, pattern, replace in SHELL_SUBSTITUTIONS:
            match = pattern.match(line)
            if match:
                line = replace(match)
                used.append(why)
                break
        lines.append(line)
    return "\n".join(lines) + "\n", used


_ROOT: Any = None


def check_reconciler_calls(script: str) -> None:
    """Raise :class:`RecipeError` if a ``reconciler`` call in ``script`` uses a command, option
    or option value the CLI does not have."""
    global _ROOT
    if _ROOT is None:
        _ROOT = cli_root()
    for args in reconciler_invocations(script):
        problems = check_invocation(_ROOT, args)
        if problems:
            raise RecipeError(f"reconciler {' '.join(args)}: {'; '.join(problems)}")


@dataclass
class ShellResult:
    """One shell step that ran.

    Attributes:
        name: the step's (or job's) name.
        returncode: the shell's exit status.
        stdout / stderr: what it printed.
        substitutions: which :data:`SHELL_SUBSTITUTIONS` applied.
    """

    name: str
    returncode: int
    stdout: str
    stderr: str
    substitutions: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether the step succeeded."""
        return self.returncode == 0

    @property
    def output(self) -> str:
        """stdout and stderr together, for messages."""
        return f"{self.stdout}\n{self.stderr}"


def run_shell(
    name: str,
    script: str,
    cwd: Path,
    env: Mapping[str, str],
    script_dir: Path,
    relay: Relay | None = None,
) -> ShellResult:
    """Run a step's shell text as both services do: a script file run by
    ``bash --noprofile --norc -eo pipefail``, after the substitutions and the CLI check.

    With a ``relay`` (:class:`tests.cli_relay.Relay`) the step's ``reconciler`` calls run in
    the test process (the shell and every other program in it still run for real); without
    one they run the console script on ``PATH``.
    """
    text, used = substitute_shell(script)
    check_reconciler_calls(text)
    script_dir.mkdir(parents=True, exist_ok=True)
    path = script_dir / f"step-{len(list(script_dir.iterdir())):02d}.sh"
    path.write_text(text, encoding="utf-8")
    command = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(path)]
    if relay is not None:
        proc = relay.run(command, cwd=cwd, env=env, timeout=300)
    else:
        proc = subprocess.run(
            command,
            cwd=cwd,
            env=dict(env),
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    return ShellResult(name, proc.returncode, proc.stdout, proc.stderr, used)


def base_env(home: Path, bin_dir: Path) -> dict[str, str]:
    """A runner's environment, built from nothing (no key of this machine leaks in): the shims
    first on PATH, then the interpreter running the tests (whose ``reconciler`` console script
    the steps call), the checkout under test importable."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.pathsep.join(
            [str(bin_dir), str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
        ),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "CI": "true",
        "COLUMNS": "200",
    }


class SpecsRepo:
    """A throwaway Git repository of specs, as a team would keep one.

    Attributes:
        path: the repository (branch ``main``).
        checkouts: where :meth:`checkout` puts the working copies jobs run in.
    """

    def __init__(self, path: Path, checkouts: Path) -> None:
        self.path = path
        self.checkouts = checkouts
        path.mkdir(parents=True)
        checkouts.mkdir(parents=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        """Run git in the repository; its stdout, stripped."""
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "Spec Author",
            "GIT_AUTHOR_EMAIL": "author@example.com",
            "GIT_COMMITTER_NAME": "Spec Author",
            "GIT_COMMITTER_EMAIL": "author@example.com",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
        }
        proc = subprocess.run(
            ["git", *args], cwd=self.path, env=env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)}: {proc.stderr}")
        return proc.stdout.strip()

    def commit(self, branch: str, files: Mapping[str, str | bytes | None], message: str) -> str:
        """Write ``files`` (None deletes) on ``branch`` (created from main if new); the commit."""
        if branch != "main" and not self.git("branch", "--list", branch):
            self.git("branch", branch, "main")
        if branch != "main":
            self.git("checkout", "-q", branch)
        for name, content in files.items():
            target = self.path / name
            if content is None:
                self.git("rm", "-q", "-r", name)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        sha = self.git("rev-parse", "HEAD")
        if branch != "main":
            self.git("checkout", "-q", "main")
        return sha

    def merge(self, branch: str, *, into: str = "main", ref: str | None = None) -> str:
        """A merge commit of ``branch`` into ``into``. With ``ref`` the merge is only stored
        under that ref (GitHub's ``refs/pull/N/merge``) and ``into`` stays where it was."""
        base = self.git("rev-parse", into)
        self.git("checkout", "-q", "--detach", base)
        self.git("merge", "-q", "--no-ff", "-m", f"Merge {branch}", branch)
        sha = self.git("rev-parse", "HEAD")
        self.git("checkout", "-q", "main")
        if ref is None:
            self.git("update-ref", f"refs/heads/{into}", sha)
            self.git("checkout", "-q", "-f", "main")
        else:
            self.git("update-ref", ref, sha)
        return sha

    def changed_files(self, base: str, sha: str) -> list[str]:
        """Paths that differ between two commits."""
        return self.git("diff", "--name-only", base, sha).splitlines()

    def checkout(self, sha: str, name: str) -> Path:
        """A fresh working copy of commit ``sha`` (a detached worktree)."""
        dest = self.checkouts / name
        self.git("worktree", "add", "-q", "--detach", str(dest), sha)
        return dest


def copy_tree_files(source: Path, prefix: str) -> dict[str, bytes]:
    """Every file under ``source`` as ``{prefix/relative path: bytes}`` (for :meth:`commit`),
    without local state directories."""
    return {
        f"{prefix}/{p.relative_to(source).as_posix()}": p.read_bytes()
        for p in sorted(source.rglob("*"))
        if p.is_file() and ".reconciler" not in p.relative_to(source).parts
    }
