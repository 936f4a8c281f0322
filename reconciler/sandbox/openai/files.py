"""The OpenAI files resource: upload, list, retrieve, delete, download.

Uploads stream to disk (:mod:`...uploads`) and are never deduplicated: each upload is a new
file, as on the service. A ``fine-tune`` file must be named ``.jsonl`` and hold samples; its
content is checked with the shared training-data rules in OpenAI's chat dialect (and the
preference rules for DPO files) and what is wrong is kept with the file: a job trained on it
fails while validating its files, naming the lines, as on the service. Downloading a ``fine-tune`` file is refused,
as the service refuses it. Lists are newest first by default, paged by cursor.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Query, UploadFile

from reconciler.sandbox.bodies import upload_too_large_text
from reconciler.sandbox.openai.errors import APIError, invalid
from reconciler.sandbox.openai.naming import random_id
from reconciler.sandbox.openai.render import file_out, id_list
from reconciler.sandbox.records import FileRecord
from reconciler.sandbox.routes.common import ConfigDep, StoreDep
from reconciler.sandbox.store import Store, UnknownCursor
from reconciler.sandbox.uploads import TooLarge, download, file_record, safe_filename, staged
from reconciler.sandbox.validation import check_upload

#: Largest ``limit`` of a list (the reference's range for files, used for every list).
LIMIT_MAX = 10_000
#: Shortest and longest ``expires_after[seconds]`` (an hour, thirty days).
EXPIRY_MIN, EXPIRY_MAX = 3600, 2_592_000

Purpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]

router = APIRouter()


@router.post("/v1/files")
def upload_file(
    store: StoreDep,
    config: ConfigDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[Purpose, Form()],
    anchor: Annotated[Literal["created_at"] | None, Form(alias="expires_after[anchor]")] = None,
    seconds: Annotated[
        int | None, Form(alias="expires_after[seconds]", ge=EXPIRY_MIN, le=EXPIRY_MAX)
    ] = None,
) -> Any:
    filename = safe_filename(file.filename or "")
    if not filename:
        raise invalid("The file part has no filename; send it as file=@name.jsonl.", "file")
    if (anchor is None) != (seconds is None):
        raise invalid("expires_after needs both anchor (created_at) and seconds.", "expires_after")
    if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
        raise invalid("Invalid file format for Fine-Tuning API. Must be .jsonl", "file")
    try:
        with staged(store, file, config.max_upload_bytes) as upload:
            report = None
            if purpose == "fine-tune":
                report = check_upload(upload.path, filename, openai=True)
                if report.samples == 0:
                    raise invalid(
                        f"{filename} is empty: a fine-tuning file holds one JSON example per line.",
                        "file",
                    )
            created = int(store.clock.now())
            record = file_record(
                upload,
                report,
                file_id=random_id("file-", 22),
                filename=filename,
                purpose=purpose,
                created=created,
                content_type=file.content_type,
                expires_at=created + seconds if seconds is not None else None,
                visibility=None,
                untyped="none",
            )
            return file_out(store.add_file(upload.path, record, dedupe=False))
    except TooLarge:
        raise APIError(413, upload_too_large_text(config.max_upload_bytes), param="file") from None


@router.get("/v1/files")
def list_files(
    store: StoreDep,
    purpose: str | None = None,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = LIMIT_MAX,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
) -> Any:
    try:
        files, more = store.files_after(
            after=after, limit=limit, purpose=purpose, newest_first=order == "desc"
        )
    except UnknownCursor:
        raise invalid(f"No file with id {after} to page after.", "after") from None
    return id_list([file_out(f) for f in files], more)


def file_or_404(store: Store, file_id: str) -> FileRecord:
    """The live file, or the service's 404."""
    file = store.get_file(file_id)
    if file is None:
        raise APIError(404, f"No such File object: {file_id}", param="id")
    return file


@router.get("/v1/files/{file_id}")
def retrieve_file(store: StoreDep, file_id: str) -> Any:
    return file_out(file_or_404(store, file_id))


@router.delete("/v1/files/{file_id}")
def delete_file(store: StoreDep, file_id: str) -> Any:
    if not store.delete_file(file_id):
        raise APIError(404, f"No such File object: {file_id}", param="id")
    return {"id": file_id, "object": "file", "deleted": True}


@router.get("/v1/files/{file_id}/content")
def download_file(store: StoreDep, file_id: str) -> Any:
    file = file_or_404(store, file_id)
    if file.purpose == "fine-tune":
        raise invalid("Not allowed to download files of purpose: fine-tune")
    return download(store, file)
