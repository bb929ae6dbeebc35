"""HTTP API of the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from broker.auth.dependencies import CurrentPrincipal, require_read
from broker.auth.principal import Principal
from broker.db import SessionDep
from broker.events import repository, service
from broker.events.models import Event
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
    slugs = {o.id: o.slug for o in organizations_repository.list_all(session)}
    return [service.to_dict(e, redact=not _may_see_details(principal, e, slugs)) for e in rows]


def _may_see_details(principal: Principal, event: Event, slugs: dict[str, str]) -> bool:
    """Access lists and requests name people: only staff and the organisation concerned see them."""
    if not event.action.startswith("access"):
        return True
    organization = slugs.get(event.organization_id or "") or event.actor_organization
    return principal.is_staff or (organization is not None and principal.belongs_to(organization))
