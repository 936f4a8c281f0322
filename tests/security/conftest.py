"""Fixtures of the security tests: no ambient trust settings, an empty secret registry."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.redact import forget_secrets
from reconciler.spec.trust import ENDPOINTS_ENV, PATHS_ENV, SECRETS_ENV


@pytest.fixture(autouse=True)
def _clean_trust_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the operator's defaults and sees no other test's secrets."""
    for name in (ENDPOINTS_ENV, SECRETS_ENV, PATHS_ENV):
        monkeypatch.delenv(name, raising=False)
    forget_secrets()
    yield
    forget_secrets()
