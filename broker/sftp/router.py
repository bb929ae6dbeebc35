"""HTTP API of SFTP deposit: keys allowed to log in as an organisation, and the drops processed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from broker.auth.dependencies import (
    CurrentPrincipal,
    require_organization_manage,
    require_organization_write,
)
from broker.db import SessionDep
from broker.organizations import service as organizations
from broker.sftp import repository, service
from broker.sftp.schemas import SftpKeyCreate, SftpKeyPublic

router = APIRouter(prefix="/api/v1", tags=["sftp"])


@router.post(
    "/organizations/{slug}/sftp-keys",
    status_code=201,
    summary="Register a public key for SFTP deposit (referent of the organisation, or staff)",
)
def add_key(
    slug: str, body: SftpKeyCreate, session: SessionDep, principal: CurrentPrincipal
) -> SftpKeyPublic:
    require_organization_manage(principal, slug)
    organization = organizations.get_by_slug(session, slug)
    key = service.add_key(session, organization, body.public_key, body.label, principal)
    return SftpKeyPublic(**service.key_to_dict(key))


@router.get("/organizations/{slug}/sftp-keys", summary="Public keys allowed to deposit over SFTP")
def list_keys(slug: str, session: SessionDep, principal: CurrentPrincipal) -> list[SftpKeyPublic]:
    require_organization_manage(principal, slug)
    organization = organizations.get_by_slug(session, slug)
    return [SftpKeyPublic(**service.key_to_dict(k)) for k in repository.keys(session, organization.id)]


@router.delete("/organizations/{slug}/sftp-keys/{key_id}", status_code=204, summary="Revoke an SFTP key")
def delete_key(slug: str, key_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
    require_organization_manage(principal, slug)
    organization = organizations.get_by_slug(session, slug)
    service.remove_key(session, organization, key_id, principal)
    return Response(status_code=204)


@router.get("/organizations/{slug}/sftp-drops", summary="Recent SFTP drops and their reports")
def list_drops(
    slug: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: int = Query(50, ge=1, le=500),
) -> dict[str, Any]:
    require_organization_write(principal, slug)
    organization = organizations.get_by_slug(session, slug)
    drops = repository.drops(session, organization.id, limit)
    return {"organization": slug, "data": [service.drop_to_dict(d) for d in drops]}
