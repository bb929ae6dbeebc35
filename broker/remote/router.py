"""HTTP API of remote syncs: where each synced resource of a publication stands, and "check now"."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from broker.auth.dependencies import CurrentPrincipal, require_organization_write, require_read
from broker.db import SessionDep, after_commit
from broker.organizations import repository as organizations_repository
from broker.publications import service as publications
from broker.remote import repository, service
from broker.worker import send

router = APIRouter(prefix="/api/v1", tags=["remote"])


@router.get("/publications/{publication_id}/syncs", summary="Synced remote resources of a publication")
def list_syncs(publication_id: str, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    require_read(principal)
    publication = publications.get(session, publication_id)
    service.reconcile(session, publication.id)
    return {
        "publication": publication.id,
        "data": [service.to_dict(r) for r in repository.for_publication(session, publication.id)],
    }


@router.post(
    "/publications/{publication_id}/syncs/run",
    status_code=202,
    summary="Check the publication's synced remote resources now",
)
def run_syncs(publication_id: str, session: SessionDep, principal: CurrentPrincipal) -> JSONResponse:
    publication = publications.get(session, publication_id)
    organization = organizations_repository.get(session, publication.organization_id)
    assert organization is not None
    require_organization_write(principal, organization.slug)
    ids = service.make_due(session, publication.id)

    def enqueue() -> None:
        for sync_id in ids:
            send("remote.sync", [sync_id], queue="default")

    after_commit(session, enqueue)
    rows = [service.to_dict(r) for r in repository.for_publication(session, publication.id)]
    return JSONResponse({"publication": publication.id, "queued": ids, "data": rows}, status_code=202)
