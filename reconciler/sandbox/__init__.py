"""The sandbox: a local server implementing the Mistral files and fine-tuning API, or (with
``SandboxConfig(dialect="openai")``) OpenAI's files, fine-tuning and models API.

It persists in SQLite under its data directory, validates uploads with the shared
training-data rules, runs a simulated job lifecycle on a configurable time scale, and can
inject faults and enforce a rate limit. It never trains a model. Both dialects share that
core; each has its own routers (:mod:`.routes`, :mod:`.openai`; see :mod:`.dialects`).

It depends only on the API contract (and on :mod:`reconciler.data.validator` for the data
rules), never on the reconciler's spec, engine or client.

Public API: :class:`SandboxConfig`, :class:`FaultSpec`, :func:`parse_faults`,
:func:`parse_rate`, :func:`create_app`, :class:`EmbeddedSandbox`, :func:`serve`, and the
clocks (:class:`SystemClock`, :class:`ManualClock` for tests that drive time forward).
"""

from reconciler.sandbox.app import SandboxAPI, create_app
from reconciler.sandbox.clock import Clock, ManualClock, SystemClock
from reconciler.sandbox.config import FaultSpec, SandboxConfig, parse_faults, parse_rate
from reconciler.sandbox.server import EmbeddedSandbox, SandboxStartError, serve

__all__ = [
    "Clock",
    "EmbeddedSandbox",
    "ManualClock",
    "FaultSpec",
    "SandboxAPI",
    "SandboxConfig",
    "SandboxStartError",
    "SystemClock",
    "create_app",
    "parse_faults",
    "parse_rate",
    "serve",
]
