"""The plan: an inert, serializable value describing what apply will do, and why.

A plan lists, per address, one :class:`Change` with an :class:`Action` and a machine-readable
reason; drift (objects changed outside reconciler) separately; and objects in the state that
the specs no longer name. It carries the state lineage and serial it was made against and a
digest of the specs and prepared data, so a saved plan is refused once either moved on.

The JSON form (``plan --format json`` and ``plan --out FILE``) is versioned by
``format_version`` (``MAJOR.MINOR``: consumers ignore unknown keys within a major version and
reject an unknown major). It never contains a secret: W&B keys appear as their reference
(``{"env": "WANDB_API_KEY"}``).
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from reconciler.errors import PlanError

PLAN_FORMAT_VERSION = "1.0"


class Action(StrEnum):
    """What apply does to an address."""

    NOOP = "no-op"
    CREATE = "create"
    UPDATE = "update"
    REPLACE = "replace"
    START = "start"
    DELETE = "delete"
    FORGET = "forget"

    @property
    def symbol(self) -> str:
        """Terraform-like one-glyph (or three) marker for text output."""
        return {
            "no-op": " ",
            "create": "+",
            "update": "~",
            "replace": "-/+",
            "start": ">",
            "delete": "-",
            "forget": "-",
        }[self.value]


class Change(BaseModel):
    """One planned change.

    Attributes:
        address: e.g. ``job.dumbledore-v1``.
        type: ``file`` or ``job``.
        action: what apply does.
        reason: machine-readable why, e.g. ``not-in-state``, ``spec-changed``,
            ``replace-by-request``, ``validated-not-started``, ``model-metadata-changed``,
            ``deleted-remotely``, ``recover-intent``, ``not-in-spec``. For humans and
            policies; apply does not branch on it.
        before: what exists now (remote id, status, request summary), None for creates.
        after: what will exist (request summary, lifecycle settings), None for deletes.
        replace_paths: request fields whose change forces a new job.
        previous: for replaces, the old object and what happens to it
            (``{"id", "status", "disposition": "cancel" | "keep", "fine_tuned_model",
            "model_disposition"}``).
        update_fields: for updates, field → {before, after}.
        depends_on: addresses that must be applied first.
        cost: cost estimate ``{"amount", "currency", "source"}`` where the remote gives one.
        blocked: why apply will refuse this change (e.g. a possible duplicate), with a hint.
    """

    model_config = ConfigDict(extra="forbid")

    address: str
    type: str
    action: Action
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    replace_paths: list[str] = Field(default_factory=list)
    previous: dict[str, Any] | None = None
    update_fields: dict[str, dict[str, Any]] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    cost: dict[str, Any] | None = None
    blocked: str | None = None


class Drift(BaseModel):
    """An object that changed outside reconciler.

    Attributes:
        address: the managed address.
        remote_id: the remote object.
        kind: ``deleted``, ``cancelled``, ``failed``, ``failed-validation``, ``archived``...
        message: one line for humans, with what to do about it.
    """

    model_config = ConfigDict(extra="forbid")

    address: str
    remote_id: str | None
    kind: str
    message: str


class Plan(BaseModel):
    """The whole plan. See the module docstring for the compatibility rules.

    Attributes:
        format_version: ``MAJOR.MINOR`` of this layout.
        tool_version: reconciler version that made it.
        created_at: unix seconds.
        target: where it applies (``embedded sandbox (...)``, ``mistral https://...``).
        spec_paths: the spec paths it was made from, relative to the working directory.
        lineage / serial: of the state it was made against (None: no state yet).
        spec_digest: digest of the specs and the prepared data contents.
        changes: every change, in execution order (no-ops included, action ``no-op``).
        drift: objects changed outside reconciler.
        not_in_spec: managed addresses the specs no longer name (acted on only with prune).
        warnings: other things worth reading.
        options: targets / replace / prune the plan was made with.
        models_kept: fine-tuned models kept after apply (for the storage-cost line).
        storage_cost_per_model: monthly storage cost of one fine-tuned model (USD).
    """

    model_config = ConfigDict(extra="forbid")

    format_version: str = PLAN_FORMAT_VERSION
    tool_version: str
    created_at: float
    target: str
    spec_paths: list[str]
    lineage: str | None
    serial: int | None
    spec_digest: str
    changes: list[Change]
    drift: list[Drift] = Field(default_factory=list)
    not_in_spec: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    options: dict[str, Any] = Field(default_factory=dict)
    models_kept: int = 0
    storage_cost_per_model: float = 2.0

    @property
    def actionable(self) -> list[Change]:
        """Changes that do something (not no-ops)."""
        return [c for c in self.changes if c.action is not Action.NOOP]

    @property
    def has_changes(self) -> bool:
        """True when apply would change anything."""
        return bool(self.actionable)

    def summary(self) -> dict[str, int]:
        """Counts per action (all actions present, zeros included)."""
        counts = {a.value: 0 for a in Action}
        for change in self.changes:
            counts[change.action.value] += 1
        return counts

    def to_json_dict(self) -> dict[str, Any]:
        """The documented JSON form (adds ``summary``)."""
        data = self.model_dump(mode="json")
        data["summary"] = self.summary()
        data["has_changes"] = self.has_changes
        return data

    def save(self, path: Path) -> None:
        """Write the plan file (JSON)."""
        payload = {"kind": "reconciler-plan", **self.to_json_dict()}
        path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> Plan:
        """Read a plan file; a file that is not one is a PlanError."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PlanError(f"{path}: not a readable plan file ({exc})") from exc
        if not isinstance(data, dict) or data.get("kind") != "reconciler-plan":
            raise PlanError(f"{path}: not a reconciler plan file (made by 'reconciler plan --out')")
        major = str(data.get("format_version", "")).split(".")[0]
        if major != PLAN_FORMAT_VERSION.split(".")[0]:
            raise PlanError(
                f"{path}: plan format {data.get('format_version')} is not supported by this "
                f"version (expects {PLAN_FORMAT_VERSION}); re-run 'reconciler plan'"
            )
        for key in ("kind", "summary", "has_changes"):
            data.pop(key, None)
        try:
            return cls.model_validate(data)
        except Exception as exc:  # pydantic.ValidationError: a damaged or edited file
            raise PlanError(f"{path}: damaged plan file ({exc.__class__.__name__})") from exc
