"""Checks of what the client sends, and samples of what it may receive, from the reference.

:class:`RequestChecker` judges one recorded request against a vendored OpenAPI document
(Mistral's ``tests/reference/mistral-openapi.yaml``, or OpenAI's): the method and path exist,
every query parameter is declared and its value has the declared type (repeated keys are an
exploded array, as OpenAPI's default ``form`` style says; ``name[key]=value`` keys make the
object of a ``deepObject`` parameter), a JSON body validates against the
operation's ``requestBody`` schema, a multipart body has the declared fields (the file part
with a filename, the other fields with valid values), the ``Accept`` header admits what the
operation answers, and the declared bearer authentication is sent. Request schemas are read
strictly: an object takes only the properties it names (the API's request models forbid extra
fields), and ``format`` is checked (``uuid``, ``date-time``).

The document is OpenAPI 3.1, whose schemas are JSON Schema 2020-12 (``type: 'null'``); a 3.0
document (``nullable: true``, boolean ``exclusiveMinimum``) is translated to that first, so
the same checker reads either.

:func:`sample` builds an instance of a response schema — only the required properties, or
with every nullable property ``null``, or with every optional property ``null`` (a null the
contract does not allow, which real servers send anyway) — for the response-model tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from tests.sandbox.contract import Contract, mistral_contract

URI = "urn:reconciler-request-contract"

FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # RFC 3339: a date, a time and an explicit offset (jsonschema checks it only with an
    # optional extra installed).
    if not isinstance(value, str):
        return True
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return "T" in value.upper() and parsed.tzinfo is not None


def mistral_reference() -> Contract:
    """The vendored Mistral contract: the one the sandbox's answers are held to, read once per
    test process (:func:`tests.sandbox.contract.mistral_contract`)."""
    return mistral_contract()


@dataclass(frozen=True)
class Sent:
    """One request as it left the client.

    Attributes:
        method: HTTP method.
        path: URL path.
        query: query parameters in order, repeated keys kept.
        content_type: the ``Content-Type`` header ('' without a body).
        body: the body bytes.
        accept: the ``Accept`` header ('' without one).
        auth_scheme: the scheme of the ``Authorization`` header, lower case (never the key).
    """

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    content_type: str
    body: bytes
    accept: str = ""
    auth_scheme: str = ""

    @classmethod
    def of(cls, method: str, url_path: str, raw_query: str, headers: Any, body: bytes) -> Sent:
        return cls(
            method,
            url_path,
            tuple(parse_qsl(raw_query, keep_blank_values=True)),
            headers.get("content-type", ""),
            body,
            headers.get("accept", ""),
            headers.get("authorization", "").partition(" ")[0].lower(),
        )

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in self.query)
        return f"{self.method} {self.path}" + (f"?{query}" if query else "")


def _pointer(*parts: str) -> str:
    return URI + "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _bottom_up(node: Any, fix: Callable[[dict[str, Any]], Any]) -> Any:
    """``node`` with ``fix`` applied to every object in it, innermost first."""
    if isinstance(node, list):
        return [_bottom_up(v, fix) for v in node]
    if not isinstance(node, dict):
        return node
    return fix({k: _bottom_up(v, fix) for k, v in node.items()})


def _from_openapi_30(schema: dict[str, Any]) -> Any:
    """An OpenAPI 3.0 schema's keywords as JSON Schema 2020-12 (``nullable``, boolean
    ``exclusiveMinimum``/``exclusiveMaximum``)."""
    for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(flag), bool):
            if schema.pop(flag) and bound in schema:
                schema[flag] = schema.pop(bound)
    if schema.pop("nullable", False) is True:
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
        if "type" not in schema:
            return {"anyOf": [schema, {"type": "null"}]}
    return schema


def _closed(schema: dict[str, Any]) -> dict[str, Any]:
    """An object schema that names its properties takes no others."""
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    return schema


def _candidates(value: str) -> list[Any]:
    """The typed values a query or form string may stand for (the schema picks one)."""
    out: list[Any] = [value]
    if value in ("true", "false"):
        out.append(value == "true")
    if re.fullmatch(r"[+-]?\d+", value):
        out.append(int(value))
    elif re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", value):
        out.append(float(value))
    return out


def _admits(media_range: str, media: str) -> bool:
    """Whether an Accept media range (``*/*``, ``type/*`` or exact) admits ``media``."""
    kind, _, sub = media_range.partition("/")
    got_kind, _, got_sub = media.lower().partition("/")
    return kind == "*" or (kind == got_kind and sub in ("*", got_sub))


def _errors(validator: jsonschema.protocols.Validator, instance: Any) -> list[str]:
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) + ': ' if e.absolute_path else ''}"
        f"{e.message[:200]}"
        for e in found
    ]


class RequestChecker:
    """Judges recorded requests against an OpenAPI document (see the module docstring)."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        doc = contract.doc
        if str(doc.get("openapi", "")).startswith("3.0"):
            doc = _bottom_up(doc, _from_openapi_30)
        self.doc: dict[str, Any] = _bottom_up(doc, _closed)  # a copy: the contract is shared
        resource = Resource.from_contents(self.doc, default_specification=DRAFT202012)
        self.registry: Registry[Any] = Registry().with_resource(URI, resource)

    def _validator(self, *parts: str) -> jsonschema.protocols.Validator:
        return jsonschema.Draft202012Validator(
            {"$ref": _pointer(*parts)}, registry=self.registry, format_checker=FORMATS
        )

    def _resolve(self, node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = self.doc["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
        return node

    def violations(self, sent: Sent) -> list[str]:
        """What in ``sent`` the contract does not allow (empty when it conforms)."""
        try:
            template = self.contract.template(sent.path)
        except AssertionError:
            return [f"{sent}: no path of the contract matches {sent.path}"]
        method = sent.method.lower()
        if method not in self.doc["paths"][template]:
            return [f"{sent}: the contract has no {sent.method} {template}"]
        where = ("paths", template, method)
        operation = self.doc["paths"][template][method]
        problems = list(self._parameters(sent, template, where, operation))
        problems += self._body(sent, where, operation)
        problems += self._headers(sent, operation)
        return [f"{sent}: {p}" for p in problems]

    def _parameters(
        self, sent: Sent, template: str, where: tuple[str, ...], operation: dict[str, Any]
    ) -> Iterator[str]:
        declared = {
            (p["in"], p["name"]): (str(i), p)
            for i, p in enumerate(operation.get("parameters") or [])
        }
        # Path parameters: the concrete segments, checked like any other value (uuid ids).
        names = re.findall(r"\{([^}]+)\}", template)
        pattern = re.sub(r"\{[^}]+\}", "([^/]+)", template)
        base = self.contract.base
        path = sent.path[len(base) :] if base and sent.path.startswith(base + "/") else sent.path
        match = re.fullmatch(pattern, path)
        assert match is not None
        for name, value in zip(names, match.groups(), strict=True):
            if ("path", name) not in declared:
                yield f"path parameter {name} is not declared"
                continue
            index, _ = declared[("path", name)]
            v = self._validator(*where, "parameters", index, "schema")
            if not any(v.is_valid(c) for c in _candidates(value)):
                yield f"path parameter {name}={value!r}: " + "; ".join(_errors(v, value))
        values: dict[str, list[str]] = {}
        for key, value in sent.query:
            values.setdefault(key, []).append(value)
        yield from self._deep_objects(values, declared, where)
        for key, given in values.items():
            if ("query", key) not in declared:
                yield f"query parameter {key!r} is not declared"
                continue
            index, _ = declared[("query", key)]
            v = self._validator(*where, "parameters", index, "schema")
            # Exploded form style: repeated keys (or one) make an array, when one is declared.
            typed = [_candidates(x)[-1] for x in given]
            if v.is_valid(typed) or v.is_valid(list(given)):
                continue
            if len(given) == 1 and any(v.is_valid(c) for c in _candidates(given[0])):
                continue
            shown = given[0] if len(given) == 1 else given
            yield f"query parameter {key}={shown!r}: " + "; ".join(
                _errors(v, typed[0] if len(typed) == 1 else typed)
            )
        for (where_in, name), (_, param) in declared.items():
            if where_in == "query" and param.get("required") and name not in values:
                yield f"required query parameter {name!r} is missing"

    def _deep_objects(
        self,
        values: dict[str, list[str]],
        declared: dict[tuple[str, str], tuple[str, dict[str, Any]]],
        where: tuple[str, ...],
    ) -> Iterator[str]:
        """Query parameters of ``style: deepObject`` (``metadata[k]=v``): the keys of each are
        gathered into one object (and taken out of ``values``), which the schema judges."""
        deep = {
            name: index
            for (where_in, name), (index, param) in declared.items()
            if where_in == "query" and param.get("style") == "deepObject"
        }
        objects: dict[str, dict[str, str]] = {}
        for key in list(values):
            found = re.fullmatch(r"([^\[\]]+)\[([^\[\]]+)\]", key)
            if found is not None and found.group(1) in deep:
                objects.setdefault(found.group(1), {})[found.group(2)] = values.pop(key)[-1]
        for name, value in objects.items():
            v = self._validator(*where, "parameters", deep[name], "schema")
            if not v.is_valid(value):
                yield f"query parameter {name}={value!r}: " + "; ".join(_errors(v, value))

    def _headers(self, sent: Sent, operation: dict[str, Any]) -> list[str]:
        problems = []
        answers = {
            media
            for status, response in operation.get("responses", {}).items()
            if str(status).startswith("2")
            for media in (response.get("content") or {})
        }
        ranges = [r.split(";")[0].strip().lower() for r in sent.accept.split(",") if r.strip()]
        if ranges and answers and not any(_admits(r, m) for r in ranges for m in answers):
            problems.append(f"Accept: {sent.accept} admits none of the answers {sorted(answers)}")
        schemes = self.doc.get("components", {}).get("securitySchemes", {})
        for requirement in operation.get("security", self.doc.get("security")) or []:
            for name in requirement:
                declared = schemes.get(name, {})
                wanted = str(declared.get("scheme", "")).lower()
                if declared.get("type") == "http" and wanted != sent.auth_scheme:
                    problems.append(
                        f"the {name} security scheme wants 'Authorization: {wanted.title()} ...'"
                    )
        return problems

    def _body(self, sent: Sent, where: tuple[str, ...], operation: dict[str, Any]) -> list[str]:
        declared = operation.get("requestBody")
        if declared is None:
            return ["a body is sent, but none is declared"] if sent.body else []
        if not sent.body:
            return ["the declared request body is missing"] if declared.get("required") else []
        media = sent.content_type.split(";")[0].strip().lower()
        if media not in declared["content"]:
            return [f"content type {media!r} is not one of {sorted(declared['content'])}"]
        schema_at = (*where, "requestBody", "content", media, "schema")
        if media == "application/json":
            try:
                body = json.loads(sent.body)
            except ValueError as exc:
                return [f"the JSON body does not parse: {exc}"]
            return [f"JSON body: {e}" for e in _errors(self._validator(*schema_at), body)]
        if media == "multipart/form-data":
            return self._multipart(sent, schema_at, declared["content"][media]["schema"])
        return []

    def _multipart(
        self, sent: Sent, schema_at: tuple[str, ...], schema: dict[str, Any]
    ) -> list[str]:
        head = f"Content-Type: {sent.content_type}\r\n\r\n".encode()
        message = BytesParser(policy=HTTP).parsebytes(head + sent.body)
        if not message.is_multipart():
            return ["the multipart body does not parse"]
        while "$ref" in schema:  # a named form (OpenAI's CreateFileRequest): point at it
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema_at = ("components", "schemas", name)
            schema = self.doc["components"]["schemas"][name]
        properties = schema.get("properties") or {}
        problems: list[str] = []
        seen: set[str] = set()
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if not isinstance(name, str) or name not in properties:
                problems.append(f"multipart field {name!r} is not declared")
                continue
            seen.add(name)
            field = self._resolve(properties[name])
            if field.get("format") == "binary":
                if not part.get_filename():
                    problems.append(f"multipart file field {name!r} has no filename")
                continue
            value = part.get_payload(decode=True)
            assert isinstance(value, bytes)
            text = value.decode()
            v = self._validator(*schema_at, "properties", name)
            if not any(v.is_valid(c) for c in _candidates(text)):
                problems.append(f"multipart field {name}={text!r}: " + "; ".join(_errors(v, text)))
        for name in schema.get("required") or []:
            if name not in seen:
                problems.append(f"required multipart field {name!r} is missing")
        return problems


# -- samples of response schemas ----------------------------------------------------------------

MINIMAL = "minimal"
"""Only the required properties."""
NULLABLE_NULL = "nullable-null"
"""Every property; the nullable ones null (valid under the contract)."""
OPTIONAL_NULL = "optional-null"
"""The required properties as usual and every optional one null, nullable or not."""

_UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def _nullable(schema: dict[str, Any]) -> bool:
    variants = schema.get("anyOf") or schema.get("oneOf") or []
    return schema.get("type") == "null" or any(v.get("type") == "null" for v in variants)


def sample(contract: Contract, schema: dict[str, Any], mode: str) -> Any:
    """An instance of ``schema`` (from ``contract``'s document) in ``mode`` (see above)."""
    while "$ref" in schema:
        schema = contract.schemas[schema["$ref"].rsplit("/", 1)[-1]]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    variants = schema.get("anyOf") or schema.get("oneOf") or schema.get("allOf")
    if variants:
        if mode != MINIMAL and _nullable(schema):
            return None
        return sample(contract, next(v for v in variants if v.get("type") != "null"), mode)
    kind = schema.get("type", "object")
    if kind == "object":
        out = {}
        required = set(schema.get("required") or [])
        for name, prop in (schema.get("properties") or {}).items():
            if name in required:
                out[name] = sample(contract, prop, mode if mode != OPTIONAL_NULL else MINIMAL)
            elif mode == OPTIONAL_NULL or (mode == NULLABLE_NULL and _nullable(prop)):
                out[name] = None
            elif mode == NULLABLE_NULL:
                out[name] = sample(contract, prop, mode)
        return out
    if kind == "array":
        return [sample(contract, schema.get("items") or {"type": "string"}, mode)]
    if kind == "string":
        return {"uuid": _UUID, "date-time": "2025-01-01T00:00:00Z"}.get(
            str(schema.get("format")), "x" * max(1, int(schema.get("minLength", 1)))
        )
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return float(schema.get("minimum", 0.5)) or 0.5
    if kind == "boolean":
        return bool(schema.get("default", False))
    return None
