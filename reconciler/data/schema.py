"""M12's check: is a tool's ``parameters`` a valid JSON Schema (draft 7)?

The meta-schema check of ``jsonschema`` (imported on first use: it is slow to import and
only tools need it), with a structural fallback when it is missing. Results are cached by
the schema's content in a bounded cache: a tools list usually repeats in every sample.

Only the standard library, orjson and (lazily) ``jsonschema`` are used: the sandbox server
imports the validator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from reconciler.data.registry import short

_MAX_SCHEMA_CACHE = 4096

_schema_cache: dict[bytes, str | None] = {}
_schema_checker: Callable[[Any], str | None] | None = None


def _make_schema_checker() -> Callable[[Any], str | None]:
    """Draft-7 meta-schema check via jsonschema when it is installed, else a structural one."""
    try:
        from jsonschema import Draft7Validator  # type: ignore[import-untyped]
        from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - jsonschema is a declared dependency
        return _basic_schema_check

    def check(schema: Any) -> str | None:
        try:
            Draft7Validator.check_schema(schema)
        except SchemaError as exc:
            return str(exc.message)
        return None

    return check


_JSON_TYPES = frozenset(("array", "boolean", "integer", "null", "number", "object", "string"))


def _basic_schema_check(schema: Any) -> str | None:
    """Fallback for M12 without jsonschema: the checks that catch real-world mistakes."""
    if type(schema) is not dict:
        return f"{short(schema)} is not of type 'object', 'boolean'"
    kind = schema.get("type")
    kinds = kind if type(kind) is list else [kind] if kind is not None else []
    for k in kinds:
        if k not in _JSON_TYPES:
            return f"{short(k)} is not valid under any of the given schemas"
    props = schema.get("properties")
    if props is not None:
        if type(props) is not dict:
            return f"{short(props)} is not of type 'object'"
        for sub in props.values():
            if type(sub) is not bool:
                err = _basic_schema_check(sub)
                if err:
                    return err
    required = schema.get("required")
    if required is not None and (
        type(required) is not list or any(type(r) is not str for r in required)
    ):
        return f"{short(required)} is not of type 'array' of strings"
    return None


def schema_problem(parameters: Any) -> str | None:
    """M12: the jsonschema message when ``parameters`` is not a valid Draft-7 schema."""
    global _schema_checker
    try:
        key = orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS)
    except Exception:  # unhashable exotic content: check without caching
        key = b""
    if key and key in _schema_cache:
        return _schema_cache[key]
    if _schema_checker is None:
        _schema_checker = _make_schema_checker()
    result = _schema_checker(parameters)
    if key:
        # Tools repeat across samples; a bounded cache keeps M12 off the hot path.
        if len(_schema_cache) >= _MAX_SCHEMA_CACHE:
            _schema_cache.clear()
        _schema_cache[key] = result
    return result
