"""HTTP API of publications: create, read, list, revise, withdraw, and plan without publishing."""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from broker.auth.dependencies import CurrentPrincipal, require_read
from broker.auth.principal import Principal
from broker.config import get_settings
from broker.db import SessionDep, session_scope
from broker.errors import InvalidInput
from broker.intake.staging import Staging
from broker.organizations import repository as organizations_repository
from broker.publications import repository, service
from broker.publications.manifest import parse_manifest_text
from broker.remote.service import fetch_manifest_urls
from broker.uploads.service import stage_uploads, upload_refs
from regional_store.blobs import BlobStore

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["publications"])

T = TypeVar("T")

BODY_DOC = {
    "requestBody": {
        "description": (
            "multipart/form-data with a `manifest` part (JSON or YAML) and one `files` part per file, "
            "matched to the manifest's resources by file name; or an application/json manifest whose "
            "resources are all URLs."
        ),
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "manifest": {"type": "string"},
                        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
                    },
                    "required": ["manifest"],
                }
            },
            "application/json": {"schema": {"type": "object"}},
        },
        "required": True,
    }
}


async def _read_submission(
    request: Request, staging: Staging, principal: Principal
) -> tuple[dict[str, Any], str]:
    """The manifest and the files of a request; files go straight to the content-addressed store.

    Files come as multipart parts, as finished resumable uploads named in ``uploads`` ({file name: upload
    id}), or are fetched from the manifest's URL resources (SSRF-guarded) into the same staging store.
    """
    content_type = request.headers.get("content-type", "")
    channel = request.headers.get("x-broker-channel", "api")
    if channel not in {"api", "cli", "dashboard"}:
        channel = "api"
    if content_type.startswith("application/json") or content_type.startswith("application/yaml"):
        body = await request.body()
        raw = parse_manifest_text(body)
        refs = upload_refs(raw)
        await _stage_referenced(staging, raw, refs, principal)
        return raw, channel
    if not content_type.startswith("multipart/form-data"):
        raise InvalidInput(
            "Corps attendu : multipart/form-data (manifeste + fichiers) ou application/json.",
            fields={"content-type": [content_type or "absent"]},
        )
    form = await request.form(max_files=1000, max_fields=100, max_part_size=10 * 1024 * 1024)
    try:
        manifest_part = form.get("manifest")
        if manifest_part is None:
            raise InvalidInput("La partie « manifest » manque.", fields={"manifest": ["champ obligatoire"]})
        if isinstance(manifest_part, UploadFile):
            text: str | bytes = await manifest_part.read()
        else:
            text = manifest_part
        raw = parse_manifest_text(text)
        refs = upload_refs(raw, form.get("uploads"))
        for part in form.getlist("files"):
            if not isinstance(part, UploadFile):
                raise InvalidInput(
                    "Chaque partie « files » doit être un fichier.", fields={"files": ["fichier attendu"]}
                )
            await run_in_threadpool(staging.add, part.filename or "fichier", part.file)
    finally:
        await form.close()
    await _stage_referenced(staging, raw, refs, principal)
    return raw, channel


async def _stage_referenced(
    staging: Staging, raw: dict[str, Any], refs: dict[str, str], principal: Principal
) -> None:
    await run_in_threadpool(stage_uploads, staging, refs, principal)
    await run_in_threadpool(fetch_manifest_urls, staging, raw)


def _staging() -> Staging:
    settings = get_settings()
    return Staging(BlobStore(settings.files_dir), settings.max_upload_bytes)


def _is_referenced(sha256: str) -> bool:
    with session_scope() as session:
        return repository.sha256_referenced(session, sha256)


async def _guarded(staging: Staging, work: Callable[[], T]) -> T:
    """Run ``work`` in a thread; if it fails, take back the files this request stored."""
    try:
        return await run_in_threadpool(work)
    except BaseException:
        await run_in_threadpool(staging.discard, _is_referenced)
        raise


