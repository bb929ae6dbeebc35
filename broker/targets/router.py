"""HTTP API of targets and of the categories in force."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.auth.dependencies import CurrentPrincipal, require_read
from broker.classification import service as classification
from broker.publications.manifest import manifest_schema
from broker.targets import service

router = APIRouter(prefix="/api/v1", tags=["targets"])


@router.get("/targets", summary="Delivery targets and whether each is configured")
def list_targets(principal: CurrentPrincipal) -> list[dict[str, Any]]:
    require_read(principal)
    return [
        {"name": t.name, "title": t.title, "url": t.url, "configured": t.configured, "emulator": t.emulator}
        for t in service.describe_targets()
    ]


@router.get("/categories", summary="The needs catalogue in force (categories.yaml)")
def get_categories(principal: CurrentPrincipal) -> dict[str, Any]:
    """The matrix in force: ``categories.yaml`` with the gap register over it (a delivered gap is A)."""
    require_read(principal)
    in_force = classification.rules_in_force()
    return {
        "digest": in_force.digest,
        "file_digest": classification.current_rules().digest,
        "source": str(classification.rules_path()),
        **in_force.public_view(),
    }


@router.get("/manifest/schema", summary="JSON Schema of a manifest (licences, frequencies, services…)")
def get_manifest_schema() -> dict[str, Any]:
    # Public on purpose: producers' tools validate manifests before they have a token.
    return manifest_schema()
