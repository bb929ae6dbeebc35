"""The publication's metadata as the platforms receive it: ISO 19139 and DCAT."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from broker.auth.dependencies import CurrentPrincipal, require_read
from broker.db import SessionDep
from broker.metadata import service

router = APIRouter(prefix="/api/v1", tags=["metadata"])


@router.get("/publications/{publication_id}/metadata.iso19139.xml", summary="ISO 19139 record (XML)")
def iso19139(publication_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
    require_read(principal)
    return Response(service.iso19139(session, publication_id), media_type="application/xml; charset=utf-8")


@router.get("/publications/{publication_id}/metadata.dcat.ttl", summary="DCAT description (Turtle)")
def dcat(publication_id: str, session: SessionDep, principal: CurrentPrincipal) -> Response:
    require_read(principal)
    return Response(service.dcat(session, publication_id), media_type="text/turtle; charset=utf-8")