@router.post("/publications", status_code=202, openapi_extra=BODY_DOC, summary="Publish a new dataset")
async def create_publication(request: Request, principal: CurrentPrincipal) -> JSONResponse:
    staging = _staging()
    try:
        raw, channel = await _read_submission(request, staging, principal)
    except BaseException:
        await run_in_threadpool(staging.discard, _is_referenced)
        raise

    def work() -> dict[str, Any]:
        with session_scope() as session:
            accepted = service.accept(session, principal, raw, staging, channel)
            publication = service.create(session, principal, accepted, channel)
            session.flush()
            return service.view(session, publication)

    body = await _guarded(staging, work)
    return JSONResponse(body, status_code=202, headers={"Location": f"/api/v1/publications/{body['id']}"})


@router.post(
    "/publications/{publication_id}/revisions",
    status_code=202,
    openapi_extra=BODY_DOC,
    summary="Publish a new revision",
)
async def revise_publication(
    publication_id: str, request: Request, principal: CurrentPrincipal
) -> JSONResponse:
    staging = _staging()
    try:
        raw, channel = await _read_submission(request, staging, principal)
    except BaseException:
        await run_in_threadpool(staging.discard, _is_referenced)
        raise

    def work() -> dict[str, Any]:
        with session_scope() as session:
            publication = service.get(session, publication_id)
            accepted = service.accept(session, principal, raw, staging, channel)
            service.revise(session, principal, publication, accepted, channel)
            session.flush()
            return service.view(session, publication)

    body = await _guarded(staging, work)
    return JSONResponse(body, status_code=202)


@router.post("/plan", openapi_extra=BODY_DOC, summary="Classify and pre-flight without publishing")
async def plan(request: Request, principal: CurrentPrincipal) -> dict[str, Any]:
    settings = get_settings()
    # Files for a plan go to a scratch store that is always emptied: a plan stores nothing.
    scratch = Path(tempfile.mkdtemp(prefix="plan-", dir=_scratch_dir()))
    staging = Staging(BlobStore(scratch), settings.max_upload_bytes)
    try:
        raw, channel = await _read_submission(request, staging, principal)

        def work() -> dict[str, Any]:
            with session_scope() as session:
                accepted = service.accept(session, principal, raw, staging, channel)
                report = service.preflight(session, accepted)
                session.rollback()
            return {
                "decision": service.decision_view(accepted.result),
                "resources": [
                    {
                        "name": r.name,
                        "sha256": r.sha256,
                        "size": r.size,
                        "format": r.format,
                        "kind": r.kind,
                        "media_type": r.media_type,
                        "crs": r.crs,
                        "extent_wgs84": r.extent_wgs84,
                        "url": r.url,
                    }
                    for r in accepted.resources
                ],
                "preflight": {
                    target: [p.model_dump() for p in problems] for target, problems in report.items()
                },
            }

        return await run_in_threadpool(work)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _scratch_dir() -> str:
    path = get_settings().data_dir / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


@router.get("/publications/{publication_id}", summary="A publication, its decision and deliveries")
def get_publication(publication_id: str, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    require_read(principal)
    return service.view(session, service.get(session, publication_id))


@router.get("/publications", summary="List publications")
def list_publications(
    session: SessionDep,
    principal: CurrentPrincipal,
    organization: str | None = Query(None, description="Organisation slug"),
    state: str | None = Query(None, pattern="^(active|withdrawn)$"),
    category: str | None = Query(None, pattern="^[ABC]$"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> dict[str, Any]:
    require_read(principal)
    organization_ids: list[str] | None = None
    if organization:
        found = organizations_repository.get_by_slug(session, organization)
        organization_ids = [found.id] if found else []
    rows, total = repository.search(
        session, organization_ids=organization_ids, state=state, category=category, limit=limit, offset=offset
    )
    slugs = {o.id: o.slug for o in organizations_repository.list_all(session)}
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "data": [service.summary(session, p, slugs) for p in rows],
    }


@router.delete("/publications/{publication_id}", status_code=202, summary="Withdraw from every target")
def withdraw_publication(publication_id: str, principal: CurrentPrincipal) -> JSONResponse:
    with session_scope() as session:
        publication = service.get(session, publication_id)
        service.withdraw(session, principal, publication)
        session.flush()
        body = service.view(session, publication)
    return JSONResponse(body, status_code=202)
