"""The client reads every answer shape the reference document allows.

Samples are built from the contract's own response schemas (:func:`sample`): with only the
required properties, with every nullable property null, and — for the response models — with
every optional property null, nullable or not (a null servers send although the contract does
not allow it). Each operation of the client is answered with its declared 200 schema's
samples through ``httpx.MockTransport``; each response model parses each sample of the
schemas it stands for.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from reconciler.client import JobEstimate, MistralClient, RemoteFile, RemoteJob, RemoteModel
from tests.contract.openapi_check import (
    MINIMAL,
    NULLABLE_NULL,
    OPTIONAL_NULL,
    mistral_reference,
    sample,
)

pytestmark = pytest.mark.contract

UUID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
MODEL = "ft:open-mistral-7b:587a6b29:20240514:7e773925"

# The component schemas each response model stands for (the objects the client returns).
RESPONSE_MODELS: dict[str, type[BaseModel]] = {
    "FileSchema": RemoteFile,
    "UploadFileOut": RemoteFile,
    "RetrieveFileOut": RemoteFile,
    "CompletionJobOut": RemoteJob,
    "ClassifierJobOut": RemoteJob,
    "CompletionDetailedJobOut": RemoteJob,
    "ClassifierDetailedJobOut": RemoteJob,
    "LegacyJobMetadataOut": JobEstimate,
    "BaseModelCard": RemoteModel,
    "FTModelCard": RemoteModel,
    "CompletionFTModelOut": RemoteModel,
    "ClassifierFTModelOut": RemoteModel,
}


@pytest.mark.parametrize("mode", [MINIMAL, NULLABLE_NULL, OPTIONAL_NULL])
@pytest.mark.parametrize("name", sorted(RESPONSE_MODELS))
def test_response_models_read_every_sample(name: str, mode: str) -> None:
    contract = mistral_reference()
    body = sample(contract, {"$ref": f"#/components/schemas/{name}"}, mode)
    if mode != OPTIONAL_NULL:
        contract.validate_schema(name, body)  # the sample is what the contract allows
    parsed = RESPONSE_MODELS[name].model_validate(body)
    for key, value in body.items():
        if key in type(parsed).model_fields and value is not None:
            assert getattr(parsed, key) is not None, f"{name}.{key} was dropped"


def _upload(client: MistralClient, tmp_path: Path) -> Any:
    path = tmp_path / "train.jsonl"
    path.write_text('{"messages": []}\n')
    return client.upload_file(path, path.name)


# (operation, METHOD, path template, the call, which variant of a top-level anyOf to answer,
# fields to set in the answer for the call to mean success)
OPERATIONS: list[
    tuple[str, str, str, Callable[[MistralClient, Path], Any], int, dict[str, Any]]
] = [
    ("list_files", "GET", "/v1/files", lambda c, p: c.list_files(), 0, {}),
    ("upload_file", "POST", "/v1/files", _upload, 0, {}),
    (
        "get_file",
        "GET",
        "/v1/files/{file_id}",
        lambda c, p: c.get_file(UUID),
        0,
        {"deleted": False},
    ),
    (
        "delete_file",
        "DELETE",
        "/v1/files/{file_id}",
        lambda c, p: c.delete_file(UUID),
        0,
        {"deleted": True},
    ),
    ("signed_url", "GET", "/v1/files/{file_id}/url", lambda c, p: c.signed_url(UUID), 0, {}),
    ("list_jobs", "GET", "/v1/fine_tuning/jobs", lambda c, p: c.list_jobs(), 0, {}),
    (
        "create_job",
        "POST",
        "/v1/fine_tuning/jobs",
        lambda c, p: c.create_job({"model": "m", "hyperparameters": {}}),
        0,
        {},
    ),
    (
        "estimate_job",
        "POST",
        "/v1/fine_tuning/jobs",
        lambda c, p: c.estimate_job({"model": "m", "hyperparameters": {}}),
        1,
        {},
    ),
    ("get_job", "GET", "/v1/fine_tuning/jobs/{job_id}", lambda c, p: c.get_job(UUID), 0, {}),
    (
        "start_job",
        "POST",
        "/v1/fine_tuning/jobs/{job_id}/start",
        lambda c, p: c.start_job(UUID),
        0,
        {},
    ),
    (
        "cancel_job",
        "POST",
        "/v1/fine_tuning/jobs/{job_id}/cancel",
        lambda c, p: c.cancel_job(UUID),
        0,
        {},
    ),
    ("list_models", "GET", "/v1/models", lambda c, p: c.list_models(), 0, {}),
    ("get_model", "GET", "/v1/models/{model_id}", lambda c, p: c.get_model(MODEL), 0, {}),
    (
        "delete_model",
        "DELETE",
        "/v1/models/{model_id}",
        lambda c, p: c.delete_model(MODEL),
        0,
        {"deleted": True},
    ),
    (
        "update_model",
        "PATCH",
        "/v1/fine_tuning/models/{model_id}",
        lambda c, p: c.update_model(MODEL, name="n"),
        0,
        {},
    ),
    (
        "archive_model",
        "POST",
        "/v1/fine_tuning/models/{model_id}/archive",
        lambda c, p: c.archive_model(MODEL),
        0,
        {},
    ),
    (
        "unarchive_model",
        "DELETE",
        "/v1/fine_tuning/models/{model_id}/archive",
        lambda c, p: c.unarchive_model(MODEL),
        0,
        {},
    ),
]


@pytest.mark.parametrize("mode", [MINIMAL, NULLABLE_NULL])
@pytest.mark.parametrize(
    ("operation", "method", "template", "call", "variant", "meaning"),
    OPERATIONS,
    ids=[o[0] for o in OPERATIONS],
)
def test_every_operation_reads_every_declared_answer(
    tmp_path: Path,
    operation: str,
    method: str,
    template: str,
    call: Callable[[MistralClient, Path], Any],
    variant: int,
    meaning: dict[str, Any],
    mode: str,
) -> None:
    contract = mistral_reference()
    declared = contract.doc["paths"][template][method.lower()]["responses"]["200"]
    schema = declared["content"]["application/json"]["schema"]
    if "anyOf" in schema:
        schema = schema["anyOf"][variant]
    answer = sample(contract, schema, mode)
    if isinstance(answer, dict):
        answer.update(meaning)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {contract.template(request.url.path)}")
        return httpx.Response(200, json=answer)

    with MistralClient("http://remote.test", "k" * 32, transport=httpx.MockTransport(handler)) as c:
        call(c, tmp_path)
    assert seen and set(seen) == {f"{method} {template}"}


def test_every_client_operation_is_answered_above() -> None:
    public = {
        name
        for cls in MistralClient.__mro__[:-1]  # its own, and the shared HttpApi's
        for name in vars(cls)
        if not name.startswith("_") and callable(getattr(MistralClient, name))
    }
    # Compositions of the operations above (they send nothing of their own).
    composed = {"find_file", "find_jobs", "download_file", "close"}
    assert public - composed == {o[0] for o in OPERATIONS}
