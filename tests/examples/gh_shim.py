"""Stand-in for the ``gh`` command in the recipe tests (run as a script, standard library only).

It answers what the GitHub recipes ask, from the fake GitHub's JSON store named by
``RECONCILER_FAKE_GITHUB`` (see ``ci_github.FakeGitHub``):

* ``gh api [--method M] [--paginate] [--jq FILTER] [-f k=v] [-F k=v | -F k=@file] ENDPOINT`` for
  ``repos/R/commits/SHA/pulls``, ``repos/R/actions/artifacts?name=N``,
  ``repos/R/issues/N/comments`` (GET, POST) and ``repos/R/issues/comments/ID`` (PATCH);
* ``gh run download RUN_ID --name NAME --dir DIR`` (in a checkout, or with ``GH_REPO`` set).

Like GitHub, it wants a token (``GH_TOKEN``) and checks that the job's ``permissions:`` allow
the call. ``--jq`` filters run through the real ``jq -r`` (gh prints strings raw, as ``-r``
does). Anything else fails with a message naming the call, so a recipe that needs more fails
its test instead of passing by accident.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

LEVEL = {"none": 0, "read": 1, "write": 2}


def fail(message: str, code: int = 1) -> None:
    """Print ``message`` as gh would and exit."""
    print(message, file=sys.stderr)
    raise SystemExit(code)


def load() -> tuple[Path, dict[str, Any]]:
    """The store's path and content."""
    path = Path(os.environ["RECONCILER_FAKE_GITHUB"])
    return path, json.loads(path.read_text(encoding="utf-8"))


def require(data: dict[str, Any], needs: list[tuple[str, str]]) -> None:
    """Fail unless the token allows one of ``needs`` ((scope, level) pairs)."""
    token = os.environ.get("GH_TOKEN") or os.environ.get("GITHUB_TOKEN")
    if not token:
        fail(
            "gh: To use GitHub CLI in a GitHub Actions workflow, set the GH_TOKEN environment "
            "variable. Example:\n  env:\n    GH_TOKEN: ${{ github.token }}",
            4,
        )
    granted = data["tokens"].get(token)
    if granted is None:
        fail("HTTP 401: Bad credentials")
    if not any(LEVEL[granted.get(scope, "none")] >= LEVEL[level] for scope, level in needs):
        wanted = " or ".join(f"{scope}: {level}" for scope, level in needs)
        fail(f"HTTP 403: Resource not accessible by integration (needs {wanted})")


def fields(args: list[str]) -> dict[str, str]:
    """``-f``/``-F`` values (``@file`` read from the file)."""
    out = {}
    for arg in args:
        key, _, value = arg.partition("=")
        if value.startswith("@"):
            value = Path(value[1:]).read_text(encoding="utf-8")
        out[key] = value
    return out


def api(argv: list[str]) -> None:
    """``gh api``."""
    method, jq, raw_fields, endpoint = "GET", None, [], None
    args = iter(argv)
    for arg in args:
        if arg in ("--method", "-X"):
            method = next(args).upper()
        elif arg == "--paginate":
            pass  # one page holds everything here
        elif arg in ("--jq", "-q"):
            jq = next(args)
        elif arg in ("-f", "-F", "--field", "--raw-field"):
            raw_fields.append(next(args))
        elif arg.startswith("-"):
            fail(f"gh shim: option {arg} is not emulated")
        elif endpoint is None:
            endpoint = arg
        else:
            fail(f"gh shim: unexpected argument {arg}")
    if endpoint is None:
        fail("gh shim: no endpoint")
    assert endpoint is not None
    if raw_fields and method == "GET":
        method = "POST"  # gh sends fields as a POST unless told otherwise
    path, data = load()
    repo = re.escape(data["repository"])
    body = fields(raw_fields)
    result: Any
    if m := re.fullmatch(rf"repos/{repo}/commits/(\w+)/pulls", endpoint):
        require(data, [("pull-requests", "read")])
        sha = m.group(1)
        result = [p for p in data["pulls"] if sha in (p.get("merge_commit_sha"), p["head"]["sha"])]
    elif m := re.fullmatch(rf"repos/{repo}/actions/artifacts\?name=([\w.-]+)", endpoint):
        require(data, [("actions", "read")])
        found = [a for a in data["artifacts"] if a["name"] == m.group(1)]
        result = {"total_count": len(found), "artifacts": list(reversed(found))}
    elif m := re.fullmatch(rf"repos/{repo}/issues/(\d+)/comments", endpoint):
        comments = data["comments"].setdefault(m.group(1), [])
        if method == "GET":
            require(data, [("issues", "read"), ("pull-requests", "read")])
            result = comments
        elif method == "POST":
            require(data, [("issues", "write"), ("pull-requests", "write")])
            result = {"id": data["next_id"], "body": body["body"]}
            data["next_id"] += 1
            comments.append({**result, "user": {"login": "github-actions[bot]"}})
        else:
            fail(f"gh shim: {method} {endpoint} is not emulated")
    elif m := re.fullmatch(rf"repos/{repo}/issues/comments/(\d+)", endpoint):
        require(data, [("issues", "write"), ("pull-requests", "write")])
        if method != "PATCH":
            fail(f"gh shim: {method} {endpoint} is not emulated")
        matching = [c for cs in data["comments"].values() for c in cs if c["id"] == int(m[1])]
        if not matching:
            fail("HTTP 404: Not Found")
        matching[0]["body"] = body["body"]
        result = matching[0]
    else:
        fail(f"gh shim: {method} {endpoint} is not emulated")
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    text = json.dumps(result)
    if jq is None:
        print(text)
        return
    proc = subprocess.run(["jq", "-r", jq], input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        fail(f"gh shim: --jq {jq!r}: {proc.stderr.strip()}")
    sys.stdout.write(proc.stdout)


def run_download(argv: list[str]) -> None:
    """``gh run download RUN_ID --name NAME --dir DIR``."""
    run_id, name, dest = None, None, "."
    args = iter(argv)
    for arg in args:
        if arg in ("--name", "-n"):
            name = next(args)
        elif arg in ("--dir", "-D"):
            dest = next(args)
        elif arg.startswith("-"):
            fail(f"gh shim: option {arg} is not emulated")
        else:
            run_id = arg
    if run_id is None or name is None:
        fail("gh shim: run download needs a run id and --name")
    if not os.environ.get("GH_REPO") and not Path(".git").exists():
        # As gh: outside a checkout it cannot tell which repository is meant.
        fail("failed to determine base repo: set GH_REPO or run inside a git repository")
    path, data = load()
    require(data, [("actions", "read")])
    if os.environ.get("GH_REPO", data["repository"]) != data["repository"]:
        fail(f"HTTP 404: no repository {os.environ['GH_REPO']}")
    found = [
        a
        for a in data["artifacts"]
        if a["name"] == name and str(a["workflow_run"]["id"]) == str(run_id)
    ]
    if not found:
        fail(f"no artifact matches any of the names or patterns provided: {name}")
    source = path.parent / "artifacts" / str(found[-1]["id"])
    shutil.copytree(source, dest, dirs_exist_ok=True)


def main(argv: list[str]) -> None:
    """Dispatch on the subcommand."""
    if argv[:1] == ["api"]:
        api(argv[1:])
    elif argv[:2] == ["run", "download"]:
        run_download(argv[2:])
    else:
        fail(f"gh shim: 'gh {' '.join(argv)}' is not emulated")


if __name__ == "__main__":
    main(sys.argv[1:])
