"""Shared test fixtures for the whole suite (kept generic; area fixtures live in subdirs)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli_processes import CliProcesses, close_shared
from tests.cli_processes import shared as cli_processes_helper
from tests.fast_polls import fast_polls
from tests.tls_context import share_default_context

share_default_context()  # before any test module makes a client (see tests/tls_context.py)

# One intra-op thread per torch process: the suite runs three workers (and trainer processes)
# on a two-core machine, and torch's default of a thread per core makes them fight for the
# cores (20 tiny training steps took 8.4 s instead of 1.8 s beside the other workers). Set
# before any test imports torch; child processes inherit it, and the tests' Ray jobs (and the
# trainer processes torchrun starts in them) get it from tests/train/ray_helpers.py's job_env.
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
"""The checkout under test (tests never depend on the current directory)."""


@pytest.fixture
def repo_root() -> Path:
    """Root of the repository: where pyproject.toml, schemas/ and specs/ are."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def cli_processes() -> CliProcesses:
    """Starts ``reconciler`` commands as real child processes (see tests/cli_processes.py).

    One helper for the whole test run: the package is imported once, not once per test that
    needs real processes (kill -9, concurrent applies, commands run with exactly the
    environment a security test gives them).
    """
    return cli_processes_helper(os.environ)


@pytest.fixture(scope="session", autouse=True)
def _end_the_process_helper() -> Iterator[None]:
    """Ends the helper of :func:`cli_processes` at the end of the run, if one was started."""
    yield
    close_shared()


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    """The Jobs API address of a running Ray head, one for the whole run: the head in
    ``RECONCILER_TEST_RAY_ADDRESS`` (``.ci/run`` starts one), or one started for the session
    (tests/train/rayhead.py); the test skips with the reason when none can run."""
    import httpx

    from tests.train.rayhead import Head, start_head, stop_head

    given = os.environ.get("RECONCILER_TEST_RAY_ADDRESS")
    if given:
        try:
            httpx.get(f"{given}/api/version", timeout=5).raise_for_status()
        except httpx.HTTPError as exc:
            pytest.skip(
                f"the Ray head in RECONCILER_TEST_RAY_ADDRESS ({given}) does not answer: {exc}"
            )
        yield given
        return
    head: Head | None = None
    try:
        head = start_head()
    except RuntimeError as exc:
        pytest.skip(f"no Ray head: {exc}")
    try:
        yield head.address
    finally:
        stop_head(head)


SHARED_UNITS: dict[str, tuple[str, ...]] = {
    # Import torch and transformers into the worker (seconds per process) to train or
    # tokenize in it.
    "torch": (
        "tests/train/test_train_cpu.py",
        "tests/train/test_train_render_data.py",
        "tests/security/test_operator_inputs.py",
    ),
    # Draw plots in the worker: matplotlib's import is a second of CPU.
    "plot": (
        "tests/observe/test_observe_plot.py",
        "tests/observe/test_observe_cli_e2e.py",
        "tests/observe/test_observe_sandbox_e2e.py",
    ),
    # Hold requests and answers to the reference API documents: the Mistral one, 650 kB of
    # YAML, takes half a second to read.
    "contract": (
        "tests/contract/test_contract_checker.py",
        "tests/contract/test_contract_openai_requests.py",
        "tests/contract/test_contract_requests.py",
        "tests/contract/test_contract_responses.py",
        "tests/sandbox/test_contract.py",
        "tests/sandbox/test_openai_contract.py",
        "tests/sandbox/test_openai_sdk.py",
    ),
}
"""Test modules that share an expensive set-up, by unit of work: each group is one unit under
``--dist loadscope``, so one worker, not each, pays for the set-up."""

_SHARED_UNIT_OF = {path: unit for unit, paths in SHARED_UNITS.items() for path in paths}


def _unit_of_work(path: str) -> str:
    """The unit of work of the module at ``path`` (relative to the root): the module itself,
    but one unit per group of :data:`SHARED_UNITS` and one for the Ray modules (``*_ray_*``:
    they share one Ray head of two CPUs, and their jobs would queue for it if several workers
    ran them at once)."""
    if path in _SHARED_UNIT_OF:
        return _SHARED_UNIT_OF[path]
    if "ray" in Path(path).stem.split("_"):
        return "ray"
    return path


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadscope`` with a module as the unit of work (as xdist's own, for test
    functions), but the units of :func:`_unit_of_work`."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModuleScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _unit_of_work(nodeid.split("::", 1)[0])

    return ModuleScheduling(config, log)


LONG_WAITS = ("ray_address", "tiny_model")
"""Fixtures of tests that spend tens of seconds waiting on other processes (a Ray head, a
trainer)."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules of the longest tests first: first those of tests that train a model or
    use the Ray head, then those of tests marked ``slow``, then the modules that build a
    module-scoped fixture (a pipeline over every example, the CI recipes' flows), then the rest.

    Spread over several workers (``pytest -n 3 --dist loadscope``, as ``.ci/run`` does: each
    module on one worker, so a module-scoped fixture runs once), a long module started last
    would run alone at the end; started first, it runs beside the rest. The trainer's and the
    Ray tests come first of all so that xdist hands their units (:func:`_unit_of_work`) to two
    workers at the start: the trainer's worker then builds the tiny model the Ray tests take
    later, and the worker of the Ray tests never imports torch to build it. Modules stay whole,
    and in collection order within each group.
    """

    def rank(item: pytest.Item) -> int:
        names = getattr(item, "fixturenames", ())
        if any(name in names for name in LONG_WAITS):
            return 0
        if item.get_closest_marker("slow"):
            return 1
        info = getattr(item, "_fixtureinfo", None)
        definitions = info.name2fixturedefs.values() if info is not None else ()
        return 2 if any(d and d[-1].scope == "module" for d in definitions) else 3

    ranks: dict[Path, int] = {}
    for item in items:
        ranks[item.path] = min(ranks.get(item.path, 3), rank(item))
    items.sort(key=lambda item: ranks[item.path])


@pytest.fixture(autouse=True, scope="session")
def _commands_poll_fast() -> Iterator[None]:
    """Commands run in this process poll their remote at the pace of the tests' sandboxes
    (see tests/fast_polls.py)."""
    with fast_polls():
        yield
