"""Emulator-only administration, under ``/_emulator/`` and nowhere on the real platform.

- ``POST /_emulator/organisations`` ``{technical_name, name?, client_id?, client_secret?, username?,
  password?, totp_secret?, endpoint_quota?}``: a community, its datastore (endpoints of every type, open
  and private; every processing and check) and a service-account client. Idempotent on
  ``technical_name`` (200 with the existing one, 201 when created). The answer carries ``api_url``,
  ``token_url``, ``csw_url``, ``datastore_id``, ``client_id`` and ``client_secret``: everything a
  connector configuration needs. On the real platform a datastore is created by hand on request
  (geoplateforme-api.md §1).
- ``GET /_emulator/organisations``.
- ``GET /_emulator/state[?datastore=ID]``: live counts of uploads, executions, stored data, statics,
  configurations, offerings and metadata, the counts ever created, tokens issued.
- ``GET|POST|DELETE /_emulator/faults``: ``fail_next`` (the next N API/token requests answer ``fail_status``,
  503 by default, with ``retry_after`` if set), ``slow_factor`` (multiplies the status step),
  ``unstable_next_execution`` / ``unstable_next_offering`` (the next one launched ends FAILURE / UNSTABLE),
  ``token_ttl`` (seconds).
- ``POST /_emulator/tokens/revoke``: every access token stops working (clients must fetch a new one).
- ``POST /_emulator/reset``: deletes every datastore entity (organisations stay).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import DATASTORE_KINDS, DEFAULT_FAULTS, Store, locked

router = APIRouter(prefix="/_emulator")


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


@router.post("/organisations")
def create_organisation(request: Request, body: dict[str, Any] = Body(...)) -> JSONResponse:
    store = _store(request)
    technical_name = str(body.get("technical_name") or "").strip()
    if not technical_name:
        raise ApiError(400, "Le champ technical_name est obligatoire.")
    with locked(store):
        view, created = store.create_organisation(
            technical_name=technical_name,
            name=str(body.get("name") or technical_name),
            base_url=_base_url(request),
            client_id=body.get("client_id"),
            client_secret=body.get("client_secret"),
            username=body.get("username"),
            password=body.get("password"),
            totp_secret=body.get("totp_secret"),
            endpoint_quota=int(body.get("endpoint_quota") or 10),
        )
        return JSONResponse(view, status_code=201 if created else 200)


@router.get("/organisations")
def list_organisations(request: Request) -> list[dict[str, Any]]:
    store = _store(request)
    with locked(store):
        return [store.organisation_view(c, _base_url(request)) for c in store.data["communities"].values()]


@router.get("/state")
def state(request: Request, datastore: str | None = None) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        return {
            "counts": store.counts(datastore),
            "created": store.created_counts(datastore),
            "datastores": {ds: store.counts(ds) for ds in store.data["datastores"]},
            "tokens_issued": store.tokens_issued,
            "step_seconds": store.step_seconds,
            "faults": store.faults | {"token_ttl": store.token_ttl},
        }


@router.get("/faults")
def get_faults(request: Request) -> dict[str, Any]:
    store = _store(request)
    with store.lock:
        return store.faults | {"token_ttl": store.token_ttl}


@router.post("/faults")
def set_faults(request: Request, body: dict[str, Any] = Body(...)) -> dict[str, Any]:
    store = _store(request)
    unknown = set(body) - set(DEFAULT_FAULTS) - {"token_ttl"}
    if unknown:
        raise ApiError(400, f"Fautes inconnues : {', '.join(sorted(unknown))}.")
    with locked(store):
        if "token_ttl" in body:
            store.token_ttl = int(body.pop("token_ttl"))
        store.faults.update(body)
        store.dirty = True
        return store.faults | {"token_ttl": store.token_ttl}


@router.delete("/faults")
def clear_faults(request: Request) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        store.faults = dict(DEFAULT_FAULTS)
        store.dirty = True
        return store.faults | {"token_ttl": store.token_ttl}


@router.post("/tokens/revoke")
def revoke_tokens(request: Request) -> dict[str, int]:
    store = _store(request)
    with locked(store):
        return {"revoked": store.revoke_tokens()}


@router.post("/reset")
def reset(request: Request) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        for kind in DATASTORE_KINDS:
            for entity_id in list(store.data[kind]):
                store.remove(kind, entity_id)
        store.created.clear()
        return {"counts": store.counts()}
