"""Validation of sandbox responses against the reference Mistral OpenAPI document.

:class:`Contract` loads the document once, resolves ``$ref`` with ``referencing``, and checks
a response (method, concrete path, status, JSON body) against the operation's declared 200
schema — plus a stricter check that we emit no property the schema does not name, which
``additionalProperties``-free schemas would otherwise let through.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

URI = "urn:mistral-openapi"
_OPENAPI_ENV = "RECONCILER_OPENAPI_SPEC"


def openapi_path() -> Path | None:
    """The reference OpenAPI document: $RECONCILER_OPENAPI_SPEC, or ../shared/reference."""
    env = os.environ.get(_OPENAPI_ENV)
    if env:
        return Path(env)
    candidate = (
        Path(__file__).resolve().parents[2] / ".." / "shared" / "reference" / "mistral-openapi.yaml"
    )
    return candidate if candidate.is_file() else None


def _fix_numbers(node: Any) -> Any:
    # YAML 1.1 reads "1e-08" (no dot) as a string; the document means a number.
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and (
                isinstance(value, str)
            ):
                value = float(value)
            out[key] = _fix_numbers(value)
        return out
    if isinstance(node, list):
        return [_fix_numbers(v) for v in node]
    return node


class Contract:
    """The reference contract (see module docstring)."""

    def __init__(self, path: Path) -> None:
        self.doc: dict[str, Any] = _fix_numbers(
            yaml.load(path.read_text("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        )
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(URI, resource)
        self.schemas: dict[str, Any] = self.doc["components"]["schemas"]
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.doc["paths"]:
            pattern = re.sub(r"\{[^}]+\}", r"[^/]+", template)
            self._routes.append((re.compile(f"^{pattern}$"), template))

    def template(self, path: str) -> str:
        """The OpenAPI path template matching a concrete path."""
        matches = [t for rx, t in self._routes if rx.match(path)]
        if not matches:
            raise AssertionError(f"{path} matches no path of the contract")
        # Prefer the most literal template (fewest parameters).
        return min(matches, key=lambda t: t.count("{"))

    def response_schema(self, method: str, path: str, status: int = 200) -> dict[str, Any]:
        """The JSON schema of a response, wrapped for validation."""
        op = self.doc["paths"][self.template(path)][method.lower()]
        content = op["responses"][str(status)]["content"]
        schema = content["application/json"]["schema"]
        return self._wrap(schema)

    def _wrap(self, schema: dict[str, Any]) -> dict[str, Any]:
        # Relative refs ("#/components/...") must resolve against the whole document.
        return {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": URI + "-response",
            **_absolute(schema),
        }

    def validate(self, method: str, path: str, body: Any, status: int = 200) -> None:
        """Raise AssertionError when ``body`` breaks the declared response schema."""
        schema = self.response_schema(method, path, status)
        validator = jsonschema.Draft202012Validator(schema, registry=self.registry)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.path))
        if errors:
            lines = [f"{list(e.absolute_path)}: {e.message[:300]}" for e in errors[:5]]
            raise AssertionError(
                f"{method} {path} -> {status} breaks the contract:\n" + "\n".join(lines)
            )
        self._no_unknown_keys(schema, body, f"{method} {path}")

    def validate_schema(self, name: str, body: Any) -> None:
        """Validate against a named component schema (e.g. ``HTTPValidationError``)."""
        schema = self._wrap({"$ref": f"#/components/schemas/{name}"})
        jsonschema.Draft202012Validator(schema, registry=self.registry).validate(body)

    def _resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self.schemas[name]
        return schema

    def _no_unknown_keys(self, schema: dict[str, Any], body: Any, where: str) -> None:
        schema = self._resolve(schema)
        variants = schema.get("oneOf") or schema.get("anyOf")
        if variants:
            for variant in variants:
                resolved = self._resolve(variant)
                try:
                    jsonschema.Draft202012Validator(
                        self._wrap(variant), registry=self.registry
                    ).validate(body)
                except jsonschema.ValidationError:
                    continue
                self._no_unknown_keys(resolved, body, where)
                return
            return
        if isinstance(body, dict) and "properties" in schema:
            unknown = set(body) - set(schema["properties"])
            if unknown:
                raise AssertionError(f"{where}: properties not in the contract: {sorted(unknown)}")
            for key, value in body.items():
                self._no_unknown_keys(schema["properties"][key], value, where)
        elif isinstance(body, list) and "items" in schema:
            for item in body:
                self._no_unknown_keys(schema["items"], item, where)


def _absolute(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                f"{URI}{v}"
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _absolute(v)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute(v) for v in node]
    return node
