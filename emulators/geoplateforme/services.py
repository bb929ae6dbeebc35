"""Statics (styles), configurations and offerings (geoplateforme-api.md §2.3-§2.6)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from lxml import etree

from emulators.geoplateforme import catalogue
from emulators.geoplateforme.common import (
    LAYER_NAME,
    OGC,
    SAFE_XML,
    SLD,
    SUB_NAME,
    datastore_of,
    dict_body,
    endpoint_of,
    field_matcher,
    listing,
    pick,
    require,
    store_of,
    used_stored_data,
)
from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import Store, locked, now_iso, public

router = APIRouter()

# ---------------------------------------------------------------------------------------------------- statics


def _sld_attributes(content: bytes) -> list[str]:
    try:
        document = etree.fromstring(content, SAFE_XML)
    except etree.XMLSyntaxError as exc:
        raise ApiError(400, f"Le style n'est pas un XML bien formé : {exc}") from exc
    if document.tag != f"{{{SLD}}}StyledLayerDescriptor":
        raise ApiError(400, "Le fichier n'est pas un StyledLayerDescriptor.")
    if document.get("version") != "1.0.0":
        # §2.3: GeoServer styles must be SLD 1.0.0; QGIS exports 1.1.0, which is refused.
        raise ApiError(400, f"Le style doit être un SLD 1.0.0 (version {document.get('version')} reçue).")
    names = {(element.text or "").strip() for element in document.iter(f"{{{OGC}}}PropertyName")}
    return sorted(name for name in names if name)


@router.post("/datastores/{datastore}/statics", status_code=201)
def create_static(
    request: Request,
    datastore: str,
    file: UploadFile = File(...),
    name: str = Form(...),
    type: str = Form(...),
    description: str | None = Form(None),
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        if type not in catalogue.STATIC_TYPES:
            raise ApiError(
                400, f"Le type de fichier statique {type} est inconnu ({', '.join(catalogue.STATIC_TYPES)})."
            )
        content = file.file.read()
        type_infos: dict[str, Any] = {}
        if type == "GEOSERVER-STYLE":
            type_infos["used_attributes"] = _sld_attributes(content)
        static: dict[str, Any] = {"name": name, "type": type, "type_infos": type_infos}
        if description:
            static["description"] = description
        store.add("statics", datastore, static)
        destination = store.files_dir("statics", static["_id"]) / (file.filename or "static")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(content)
        return public(static)


@router.get("/datastores/{datastore}/statics")
def list_statics(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return listing(
            request,
            store.items("statics", datastore),
            pick("_id", "name", "type"),
            {"name": field_matcher("name"), "type": field_matcher("type")},
        )


@router.get("/datastores/{datastore}/statics/{static_id}")
def get_static(request: Request, datastore: str, static_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return public(store.get("statics", datastore, static_id))


@router.get("/datastores/{datastore}/statics/{static_id}/file")
def get_static_file(request: Request, datastore: str, static_id: str) -> FileResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        store.get("statics", datastore, static_id)
        path = next(store.files_dir("statics", static_id).iterdir())
        return FileResponse(path)


@router.delete("/datastores/{datastore}/statics/{static_id}", status_code=204)
def delete_static(request: Request, datastore: str, static_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        store.get("statics", datastore, static_id)
        for configuration in store.items("configurations", datastore):
            for item in (configuration.get("type_infos") or {}).get("used_data", []):
                if any(relation.get("style") == static_id for relation in item.get("relations", [])):
                    raise ApiError(
                        409,
                        f"Le fichier statique {static_id} est utilisé par la configuration "
                        f"{configuration['_id']}.",
                    )
        store.remove("statics", static_id)
        return Response(status_code=204)


# --------------------------------------------------------------------------------------------- configurations


def _validate_configuration(store: Store, datastore: str, body: dict[str, Any]) -> list[str]:
    """What the platform checks when a configuration is created or replaced (§2.4)."""
    problems: list[str] = []
    kind = body.get("type")
    infos = body.get("type_infos")
    if not isinstance(infos, dict):
        return ["Le champ type_infos est obligatoire."]
    if kind in ("WMS-VECTOR", "WMTS-TMS", "WMS-RASTER"):
        problems += [
            f"Le champ type_infos.{name} est obligatoire."
            for name in ("title", "abstract")
            if not infos.get(name)
        ]
    if kind == "DOWNLOAD":
        for name in ("title", "abstract"):
            if not isinstance(infos.get(name), dict) or not infos[name]:
                problems.append(
                    f'Le champ type_infos.{name} doit être un objet par langue, par exemple {{"fr": …}}.'
                )
    used = infos.get("used_data")
    if not isinstance(used, list) or not used:
        return [*problems, "Le champ type_infos.used_data doit contenir au moins une donnée."]
    accepted = catalogue.CONFIGURATION_INPUTS.get(str(kind), set())
    for item in used:
        stored_id = str(item.get("stored_data"))
        stored = store.data["stored_data"].get(stored_id)
        if stored is None or stored["__"]["datastore"] != datastore:
            problems.append(f"La donnée stockée {stored_id} n'existe pas.")
            continue
        if stored["type"] not in accepted:
            problems.append(
                f"Une configuration {kind} ne peut pas utiliser une donnée stockée {stored['type']}."
            )
            continue
        if stored["status"] not in ("GENERATED", "MODIFYING"):
            problems.append(f"La donnée stockée {stored_id} n'est pas générée (statut {stored['status']}).")
            continue
        type_infos = stored.get("type_infos") or {}
        tables = {relation["name"]: relation for relation in type_infos.get("relations", [])}
        if kind in ("WFS", "VECTOR-TMS"):
            for relation in item.get("relations") or []:
                if relation.get("native_name") not in tables:
                    problems.append(
                        f"La table {relation.get('native_name')} n'existe pas dans la donnée stockée."
                    )
                if kind == "WFS" and not relation.get("title"):
                    problems.append(f"Le titre de la table {relation.get('native_name')} est obligatoire.")
            if not item.get("relations"):
                problems.append("Au moins une table doit être publiée.")
        elif kind == "WMS-VECTOR":
            for relation in item.get("relations") or []:
                table = tables.get(relation.get("name"))
                if table is None:
                    problems.append(f"La table {relation.get('name')} n'existe pas dans la donnée stockée.")
                    continue
                style = store.data["statics"].get(str(relation.get("style")))
                if (
                    style is None
                    or style["__"]["datastore"] != datastore
                    or style["type"] != "GEOSERVER-STYLE"
                ):
                    problems.append(
                        f"Le style {relation.get('style')} n'est pas un fichier statique GEOSERVER-STYLE."
                    )
                    continue
                missing = set(style["type_infos"].get("used_attributes", [])) - set(table["attributes"])
                if missing:
                    problems.append(
                        f"Le style {style['name']} utilise des attributs absents de la table "
                        f"{table['name']} : " + ", ".join(sorted(missing))
                    )
            if not item.get("relations"):
                problems.append("Au moins une table doit être publiée.")
        elif kind in ("WMTS-TMS", "WMS-RASTER"):
            levels = type_infos.get("levels", [])
            for name in ("bottom_level", "top_level"):
                if str(item.get(name)) not in levels:
                    problems.append(f"Le niveau {item.get(name)} ({name}) n'existe pas dans la pyramide.")
        elif kind == "DOWNLOAD" and not SUB_NAME.fullmatch(str(item.get("sub_name", ""))):
            problems.append(f"Le sous-nom {item.get('sub_name')!r} ne respecte pas ^[A-Za-z0-9_\\-.]+$.")
    for metadata in body.get("metadata") or []:
        if metadata.get("type") not in ("ISO19115:2003", "FGDC", "TC211", "19139", "Other", "StyleSheet"):
            problems.append(f"Le type de métadonnée {metadata.get('type')} est inconnu.")
    return problems


def _configuration_view(store: Store, configuration: dict[str, Any]) -> dict[str, Any]:
    view = public(configuration)
    view["status"] = store.configuration_status(configuration["_id"])
    return view


@router.post("/datastores/{datastore}/configurations", status_code=201)
def create_configuration(request: Request, datastore: str, body: Any = Body(...)) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        body = dict_body(body)
        require(body, "type", "name", "layer_name", "type_infos")
        if body["type"] not in catalogue.CONFIGURATION_TYPES:
            raise ApiError(400, f"Le type de configuration {body['type']} est inconnu.")
        layer_name = str(body["layer_name"])
        if not LAYER_NAME.fullmatch(layer_name):
            raise ApiError(
                400, f"Le nom de couche {layer_name!r} ne respecte pas ^[A-Za-z_][A-Za-z0-9_\\-.]*$."
            )
        problems = _validate_configuration(store, datastore, body)
        if problems:
            raise ApiError(400, *problems)
        # §2.4: layer_name is unique across the whole platform for a given type.
        for other in store.data["configurations"].values():
            if other["type"] == body["type"] and other["layer_name"] == layer_name:
                raise ApiError(
                    409, f"Le nom de couche {layer_name} est déjà utilisé pour le type {body['type']}."
                )
        configuration: dict[str, Any] = {
            "name": str(body["name"]),
            "layer_name": layer_name,
            "type": body["type"],
            "type_infos": body["type_infos"],
            "tags": {},
            "last_event": {"title": "Création", "date": now_iso()},
        }
        for key in ("attribution", "metadata"):
            if body.get(key):
                configuration[key] = body[key]
        store.add("configurations", datastore, configuration)
        return _configuration_view(store, configuration)


@router.get("/datastores/{datastore}/configurations")
def list_configurations(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        views = [
            _configuration_view(store, item) | {"tags": item.get("tags", {})}
            for item in store.items("configurations", datastore)
        ]
        return listing(
            request,
            views,
            pick("_id", "name", "layer_name", "type", "status"),
            {
                "name": field_matcher("name"),
                "layer_name": field_matcher("layer_name"),
                "type": field_matcher("type"),
                "status": field_matcher("status"),
                "stored_data": lambda item, value: value in used_stored_data(item),
            },
        )


@router.get("/datastores/{datastore}/configurations/{configuration_id}")
def get_configuration(request: Request, datastore: str, configuration_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return _configuration_view(store, store.get("configurations", datastore, configuration_id))


def _offerings_of(store: Store, configuration_id: str) -> list[dict[str, Any]]:
    return [o for o in store.data["offerings"].values() if o["configuration"]["_id"] == configuration_id]


@router.put("/datastores/{datastore}/configurations/{configuration_id}")
def replace_configuration(
    request: Request, datastore: str, configuration_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        configuration = store.get("configurations", datastore, configuration_id)
        body = dict_body(body)
        require(body, "type", "name", "type_infos")
        if body["type"] != configuration["type"]:
            raise ApiError(400, "Le type d'une configuration ne peut pas être modifié.")
        if body.get("layer_name") not in (None, configuration["layer_name"]):
            raise ApiError(400, "Le nom de couche (layer_name) d'une configuration ne peut pas être modifié.")
        offerings = _offerings_of(store, configuration_id)
        if any(offering["status"] == "PUBLISHING" for offering in offerings):
            raise ApiError(409, "Une offre de cette configuration est en cours de publication.")
        problems = _validate_configuration(store, datastore, body)
        if problems:
            raise ApiError(400, *problems)
        configuration["name"] = str(body["name"])
        configuration["type_infos"] = body["type_infos"]
        for key in ("attribution", "metadata"):
            if key in body:
                configuration[key] = body[key]
        configuration["last_event"] = {"title": "Modification", "date": now_iso()}
        # §2.4 ([SDK] docs/workflow.md): a published configuration's change is pushed to the servers.
        for offering in offerings:
            if offering["status"] == "PUBLISHED":
                offering["status"] = "MODIFYING"
                store.schedule(offering)
        store.dirty = True
        return _configuration_view(store, configuration)


@router.delete("/datastores/{datastore}/configurations/{configuration_id}", status_code=204)
def delete_configuration(request: Request, datastore: str, configuration_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        store.get("configurations", datastore, configuration_id)
        if _offerings_of(store, configuration_id):
            raise ApiError(
                409, f"La configuration {configuration_id} a encore des offres : dépubliez-la d'abord."
            )
        store.remove("configurations", configuration_id)
        return Response(status_code=204)


# -------------------------------------------------------------------------------------------------- offerings


def _offering_urls(endpoint: dict[str, Any], configuration: dict[str, Any]) -> list[dict[str, str]]:
    """The URLs an offering answers (UNCONFIRMED query strings; roots from §1)."""
    layer = configuration["layer_name"]
    urls = []
    for item in endpoint["urls"]:
        kind, base = item["type"], item["url"]
        if kind == "WFS":
            url = f"{base}?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities"
        elif kind == "WMS":
            url = f"{base}?SERVICE=WMS&VERSION=1.3.0&REQUEST=GetCapabilities"
        elif kind == "WMTS":
            url = f"{base}?SERVICE=WMTS&VERSION=1.0.0&REQUEST=GetCapabilities"
        elif kind == "TMS":
            extension = "pbf" if configuration["type"] == "VECTOR-TMS" else "jpeg"
            url = f"{base}/{layer}/{{z}}/{{x}}/{{y}}.{extension}"
        elif kind == "DOWNLOAD":
            url = f"{base}/resource/{layer}"
        else:
            url = base
        urls.append({"type": kind, "url": url})
    return urls


def _offering_view(store: Store, offering: dict[str, Any]) -> dict[str, Any]:
    view = public(offering)
    configuration = store.data["configurations"].get(offering["configuration"]["_id"])
    if configuration is not None:
        view["configuration"] = {
            "_id": configuration["_id"],
            "name": configuration["name"],
            "status": store.configuration_status(configuration["_id"]),
        }
    return view


@router.post("/datastores/{datastore}/configurations/{configuration_id}/offerings", status_code=201)
def create_offering(
    request: Request, datastore: str, configuration_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        configuration = store.get("configurations", datastore, configuration_id)
        body = dict_body(body)
        if "visibility" in body:
            # §2.5: the field was removed on 2025-01-14; `open` replaces it.
            raise ApiError(400, "Le champ visibility n'existe plus : utilisez open.")
        require(body, "endpoint")
        endpoint = endpoint_of(store, ds, body["endpoint"])
        if endpoint["type"] != configuration["type"]:
            raise ApiError(
                400,
                f"Le point d'accès {endpoint['_id']} est de type {endpoint['type']}, "
                f"la configuration {configuration['type']}.",
            )
        for offering in _offerings_of(store, configuration_id):
            if offering["endpoint"]["_id"] == endpoint["_id"]:
                raise ApiError(
                    409,
                    f"Une offre existe déjà pour cette configuration sur le point d'accès {endpoint['_id']}.",
                )
        quota = next(entry["quota"] for entry in ds["endpoints"] if entry["endpoint"] == endpoint["_id"])
        if store.endpoint_use(datastore, endpoint["_id"]) >= quota:
            raise ApiError(
                400, f"Le quota d'offres du point d'accès {endpoint['name']} est atteint ({quota})."
            )
        # §2.5: an offering on an open endpoint is always open.
        is_open = True if endpoint["open"] else bool(body.get("open", False))
        offering = {
            "layer_name": configuration["layer_name"],
            "type": configuration["type"],
            "status": "PUBLISHING",
            "open": is_open,
            "available": True,
            "configuration": {"_id": configuration["_id"], "name": configuration["name"]},
            "endpoint": {"_id": endpoint["_id"], "name": endpoint["name"]},
            "urls": _offering_urls(endpoint, configuration),
            "tags": {},
        }
        if body.get("permissions"):
            offering["permissions"] = body["permissions"]
        store.add("offerings", datastore, offering)
        offering["__"]["fail"] = store.consume_fault("unstable_next_offering")
        store.schedule(offering)
        return _offering_view(store, offering)


@router.get("/datastores/{datastore}/configurations/{configuration_id}/offerings")
def list_configuration_offerings(request: Request, datastore: str, configuration_id: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        store.get("configurations", datastore, configuration_id)
        return listing(
            request,
            _offerings_of(store, configuration_id),
            lambda item: _offering_view(store, item),
        )


@router.get("/datastores/{datastore}/offerings")
def list_offerings(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return listing(
            request,
            store.items("offerings", datastore),
            pick("_id", "layer_name", "type", "status", "open", "available"),
            {
                "type": field_matcher("type"),
                "status": field_matcher("status"),
                "layer_name": field_matcher("layer_name"),
                "open": field_matcher("open"),
                "endpoint": lambda item, value: item["endpoint"]["_id"] == value,
                "configuration": lambda item, value: item["configuration"]["_id"] == value,
            },
        )


@router.get("/datastores/{datastore}/offerings/{offering_id}")
def get_offering(request: Request, datastore: str, offering_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return _offering_view(store, store.get("offerings", datastore, offering_id))


@router.put("/datastores/{datastore}/offerings/{offering_id}")
def synchronise_offering(request: Request, datastore: str, offering_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        offering = store.get("offerings", datastore, offering_id)
        if offering["status"] not in ("PUBLISHED", "UNSTABLE"):
            raise ApiError(
                409, f"L'offre {offering_id} ne peut pas être synchronisée (statut {offering['status']})."
            )
        offering["status"] = "MODIFYING"
        store.schedule(offering)
        return _offering_view(store, offering)


@router.patch("/datastores/{datastore}/offerings/{offering_id}")
def patch_offering(
    request: Request, datastore: str, offering_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        offering = store.get("offerings", datastore, offering_id)
        body = dict_body(body)
        if "visibility" in body:
            raise ApiError(400, "Le champ visibility n'existe plus : utilisez open.")
        for key in ("open", "available"):
            if key in body:
                offering[key] = bool(body[key])
        store.dirty = True
        return _offering_view(store, offering)


@router.delete("/datastores/{datastore}/offerings/{offering_id}", status_code=204)
def delete_offering(request: Request, datastore: str, offering_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        offering = store.get("offerings", datastore, offering_id)
        if offering["status"] == "PUBLISHING":
            raise ApiError(409, f"L'offre {offering_id} est en cours de publication.")
        if offering["status"] != "UNPUBLISHING":
            offering["status"] = "UNPUBLISHING"
            store.schedule(offering)
        return Response(status_code=204)
