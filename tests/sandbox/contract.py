"""Validation of sandbox responses against the reference OpenAPI documents.

The documents are vendored under ``tests/reference`` (see its README), so the contract tests
never depend on anything beside the repository. :func:`mistral_contract` and
:func:`openai_contract` load them; a :class:`Contract` resolves ``$ref`` with
``referencing`` and checks a response (method, concrete path, status, JSON body) against the
operation's declared 200 schema — plus a stricter check that we emit no property the schema
does not name, which ``additionalProperties``-free schemas would otherwise let through.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.yaml_text import safe_load

#: Where the reference documents are vendored.
REFERENCE_DIR = Path(__file__).resolve().parents[1] / "reference"


def reference(name: str) -> Path:
    """A vendored reference document (AssertionError if it is missing: never a skip)."""
    path = REFERENCE_DIR / name
    assert path.is_file(), f"reference document {path} is missing from the repository"
    return path


def _fix_numbers(node: Any) -> Any:
    """Read bounds as JSON Schema 2020-12 means them.

    YAML 1.1 reads "1e-08" (no dot) as a string; the document means a number. And the OpenAI
    document writes some exclusive bounds the OpenAPI 3.0 way (``minimum: 0`` with
    ``exclusiveMinimum: true``), which 2020-12 would read as a bound of 1; they become
    ``exclusiveMinimum: 0``.
    """
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum") and (
                isinstance(value, str)
            ):
                value = float(value)
            out[key] = _fix_numbers(value)
        for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
            if isinstance(out.get(exclusive), bool):
                if out.pop(exclusive) and bound in out:
                    out[exclusive] = out.pop(bound)
        return out
    if isinstance(node, list):
        return [_fix_numbers(v) for v in node]
    return node


class Contract:
    """A reference contract (see module docstring).

    Attributes:
        doc: the OpenAPI document (with its errata applied).
        base: the path prefix of the document's server URL (``/v1`` for OpenAI, whose paths
            are written without it); stripped from concrete paths before matching.
        uri: the URI the document is registered under (resolves its ``$ref``).
    """

    def __init__(
        self,
        path: Path,
        *,
        base: str = "",
        errata: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.doc: dict[str, Any] = _fix_numbers(safe_load(path.read_text("utf-8")))
        if errata is not None:
            errata(self.doc)
        self.base = base
        self.uri = f"urn:{path.stem}"
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(self.uri, resource)
        self.schemas: dict[str, Any] = self.doc["components"]["schemas"]
        self._routes: list[tuple[re.Pattern[str], str]] = []
        for template in self.doc["paths"]:
            pattern = re.sub(r"\{[^}]+\}", r"[^/]+", template)
            self._routes.append((re.compile(f"^{pattern}$"), template))

    def operations(self, *prefixes: str) -> set[tuple[str, str]]:
        """(METHOD, template) of every operation whose path starts with one of ``prefixes``."""
        return {
            (method.upper(), template)
            for template, ops in self.doc["paths"].items()
            if template.startswith(prefixes)
            for method in ops
            if method in ("get", "post", "patch", "delete")
        }

    def template(self, path: str) -> str:
        """The OpenAPI path template matching a concrete path (with the base prefix)."""
        if self.base and path.startswith(self.base + "/"):
            path = path[len(self.base) :]
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
            "$id": self.uri + "-response",
            **_absolute(schema, self.uri),
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
        self.validate_against({"$ref": f"#/components/schemas/{name}"}, body)

    def validate_against(self, schema: dict[str, Any], body: Any) -> None:
        """Validate against ``schema`` (which may refer to the document's components)."""
        wrapped = self._wrap(schema)
        jsonschema.Draft202012Validator(wrapped, registry=self.registry).validate(body)
        self._no_unknown_keys(schema, body, "body")

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


def _absolute(node: Any, uri: str) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                f"{uri}{v}"
                if k == "$ref" and isinstance(v, str) and v.startswith("#")
                else _absolute(v, uri)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_absolute(v, uri) for v in node]
    return node


def _openai_errata(doc: dict[str, Any]) -> None:
    """The corrections of the OpenAI document (see tests/reference/README.md)."""
    schemas = doc["components"]["schemas"]
    # The service answers /pause with a job whose status is "paused", as the document's own
    # example shows, while the status enum omits it.
    status = schemas["FineTuningJob"]["properties"]["status"]
    assert "paused" not in status["enum"], "the reference now lists 'paused': drop the erratum"
    status["enum"] = [*status["enum"], "paused"]
    # An empty list of files has no first or last id: the service sends null, as the
    # document allows for the list of checkpoints.
    files = schemas["ListFilesResponse"]["properties"]
    for key in ("first_id", "last_id"):
        assert files[key] == {"type": "string", "example": files[key].get("example")}
        files[key] = {"anyOf": [{"type": "string"}, {"type": "null"}]}


#: The shape of every OpenAI error answer; the reference document does not declare one.
OPENAI_ERROR = {
    "type": "object",
    "additionalProperties": False,
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "additionalProperties": False,
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string", "minLength": 1},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}


@cache
def mistral_contract() -> Contract:
    """The Mistral files and fine-tuning contract (loaded once per test run)."""
    return Contract(reference("mistral-openapi.yaml"))


@cache
def openai_contract() -> Contract:
    """The OpenAI files, fine-tuning and models contract (loaded once per test run)."""
    return Contract(reference("openai-finetuning-openapi.yaml"), base="/v1", errata=_openai_errata)


class Recorder:
    """An httpx response hook that keeps every response (read) in :attr:`seen`."""

    def __init__(self) -> None:
        self.seen: list[httpx.Response] = []

    def __call__(self, response: httpx.Response) -> None:
        response.read()
        self.seen.append(response)


def check_openai_answers(seen: list[httpx.Response]) -> tuple[set[tuple[str, str]], list[int]]:
    """Validate every answer of an OpenAI-dialect sandbox: a 200 JSON body against its
    operation (a file's content is no JSON), an error against :data:`OPENAI_ERROR`.

    Returns the (METHOD, template) operations answered 200, and every status seen. Raises
    AssertionError at the first answer that breaks the contract.
    """
    contract = openai_contract()
    checked: set[tuple[str, str]] = set()
    statuses: list[int] = []
    for response in seen:
        method, path = response.request.method, response.request.url.path
        statuses.append(response.status_code)
        if response.status_code == 200 and path.endswith("/content"):
            continue
        body = response.json()
        if response.status_code == 200:
            contract.validate(method, path, body)
            checked.add((method, contract.template(path)))
        else:
            contract.validate_against(OPENAI_ERROR, body)
    return checked, statuses


def openai_json_operations() -> set[tuple[str, str]]:
    """(METHOD, template) of every OpenAI operation the sandbox implements, but the download."""
    return openai_contract().operations("/files", "/fine_tuning/jobs", "/models") - {
        ("GET", "/files/{file_id}/content")
    }
