"""tus 1.0.0 endpoints under ``/api/v1/uploads/`` (core, creation, expiration, termination, checksum).

Protocol: https://tus.io/protocols/resumable-upload. Every request but OPTIONS carries
``Tus-Resumable: 1.0.0`` and a bearer token; the caller that creates an upload owns it, and nobody else
sees it. PATCH bodies are streamed to disk in constant memory: the event loop receives the next megabyte
while a worker thread writes and hashes the previous one.

A complete upload is cited by a publication request: ``{"uploads": {"pistes.gpkg": "<upload id>"}}``
beside the manifest's keys (JSON), or an ``uploads`` part holding that JSON (multipart); the manifest's
resource says ``file: pistes.gpkg`` as for a file sent with the request.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from broker.auth.dependencies import CurrentPrincipal, require_role
from broker.config import get_settings
from broker.db import session_scope
from broker.errors import BrokerError, PayloadTooLarge
from broker.uploads import service
from broker.uploads.models import Upload
from broker.uploads.schemas import UploadInfo
from broker.uploads.service import (
    CHECKSUM_ALGORITHMS,
    TUS_EXTENSIONS,
    TUS_VERSION,
    Appender,
    PreconditionFailed,
    UnsupportedMediaType,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["uploads"])

#: Bytes gathered by the event loop before a worker thread writes them (two such buffers at most).
BUFFER_BYTES = 1024 * 1024


def _tus_headers(**extra: str) -> dict[str, str]:
    return {"Tus-Resumable": TUS_VERSION, **extra}


def _check_version(request: Request) -> None:
    """tus 1.0 §Tus-Resumable: every request but OPTIONS names the version; 412 for another one."""
    version = request.headers.get("tus-resumable")
    if version != TUS_VERSION:
        raise PreconditionFailed(
            f"Protocole tus {TUS_VERSION} attendu (en-tête Tus-Resumable).",
            headers={"Tus-Version": TUS_VERSION},
        )


async def _tus(work: Callable[[], Awaitable[Response]]) -> Response:
    """Run a tus handler; its errors, rendered as JSON by broker.errors, carry Tus-Resumable too."""
    try:
        return await work()
    except BrokerError as exc:
        exc.headers.setdefault("Tus-Resumable", TUS_VERSION)
        raise


def _in_session(work: Callable[[Any], Any]) -> Any:
    with session_scope() as session:
        return work(session)


@router.options("/uploads/", include_in_schema=False)
@router.options("/uploads", include_in_schema=False)
@router.options("/uploads/{upload_id}", include_in_schema=False)
def options(upload_id: str | None = None) -> Response:
    """tus 1.0 §OPTIONS: what this server speaks (no authentication, like a CORS pre-flight)."""
    return Response(
        status_code=204,
        headers=_tus_headers(
            **{
                "Tus-Version": TUS_VERSION,
                "Tus-Extension": ",".join(TUS_EXTENSIONS),
                "Tus-Max-Size": str(get_settings().max_upload_bytes),
                "Tus-Checksum-Algorithm": ",".join(CHECKSUM_ALGORITHMS),
            }
        ),
    )


@router.post("/uploads/", status_code=201, summary="Create a resumable upload (tus creation)")
@router.post("/uploads", status_code=201, include_in_schema=False)
async def create_upload(request: Request, principal: CurrentPrincipal) -> Response:
    # Only those who may publish send files; a board member or a role-less account may not.
    require_role(principal, "producer", "referent", "staff")

    async def work() -> Response:
        _check_version(request)
        if request.headers.get("upload-defer-length"):
            raise BrokerError(
                "Upload-Defer-Length n'est pas pris en charge : annoncez Upload-Length.",
                fields={"Upload-Defer-Length": ["non pris en charge"]},
            )
        length = service.parse_non_negative("Upload-Length", request.headers.get("upload-length"))
        metadata = service.parse_metadata(request.headers.get("upload-metadata"))
        upload: Upload = await run_in_threadpool(
            _in_session, lambda s: service.create(s, principal, length, metadata)
        )
        return Response(
            status_code=201,
            headers=_tus_headers(
                **{
                    "Location": f"/api/v1/uploads/{upload.id}",
                    "Upload-Expires": service.expires_header(upload.expires_at),
                    "Upload-Offset": str(upload.offset),
                }
            ),
        )

    return await _tus(work)


@router.head("/uploads/{upload_id}", summary="Where an upload stands (tus HEAD)")
async def head_upload(upload_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    async def work() -> Response:
        _check_version(request)
        upload: Upload = await run_in_threadpool(
            _in_session, lambda s: service.get_owned(s, principal, upload_id)
        )
        headers = _tus_headers(
            **{
                "Upload-Offset": str(upload.offset),
                "Upload-Length": str(upload.length),
                "Upload-Expires": service.expires_header(upload.expires_at),
                # tus 1.0 §HEAD: the offset must never come from a cache.
                "Cache-Control": "no-store",
            }
        )
        if upload.meta:
            headers["Upload-Metadata"] = _encode_metadata(upload.meta)
        return Response(status_code=200, headers=headers)

    return await _tus(work)


def _encode_metadata(meta: dict[str, Any]) -> str:
    return ",".join(f"{k} {base64.b64encode(str(v).encode()).decode()}" for k, v in meta.items())


@router.get("/uploads/{upload_id}", summary="An upload as JSON (not part of tus)")
async def get_upload(upload_id: str, principal: CurrentPrincipal) -> UploadInfo:
    upload: Upload = await run_in_threadpool(
        _in_session, lambda s: service.get_owned(s, principal, upload_id)
    )
    return UploadInfo(**service.to_dict(upload))


@router.delete("/uploads/{upload_id}", status_code=204, summary="Abandon an upload (tus termination)")
async def delete_upload(upload_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    async def work() -> Response:
        _check_version(request)
        await run_in_threadpool(_in_session, lambda s: service.terminate(s, principal, upload_id))
        return Response(status_code=204, headers=_tus_headers())

    return await _tus(work)


@router.patch("/uploads/{upload_id}", status_code=204, summary="Append bytes (tus PATCH)")
async def patch_upload(upload_id: str, request: Request, principal: CurrentPrincipal) -> Response:
    async def work() -> Response:
        _check_version(request)
        content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if content_type != "application/offset+octet-stream":
            # tus 1.0 §PATCH: any other Content-Type is 415.
            raise UnsupportedMediaType("Content-Type: application/offset+octet-stream attendu.")
        offset = service.parse_non_negative("Upload-Offset", request.headers.get("upload-offset"))
        checksum = service.parse_checksum(request.headers.get("upload-checksum"))
        upload: Upload = await run_in_threadpool(
            _in_session, lambda s: service.get_owned(s, principal, upload_id)
        )
        if offset != upload.offset:
            # tus 1.0 §PATCH: the client must resume from the server's offset (HEAD tells it).
            raise service.Conflict(
                f"Décalage {offset} inattendu : le serveur en est à {upload.offset} (demandez-le par HEAD).",
                headers={"Upload-Offset": str(upload.offset)},
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and offset + int(declared) > upload.length:
            raise PayloadTooLarge(
                f"Ce morceau dépasse la longueur annoncée du téléversement ({upload.length} octets)."
            )
        if upload.state == "complete":  # an empty closing PATCH: nothing to append, nothing to rehash
            return Response(
                status_code=204,
                headers=_tus_headers(
                    **{
                        "Upload-Offset": str(upload.offset),
                        "Upload-Expires": service.expires_header(upload.expires_at),
                    }
                ),
            )
        new_offset = await _append(request, upload, checksum)
        saved: Upload = await run_in_threadpool(
            _in_session, lambda s: service.get_owned(s, principal, upload_id)
        )
        return Response(
            status_code=204,
            headers=_tus_headers(
                **{
                    "Upload-Offset": str(new_offset),
                    "Upload-Expires": service.expires_header(saved.expires_at),
                }
            ),
        )

    return await _tus(work)


async def _append(request: Request, upload: Upload, checksum: tuple[str, bytes] | None) -> int:
    """Stream the body to the part file; record the offset reached, even when the client went away."""
    appender = Appender(upload.id, upload.offset, checksum)
    await run_in_threadpool(appender.open)
    pending: asyncio.Future[None] | None = None
    buffer: list[bytes] = []
    buffered = 0
    complete_body = True
    too_large = False
    received = 0
    room = upload.length - upload.offset
    try:
        try:
            async for chunk in request.stream():
                if not chunk:
                    continue
                received += len(chunk)
                if received > room:
                    too_large = True
                    break
                buffer.append(chunk)
                buffered += len(chunk)
                if buffered >= BUFFER_BYTES:
                    if pending is not None:
                        await pending
                    data, buffer, buffered = buffer, [], 0
                    pending = asyncio.ensure_future(run_in_threadpool(appender.write, data))
        except ClientDisconnect:
            # tus 1.0 §PATCH: keep what arrived, so the client resumes from there after a cut.
            complete_body = False
            logger.info("upload %s: client gone after %d bytes of this PATCH", upload.id, received)
        if pending is not None:
            await pending
            pending = None
        if too_large:
            await run_in_threadpool(appender.rollback)
            raise PayloadTooLarge(
                f"Ce morceau dépasse la longueur annoncée du téléversement ({upload.length} octets)."
            )
        if buffer:
            await run_in_threadpool(appender.write, buffer)
        offset: int = await run_in_threadpool(appender.finish, complete_body)
        hasher = appender.hasher
        saved: Upload = await run_in_threadpool(
            _in_session, lambda s: service.record_progress(s, upload.id, offset, hasher)
        )
        if saved.state != "complete" and hasher is not None:
            service.keep_hash(upload.id, offset, hasher)
        return offset
    finally:
        if pending is not None:
            await asyncio.gather(pending, return_exceptions=True)
        await run_in_threadpool(appender.close)
