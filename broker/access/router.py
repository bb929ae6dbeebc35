"""HTTP API of restricted access: access lists, access requests, and service accounts (staff).

Writes run in their own ``session_scope`` so they are committed before the answer leaves: a client that
reads right after a 201/202 sees its change (``SessionDep`` commits only after the response is sent).

Paths are absolute; mount with ``app.include_router(broker.access.router.router)``. The HTML page for people
(``/acces/{id}``) is a second router, :mod:`broker.access.pages`.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from broker.access import service
from broker.access.schemas import (
    AccessListIn,
    AccessListOut,
    AccessRequestIn,
    AccessRequestOut,
    DecisionIn,
    RequestStatus,
    ServiceAccountIn,
)
from broker.auth.dependencies import CurrentPrincipal, StaffPrincipal
from broker.auth.schemas import ServiceAccountOut
from broker.db import SessionDep, session_scope

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["access"])


# --------------------------------------------------------------------------------------------- access list


@router.get(
    "/publications/{publication_id}/access",
    response_model=AccessListOut,
    summary="Who may read a restricted publication (staff, the organisation's producers and referents)",
)
def get_access(publication_id: str, session: SessionDep, principal: CurrentPrincipal) -> AccessListOut:
    return service.view_access(session, principal, publication_id)


@router.put(
    "/publications/{publication_id}/access",
    response_model=AccessListOut,
    responses={202: {"model": AccessListOut, "description": "A new revision carries the new list."}},
    summary="Replace the access list (the organisation's referent, or staff)",
)
def put_access(publication_id: str, body: AccessListIn, principal: CurrentPrincipal) -> JSONResponse:
    """A changed list makes a new revision (answer 202): the regional store applies it once that
    revision's delivery is done. The same list again changes nothing (answer 200)."""
    with session_scope() as session:
        result = service.set_access(session, principal, publication_id, body.users, body.organizations)
    return JSONResponse(result.model_dump(), status_code=202 if result.changed else 200)


# --------------------------------------------------------------------------------------------- requests


@router.post(
    "/publications/{publication_id}/access-requests",
    status_code=201,
    response_model=AccessRequestOut,
    summary="Ask for access to a restricted publication (any authenticated person)",
)
def create_access_request(
    publication_id: str, body: AccessRequestIn, principal: CurrentPrincipal
) -> JSONResponse:
    with session_scope() as session:
        request = service.create_request(session, principal, publication_id, body.reason)
        out = service.to_out(session, [request])[0]
    return JSONResponse(
        out.model_dump(), status_code=201, headers={"Location": f"/api/v1/access-requests/{request.id}"}
    )


@router.get(
    "/publications/{publication_id}/access-requests",
    response_model=list[AccessRequestOut],
    summary="Access requests of a publication (all for its referents and staff, one's own otherwise)",
)
def list_publication_requests(
    publication_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    status: RequestStatus | None = Query(None),
) -> list[AccessRequestOut]:
    return service.requests_for_publication(session, principal, publication_id, status)


@router.get(
    "/access-requests",
    response_model=list[AccessRequestOut],
    summary="Access requests (staff: all; referents: their organisations'; everyone: their own)",
)
def list_access_requests(
    session: SessionDep,
    principal: CurrentPrincipal,
    status: RequestStatus | None = Query(None),
    limit: int = Query(200, ge=1, le=1000),
    offset: int = Query(0, ge=0),
) -> list[AccessRequestOut]:
    return service.list_requests(session, principal, status, limit, offset)


@router.post(
    "/access-requests/{request_id}/grant",
    response_model=AccessRequestOut,
    summary="Grant a request: the requester joins the access list (referent of the organisation, or staff)",
)
def grant_access_request(
    request_id: str, principal: CurrentPrincipal, body: DecisionIn | None = None
) -> AccessRequestOut:
    with session_scope() as session:
        request = service.grant(session, principal, request_id, body.note if body else None)
        session.flush()
        return service.to_out(session, [request])[0]


@router.post(
    "/access-requests/{request_id}/refuse",
    response_model=AccessRequestOut,
    summary="Refuse a request, with an optional note for the requester (referent, or staff)",
)
def refuse_access_request(
    request_id: str, principal: CurrentPrincipal, body: DecisionIn | None = None
) -> AccessRequestOut:
    with session_scope() as session:
        request = service.refuse(session, principal, request_id, body.note if body else None)
        session.flush()
        return service.to_out(session, [request])[0]


@router.post(
    "/access-requests/{request_id}/cancel",
    response_model=AccessRequestOut,
    summary="Cancel one's own pending request",
)
def cancel_access_request(request_id: str, principal: CurrentPrincipal) -> AccessRequestOut:
    with session_scope() as session:
        request = service.cancel(session, principal, request_id)
        session.flush()
        return service.to_out(session, [request])[0]


# ------------------------------------------------------------------------------------------ service accounts


def _account_out(account: object) -> ServiceAccountOut:
    return ServiceAccountOut.model_validate(account, from_attributes=True)


@router.get(
    "/service-accounts",
    response_model=list[ServiceAccountOut],
    summary="Service accounts and their bindings (staff)",
)
def list_service_accounts(
    session: SessionDep,
    principal: StaffPrincipal,
    organization: str | None = Query(None, description="Organisation slug"),
) -> list[ServiceAccountOut]:
    return [_account_out(a) for a in service.service_accounts(session, organization)]


@router.post(
    "/service-accounts",
    status_code=201,
    response_model=ServiceAccountOut,
    summary="Bind an OIDC client to one organisation and one role (staff)",
)
def bind_service_account(body: ServiceAccountIn, principal: StaffPrincipal) -> ServiceAccountOut:
    with session_scope() as session:
        account = service.bind_service_account(
            session, principal, body.client_id, body.organization, body.role
        )
        return _account_out(account)


@router.delete(
    "/service-accounts/{client_id}",
    status_code=204,
    summary="Remove a service account's binding; its tokens get 403 from then on (staff)",
)
def unbind_service_account(client_id: str, principal: StaffPrincipal) -> Response:
    with session_scope() as session:
        service.unbind_service_account(session, principal, client_id)
    return Response(status_code=204)
