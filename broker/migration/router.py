"""HTTP API of migrations: readers follow them; staff preview (dry run) or start one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from broker.auth.dependencies import CurrentPrincipal, require_read, require_staff
from broker.db import SessionDep, session_scope
from broker.migration import service
from broker.migration.schemas import MigrationRequest

router = APIRouter(prefix="/api/v1", tags=["migrations"])


@router.get("/migrations", summary="Migration jobs, newest first, with their progress")
def list_migrations(
    session: SessionDep, principal: CurrentPrincipal, limit: int = Query(100, ge=1, le=1000)
) -> list[dict[str, Any]]:
    require_read(principal)
    return service.list_view(session, limit=limit)


@router.get("/migrations/{job_id}", summary="A migration job and each publication's progress")
def get_migration(job_id: str, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    require_read(principal)
    return service.detail_view(session, service.get(session, job_id))


@router.post(
    "/migrations",
    status_code=202,
    summary="Start a migration (staff); with dry_run, the publications and what would happen",
)
def create_migration(body: MigrationRequest, principal: CurrentPrincipal) -> JSONResponse:
    require_staff(principal)
    if body.dry_run:
        with session_scope() as session:
            preview = service.preview(session, gap_id=body.gap_id, need=body.need, platform=body.platform)
            # A preview writes nothing, whatever the code it ran on the way.
            session.rollback()
        return JSONResponse(preview, status_code=200)
    with session_scope() as session:
        job = service.create_from_request(
            session, principal, gap_id=body.gap_id, need=body.need, platform=body.platform
        )
        job_id = job.id
    with session_scope() as session:
        view = service.detail_view(session, service.get(session, job_id))
    return JSONResponse(view, status_code=202, headers={"Location": f"/api/v1/migrations/{job_id}"})
