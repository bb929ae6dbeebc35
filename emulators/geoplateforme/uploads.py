"""Uploads (livraisons): declare, push files and MD5 sums, close, checks (geoplateforme-api.md §2.1)."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Any

from fastapi import APIRouter, Body, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response

from emulators.geoplateforme import catalogue, checks
from emulators.geoplateforme.common import (
    SRS,
    datastore_of,
    dict_body,
    field_matcher,
    listing,
    pick,
    require,
    store_of,
)
from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import Store, locked, public

router = APIRouter()

# ---------------------------------------------------------------------------------------------------- uploads


def _upload_view(upload: dict[str, Any]) -> dict[str, Any]:
    return public(upload)


@router.post("/datastores/{datastore}/uploads", status_code=201)
def create_upload(request: Request, datastore: str, body: Any = Body(...)) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        body = dict_body(body)
        require(body, "name", "description", "type", "srs")
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
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return listing(
            request,
            store.items("uploads", datastore),
            pick("_id", "name", "description", "type", "visibility", "srs", "status"),
            {name: field_matcher(name) for name in ("name", "type", "status", "srs")},
        )


@router.get("/datastores/{datastore}/uploads/{upload_id}")
def get_upload(request: Request, datastore: str, upload_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return _upload_view(store.get("uploads", datastore, upload_id))


@router.patch("/datastores/{datastore}/uploads/{upload_id}")
def patch_upload(request: Request, datastore: str, upload_id: str, body: Any = Body(...)) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        upload = store.get("uploads", datastore, upload_id)
        for key in ("name", "description", "extra"):
            if key in dict_body(body):
                upload[key] = body[key]
        store.dirty = True
        return _upload_view(upload)


@router.delete("/datastores/{datastore}/uploads/{upload_id}", status_code=204)
def delete_upload(request: Request, datastore: str, upload_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
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
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        upload = _open_upload(store, datastore, upload_id)
        relative = _relative_path(path)
        root = store.files_dir("uploads", upload_id)
        _write(root / relative, file)
        upload["size"] = sum(item.stat().st_size for item in root.rglob("*") if item.is_file())
        store.dirty = True
        return _upload_view(upload)


@router.delete("/datastores/{datastore}/uploads/{upload_id}/data", status_code=204)
def delete_data(request: Request, datastore: str, upload_id: str, path: str = Query(...)) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
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
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        upload = _open_upload(store, datastore, upload_id)
        name = PurePosixPath(file.filename or "checksums.md5").name
        if not name.endswith(".md5"):
            name += ".md5"
        _write(store.files_dir("uploads", upload_id) / name, file)
        store.dirty = True
        return _upload_view(upload)


@router.delete("/datastores/{datastore}/uploads/{upload_id}/md5", status_code=204)
def delete_md5(request: Request, datastore: str, upload_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
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
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        store.get("uploads", datastore, upload_id)
        root = store.files_dir("uploads", upload_id)
        return _tree(root) if root.is_dir() else []


@router.post("/datastores/{datastore}/uploads/{upload_id}/close")
def close_upload(request: Request, datastore: str, upload_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        upload = _open_upload(store, datastore, upload_id)
        store.close_upload(upload)
        return _upload_view(upload)


@router.post("/datastores/{datastore}/uploads/{upload_id}/open")
def reopen_upload(request: Request, datastore: str, upload_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
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
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
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


@router.get("/datastores/{datastore}/checks")
def list_checks(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        items = [store.data["checks"][i] for i in ds["checks"]]
        return listing(request, items, pick("_id", "name", "description"), {"name": field_matcher("name")})


@router.post("/datastores/{datastore}/uploads/{upload_id}/checks")
def run_upload_checks(
    request: Request, datastore: str, upload_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    """Run more checks on a closed upload; the body lists check ids (§2.1 step 6, "Other routes")."""
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        upload = store.get("uploads", datastore, upload_id)
        if upload["status"] not in ("CLOSED", "UNSTABLE"):
            raise ApiError(400, f"La livraison {upload_id} doit être fermée (statut {upload['status']}).")
        check_ids = body.get("checks") if isinstance(body, dict) else body
        if not isinstance(check_ids, list) or not check_ids:
            raise ApiError(400, "Le corps doit lister les identifiants des vérifications à lancer.")
        unknown = [str(i) for i in check_ids if str(i) not in ds["checks"]]
        if unknown:
            raise ApiError(404, *(f"La vérification {i} n'existe pas pour cet entrepôt." for i in unknown))
        store.run_checks(upload, [str(i) for i in check_ids])
        return _upload_view(upload)


@router.get("/datastores/{datastore}/checks/executions/{execution_id}")
def get_check_execution(request: Request, datastore: str, execution_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return public(store.get("check_executions", datastore, execution_id))


@router.get("/datastores/{datastore}/checks/executions/{execution_id}/logs")
def check_execution_logs(request: Request, datastore: str, execution_id: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        execution = store.get("check_executions", datastore, execution_id)
        return listing(
            request, [{"line": line} for line in execution["__"].get("logs", [])], lambda i: i["line"]
        )


@router.delete("/datastores/{datastore}/checks/executions/{execution_id}", status_code=204)
def delete_check_execution(request: Request, datastore: str, execution_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        execution = store.get("check_executions", datastore, execution_id)
        if execution["status"] not in ("WAITING", "PROGRESS"):
            raise ApiError(400, "Seule une vérification en attente ou en cours peut être annulée.")
        store.remove("check_executions", execution_id)
        return Response(status_code=204)
