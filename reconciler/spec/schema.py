"""JSON Schema and Markdown reference of the spec language, generated from the models.

``schemas/reconciler-v1.schema.json`` is the output of :func:`schema_text`, committed so editors
(yaml-language-server) can complete and check specs; a test keeps it equal to the models. The
README's spec reference is :func:`spec_reference_markdown`, checked the same way.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, TypeAdapter
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from reconciler.spec.models import HYPERPARAMETER_FIELDS, KINDS, Document

SCHEMA_FILENAME = "reconciler-v1.schema.json"
"""File name of the committed schema inside ``schemas/``."""

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


_KIND_DESCRIPTION = "The document's kind; selects which fields it takes."
_COMMON_LAST = ("apiVersion", "labels", "description")


def spec_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one spec document: ``oneOf`` the kinds."""
    schema = TypeAdapter(Document).json_schema(by_alias=True, mode="validation")
    # 'discriminator' is an OpenAPI keyword, not JSON Schema; 'kind' being required with a
    # 'const' per kind already makes exactly one branch match.
    schema.pop("discriminator", None)
    defs = schema["$defs"]
    for kind in KINDS:
        body = defs[kind]
        body["required"] = sorted({*body.get("required", []), "kind"})
        body["properties"]["kind"].pop("default", None)
        body["properties"]["kind"]["description"] = _KIND_DESCRIPTION
    matrix = defs["FineTuningJob"]["properties"]["matrix"]
    for option in matrix.get("anyOf", []):
        if option.get("type") == "object":
            option["propertyNames"] = {"enum": [*HYPERPARAMETER_FIELDS, "model"]}
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "reconciler spec document (reconciler/v1)",
        "description": "One YAML document of a reconciler spec; 'kind' selects its type.",
        **schema,
    }


def schema_text() -> str:
    """The schema as committed: 2-space indent, sorted keys, trailing newline."""
    return json.dumps(spec_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schema(directory: Path) -> Path:
    """Write the schema into ``directory`` (created if needed); returns the file written."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / SCHEMA_FILENAME
    target.write_text(schema_text(), encoding="utf-8")
    return target


def schema_drift(directory: Path) -> str | None:
    """None when ``directory``'s schema file equals the models, else what is wrong."""
    target = directory / SCHEMA_FILENAME
    try:
        current = target.read_text(encoding="utf-8")
    except OSError:
        return f"{target} does not exist; run `reconciler schema --write {directory}`"
    if current != schema_text():
        return (
            f"{target} differs from the spec models; run `reconciler schema --write {directory}` "
            "and commit the result"
        )
    return None


# --------------------------------------------------------------------------- Markdown


def spec_reference_markdown() -> str:
    """Markdown reference: one table per kind, then one per nested type (field, type, default,
    description), in the order of the models."""
    lines: list[str] = []
    nested: list[type[BaseModel]] = []
    for kind, kind_model in KINDS.items():
        lines += _table(f"`{kind}`", kind_model, nested)
    seen: set[type[BaseModel]] = {*KINDS.values()}
    while nested:
        model = nested.pop(0)
        if model in seen:
            continue
        seen.add(model)
        lines += _table(f"`{model.__name__}` (nested)", model, nested)
    return "\n".join(lines).rstrip() + "\n"


def _table(title: str, model: type[BaseModel], nested: list[type[BaseModel]]) -> list[str]:
    doc = " ".join((model.__doc__ or "").split())
    lines = [f"#### {title}", "", doc, "", "| field | type | default | description |"]
    lines.append("| --- | --- | --- | --- |")
    fields = list(model.model_fields.items())
    if "kind" in model.model_fields:
        # Reading order: kind and name first, the fields every kind shares last.
        fields.sort(
            key=lambda item: (
                {"kind": 0, "name": 1}.get(item[0], 3 if item[0] in _COMMON_LAST else 2),
                _COMMON_LAST.index(item[0]) if item[0] in _COMMON_LAST else 0,
            )
        )
    for name, info in fields:
        key = info.alias or name
        if name == "kind":
            lines.append(
                f"| `kind` | {_cell(_type_text(info.annotation, nested))} | required "
                f"| {_KIND_DESCRIPTION} |"
            )
            continue
        lines.append(
            f"| `{key}` | {_cell(_type_text(info.annotation, nested))} | {_cell(_default(info))} "
            f"| {_cell(info.description or '')} |"
        )
    lines.append("")
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _default(info: FieldInfo) -> str:
    if info.is_required():
        return "required"
    if info.default_factory is not None:
        value = info.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "see type"
        return f"`{json.dumps(value)}`"
    if info.default is PydanticUndefined or info.default is None:
        return "—"
    return f"`{json.dumps(info.default)}`"


_SCALARS = {str: "string", int: "integer", float: "number", bool: "boolean"}


def _type_text(annotation: Any, nested: list[type[BaseModel]]) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if origin is typing.Annotated:
        return _type_text(args[0], nested)
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [_type_text(a, nested) for a in args if a is not type(None)]
        return " or ".join(parts)
    if origin is list:
        return f"list of {_type_text(args[0], nested)}"
    if origin is dict:
        return f"map of {_type_text(args[1], nested)}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        nested.append(annotation)
        return annotation.__name__
    return str(annotation)  # pragma: no cover - every annotation of the models is handled
