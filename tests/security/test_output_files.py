"""Files the user names on the command line (``plan --out``): written whole or not at all,
scrubbed of every secret of the run, and a path that cannot take the file is a clean error
naming the path and the fix — never a traceback, never half a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from security_helpers import write_tree

from reconciler.engine.output_file import write_output_file
from reconciler.engine.plan import Plan
from reconciler.engine.planner import PlanOptions, build_plan
from reconciler.engine.state_model import State
from reconciler.errors import StorageError
from reconciler.redact import register_secret
from tests.cli_inprocess import run_cli
from tests.engine.factories import desired, desired_file, observed, resolved_job

CHAT = '{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]}\n'


def test_a_saved_plan_is_scrubbed_of_every_secret_of_the_run(tmp_path: Path) -> None:
    key = "wandb-" + "0123456789abcdef" * 2
    register_secret(key)
    plan = build_plan(
        desired([desired_file("d")], [resolved_job("j", dataset="d")]),
        State(),
        observed([], [], []),
        PlanOptions(target_description="sandbox", spec_paths=("specs",), spec_digest="d" * 64),
    ).model_copy(update={"warnings": (f"the server echoed {key}",)})
    plan.save(tmp_path / "p.plan")
    text = (tmp_path / "p.plan").read_text(encoding="utf-8")
    assert key not in text and "the server echoed ***" in text
    assert Plan.load(tmp_path / "p.plan").warnings == ("the server echoed ***",)


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "pipe")
    return tmp_path / "pipe"


def _read_only(tmp_path: Path) -> Path:
    (tmp_path / "ro.plan").write_text("before\n")
    (tmp_path / "ro.plan").chmod(0o444)
    return tmp_path / "ro.plan"


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file").write_text("before\n")
    return tmp_path / "file" / "p.plan"


BAD_TARGETS = [
    ("missing directory", lambda t: t / "missing" / "p.plan", "does not exist; create it first"),
    ("directory", lambda t: t, "it is a directory; name a file in it"),
    ("read-only file", _read_only, "the file is read-only; make it writable (chmod u+w"),
    ("fifo", _fifo, "it is a FIFO (named pipe), not a regular file"),
    ("parent is a file", _under_a_file, "is not a directory"),
]


@pytest.mark.parametrize(("case", "target", "why"), BAD_TARGETS, ids=[b[0] for b in BAD_TARGETS])
def test_a_path_that_cannot_take_the_file_is_refused_before_writing(
    tmp_path: Path, case: str, target: object, why: str
) -> None:
    path = target(tmp_path)  # type: ignore[operator]
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if stat.S_ISREG(p.lstat().st_mode)}
    with pytest.raises(StorageError) as info:
        write_output_file(path, "new\n", what="the plan")
    message = str(info.value)
    assert message.startswith(f"cannot write the plan to {path}: ") and why in message
    assert "or choose another path" in message
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if stat.S_ISREG(p.lstat().st_mode)}
    assert after == before  # nothing written, nothing left behind


def test_a_failed_write_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "p.plan"
    target.write_text("old plan\n")
    with pytest.raises(StorageError, match="cannot write the plan to"):
        # A lone surrogate cannot be encoded: the write fails after the temporary file exists.
        write_output_file(target, "half \ud800 written", what="the plan")
    assert target.read_text() == "old plan\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.plan"]


def test_an_existing_file_is_replaced_whole_and_keeps_its_mode(tmp_path: Path) -> None:
    target = tmp_path / "p.plan"
    target.write_text("old plan, longer than the new one\n")
    target.chmod(0o600)
    write_output_file(target, "new\n", what="the plan")
    assert target.read_text() == "new\n" and stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.plan"]


@pytest.mark.parametrize("out", ["missing/p.plan", "specs", "ro.plan"])
def test_plan_out_into_a_bad_path_is_a_clean_error(tmp_path: Path, out: str) -> None:
    root = write_tree(
        tmp_path,
        {
            "specs/data.yaml": "kind: Dataset\nname: d\npath: train.jsonl\n",
            "specs/train.jsonl": CHAT,
        },
    )
    _read_only(root)
    result = run_cli(["plan", "specs", "--out", out], cwd=root, env=dict(os.environ))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert f"Error: cannot write the plan to {out}: " in result.stderr
    assert (root / "ro.plan").read_text() == "before\n"
    assert not (root / "missing").exists()
