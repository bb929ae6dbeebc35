"""ISO 19139 records and their publication in the catalogue (geoplateforme-api.md §3)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from lxml import etree

from emulators.geoplateforme.common import (
    GCO,
    GMD,
    SAFE_XML,
    datastore_of,
    dict_body,
    endpoint_of,
    field_matcher,
    listing,
    require,
    store_of,
)
from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import Store, locked, public

router = APIRouter()

# --------------------------------------------------------------------------------------------------- metadata


def _parse_metadata(content: bytes) -> tuple[str, str]:
    """(file identifier, level) of an ISO 19139 record; 422 when malformed (§3, change note 2026-01-28)."""
    try:
        document = etree.fromstring(content, SAFE_XML)
    except etree.XMLSyntaxError as exc:
        raise ApiError(422, f"Le fichier de métadonnées n'est pas un XML valide : {exc}") from exc
    if document.tag != f"{{{GMD}}}MD_Metadata":
        raise ApiError(422, "Le fichier de métadonnées doit avoir pour racine gmd:MD_Metadata (ISO 19139).")
    identifier = document.findtext(f"{{{GMD}}}fileIdentifier/{{{GCO}}}CharacterString")
    if not identifier or not identifier.strip():
        raise ApiError(422, "L'identifiant de fiche (gmd:fileIdentifier) est absent.")
    scope = document.find(f"{{{GMD}}}hierarchyLevel/{{{GMD}}}MD_ScopeCode")
    level = "SERIES" if scope is not None and scope.get("codeListValue") == "series" else "DATASET"
    return identifier.strip(), level


def _metadata_view(metadata: dict[str, Any]) -> dict[str, Any]:
    return public(metadata)


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None:
        return default
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0"):
        return False
    raise ApiError(400, f"La valeur {value!r} n'est pas un booléen.")


def _metadata_type(value: str | None) -> str:
    kind = value or "ISOAP"
    if kind not in ("ISOAP", "INSPIRE"):
        raise ApiError(400, f"Le type de métadonnée {kind} est inconnu (ISOAP, INSPIRE).")
    return kind


@router.post("/datastores/{datastore}/metadata", status_code=201)
def create_metadata(
    request: Request,
    datastore: str,
    file: UploadFile = File(...),
    type: str | None = Form(None),
    open_data: str | None = Form(None),
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        content = file.file.read()
        identifier, level = _parse_metadata(content)
        # §3: the file identifier must be unique on the platform.
        for other in store.data["metadata"].values():
            if other["file_identifier"] == identifier:
                raise ApiError(409, f"Une fiche d'identifiant {identifier} existe déjà.")
        metadata: dict[str, Any] = {
            "type": _metadata_type(type),
            "open_data": _bool(open_data),
            "level": level,
            "file_identifier": identifier,
            "tags": {},
            "endpoints": [],
        }
        store.add("metadata", datastore, metadata)
        path = store.files_dir("metadata", metadata["_id"]) / "metadata.xml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return _metadata_view(metadata)


@router.get("/datastores/{datastore}/metadata")
def list_metadata(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return listing(
            request,
            store.items("metadata", datastore),
            _metadata_view,
            {name: field_matcher(name) for name in ("file_identifier", "type", "level", "open_data")},
        )


@router.get("/datastores/{datastore}/metadata/{metadata_id}")
def get_metadata(request: Request, datastore: str, metadata_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return _metadata_view(store.get("metadata", datastore, metadata_id))


@router.get("/datastores/{datastore}/metadata/{metadata_id}/file")
def get_metadata_file(request: Request, datastore: str, metadata_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        store.get("metadata", datastore, metadata_id)
        content = (store.files_dir("metadata", metadata_id) / "metadata.xml").read_bytes()
        return Response(content, media_type="application/xml")


@router.put("/datastores/{datastore}/metadata/{metadata_id}")
def replace_metadata(
    request: Request, datastore: str, metadata_id: str, file: UploadFile = File(...)
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        metadata = store.get("metadata", datastore, metadata_id)
        content = file.file.read()
        identifier, level = _parse_metadata(content)
        if identifier != metadata["file_identifier"]:
            raise ApiError(400, "L'identifiant de fiche (gmd:fileIdentifier) ne peut pas changer.")
        metadata["level"] = level
        (store.files_dir("metadata", metadata_id) / "metadata.xml").write_bytes(content)
        store.dirty = True
        return _metadata_view(metadata)


@router.patch("/datastores/{datastore}/metadata/{metadata_id}")
def patch_metadata(
    request: Request, datastore: str, metadata_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        metadata = store.get("metadata", datastore, metadata_id)
        body = dict_body(body)
        if "type" in body:
            metadata["type"] = _metadata_type(body["type"])
        if "open_data" in body:
            metadata["open_data"] = bool(body["open_data"])
        store.dirty = True
        return _metadata_view(metadata)


@router.delete("/datastores/{datastore}/metadata/{metadata_id}", status_code=204)
def delete_metadata(request: Request, datastore: str, metadata_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        metadata = store.get("metadata", datastore, metadata_id)
        if metadata["endpoints"]:
            # §3: DELETE works only once unpublished.
            raise ApiError(409, f"La fiche {metadata['file_identifier']} est publiée : dépubliez-la d'abord.")
        store.remove("metadata", metadata_id)
        return Response(status_code=204)


def _publication(
    store: Store, request: Request, datastore: str, body: Any, publish: bool
) -> list[dict[str, Any]]:
    ds = datastore_of(store, request, datastore)
    body = dict_body(body)
    require(body, "file_identifiers", "endpoint")
    endpoint = endpoint_of(store, ds, body["endpoint"])
    if endpoint["type"] != "METADATA":
        raise ApiError(
            400, f"Le point d'accès {endpoint['_id']} n'est pas un catalogue (type {endpoint['type']})."
        )
    found = []
    for identifier in body["file_identifiers"]:
        metadata = next(
            (m for m in store.items("metadata", datastore) if m["file_identifier"] == identifier), None
        )
        if metadata is None:
            raise ApiError(404, f"La fiche {identifier} n'existe pas dans cet entrepôt.")
        found.append(metadata)
    for metadata in found:
        others = [e for e in metadata["endpoints"] if e["_id"] != endpoint["_id"]]
        metadata["endpoints"] = (
            [*others, {"_id": endpoint["_id"], "name": endpoint["name"]}] if publish else others
        )
    store.dirty = True
    return [_metadata_view(metadata) for metadata in found]


@router.post("/datastores/{datastore}/metadata/publication")
def publish_metadata(request: Request, datastore: str, body: Any = Body(...)) -> list[dict[str, Any]]:
    store = store_of(request)
    with locked(store):
        return _publication(store, request, datastore, body, publish=True)


@router.post("/datastores/{datastore}/metadata/unpublication")
def unpublish_metadata(request: Request, datastore: str, body: Any = Body(...)) -> list[dict[str, Any]]:
    store = store_of(request)
    with locked(store):
        return _publication(store, request, datastore, body, publish=False)
