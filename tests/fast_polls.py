"""The pace at which commands run by the tests poll their remote.

The sandboxes the tests start run at 50 to 200 times real speed (a job is validated in 20 ms
and runs in 100 ms), but an apply waits 0.5 s before it first looks whether its new jobs were
validated, and ``apply --wait`` 1 s between looks: most of an end-to-end test's time was spent
asleep. What the polls see, and in which order, is what the tests check; the pace is not
(tests/engine/test_executor.py and tests/observe/ drive the poll loops on injected clocks).

:data:`POLLS` is applied to the test process for the whole run (tests/conftest.py) and to the
children of the suite's process helper (tests/cli_processes.py).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

POLLS: dict[str, float] = {
    # Before the first status poll of a job (the start gate, a replacement's cancel); 0.5 s.
    "reconciler.engine.executor:POLL_INTERVAL": 0.02,
    # Between the status polls of `apply --wait`; 1 s.
    "reconciler.cli.cmd_plan:WAIT_POLL_SECONDS": 0.05,
}
"""``{"module:NAME": seconds}``: the module constants the commands read their pace from."""


@contextmanager
def fast_polls() -> Iterator[None]:
    """:data:`POLLS` in this process while the block runs."""
    with pytest.MonkeyPatch.context() as patch:
        for target, value in POLLS.items():
            module, _, name = target.partition(":")
            patch.setattr(importlib.import_module(module), name, value)
        yield
