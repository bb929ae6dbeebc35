"""HTTP routes of the regional store: a publication's record and its file downloads, access-checked."""

# No ``from __future__ import annotations``: FastAPI must see the dependency aliases built in build_router.
import logging
import mimetypes
import os
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, BinaryIO
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from sqlmodel import Session

from regional_store import repository, service
from regional_store.blobs import CHUNK, BlobStore
from regional_store.models import RegionalFile, RegionalRecord
from regional_store.schemas import ErrorOut, FileOut, RecordOut, Viewer
from regional_store.service import API_PREFIX, RegionalStoreError

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "Données restreintes : authentification requise."},
    403: {"model": ErrorOut, "description": "Données restreintes : ce compte n'y a pas accès."},
    404: {"model": ErrorOut, "description": "Publication ou fichier inconnu, ou retiré."},
}


def error_response(exc: RegionalStoreError) -> JSONResponse:
    return JSONResponse(
        {"error": exc.code, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers or None
    )


def content_disposition(name: str) -> str:
    """``attachment`` with an ASCII fallback and the exact UTF-8 name (RFC 6266 and RFC 5987)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    fallback = "".join(c if c.isprintable() and c not in '"\\' else "_" for c in ascii_name) or "fichier"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def etag_matches(if_none_match: str | None, digest: str) -> bool:
    """Weak comparison, as RFC 9110 §13.1.2 asks for If-None-Match."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.removeprefix("W/") == f'"{digest}"':
            return True
    return False


def _stream(handle: BinaryIO) -> Iterator[bytes]:
    # The handle was opened before answering, so a collector deleting the blob meanwhile cannot cut us off.
    try:
        while data := handle.read(CHUNK):
            yield data
    finally:
        handle.close()


def build_router(
    get_session: Callable[..., Any],
    get_viewer: Callable[..., Any],
    store_root: Callable[[], Path],
    *,
    public_url: Callable[[], str] | None = None,
) -> APIRouter:
    """The regional store's routes; the application injects its session, viewer and store directory.

    ``get_viewer`` must answer None (not fail) for an anonymous request, so open data stays public.
    ``public_url`` gives the base of download URLs in records; without it the request's own base is used.
    """
    router = APIRouter(prefix=API_PREFIX, tags=["regional"])
    SessionDep = Annotated[Session, Depends(get_session)]
    ViewerDep = Annotated[Viewer | None, Depends(get_viewer)]

    def base_of(request: Request) -> str:
        return public_url() if public_url else str(request.base_url)

    def file_out(row: RegionalFile, base: str) -> FileOut:
        hosted = row.sha256 is not None
        return FileOut(
            name=row.name,
            title=row.title,
            size=row.size,
            sha256=row.sha256,
            media_type=row.media_type,
            format=row.format,
            url=service.download_url(base, row.publication_id, row.name) if hosted else row.url or "",
            hosted=hosted,
        )

    @router.get(
        "/publications/{publication_id}",
        response_model=RecordOut,
        responses=_ERRORS,
        summary="Fiche d'une publication de l'entrepôt régional",
    )
    def read_record(
        publication_id: str, request: Request, session: SessionDep, viewer: ViewerDep
    ) -> RecordOut | JSONResponse:
        try:
            record = service.readable_record(session, publication_id, viewer)
        except RegionalStoreError as exc:
            return error_response(exc)
        base = base_of(request)
        return RecordOut(
            id=record.publication_id,
            organization=record.organization,
            title=record.title,
            revision=record.revision,
            access="restricted" if record.access == "restricted" else "open",
            metadata=record.meta,
            files=[file_out(row, base) for row in repository.list_files(session, publication_id)],
            created_at=record.created_at,
            updated_at=record.updated_at,
        )

    def serve(
        publication_id: str, name: str, request: Request, session: Session, viewer: Viewer | None
    ) -> Response:
        try:
            record = service.readable_record(session, publication_id, viewer)
        except RegionalStoreError as exc:
            return error_response(exc)
        row = repository.get_file(session, publication_id, name)
        if row is None:
            return error_response(
                RegionalStoreError(404, "not_found", "Aucun fichier de ce nom dans cette publication.")
            )
        if row.sha256 is None:
            # A link resource: the producer serves the bytes.
            return RedirectResponse(row.url or "", status_code=307)
        return _file_response(record, row, row.sha256, request, BlobStore(store_root() / "blobs"))

    @router.get(
        "/publications/{publication_id}/files/{name}",
        response_class=StreamingResponse,
        responses={
            200: {"content": {"application/octet-stream": {}}, "description": "Le fichier."},
            304: {"description": "Inchangé depuis l'ETag envoyé."},
            307: {"description": "Ressource en lien : redirection vers l'adresse du producteur."},
            **_ERRORS,
        },
        summary="Télécharger un fichier de l'entrepôt régional",
    )
    def download_file(
        publication_id: str, name: str, request: Request, session: SessionDep, viewer: ViewerDep
    ) -> Response:
        return serve(publication_id, name, request, session, viewer)

    @router.head("/publications/{publication_id}/files/{name}", include_in_schema=False)
    def head_file(
        publication_id: str, name: str, request: Request, session: SessionDep, viewer: ViewerDep
    ) -> Response:
        return serve(publication_id, name, request, session, viewer)

    return router


def _file_response(
    record: RegionalRecord, row: RegionalFile, digest: str, request: Request, blobs: BlobStore
) -> Response:
    headers = {
        "ETag": f'"{digest}"',
        # Revalidate every time: a name keeps its URL across revisions while its bytes change.
        "Cache-Control": "private, no-cache" if record.access == "restricted" else "public, no-cache",
        "Content-Disposition": content_disposition(row.name),
        "X-Content-Type-Options": "nosniff",
    }
    if etag_matches(request.headers.get("if-none-match"), digest):
        return Response(status_code=304, headers=headers)
    try:
        handle = blobs.open(digest)
    except FileNotFoundError:
        logger.error("regional store: blob %s of %s/%s is missing", digest, row.publication_id, row.name)
        return error_response(
            RegionalStoreError(
                500, "file_unavailable", "Le fichier est momentanément indisponible ; l'équipe est prévenue."
            )
        )
    headers["Content-Length"] = str(os.fstat(handle.fileno()).st_size)
    # Set as a header, not media_type: Starlette would add "charset=utf-8" to text/*, and many French
    # CSV files are Latin-1.
    headers["Content-Type"] = (
        row.media_type or mimetypes.guess_type(row.name)[0] or "application/octet-stream"
    )
    if request.method == "HEAD":
        handle.close()
        return Response(status_code=200, headers=headers)
    return StreamingResponse(_stream(handle), headers=headers)
