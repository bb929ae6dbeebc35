"""HTTP API of the gap register: readers list and read gaps; staff open, slip, deliver or drop them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from broker.auth.dependencies import CurrentPrincipal, require_read, require_staff
from broker.db import SessionDep, session_scope
from broker.gaps import service
from broker.gaps.schemas import GapCreate, GapPatch

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Merged into the application's lifespan by include_router: at start-up the register follows
    # categories.yaml (new B cells become gaps, date slips in the file are recorded, a cell that became A
    # starts its migration).
    await run_in_threadpool(service.sync_at_startup)
    yield


router = APIRouter(prefix="/api/v1", tags=["gaps"], lifespan=lifespan)


@router.get("/gaps", summary="The gap register")
def list_gaps(session: SessionDep, principal: CurrentPrincipal) -> list[dict[str, Any]]:
    require_read(principal)
    return service.list_view(session)


@router.get("/gaps/{gap_id}", summary="A gap, its history and the publications waiting on it")
def get_gap(
    gap_id: str,
    session: SessionDep,
    principal: CurrentPrincipal,
    limit: int = Query(500, ge=1, le=5000, description="Publications listed at most."),
) -> dict[str, Any]:
    require_read(principal)
    return service.detail_view(session, service.get(session, gap_id), limit=limit)


# Writes commit in their own unit of work before answering: the answer never shows an uncommitted change,
# and the migration a delivery starts is enqueued only once committed.


@router.post("/gaps", status_code=201, summary="Open a gap (staff)")
def create_gap(body: GapCreate, principal: CurrentPrincipal) -> JSONResponse:
    require_staff(principal)
    with session_scope() as session:
        gap = service.create(session, principal, body)
        gap_id = gap.id
    with session_scope() as session:
        view = service.detail_view(session, service.get(session, gap_id))
    return JSONResponse(view, status_code=201, headers={"Location": f"/api/v1/gaps/{gap_id}"})


@router.patch("/gaps/{gap_id}", summary="Change a gap (staff); a reason is required for date or status")
def update_gap(gap_id: str, body: GapPatch, principal: CurrentPrincipal) -> dict[str, Any]:
    require_staff(principal)
    with session_scope() as session:
        gap = service.update(session, principal, service.get(session, gap_id), body)
        gap_id = gap.id
    with session_scope() as session:
        return service.detail_view(session, service.get(session, gap_id))
