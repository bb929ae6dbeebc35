"""HTTP API of the migration metrics (readers, board included) and of their daily snapshots."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.auth.dependencies import CurrentPrincipal, require_read, require_staff
from broker.db import SessionDep, session_scope
from broker.stats import service

router = APIRouter(prefix="/api/v1", tags=["stats"])


@router.get("/stats/migration", summary="Migration towards the national platforms: counts, gaps, history")
def migration_stats(session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    require_read(principal)
    return service.migration_stats(session)


@router.post("/stats/migration/snapshot", summary="Write today's snapshot now (staff)")
def snapshot(principal: CurrentPrincipal) -> dict[str, Any]:
    require_staff(principal)
    with session_scope() as session:
        return service.snapshot(session, full=False)
