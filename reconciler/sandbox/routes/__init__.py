"""The Mistral dialect's HTTP endpoints: one router per resource, plus the sandbox's own
hooks (which the OpenAI dialect, :mod:`..openai`, mounts too).

Every response body has the exact shape of the Mistral OpenAPI contract. Errors:
``{"detail": "..."}`` for 401/403/404/409/413 and business-rule 422s, FastAPI's
``{"detail": [{type, loc, msg, input, ctx}]}`` for invalid requests.

- :mod:`.files` — ``/v1/files`` and the signed download ``/sandbox/signed/{id}``;
- :mod:`.jobs` — ``/v1/fine_tuning/jobs`` (creation rules in :mod:`..job_rules`);
- :mod:`.models` — ``/v1/models`` and ``/v1/fine_tuning/models``;
- :mod:`.hooks` — ``/sandbox/health`` and ``/sandbox/journal``;
- :mod:`.common` — the store/config dependencies and error shapes they share.
"""

from __future__ import annotations

from reconciler.sandbox.routes import files, hooks, jobs, models

#: Every router of the sandbox, in the order they are mounted.
ROUTERS = (files.router, jobs.router, models.router, hooks.router)

__all__ = ["ROUTERS"]
