"""Shared pieces of the emulated Entrepôt API: authentication, datastore access, listings, constants."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from lxml import etree

from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import Store

TAG_FILTER = re.compile(r"tags\[(.+)\]")
LAYER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$")
SUB_NAME = re.compile(r"^[A-Za-z0-9_\-.]+$")
SRS = re.compile(r"^[A-Za-z]+:[A-Za-z0-9_.]+$")
GMD = "http://www.isotc211.org/2005/gmd"
GCO = "http://www.isotc211.org/2005/gco"
SLD = "http://www.opengis.net/sld"
OGC = "http://www.opengis.net/ogc"
DEFAULT_LIMIT = 10
MAX_LIMIT = 100  # UNCONFIRMED: cartes.gouv.fr pages with 100, the maximum is not documented (§4)
SAFE_XML = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def current_user(store: Store, request: Request) -> dict[str, Any]:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "Authentification requise.", headers={"WWW-Authenticate": "Bearer"})
    user = store.user_for_token(token.strip())
    if user is None:
        raise ApiError(
            401,
            "Jeton d'accès invalide ou expiré.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return user


def datastore_of(store: Store, request: Request, datastore: str) -> dict[str, Any]:
    return store.datastore_for(current_user(store, request), datastore)


# --------------------------------------------------------------------------------------------------- listings


def like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    if "%" not in pattern:
        return str(value) == pattern
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.fullmatch(regex, str(value), flags=re.DOTALL) is not None


def field_matcher(name: str) -> Callable[[dict[str, Any], str], bool]:
    def match(item: dict[str, Any], value: str) -> bool:
        field = item.get(name)
        if isinstance(field, bool):
            return str(field).lower() == value.lower()
        return like(field, value)

    return match


def listing(
    request: Request,
    items: list[dict[str, Any]],
    view: Callable[[dict[str, Any]], dict[str, Any]],
    matchers: dict[str, Callable[[dict[str, Any], str], bool]] | None = None,
) -> JSONResponse:
    query = request.query_params
    tags = {
        match.group(1): value for key, value in query.multi_items() if (match := TAG_FILTER.fullmatch(key))
    }
    selected = [item for item in items if all((item.get("tags") or {}).get(k) == v for k, v in tags.items())]
    for name, matcher in (matchers or {}).items():
        if name in query:
            selected = [item for item in selected if matcher(item, query[name])]
    try:
        page = int(query.get("page", 1))
        limit = min(int(query.get("limit", DEFAULT_LIMIT)), MAX_LIMIT)
    except ValueError as exc:
        raise ApiError(400, "Les paramètres page et limit doivent être des entiers.") from exc
    if page < 1 or limit < 1:
        raise ApiError(400, "Les paramètres page et limit doivent être supérieurs ou égaux à 1.")
    start = (page - 1) * limit
    chunk = selected[start : start + limit]
    end = start + len(chunk) - 1 if chunk else start
    return JSONResponse(
        [view(item) for item in chunk], headers={"Content-Range": f"{start}-{end}/{len(selected)}"}
    )


def pick(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def view(item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in names if name in item}

    return view


def require(body: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise ApiError(400, *(f"Le champ {name} est obligatoire." for name in missing))


def dict_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "Le corps de la requête doit être un objet JSON.")
    return body


def endpoint_of(store: Store, datastore: dict[str, Any], endpoint_id: Any) -> dict[str, Any]:
    for entry in datastore["endpoints"]:
        if entry["endpoint"] == endpoint_id:
            return store.data["endpoints"][endpoint_id]
    raise ApiError(400, f"Le point d'accès {endpoint_id} n'est pas rattaché à cet entrepôt.")


def used_stored_data(configuration: dict[str, Any]) -> set[str]:
    return {
        str(item.get("stored_data")) for item in (configuration.get("type_infos") or {}).get("used_data", [])
    }
