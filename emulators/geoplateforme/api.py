"""The emulated Entrepôt API (``/api``): the routes a publishing client uses (geoplateforme-api.md §1-§4).

Every route but ``/users/me`` is relative to ``/datastores/{datastore}`` as on the platform (§2, [SDK]
routing table). Requests need ``Authorization: Bearer <token>`` from the emulated Keycloak; the caller must
be a member of the datastore's community. Lists are paged with ``page``/``limit`` and answer ``Content-Range``
(§4, "Pagination and filters").
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Body, File, Form, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from lxml import etree

from emulators.geoplateforme import catalogue, checks
from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import Store, locked, now_iso, public

router = APIRouter(prefix="/api")

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


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def _user(store: Store, request: Request) -> dict[str, Any]:
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


def _datastore(store: Store, request: Request, datastore: str) -> dict[str, Any]:
    return store.datastore_for(_user(store, request), datastore)


# --------------------------------------------------------------------------------------------------- listings


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    if "%" not in pattern:
        return str(value) == pattern
    regex = ".*".join(re.escape(part) for part in pattern.split("%"))
    return re.fullmatch(regex, str(value), flags=re.DOTALL) is not None


def _field(name: str) -> Callable[[dict[str, Any], str], bool]:
    def match(item: dict[str, Any], value: str) -> bool:
        field = item.get(name)
        if isinstance(field, bool):
            return str(field).lower() == value.lower()
        return _like(field, value)

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


def _pick(*names: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def view(item: dict[str, Any]) -> dict[str, Any]:
        return {name: item[name] for name in names if name in item}

    return view


def _require(body: dict[str, Any], *names: str) -> None:
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise ApiError(400, *(f"Le champ {name} est obligatoire." for name in missing))


def _dict_body(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, "Le corps de la requête doit être un objet JSON.")
    return body


# ------------------------------------------------------------------------------------------------------- user


@router.get("/users/me")
def users_me(request: Request) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        user = _user(store, request)
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
    store = _store(request)
    with locked(store):
        return _datastore_view(store, _datastore(store, request, datastore))


@router.get("/datastores/{datastore}/endpoints")
def list_endpoints(request: Request, datastore: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        ds = _datastore(store, request, datastore)
        entries = [_endpoint_entry(store, ds, entry) for entry in ds["endpoints"]]

        def on_endpoint(name: str) -> Callable[[dict[str, Any], str], bool]:
            inner = _field(name)
            return lambda item, value: inner(item["endpoint"], value)

        return listing(
            request,
            entries,
            lambda item: item,
            {"name": on_endpoint("name"), "type": on_endpoint("type"), "open": on_endpoint("open")},
        )


def _endpoint_of(store: Store, datastore: dict[str, Any], endpoint_id: Any) -> dict[str, Any]:
    for entry in datastore["endpoints"]:
        if entry["endpoint"] == endpoint_id:
            return store.data["endpoints"][endpoint_id]
    raise ApiError(400, f"Le point d'accès {endpoint_id} n'est pas rattaché à cet entrepôt.")


# ------------------------------------------------------------------------------------------------------- tags


TAGGED = {"uploads", "stored_data", "configurations", "offerings", "metadata"}


@router.post("/datastores/{datastore}/{entity}/{entity_id}/tags")
def add_tags(
    request: Request, datastore: str, entity: str, entity_id: str, body: Any = Body(...)
) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        if entity not in TAGGED:
            raise ApiError(404, f"Les entités {entity} n'ont pas d'étiquettes.")
        item = store.get(entity, datastore, entity_id)
        tags = _dict_body(body)
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        if entity not in TAGGED:
            raise ApiError(404, f"Les entités {entity} n'ont pas d'étiquettes.")
        item = store.get(entity, datastore, entity_id)
        for key in tags:
            item.setdefault("tags", {}).pop(key, None)
        store.dirty = True
        return Response(status_code=204)


# ---------------------------------------------------------------------------------------------------- uploads


def _upload_view(upload: dict[str, Any]) -> dict[str, Any]:
    return public(upload)


@router.post("/datastores/{datastore}/uploads", status_code=201)
def create_upload(request: Request, datastore: str, body: Any = Body(...)) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        ds = _datastore(store, request, datastore)
        body = _dict_body(body)
        _require(body, "name", "description", "type", "srs")
        if body["type"] not in catalogue.UPLOAD_TYPES:
            raise ApiError(
                400, f"Le type de livraison {body['type']} est inconnu ({', '.join(catalogue.UPLOAD_TYPES)})."
            )
        srs = str(body["srs"])
        if not SRS.fullmatch(srs) or not checks.crs_resolves(srs):
            raise ApiError(400, f"Le SRS {srs} n'est pas reconnu.")
        community = store.data["communities"][ds["community"]]
        upload: dict[str, Any] = {
            "name": str(body["name"]),
            "description": str(body["description"]),
            "type": body["type"],
            "visibility": "PRIVATE",
            "status": "OPEN",
            "srs": srs,
            "contact": community["contact"],
            "size": 0,
            "tags": {},
        }
        if body.get("type_infos"):
            upload["type_infos"] = body["type_infos"]
        store.add("uploads", datastore, upload)
        store.files_dir("uploads", upload["_id"]).mkdir(parents=True, exist_ok=True)
        return _upload_view(upload)


@router.get("/datastores/{datastore}/uploads")
def list_uploads(request: Request, datastore: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return listing(
            request,
            store.items("uploads", datastore),
            _pick("_id", "name", "description", "type", "visibility", "srs", "status"),
            {name: _field(name) for name in ("name", "type", "status", "srs")},
        )


@router.get("/datastores/{datastore}/uploads/{upload_id}")
def get_upload(request: Request, datastore: str, upload_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return _upload_view(store.get("uploads", datastore, upload_id))


@router.patch("/datastores/{datastore}/uploads/{upload_id}")
def patch_upload(request: Request, datastore: str, upload_id: str, body: Any = Body(...)) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        upload = store.get("uploads", datastore, upload_id)
        for key in ("name", "description", "extra"):
            if key in _dict_body(body):
                upload[key] = body[key]
        store.dirty = True
        return _upload_view(upload)


@router.delete("/datastores/{datastore}/uploads/{upload_id}", status_code=204)
def delete_upload(request: Request, datastore: str, upload_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        upload = store.get("uploads", datastore, upload_id)
        for execution_id in upload["__"].get("checks", []):
            store.remove("check_executions", execution_id)
        store.remove("uploads", upload_id)
        return Response(status_code=204)


def _open_upload(store: Store, datastore: str, upload_id: str) -> dict[str, Any]:
    upload = store.get("uploads", datastore, upload_id)
    if upload["status"] != "OPEN":
        raise ApiError(400, f"La livraison {upload_id} n'est pas ouverte (statut {upload['status']}).")
    return upload


def _relative_path(path: str) -> PurePosixPath:
    relative = PurePosixPath(path)
    if not path or relative.is_absolute() or ".." in relative.parts or not relative.name:
        raise ApiError(400, f"Le chemin {path!r} n'est pas valide.")
    return relative


def _write(destination: Path, file: UploadFile) -> int:
    destination.parent.mkdir(parents=True, exist_ok=True)
    with destination.open("wb") as out:
        shutil.copyfileobj(file.file, out, 1 << 20)
    return destination.stat().st_size


@router.post("/datastores/{datastore}/uploads/{upload_id}/data")
def push_data(
    request: Request, datastore: str, upload_id: str, path: str = Query(...), file: UploadFile = File(...)
) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        upload = _open_upload(store, datastore, upload_id)
        relative = _relative_path(path)
        root = store.files_dir("uploads", upload_id)
        _write(root / relative, file)
        upload["size"] = sum(item.stat().st_size for item in root.rglob("*") if item.is_file())
        store.dirty = True
        return _upload_view(upload)


@router.delete("/datastores/{datastore}/uploads/{upload_id}/data", status_code=204)
def delete_data(request: Request, datastore: str, upload_id: str, path: str = Query(...)) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        _open_upload(store, datastore, upload_id)
        target = store.files_dir("uploads", upload_id) / _relative_path(path)
        if not target.is_file():
            raise ApiError(404, f"Le fichier {path} n'existe pas dans la livraison.")
        target.unlink()
        return Response(status_code=204)


@router.post("/datastores/{datastore}/uploads/{upload_id}/md5")
def push_md5(
    request: Request, datastore: str, upload_id: str, file: UploadFile = File(...)
) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        upload = _open_upload(store, datastore, upload_id)
        name = PurePosixPath(file.filename or "checksums.md5").name
        if not name.endswith(".md5"):
            name += ".md5"
        _write(store.files_dir("uploads", upload_id) / name, file)
        store.dirty = True
        return _upload_view(upload)


@router.delete("/datastores/{datastore}/uploads/{upload_id}/md5", status_code=204)
def delete_md5(request: Request, datastore: str, upload_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        _open_upload(store, datastore, upload_id)
        for item in store.files_dir("uploads", upload_id).glob("*.md5"):
            item.unlink()
        return Response(status_code=204)


def _tree(path: Path) -> list[dict[str, Any]]:
    entries = []
    for item in sorted(path.iterdir(), key=lambda entry: (entry.is_file(), entry.name)):
        if item.is_dir():
            children = _tree(item)
            entries.append(
                {
                    "type": "DIRECTORY",
                    "name": item.name,
                    "size": sum(c["size"] for c in children),
                    "children": children,
                }
            )
        else:
            entries.append({"type": "FILE", "name": item.name, "size": item.stat().st_size})
    return entries


@router.get("/datastores/{datastore}/uploads/{upload_id}/tree")
def upload_tree(request: Request, datastore: str, upload_id: str) -> list[dict[str, Any]]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        store.get("uploads", datastore, upload_id)
        root = store.files_dir("uploads", upload_id)
        return _tree(root) if root.is_dir() else []


@router.post("/datastores/{datastore}/uploads/{upload_id}/close")
def close_upload(request: Request, datastore: str, upload_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        upload = _open_upload(store, datastore, upload_id)
        store.close_upload(upload)
        return _upload_view(upload)


@router.post("/datastores/{datastore}/uploads/{upload_id}/open")
def reopen_upload(request: Request, datastore: str, upload_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        upload = store.get("uploads", datastore, upload_id)
        if upload["status"] not in ("CLOSED", "UNSTABLE"):
            raise ApiError(
                400, f"La livraison {upload_id} ne peut pas être rouverte (statut {upload['status']})."
            )
        upload["status"] = "OPEN"
        upload["__"].update({"phase": None, "next_at": None})
        store.dirty = True
        return _upload_view(upload)


@router.get("/datastores/{datastore}/uploads/{upload_id}/checks")
def upload_checks(request: Request, datastore: str, upload_id: str) -> dict[str, list[dict[str, Any]]]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        upload = store.get("uploads", datastore, upload_id)
        groups: dict[str, list[dict[str, Any]]] = {"asked": [], "in_progress": [], "passed": [], "failed": []}
        bucket = {"WAITING": "asked", "PROGRESS": "in_progress", "SUCCESS": "passed", "FAILURE": "failed"}
        for execution_id in upload["__"].get("checks", []):
            execution = store.data["check_executions"].get(execution_id)
            if execution is not None:
                groups[bucket[execution["status"]]].append(
                    {"check": execution["check"], "_id": execution["_id"]}
                )
        return groups


@router.get("/datastores/{datastore}/checks/executions/{execution_id}")
def get_check_execution(request: Request, datastore: str, execution_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return public(store.get("check_executions", datastore, execution_id))


@router.get("/datastores/{datastore}/checks/executions/{execution_id}/logs")
def check_execution_logs(request: Request, datastore: str, execution_id: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        execution = store.get("check_executions", datastore, execution_id)
        return listing(
            request, [{"line": line} for line in execution["__"].get("logs", [])], lambda i: i["line"]
        )


@router.delete("/datastores/{datastore}/checks/executions/{execution_id}", status_code=204)
def delete_check_execution(request: Request, datastore: str, execution_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        execution = store.get("check_executions", datastore, execution_id)
        if execution["status"] not in ("WAITING", "PROGRESS"):
            raise ApiError(400, "Seule une vérification en attente ou en cours peut être annulée.")
        store.remove("check_executions", execution_id)
        return Response(status_code=204)


# ------------------------------------------------------------------------------------------------ processings


def _processing_view(store: Store, processing: dict[str, Any]) -> dict[str, Any]:
    view = public(processing)
    required = []
    for name in processing.get("required_checks", []):
        check = next(c for c in store.data["checks"].values() if c["name"] == name)
        required.append({"_id": check["_id"], "name": check["name"], "description": check["description"]})
    view["required_checks"] = required
    return view


def _processings(store: Store, datastore: dict[str, Any]) -> list[dict[str, Any]]:
    return [store.data["processings"][i] for i in datastore["processings"]]


@router.get("/datastores/{datastore}/processings")
def list_processings(request: Request, datastore: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        ds = _datastore(store, request, datastore)
        return listing(
            request, _processings(store, ds), _pick("_id", "name", "description"), {"name": _field("name")}
        )


def _execution_view(store: Store, execution: dict[str, Any]) -> dict[str, Any]:
    view = public(execution)
    stored = store.data["stored_data"].get(execution["output"]["stored_data"]["_id"])
    if stored is not None:
        view["output"] = {"stored_data": _pick("_id", "name", "type", "status", "srs")(stored)}
    uploads = []
    for item in execution["inputs"]["upload"]:
        upload = store.data["uploads"].get(item["_id"])
        uploads.append(_pick("_id", "name", "type", "status", "srs")(upload) if upload else item)
    view["inputs"] = {"upload": uploads, "stored_data": execution["inputs"]["stored_data"]}
    return view


@router.get("/datastores/{datastore}/processings/executions")
def list_executions(request: Request, datastore: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return listing(
            request,
            store.items("executions", datastore),
            _pick("_id", "processing", "status"),
            {
                "status": _field("status"),
                "processing": lambda item, value: item["processing"]["_id"] == value,
                "output_stored_data": lambda item, value: item["output"]["stored_data"]["_id"] == value,
                "input_upload": lambda item, value: any(u["_id"] == value for u in item["inputs"]["upload"]),
            },
        )


@router.post("/datastores/{datastore}/processings/executions", status_code=201)
def create_execution(request: Request, datastore: str, body: Any = Body(...)) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        ds = _datastore(store, request, datastore)
        body = _dict_body(body)
        _require(body, "processing", "output")
        processing = store.data["processings"].get(str(body["processing"]))
        if processing is None or processing["_id"] not in ds["processings"]:
            raise ApiError(404, f"Le traitement {body['processing']} n'existe pas pour cet entrepôt.")
        inputs = body.get("inputs") or {}
        upload_inputs = [store.get("uploads", datastore, str(i)) for i in inputs.get("upload") or []]
        stored_inputs = [store.get("stored_data", datastore, str(i)) for i in inputs.get("stored_data") or []]
        accepted = processing["input_types"]
        problems = []
        if not upload_inputs and not stored_inputs and (accepted["upload"] or accepted["stored_data"]):
            problems.append("Le traitement attend au moins une donnée en entrée.")
        for upload in upload_inputs:
            if upload["type"] not in accepted["upload"]:
                problems.append(f"Le traitement n'accepte pas les livraisons de type {upload['type']}.")
            elif upload["status"] != "CLOSED":
                problems.append(
                    f"La livraison {upload['_id']} n'est pas fermée et vérifiée (statut {upload['status']})."
                )
            else:
                passed = {
                    store.data["check_executions"][i]["check"]["name"]
                    for i in upload["__"].get("checks", [])
                    if store.data["check_executions"].get(i, {}).get("status") == "SUCCESS"
                }
                for name in processing["required_checks"]:
                    if name not in passed:
                        problems.append(
                            f"La livraison {upload['_id']} n'a pas passé la vérification « {name} »."
                        )
        for stored in stored_inputs:
            if stored["type"] not in accepted["stored_data"]:
                problems.append(f"Le traitement n'accepte pas les données stockées de type {stored['type']}.")
            elif stored["status"] != "GENERATED":
                problems.append(
                    f"La donnée stockée {stored['_id']} n'est pas générée (statut {stored['status']})."
                )
        parameters = body.get("parameters") or {}
        if not isinstance(parameters, dict):
            problems.append("Le champ parameters doit être un objet.")
            parameters = {}
        known = {parameter["name"]: parameter for parameter in processing["parameters"]}
        for name in parameters:
            if name not in known:
                problems.append(f"Le paramètre {name} est inconnu pour ce traitement.")
        for name, parameter in known.items():
            if parameter["mandatory"] and parameters.get(name) in (None, ""):
                problems.append(f"Le paramètre {name} est obligatoire.")
        output = body["output"].get("stored_data") if isinstance(body["output"], dict) else None
        output_type = processing["output_type"]["stored_data"]
        if not isinstance(output, dict):
            problems.append("Le champ output.stored_data est obligatoire.")
        if problems:
            raise ApiError(400, *problems)
        assert isinstance(output, dict)
        if output.get("id"):
            stored = store.get("stored_data", datastore, str(output["id"]))
            if stored["type"] != output_type:
                raise ApiError(400, f"La donnée stockée {stored['_id']} n'est pas de type {output_type}.")
            if stored["status"] in ("GENERATING", "MODIFYING"):
                raise ApiError(409, f"La donnée stockée {stored['_id']} est déjà en cours de modification.")
        else:
            if not output.get("name"):
                raise ApiError(400, "Le nom de la donnée stockée en sortie est obligatoire.")
            storage = _storage_for(ds, processing, output.get("storage_tags") or [])
            community = store.data["communities"][ds["community"]]
            stored = {
                "name": str(output["name"]),
                "type": output_type,
                "visibility": "PRIVATE",
                "status": "CREATED",
                "srs": (upload_inputs[0]["srs"] if upload_inputs else None),
                "contact": community["contact"],
                "tags": {},
                "storage": {"type": storage["type"], "labels": storage["labels"]},
                "size": 0,
            }
            store.add("stored_data", datastore, stored)
        execution: dict[str, Any] = {
            "processing": {"_id": processing["_id"], "name": processing["name"]},
            "status": "CREATED",
            "creation": now_iso(),
            "inputs": {
                "upload": [{"_id": u["_id"], "name": u["name"], "type": u["type"]} for u in upload_inputs],
                "stored_data": [
                    {"_id": s["_id"], "name": s["name"], "type": s["type"]} for s in stored_inputs
                ],
            },
            "output": {"stored_data": {"_id": stored["_id"]}},
            "parameters": parameters,
        }
        store.add("executions", datastore, execution)
        execution["__"]["logs"] = []
        return _execution_view(store, execution)


def _storage_for(datastore: dict[str, Any], processing: dict[str, Any], tags: list[str]) -> dict[str, Any]:
    for storage in datastore["storages"]:
        if storage["type"] in processing["output_type"]["storage"] and set(tags) <= set(storage["labels"]):
            return dict(storage)
    raise ApiError(400, f"Aucun stockage de l'entrepôt ne porte les étiquettes {tags}.")


@router.get("/datastores/{datastore}/processings/executions/{execution_id}")
def get_execution(request: Request, datastore: str, execution_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return _execution_view(store, store.get("executions", datastore, execution_id))


@router.post("/datastores/{datastore}/processings/executions/{execution_id}/launch")
def launch_execution(request: Request, datastore: str, execution_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        execution = store.get("executions", datastore, execution_id)
        if execution["status"] != "CREATED":
            raise ApiError(
                400, f"L'exécution {execution_id} a déjà été lancée (statut {execution['status']})."
            )
        store.launch_execution(execution)
        return _execution_view(store, execution)


@router.post("/datastores/{datastore}/processings/executions/{execution_id}/abort")
def abort_execution(request: Request, datastore: str, execution_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        execution = store.get("executions", datastore, execution_id)
        if execution["status"] not in ("CREATED", "WAITING", "PROGRESS"):
            raise ApiError(400, f"L'exécution {execution_id} est terminée (statut {execution['status']}).")
        execution["status"] = "ABORTED"
        execution["finish"] = now_iso()
        execution["__"]["next_at"] = None
        stored = store.data["stored_data"].get(execution["output"]["stored_data"]["_id"])
        if stored is not None:
            # UNCONFIRMED: data being updated keeps its previous content; new data is left unusable.
            stored["status"] = "GENERATED" if stored["__"].get("generated") else "UNSTABLE"
        store.dirty = True
        return _execution_view(store, execution)


@router.get("/datastores/{datastore}/processings/executions/{execution_id}/logs")
def execution_logs(request: Request, datastore: str, execution_id: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        execution = store.get("executions", datastore, execution_id)
        return listing(
            request, [{"line": line} for line in execution["__"].get("logs", [])], lambda i: i["line"]
        )


@router.delete("/datastores/{datastore}/processings/executions/{execution_id}", status_code=204)
def delete_execution(request: Request, datastore: str, execution_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        execution = store.get("executions", datastore, execution_id)
        if execution["status"] in ("WAITING", "PROGRESS"):
            raise ApiError(409, f"L'exécution {execution_id} est en cours : interrompez-la d'abord.")
        store.remove("executions", execution_id)
        return Response(status_code=204)


@router.get("/datastores/{datastore}/processings/{processing_id}")
def get_processing(request: Request, datastore: str, processing_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        ds = _datastore(store, request, datastore)
        if processing_id not in ds["processings"]:
            raise ApiError(404, f"Le traitement {processing_id} n'existe pas pour cet entrepôt.")
        return _processing_view(store, store.data["processings"][processing_id])


# ------------------------------------------------------------------------------------------------ stored data


@router.get("/datastores/{datastore}/stored_data")
def list_stored_data(request: Request, datastore: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return listing(
            request,
            store.items("stored_data", datastore),
            _pick("_id", "name", "type", "visibility", "srs", "status"),
            {name: _field(name) for name in ("name", "type", "status", "srs")},
        )


@router.get("/datastores/{datastore}/stored_data/{stored_id}")
def get_stored_data(request: Request, datastore: str, stored_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return public(store.get("stored_data", datastore, stored_id))


@router.patch("/datastores/{datastore}/stored_data/{stored_id}")
def patch_stored_data(
    request: Request, datastore: str, stored_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        stored = store.get("stored_data", datastore, stored_id)
        for key in ("name", "description", "extra", "edition"):
            if key in _dict_body(body):
                stored[key] = body[key]
        store.dirty = True
        return public(stored)


def _used_stored_data(configuration: dict[str, Any]) -> set[str]:
    return {
        str(item.get("stored_data")) for item in (configuration.get("type_infos") or {}).get("used_data", [])
    }


@router.delete("/datastores/{datastore}/stored_data/{stored_id}", status_code=204)
def delete_stored_data(request: Request, datastore: str, stored_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        stored = store.get("stored_data", datastore, stored_id)
        if stored["status"] in ("GENERATING", "MODIFYING"):
            raise ApiError(409, f"La donnée stockée {stored_id} est en cours de génération.")
        users = [
            c["_id"] for c in store.items("configurations", datastore) if stored_id in _used_stored_data(c)
        ]
        if users:
            raise ApiError(
                409, f"La donnée stockée {stored_id} est utilisée par la configuration {users[0]}."
            )
        # UNCONFIRMED: the executions that produced the data go with it (they are not listed afterwards here).
        for execution in store.items("executions", datastore):
            if execution["output"]["stored_data"]["_id"] == stored_id:
                store.remove("executions", execution["_id"])
        store.remove("stored_data", stored_id)
        return Response(status_code=204)


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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return listing(
            request,
            store.items("statics", datastore),
            _pick("_id", "name", "type"),
            {"name": _field("name"), "type": _field("type")},
        )


@router.get("/datastores/{datastore}/statics/{static_id}")
def get_static(request: Request, datastore: str, static_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return public(store.get("statics", datastore, static_id))


@router.get("/datastores/{datastore}/statics/{static_id}/file")
def get_static_file(request: Request, datastore: str, static_id: str) -> FileResponse:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        store.get("statics", datastore, static_id)
        path = next(store.files_dir("statics", static_id).iterdir())
        return FileResponse(path)


@router.delete("/datastores/{datastore}/statics/{static_id}", status_code=204)
def delete_static(request: Request, datastore: str, static_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        body = _dict_body(body)
        _require(body, "type", "name", "layer_name", "type_infos")
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        views = [
            _configuration_view(store, item) | {"tags": item.get("tags", {})}
            for item in store.items("configurations", datastore)
        ]
        return listing(
            request,
            views,
            _pick("_id", "name", "layer_name", "type", "status"),
            {
                "name": _field("name"),
                "layer_name": _field("layer_name"),
                "type": _field("type"),
                "status": _field("status"),
                "stored_data": lambda item, value: value in _used_stored_data(item),
            },
        )


@router.get("/datastores/{datastore}/configurations/{configuration_id}")
def get_configuration(request: Request, datastore: str, configuration_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return _configuration_view(store, store.get("configurations", datastore, configuration_id))


def _offerings_of(store: Store, configuration_id: str) -> list[dict[str, Any]]:
    return [o for o in store.data["offerings"].values() if o["configuration"]["_id"] == configuration_id]


@router.put("/datastores/{datastore}/configurations/{configuration_id}")
def replace_configuration(
    request: Request, datastore: str, configuration_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        configuration = store.get("configurations", datastore, configuration_id)
        body = _dict_body(body)
        _require(body, "type", "name", "type_infos")
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
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
    store = _store(request)
    with locked(store):
        ds = _datastore(store, request, datastore)
        configuration = store.get("configurations", datastore, configuration_id)
        body = _dict_body(body)
        if "visibility" in body:
            # §2.5: the field was removed on 2025-01-14; `open` replaces it.
            raise ApiError(400, "Le champ visibility n'existe plus : utilisez open.")
        _require(body, "endpoint")
        endpoint = _endpoint_of(store, ds, body["endpoint"])
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        store.get("configurations", datastore, configuration_id)
        return listing(
            request,
            _offerings_of(store, configuration_id),
            lambda item: _offering_view(store, item),
        )


@router.get("/datastores/{datastore}/offerings")
def list_offerings(request: Request, datastore: str) -> JSONResponse:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return listing(
            request,
            store.items("offerings", datastore),
            _pick("_id", "layer_name", "type", "status", "open", "available"),
            {
                "type": _field("type"),
                "status": _field("status"),
                "layer_name": _field("layer_name"),
                "open": _field("open"),
                "endpoint": lambda item, value: item["endpoint"]["_id"] == value,
                "configuration": lambda item, value: item["configuration"]["_id"] == value,
            },
        )


@router.get("/datastores/{datastore}/offerings/{offering_id}")
def get_offering(request: Request, datastore: str, offering_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return _offering_view(store, store.get("offerings", datastore, offering_id))


@router.put("/datastores/{datastore}/offerings/{offering_id}")
def synchronise_offering(request: Request, datastore: str, offering_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        offering = store.get("offerings", datastore, offering_id)
        body = _dict_body(body)
        if "visibility" in body:
            raise ApiError(400, "Le champ visibility n'existe plus : utilisez open.")
        for key in ("open", "available"):
            if key in body:
                offering[key] = bool(body[key])
        store.dirty = True
        return _offering_view(store, offering)


@router.delete("/datastores/{datastore}/offerings/{offering_id}", status_code=204)
def delete_offering(request: Request, datastore: str, offering_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        offering = store.get("offerings", datastore, offering_id)
        if offering["status"] == "PUBLISHING":
            raise ApiError(409, f"L'offre {offering_id} est en cours de publication.")
        if offering["status"] != "UNPUBLISHING":
            offering["status"] = "UNPUBLISHING"
            store.schedule(offering)
        return Response(status_code=204)


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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return listing(
            request,
            store.items("metadata", datastore),
            _metadata_view,
            {name: _field(name) for name in ("file_identifier", "type", "level", "open_data")},
        )


@router.get("/datastores/{datastore}/metadata/{metadata_id}")
def get_metadata(request: Request, datastore: str, metadata_id: str) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        return _metadata_view(store.get("metadata", datastore, metadata_id))


@router.get("/datastores/{datastore}/metadata/{metadata_id}/file")
def get_metadata_file(request: Request, datastore: str, metadata_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        store.get("metadata", datastore, metadata_id)
        content = (store.files_dir("metadata", metadata_id) / "metadata.xml").read_bytes()
        return Response(content, media_type="application/xml")


@router.put("/datastores/{datastore}/metadata/{metadata_id}")
def replace_metadata(
    request: Request, datastore: str, metadata_id: str, file: UploadFile = File(...)
) -> dict[str, Any]:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
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
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        metadata = store.get("metadata", datastore, metadata_id)
        body = _dict_body(body)
        if "type" in body:
            metadata["type"] = _metadata_type(body["type"])
        if "open_data" in body:
            metadata["open_data"] = bool(body["open_data"])
        store.dirty = True
        return _metadata_view(metadata)


@router.delete("/datastores/{datastore}/metadata/{metadata_id}", status_code=204)
def delete_metadata(request: Request, datastore: str, metadata_id: str) -> Response:
    store = _store(request)
    with locked(store):
        _datastore(store, request, datastore)
        metadata = store.get("metadata", datastore, metadata_id)
        if metadata["endpoints"]:
            # §3: DELETE works only once unpublished.
            raise ApiError(409, f"La fiche {metadata['file_identifier']} est publiée : dépubliez-la d'abord.")
        store.remove("metadata", metadata_id)
        return Response(status_code=204)


def _publication(
    store: Store, request: Request, datastore: str, body: Any, publish: bool
) -> list[dict[str, Any]]:
    ds = _datastore(store, request, datastore)
    body = _dict_body(body)
    _require(body, "file_identifiers", "endpoint")
    endpoint = _endpoint_of(store, ds, body["endpoint"])
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
    store = _store(request)
    with locked(store):
        return _publication(store, request, datastore, body, publish=True)


@router.post("/datastores/{datastore}/metadata/unpublication")
def unpublish_metadata(request: Request, datastore: str, body: Any = Body(...)) -> list[dict[str, Any]]:
    store = _store(request)
    with locked(store):
        return _publication(store, request, datastore, body, publish=False)
