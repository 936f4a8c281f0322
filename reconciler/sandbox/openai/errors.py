"""Errors the OpenAI way: ``{"error": {"message", "type", "param", "code"}}``.

The reference document declares no error shape; this is the one the service sends and the
official SDK reads (``error.message``, ``error.type``, ``error.param``, ``error.code``).
An invalid request is answered :data:`INVALID_REQUEST` (400, as the service does — not
FastAPI's 422) with the first problem, worded like the service: ``Missing required parameter:
'model'.``, ``Invalid 'suffix': string too long. ...``, ``Invalid type for 'limit': ...``.

:class:`APIError` is what the OpenAI routes raise; :class:`OpenAIWire` words every other
answer (auth, rate limit, faults, body limits, unknown routes, bugs).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from reconciler.sandbox.wire import Headers, finite

#: The status of every invalid request.
INVALID_REQUEST = 400

#: Injected server errors: status -> message.
_SERVER_ERRORS = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The server is overloaded or not ready yet.",
    504: "Gateway timeout.",
}

#: How pydantic's type errors name the JSON type expected.
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "string_type": "a string",
    "bool_type": "a boolean",
    "bool_parsing": "a boolean",
    "dict_type": "an object",
    "model_type": "an object",
    "model_attributes_type": "an object",
    "list_type": "an array",
}


def body(
    message: str, *, type: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """An error body."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class APIError(HTTPException):
    """An error answer of an OpenAI route (``invalid_request_error`` unless said otherwise).

    Attributes:
        status_code: the HTTP status.
        message: what is wrong and how to fix it.
        param: the request parameter concerned, or None.
        code: a machine-readable code, or None.
        kind: the error ``type``.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(status, message)
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind

    def response(self) -> JSONResponse:
        """The answer."""
        return JSONResponse(
            body(self.message, type=self.kind, param=self.param, code=self.code),
            status_code=self.status_code,
        )


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    """An invalid request (:data:`INVALID_REQUEST`)."""
    return APIError(INVALID_REQUEST, message, param=param, code=code)


class OpenAIWire:
    """The OpenAI dialect's answers outside its routes (see :class:`~..wire.Wire`)."""

    def unauthorized(self, provided: bool) -> dict[str, Any]:
        if provided:
            return body(
                "Incorrect API key provided: use the key the sandbox was started with "
                "(--api-key), as 'Authorization: Bearer KEY'.",
                type="invalid_request_error",
                code="invalid_api_key",
            )
        return body(
            "You didn't provide an API key. You need to provide your API key in an "
            "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            type="invalid_request_error",
        )

    def rate_limited(self) -> dict[str, Any]:
        return body(
            "Rate limit reached for requests. Please try again after the time in Retry-After.",
            type="requests",
            code="rate_limit_exceeded",
        )

    def injected(self, status: int) -> dict[str, Any]:
        return body(f"{_SERVER_ERRORS[status]} (injected fault)", type="server_error")

    def refused(self, status: int, message: str) -> dict[str, Any]:
        return body(message, type="invalid_request_error")

    def rate_headers(self, per_minute: int, remaining: int) -> Headers:
        return [
            (b"x-ratelimit-limit-requests", str(per_minute).encode()),
            (b"x-ratelimit-remaining-requests", str(remaining).encode()),
        ]

    async def invalid_request(self, request: Request, errors: Sequence[Any]) -> Response:
        message, param, code = translate(errors[0]) if errors else ("Invalid request.", None, None)
        return JSONResponse(
            finite(body(message, type="invalid_request_error", param=param, code=code)),
            status_code=INVALID_REQUEST,
        )

    async def http_error(self, request: Request, exc: HTTPException) -> Response:
        if isinstance(exc, APIError):
            return exc.response()
        if exc.status_code in (404, 405):
            # Routing found no such operation: the service's wording for any unknown URL.
            message = f"Invalid URL ({request.method} {request.url.path})"
        else:
            message = str(exc.detail)
        return JSONResponse(
            body(message, type="invalid_request_error"),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    async def internal(self, request: Request, exc: Exception) -> Response:
        return JSONResponse(
            body(
                f"The server had an error while processing your request (sandbox error "
                f"{type(exc).__name__}; see the server log).",
                type="server_error",
            ),
            status_code=500,
        )


def param_of(loc: Sequence[Any]) -> str | None:
    """The parameter a pydantic error location names: ``method.dpo.hyperparameters.beta``,
    ``integrations[0].wandb.project``, ``limit`` (None for the whole body)."""
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "form", "header"):
        parts = parts[1:]
    text = ""
    for part in parts:
        if part == "[key]":  # pydantic marks an invalid dict key this way
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or None


def translate(error: Any) -> tuple[str, str | None, str | None]:
    """(message, param, code) of one pydantic error, in the service's words."""
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    value = error.get("input")
    param = param_of(error.get("loc", ()))
    name = f"'{param}'" if param else "the request body"
    if kind == "json_invalid":
        return (
            "We could not parse the JSON body of your request. The API expects a JSON "
            "payload: check that it is valid JSON and sent with Content-Type: "
            "application/json.",
            None,
            None,
        )
    if kind == "missing":
        if param is None:
            return "The request needs a JSON body.", None, "missing_required_parameter"
        return f"Missing required parameter: {name}.", param, "missing_required_parameter"
    if kind == "extra_forbidden":
        return f"Unrecognized request argument supplied: {param}", param, "unknown_parameter"
    if kind in _EXPECTED:
        return (
            f"Invalid type for {name}: expected {_EXPECTED[kind]}, but got "
            f"{_json_type(value)} instead.",
            param,
            "invalid_type",
        )
    if kind in ("string_too_long", "string_too_short", "too_long", "too_short"):
        what = "a string" if kind.startswith("string") else "an array"
        longer = kind.endswith("long")
        limit = ctx.get("max_length" if longer else "min_length")
        got = len(value) if isinstance(value, str | list | dict) else ctx.get("actual_length")
        return (
            f"Invalid {name}: {what.split()[1]} too {'long' if longer else 'short'}. Expected "
            f"{what} with {'maximum' if longer else 'minimum'} length {limit}, but got {what} "
            f"with length {got} instead.",
            param,
            f"{what.split()[1]}_{'above_max' if longer else 'below_min'}_length",
        )
    bound = next((ctx[k] for k in ("ge", "gt", "le", "lt") if k in ctx), None)
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        number = "decimal" if isinstance(value, float) else "integer"
        below = kind.startswith("greater")
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<="}.get(
            kind, "<"
        )
        return (
            f"Invalid {name}: {number} {'below minimum' if below else 'above maximum'} value. "
            f"Expected a value {sign} {bound}, but got {value} instead.",
            param,
            f"{number}_{'below_min' if below else 'above_max'}_value",
        )
    if kind in ("literal_error", "enum"):
        return (
            f"Invalid value: {value!r}. Supported values are: {ctx.get('expected', '')}.",
            param,
            "invalid_value",
        )
    if kind == "value_error":
        return f"Invalid {name}: {ctx.get('error', error.get('msg', ''))}", param, "invalid_value"
    if kind.startswith("openai_"):
        # Raised by our own validators with the service's code (see .schemas).
        return f"Invalid {name}: {error.get('msg', '')}", param, kind.removeprefix("openai_")
    return f"Invalid {name}: {error.get('msg', 'invalid value')}.", param, "invalid_value"


def _json_type(value: Any) -> str:
    """How the service names the JSON type of a value it did not expect."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
