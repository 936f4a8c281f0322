"""The files resource: upload, list, retrieve, delete, download, signed URLs.

Uploads stream to a temporary file (:mod:`..uploads`) while they are hashed, are checked
with the shared training-data rules (:mod:`..validation`) and are then moved into the store,
or deduplicated on (content, filename). Responses have the contract's ``UploadFileOut``,
``ListFilesOut``, ``RetrieveFileOut``, ``DeleteFileOut`` and ``FileSignedURL`` shapes.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile

from reconciler.sandbox.bodies import upload_too_large_text
from reconciler.sandbox.records import FileRecord
from reconciler.sandbox.routes.common import ConfigDep, PageQ, PageSizeQ, StoreDep, detail
from reconciler.sandbox.store import Store
from reconciler.sandbox.uploads import TooLarge, download, file_record, safe_filename, staged
from reconciler.sandbox.validation import UploadCheck, check_upload, quote

#: Sample types a Mistral fine-tuning file may hold.
SAMPLE_TYPES = ("instruct", "pretrain")
#: Share of invalid samples above which an upload is refused: no job could skip that many.
MAX_INVALID_FRACTION = 0.5
#: Longest ``expiry`` of an upload, in hours (a hundred years); the contract sets no bound,
#: but the expiry time must stay a number the database holds.
MAX_EXPIRY_HOURS = 876_600

router = APIRouter()


def file_basics(file: FileRecord) -> dict[str, Any]:
    """What a file object shows in both dialects (the contract's ``FileSchema`` and OpenAI's
    ``OpenAIFile``), in their order."""
    return {
        "id": file.id,
        "object": "file",
        "bytes": file.bytes,
        "created_at": file.created_at,
        "filename": file.filename,
        "purpose": file.purpose,
    }


def file_out(file: FileRecord) -> dict[str, Any]:
    """A file in the contract's ``FileSchema`` shape."""
    return {
        **file_basics(file),
        "sample_type": file.sample_type,
        "source": file.source,
        "num_lines": file.num_lines,
        "mimetype": file.mimetype,
        "signature": file.signature,
        "expires_at": file.expires_at,
        "visibility": file.visibility,
    }


@router.post("/v1/files")
def upload_file(
    store: StoreDep,
    config: ConfigDep,
    file: Annotated[UploadFile, File()],
    purpose: Annotated[Literal["fine-tune", "batch", "ocr"] | None, Form()] = None,
    visibility: Annotated[Literal["workspace", "user"], Form()] = "workspace",
    expiry: Annotated[int | None, Form(ge=1, le=MAX_EXPIRY_HOURS)] = None,
) -> Any:
    filename = safe_filename(file.filename or "")
    if not filename:
        return detail(
            422,
            "The file part has no filename (directories in it are not kept); send it as "
            "file=@name.jsonl.",
        )
    purpose = purpose or "fine-tune"
    if purpose == "fine-tune" and not filename.lower().endswith(".jsonl"):
        return detail(
            422,
            f"Invalid file format: {filename!r}. The fine-tuning API only supports .jsonl "
            "files; rename it or convert it to JSON Lines.",
        )
    try:
        with staged(store, file, config.max_upload_bytes) as upload:
            report = None
            if purpose == "fine-tune":
                report = check_upload(upload.path, filename)
                refusal = _refusal(filename, report)
                if refusal:
                    return detail(422, refusal)
            created = int(store.clock.now())
            record = file_record(
                upload,
                report,
                file_id=str(uuid.uuid4()),
                filename=filename,
                purpose=purpose,
                created=created,
                content_type=file.content_type,
                expires_at=created + expiry * 3600 if expiry else None,
                visibility=visibility,
                untyped="batch_request",
            )
            return file_out(store.add_file(upload.path, record))
    except TooLarge:
        return detail(413, upload_too_large_text(config.max_upload_bytes))


