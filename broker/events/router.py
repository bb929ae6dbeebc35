"""HTTP API of the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from broker.auth.dependencies import CurrentPrincipal, require_read
from broker.db import SessionDep
from broker.events import repository, service
from broker.organizations import repository as organizations_repository

router = APIRouter(prefix="/api/v1", tags=["events"])


@router.get("/events", summary="The audit log, newest first")
def list_events(
    session: SessionDep,
    principal: CurrentPrincipal,
    publication: str | None = Query(None, description="Publication id"),
    organization: str | None = Query(None, description="Organisation slug"),
    limit: int = Query(200, ge=1, le=1000),
    before: int | None = Query(None, description="Only events with a smaller id (paging)"),
) -> list[dict[str, Any]]:
    require_read(principal)
    organization_id = None
    if organization:
        found = organizations_repository.get_by_slug(session, organization)
        if found is None:
            return []
        organization_id = found.id
    rows = repository.search(
        session, publication_id=publication, organization_id=organization_id, limit=limit, before_id=before
    )
    return [service.to_dict(e) for e in rows]
