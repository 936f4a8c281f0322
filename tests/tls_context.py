"""One default TLS context per test process instead of one per HTTP client.

httpx builds an ``ssl.SSLContext`` for every client and transport it makes, and loads certifi's
CA bundle into each: 40–60 ms of CPU on a 2-core machine. The suite makes hundreds of clients
(every command run in-process makes its own, and so do the tests that talk to a sandbox), all
of them speaking plain HTTP to servers on 127.0.0.1, so that was the biggest single cost of
the suite: 630 contexts, 39 s of a 290 s run.

:func:`share_default_context` makes httpx build the default context (``verify=True``, no
client certificate) once per process and CA setting (``SSL_CERT_FILE`` / ``SSL_CERT_DIR``,
which httpx reads when ``trust_env`` is on) and hand that same context to every client after
it. A context is only read when a connection is wrapped, so sharing it changes nothing a
client does; any other ``verify`` or ``cert`` still gets a context of its own.
"""

from __future__ import annotations

import importlib
import os
import ssl
import threading
from typing import Any

_MODULE = "httpx._transports.default"
"""Where httpx's transports look the context builder up (by its name, at each build)."""

_MARK = "_reconciler_tests_shared"


def share_default_context() -> bool:
    """Install the sharing builder; False when this httpx has no builder where we look (the
    suite then only runs slower)."""
    module = importlib.import_module(_MODULE)
    build = getattr(module, "create_ssl_context", None)
    if build is None:
        return False
    if getattr(build, _MARK, False):
        return True
    built: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}
    lock = threading.Lock()

    def shared(verify: Any = True, cert: Any = None, trust_env: bool = True) -> ssl.SSLContext:
        if verify is not True or cert is not None:
            context: ssl.SSLContext = build(verify=verify, cert=cert, trust_env=trust_env)
            return context
        key = (
            trust_env,
            os.environ.get("SSL_CERT_FILE") if trust_env else None,
            os.environ.get("SSL_CERT_DIR") if trust_env else None,
        )
        with lock:
            if key not in built:
                built[key] = build(verify=True, cert=None, trust_env=trust_env)
            return built[key]

    setattr(shared, _MARK, True)
    module.create_ssl_context = shared
    return True