@router.get("/v1/files")
def list_files(
    store: StoreDep,
    page: PageQ = 0,
    page_size: PageSizeQ = 100,
    include_total: bool = True,
    sample_type: Annotated[
        list[Literal["pretrain", "instruct", "batch_request", "batch_result", "batch_error"]]
        | None,
        Query(),
    ] = None,
    source: Annotated[list[Literal["upload", "repository", "mistral"]] | None, Query()] = None,
    search: str | None = None,
    purpose: Literal["fine-tune", "batch", "ocr"] | None = None,
    mimetypes: Annotated[list[str] | None, Query()] = None,
) -> Any:
    data, total = store.list_files(
        page=page,
        page_size=page_size,
        sample_types=list(sample_type) if sample_type else None,
        sources=list(source) if source else None,
        search=search,
        purpose=purpose,
        mimetypes=mimetypes,
    )
    return {
        "data": [file_out(f) for f in data],
        "object": "list",
        "total": total if include_total else None,
    }


def _file_or_404(store: Store, file_id: UUID) -> FileRecord:
    file = store.get_file(str(file_id))
    if file is None:
        raise HTTPException(404, f"File {file_id} not found (never uploaded, or deleted).")
    return file


@router.get("/v1/files/{file_id}")
def retrieve_file(store: StoreDep, file_id: UUID) -> Any:
    return {**file_out(_file_or_404(store, file_id)), "deleted": False}


@router.delete("/v1/files/{file_id}")
def delete_file(store: StoreDep, file_id: UUID) -> Any:
    if not store.delete_file(str(file_id)):
        raise HTTPException(404, f"File {file_id} not found (never uploaded, or deleted).")
    return {"id": str(file_id), "object": "file", "deleted": True}


@router.get("/v1/files/{file_id}/content")
def download_file(store: StoreDep, file_id: UUID) -> Any:
    return download(store, _file_or_404(store, file_id))


@router.get("/v1/files/{file_id}/url")
def signed_url(
    request: Request,
    store: StoreDep,
    config: ConfigDep,
    file_id: UUID,
    expiry: Annotated[int, Query(ge=1, le=168)] = 24,
) -> Any:
    _file_or_404(store, file_id)
    expires = int(store.clock.now()) + expiry * 3600
    token = _sign(store.url_secret, str(file_id), expires)
    base = config.public_url or _local_url(request)
    return {"url": f"{base}/sandbox/signed/{file_id}?expires={expires}&token={token}"}


def _local_url(request: Request) -> str:
    """The address this connection reached, from the socket: never the ``Host`` header,
    which the client writes (a signed URL must not send the file's reader elsewhere)."""
    server = request.scope.get("server")
    if not server or server[1] is None:
        return "http://127.0.0.1"
    host, port = server
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


@router.get("/sandbox/signed/{file_id}")
def signed_download(store: StoreDep, file_id: UUID, expires: int, token: str) -> Any:
    good = _sign(store.url_secret, str(file_id), expires)
    if not hmac.compare_digest(good, token):
        return detail(403, "Invalid signature: request a new URL with GET /v1/files/{id}/url.")
    if expires < store.clock.now():
        return detail(403, "This signed URL has expired: request a new one.")
    return download(store, _file_or_404(store, file_id))


def _refusal(filename: str, report: UploadCheck) -> str | None:
    """Why an uploaded fine-tuning file is refused, or None to accept it."""
    if report.samples == 0:
        return f"Invalid file format: {filename!r} is empty; it needs one JSON sample per line."
    if report.sample_type is None or report.invalid_fraction > MAX_INVALID_FRACTION:
        return (
            f"Invalid file format: {filename!r}: {report.invalid} of {report.samples} samples "
            f"break the training-data rules: {quote(report.problems)}. Fix these lines (run "
            "`reconciler validate`) and upload again."
        )
    if report.sample_type not in SAMPLE_TYPES:
        return (
            f"Invalid file format: {filename!r} holds {report.sample_type} samples; Mistral "
            "fine-tuning takes chat samples ('messages') or pretrain samples ('text')."
        )
    return None


def _sign(secret: str, file_id: str, expires: int) -> str:
    return hmac.new(secret.encode(), f"{file_id}:{expires}".encode(), hashlib.sha256).hexdigest()
