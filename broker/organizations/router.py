"""HTTP API of organisations."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Response

from broker.auth.dependencies import (
    CurrentPrincipal,
    require_organization_manage,
    require_read,
    require_staff,
)
from broker.db import SessionDep
from broker.organizations import repository, service
from broker.organizations.schemas import CredentialStatus, OrganizationCreate, OrganizationPublic

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


@router.get("/organizations/{slug}/credentials", summary="Which national credentials are set (never values)")
def list_credentials(slug: str, session: SessionDep, principal: CurrentPrincipal) -> list[CredentialStatus]:
    require_organization_manage(principal, slug)
    organization = service.get_by_slug(session, slug)
    return [service.credential_status(r) for r in repository.credentials(session, organization.id)]


@router.put(
    "/organizations/{slug}/credentials/{target}",
    summary="Set the organisation's credentials for data.gouv.fr or the Géoplateforme (referent, staff)",
)
def put_credentials(
    slug: str, target: str, session: SessionDep, principal: CurrentPrincipal, body: dict[str, Any] = Body(...)
) -> CredentialStatus:
    require_organization_manage(principal, slug)
    organization = service.get_by_slug(session, slug)
    return service.credential_status(
        service.set_credentials(session, organization, target, body, actor=principal)
    )


@router.delete("/organizations/{slug}/credentials/{target}", status_code=204, summary="Remove credentials")
def delete_credentials(slug: str, target: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
    require_organization_manage(principal, slug)
    organization = service.get_by_slug(session, slug)
    service.remove_credentials(session, organization, target, actor=principal)
    return Response(status_code=204)
