"""HTTP API of organisations."""

from __future__ import annotations

from fastapi import APIRouter

from broker.auth.dependencies import CurrentPrincipal, require_read, require_staff
from broker.db import SessionDep
from broker.organizations import repository, service
from broker.organizations.schemas import OrganizationCreate, OrganizationPublic

router = APIRouter(prefix="/api/v1", tags=["organizations"])


@router.get("/organizations", summary="Registered organisations")
def list_organizations(session: SessionDep, principal: CurrentPrincipal) -> list[OrganizationPublic]:
    require_read(principal)
    return [service.to_public(o) for o in repository.list_all(session)]


@router.get("/organizations/{slug}", summary="One organisation")
def get_organization(slug: str, session: SessionDep, principal: CurrentPrincipal) -> OrganizationPublic:
    require_read(principal)
    return service.to_public(service.get_by_slug(session, slug))


@router.post("/organizations", status_code=201, summary="Register an organisation (staff)")
def create_organization(
    body: OrganizationCreate, session: SessionDep, principal: CurrentPrincipal
) -> OrganizationPublic:
    require_staff(principal)
    organization = service.create(
        session, body.slug, body.name, contact_email=body.contact_email, actor=principal
    )
    return service.to_public(organization)
