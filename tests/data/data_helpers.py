"""Helpers for data tests: Dataset documents built directly (no YAML needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reconciler.errors import Location
from reconciler.spec.models import Dataset
from reconciler.spec.resolved import LoadedDocument


def dataset(base_dir: Path, **fields: Any) -> LoadedDocument[Dataset]:
    """A Dataset document as the loader would return it, located at ``specs.yaml:1:1``."""
    fields.setdefault("name", "ds")
    return LoadedDocument(
        doc=Dataset(**fields),
        location=Location("specs.yaml", 1, 1),
        base_dir=base_dir,
        field_locations={("on_invalid",): Location("specs.yaml", 5, 13)},
    )
