"""``yaml.safe_load`` through libyaml when PyYAML has it: the same documents, read about ten
times faster (the tests read the CI recipes and the reference API documents many times)."""

from __future__ import annotations

from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str) -> Any:
    """What ``yaml.safe_load(text)`` returns."""
    return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a safe loader, C or Python
