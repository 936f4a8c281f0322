"""The OpenAI dialect of the sandbox: OpenAI's files, fine-tuning and models API.

A second set of routers and serializers over the shared core (store, lifecycle, gate,
journal): the sandbox speaks it with ``dialect="openai"`` (``reconciler sandbox --dialect
openai``). The contract is OpenAI's reference document (files, ``fine_tuning/jobs`` and
models paths); where it is silent, the sandbox does what the service does (errors, 404s,
validation of the training files).

- :mod:`.files` — ``/v1/files``;
- :mod:`.jobs` — ``/v1/fine_tuning/jobs`` with events, checkpoints, cancel, pause, resume
  (creation rules in :mod:`.rules`, request bodies in :mod:`.schemas`);
- :mod:`.models` — ``/v1/models``;
- :mod:`.render` — the objects as the API shows them; :mod:`.naming` — ids and model names;
  :mod:`.catalogue` — the fine-tunable base models; :mod:`.errors` — the error shape.

The sandbox's own hooks (``/sandbox/health``, ``/sandbox/journal``) are the same as the
Mistral dialect's.
"""

from __future__ import annotations

from reconciler.sandbox.openai import files, jobs, models
from reconciler.sandbox.routes import hooks

#: Every router of the OpenAI dialect, in the order they are mounted.
ROUTERS = (files.router, jobs.router, models.router, hooks.router)

__all__ = ["ROUTERS"]
