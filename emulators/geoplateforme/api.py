"""The emulated Entrepôt API (``/api``): the routes a publishing client uses (geoplateforme-api.md §1-§4).

Every route but ``/users/me`` is relative to ``/datastores/{datastore}`` as on the platform (§2, [SDK]
routing table). Requests need ``Authorization: Bearer <token>`` from the emulated Keycloak; the caller must
be a member of the datastore's community. Lists are paged with ``page``/``limit`` and answer ``Content-Range``
(§4, "Pagination and filters").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response

from emulators.geoplateforme import metadata, processings, services, uploads
from emulators.geoplateforme.common import (
    current_user,
    datastore_of,
    dict_body,
    field_matcher,
    listing,
    store_of,
)
from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import Store, locked, public

router = APIRouter(prefix="/api")

# ------------------------------------------------------------------------------------------------------- user


@router.get("/users/me")
def users_me(request: Request) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        user = current_user(store, request)
        members = []
        for member in user.get("communities", []):
            community = store.data["communities"][member["community"]]
            members.append(
                {
                    "rights": member["rights"],
                    "community": {
                        "_id": community["_id"],
                        "name": community["name"],
                        "technical_name": community["technical_name"],
                        "datastore": community["datastore"]["_id"],
                        "supervisor": community["supervisor"]["_id"],
                        "public": community["public"],
                    },
                }
            )
        view = public(user)
        view.pop("communities", None)
        view["communities_member"] = members
        return view


# -------------------------------------------------------------------------------------------------- datastore


def _endpoint_entry(store: Store, datastore: dict[str, Any], entry: dict[str, Any]) -> dict[str, Any]:
    endpoint = store.data["endpoints"][entry["endpoint"]]
    return {
        "use": store.endpoint_use(datastore["_id"], endpoint["_id"]),
        "quota": entry["quota"],
        "endpoint": public(endpoint),
    }


def _datastore_view(store: Store, datastore: dict[str, Any]) -> dict[str, Any]:
    community = store.data["communities"][datastore["community"]]

    def storage(spec: dict[str, Any]) -> dict[str, Any]:
        return {"use": 0, "quota": 10 * 1024**3, "storage": spec}

    return {
        "_id": datastore["_id"],
        "name": datastore["name"],
        "technical_name": datastore["technical_name"],
        "active": datastore["active"],
        "community": {
            "_id": community["_id"],
            "contact": community["contact"],
            "public": community["public"],
        },
        "processings": datastore["processings"],
        "checks": datastore["checks"],
        "endpoints": [_endpoint_entry(store, datastore, entry) for entry in datastore["endpoints"]],
        "storages": {
            "data": [storage(spec) for spec in datastore["storages"]],
            "upload": storage(
                {"_id": datastore["_id"], "name": "uploads", "type": "FILESYSTEM", "labels": []}
            ),
            "annexe": storage({"_id": datastore["_id"], "name": "annexes", "type": "S3", "labels": []}),
        },
    }


@router.get("/datastores/{datastore}")
def get_datastore(request: Request, datastore: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        return _datastore_view(store, datastore_of(store, request, datastore))


@router.get("/datastores/{datastore}/endpoints")
def list_endpoints(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        entries = [_endpoint_entry(store, ds, entry) for entry in ds["endpoints"]]

        def on_endpoint(name: str) -> Callable[[dict[str, Any], str], bool]:
            inner = field_matcher(name)
            return lambda item, value: inner(item["endpoint"], value)

        return listing(
            request,
            entries,
            lambda item: item,
            {"name": on_endpoint("name"), "type": on_endpoint("type"), "open": on_endpoint("open")},
        )


# ------------------------------------------------------------------------------------------------------- tags


TAGGED = {"uploads", "stored_data", "configurations", "offerings", "metadata"}


@router.post("/datastores/{datastore}/{entity}/{entity_id}/tags")
def add_tags(
    request: Request, datastore: str, entity: str, entity_id: str, body: Any = Body(...)
) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        if entity not in TAGGED:
            raise ApiError(404, f"Les entités {entity} n'ont pas d'étiquettes.")
        item = store.get(entity, datastore, entity_id)
        tags = dict_body(body)
        for key, value in tags.items():
            if not isinstance(value, str | int | float | bool):
                raise ApiError(400, f"La valeur de l'étiquette {key} doit être une chaîne.")
        item.setdefault("tags", {}).update({str(k): str(v) for k, v in tags.items()})
        store.dirty = True
        return JSONResponse(item["tags"])


@router.delete("/datastores/{datastore}/{entity}/{entity_id}/tags")
def delete_tags(
    request: Request, datastore: str, entity: str, entity_id: str, tags: list[str] = Query(default=[])
) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        if entity not in TAGGED:
            raise ApiError(404, f"Les entités {entity} n'ont pas d'étiquettes.")
        item = store.get(entity, datastore, entity_id)
        for key in tags:
            item.setdefault("tags", {}).pop(key, None)
        store.dirty = True
        return Response(status_code=204)


# Routers of each kind of entity, after the generic tags routes.
for _module in (uploads, processings, services, metadata):
    router.include_router(_module.router)
