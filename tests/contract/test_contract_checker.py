"""The request checker itself: it passes what the contract allows and names what it does not."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import yaml

from tests.contract.openapi_check import RequestChecker, Sent, mistral_reference
from tests.sandbox.contract import Contract

UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
JSON = {"content-type": "application/json", "authorization": "Bearer k"}
BEARER = {"authorization": "Bearer k"}


@pytest.fixture(scope="module")
def checker() -> RequestChecker:
    return RequestChecker(mistral_reference())


def sent(
    method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> Sent:
    path, _, query = target.partition("?")
    return Sent.of(method, path, query, httpx.Headers(BEARER if headers is None else headers), body)


def multipart(*parts: tuple[str, str | None, bytes]) -> tuple[dict[str, str], bytes]:
    body = b""
    for name, filename, value in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--b\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
    return {**BEARER, "content-type": "multipart/form-data; boundary=b"}, body + b"--b--\r\n"


@pytest.mark.parametrize(
    "request_",
    [
        sent("GET", "/v1/files?page=0&page_size=100&sample_type=instruct&sample_type=pretrain"),
        sent(
            "GET",
            "/v1/fine_tuning/jobs?created_after=2026-01-02T03:04:05%2B00:00&created_by_me=true",
        ),
        sent("GET", "/v1/fine_tuning/jobs?status=SUCCESS&model=open-mistral-7b"),
        sent("GET", f"/v1/files/{UUID}/url?expiry=24"),
        sent("GET", f"/v1/files/{UUID}/content", {**BEARER, "accept": "application/octet-stream"}),
        sent("PATCH", "/v1/fine_tuning/models/ft:x", JSON, b'{"name": "n", "description": null}'),
        sent(
            "POST",
            "/v1/fine_tuning/jobs?dry_run=true",
            JSON,
            b'{"model": "m", "hyperparameters": {"training_steps": 1}, "suffix": null,'
            b' "training_files": [{"file_id": "' + UUID.encode() + b'", "weight": 0.5}]}',
        ),
        sent(
            "POST",
            "/v1/files",
            *multipart(("purpose", None, b"fine-tune"), ("file", "a.jsonl", b"{}\n")),
        ),
    ],
    ids=str,
)
def test_what_the_contract_allows_passes(checker: RequestChecker, request_: Sent) -> None:
    assert checker.violations(request_) == []


@pytest.mark.parametrize(
    ("request_", "problems"),
    [
        (sent("PUT", "/v1/files"), ["the contract has no PUT /v1/files"]),
        (sent("GET", "/v2/files"), ["no path of the contract matches /v2/files"]),
        (
            sent("GET", "/v1/files?page=first&bogus=1"),
            ["page='first': 'first' is not of type 'integer'", "'bogus' is not declared"],
        ),
        (sent("GET", "/v1/files?sample_type=instruct&sample_type=nope"), ["sample_type=["]),
        (sent("GET", "/v1/fine_tuning/jobs?created_by_me=yes"), ["created_by_me='yes'"]),
        # An unencoded "+" is a space in a query string: not a date-time any more.
        (
            sent("GET", "/v1/fine_tuning/jobs?created_after=2026-01-02T03:04:05+00:00"),
            ["created_after="],
        ),
        (sent("GET", "/v1/fine_tuning/jobs?status=DONE"), ["status='DONE'"]),
        (
            sent("GET", "/v1/files/not-a-uuid"),
            ["file_id='not-a-uuid': 'not-a-uuid' is not a 'uuid'"],
        ),
        (
            sent(
                "POST",
                "/v1/fine_tuning/jobs",
                JSON,
                b'{"model": "m", "hyperparameters": {}, "store": 1}',
            ),
            ["JSON body: Additional properties are not allowed ('store' was unexpected)"],
        ),
        (
            sent(
                "POST",
                "/v1/fine_tuning/jobs",
                JSON,
                b'{"model": "m", "hyperparameters": {"training_steps": 0}}',
            ),
            ["JSON body: hyperparameters: "],
        ),
        (
            sent("POST", "/v1/fine_tuning/jobs", JSON, b'{"hyperparameters": {}}'),
            ["JSON body: 'model' is a required property"],
        ),
        (sent("POST", "/v1/fine_tuning/jobs", JSON), ["the declared request body is missing"]),
        (
            sent("POST", f"/v1/fine_tuning/jobs/{UUID}/start", JSON, b"{}"),
            ["a body is sent, but none is declared"],
        ),
        (
            sent(
                "PATCH",
                "/v1/fine_tuning/models/ft:x",
                {**BEARER, "content-type": "text/plain"},
                b"n",
            ),
            ["content type 'text/plain' is not one of ['application/json']"],
        ),
        (
            sent(
                "POST",
                "/v1/files",
                *multipart(("purpose", None, b"fun"), ("extra", None, b"1"), ("file", None, b"x")),
            ),
            ["purpose='fun'", "'extra' is not declared", "file field 'file' has no filename"],
        ),
        (
            sent("POST", "/v1/files", *multipart(("purpose", None, b"fine-tune"))),
            ["required multipart field 'file' is missing"],
        ),
        (
            sent("GET", f"/v1/files/{UUID}/content", {**BEARER, "accept": "application/json"}),
            ["Accept: application/json admits none of the answers ['application/octet-stream']"],
        ),
        (
            sent("GET", "/v1/models", {}),
            ["the ApiKey security scheme wants 'Authorization: Bearer"],
        ),
    ],
    ids=lambda v: str(v) if isinstance(v, Sent) else "",
)
def test_what_the_contract_does_not_allow_is_named(
    checker: RequestChecker, request_: Sent, problems: list[str]
) -> None:
    found = checker.violations(request_)
    assert len(found) == len(problems), found
    for problem, violation in zip(problems, found, strict=True):
        assert violation.startswith(f"{request_}: ") and problem in violation, found


OPENAPI_30 = """\
openapi: 3.0.3
info: {title: t, version: "1"}
paths:
  /v1/things:
    post:
      parameters:
        - {name: limit, in: query, schema: {type: integer, nullable: true, minimum: 1}}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/Thing'}
      responses:
        '200': {description: ok}
components:
  schemas:
    Thing:
      type: object
      required: [name]
      properties:
        name: {type: string, nullable: true}
        weight: {type: number, minimum: 0, exclusiveMinimum: true}
        kind: {type: string, enum: [a, b], nullable: true}
"""


def test_an_openapi_30_document_reads_nullable_and_boolean_bounds(tmp_path: Path) -> None:
    path = tmp_path / "v30.yaml"
    path.write_text(OPENAPI_30)
    assert yaml.safe_load(OPENAPI_30)["openapi"].startswith("3.0")
    checker = RequestChecker(Contract(path))

    def post(body: bytes, query: str = "") -> list[str]:
        return checker.violations(sent("POST", "/v1/things" + query, JSON, body))

    assert post(b'{"name": null, "kind": null}', "?limit=2") == []
    assert post(b'{"name": "x", "weight": 0.1, "kind": "a"}') == []
    weight = post(b'{"name": "x", "weight": 0}')
    assert len(weight) == 1 and "weight: 0 is less than or equal to the minimum of 0" in weight[0]
    kind = post(b'{"name": "x", "kind": "c"}')
    assert len(kind) == 1 and "kind: 'c' is not one of ['a', 'b', None]" in kind[0]
    assert len(post(b'{"name": "x"}', "?limit=0")) == 1
