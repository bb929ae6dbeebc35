"""HTTP API of targets and of the categories in force."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.classification import service as classification
from broker.targets import service

router = APIRouter(prefix="/api/v1", tags=["targets"])


@router.get("/targets", summary="Delivery targets and whether each is configured")
def list_targets() -> list[dict[str, Any]]:
    return [
        {"name": t.name, "title": t.title, "url": t.url, "configured": t.configured, "emulator": t.emulator}
        for t in service.describe_targets()
    ]


@router.get("/categories", summary="The needs catalogue in force (categories.yaml)")
def get_categories() -> dict[str, Any]:
    rules = classification.current_rules()
    return {"digest": rules.digest, "source": str(classification.rules_path()), **rules.public_view()}
