"""HTTP API of deliveries: list them, and let staff retry one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from broker.auth.dependencies import CurrentPrincipal, require_read, require_staff
from broker.db import SessionDep
from broker.deliveries import repository, service
from broker.errors import NotFound

router = APIRouter(prefix="/api/v1", tags=["deliveries"])


@router.get("/deliveries", summary="Deliveries, newest change first")
def list_deliveries(
    session: SessionDep,
    principal: CurrentPrincipal,
    state: str | None = Query(None, pattern="^(pending|running|retrying|waiting|done|failed|cancelled)$"),
    target: str | None = Query(None),
    limit: int = Query(200, ge=1, le=1000),
) -> list[dict[str, Any]]:
    require_read(principal)
    rows = repository.search(session, state=state, target=target, limit=limit)
    return [{**service.to_dict(d), "publication_id": d.publication_id} for d in rows]


@router.post("/deliveries/{delivery_id}/retry", status_code=202, summary="Retry a delivery now (staff)")
def retry_delivery(delivery_id: str, session: SessionDep, principal: CurrentPrincipal) -> dict[str, Any]:
    require_staff(principal)
    delivery = repository.get(session, delivery_id)
    if delivery is None:
        raise NotFound(f"Livraison inconnue : {delivery_id}.")
    return service.to_dict(service.retry_now(session, delivery, actor=principal))
