"""Processings, their executions and the stored data they produce (geoplateforme-api.md §2.2)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response

from emulators.geoplateforme.common import (
    datastore_of,
    dict_body,
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
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        return listing(
            request,
            _processings(store, ds),
            pick("_id", "name", "description"),
            {"name": field_matcher("name")},
        )


def _execution_view(store: Store, execution: dict[str, Any]) -> dict[str, Any]:
    view = public(execution)
    stored = store.data["stored_data"].get(execution["output"]["stored_data"]["_id"])
    if stored is not None:
        view["output"] = {"stored_data": pick("_id", "name", "type", "status", "srs")(stored)}
    uploads = []
    for item in execution["inputs"]["upload"]:
        upload = store.data["uploads"].get(item["_id"])
        uploads.append(pick("_id", "name", "type", "status", "srs")(upload) if upload else item)
    view["inputs"] = {"upload": uploads, "stored_data": execution["inputs"]["stored_data"]}
    return view


@router.get("/datastores/{datastore}/processings/executions")
def list_executions(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return listing(
            request,
            store.items("executions", datastore),
            pick("_id", "processing", "status"),
            {
                "status": field_matcher("status"),
                "processing": lambda item, value: item["processing"]["_id"] == value,
                "output_stored_data": lambda item, value: item["output"]["stored_data"]["_id"] == value,
                "input_upload": lambda item, value: any(u["_id"] == value for u in item["inputs"]["upload"]),
            },
        )


@router.post("/datastores/{datastore}/processings/executions", status_code=201)
def create_execution(request: Request, datastore: str, body: Any = Body(...)) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        body = dict_body(body)
        require(body, "processing", "output")
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
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return _execution_view(store, store.get("executions", datastore, execution_id))


@router.post("/datastores/{datastore}/processings/executions/{execution_id}/launch")
def launch_execution(request: Request, datastore: str, execution_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        execution = store.get("executions", datastore, execution_id)
        if execution["status"] != "CREATED":
            raise ApiError(
                400, f"L'exécution {execution_id} a déjà été lancée (statut {execution['status']})."
            )
        store.launch_execution(execution)
        return _execution_view(store, execution)


@router.post("/datastores/{datastore}/processings/executions/{execution_id}/abort")
def abort_execution(request: Request, datastore: str, execution_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
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
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        execution = store.get("executions", datastore, execution_id)
        return listing(
            request, [{"line": line} for line in execution["__"].get("logs", [])], lambda i: i["line"]
        )


@router.delete("/datastores/{datastore}/processings/executions/{execution_id}", status_code=204)
def delete_execution(request: Request, datastore: str, execution_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        execution = store.get("executions", datastore, execution_id)
        if execution["status"] in ("WAITING", "PROGRESS"):
            raise ApiError(409, f"L'exécution {execution_id} est en cours : interrompez-la d'abord.")
        store.remove("executions", execution_id)
        return Response(status_code=204)


@router.get("/datastores/{datastore}/processings/{processing_id}")
def get_processing(request: Request, datastore: str, processing_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        ds = datastore_of(store, request, datastore)
        if processing_id not in ds["processings"]:
            raise ApiError(404, f"Le traitement {processing_id} n'existe pas pour cet entrepôt.")
        return _processing_view(store, store.data["processings"][processing_id])


# ------------------------------------------------------------------------------------------------ stored data


@router.get("/datastores/{datastore}/stored_data")
def list_stored_data(request: Request, datastore: str) -> JSONResponse:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return listing(
            request,
            store.items("stored_data", datastore),
            pick("_id", "name", "type", "visibility", "srs", "status"),
            {name: field_matcher(name) for name in ("name", "type", "status", "srs")},
        )


@router.get("/datastores/{datastore}/stored_data/{stored_id}")
def get_stored_data(request: Request, datastore: str, stored_id: str) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        return public(store.get("stored_data", datastore, stored_id))


@router.patch("/datastores/{datastore}/stored_data/{stored_id}")
def patch_stored_data(
    request: Request, datastore: str, stored_id: str, body: Any = Body(...)
) -> dict[str, Any]:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        stored = store.get("stored_data", datastore, stored_id)
        for key in ("name", "description", "extra", "edition"):
            if key in dict_body(body):
                stored[key] = body[key]
        store.dirty = True
        return public(stored)


@router.delete("/datastores/{datastore}/stored_data/{stored_id}", status_code=204)
def delete_stored_data(request: Request, datastore: str, stored_id: str) -> Response:
    store = store_of(request)
    with locked(store):
        datastore_of(store, request, datastore)
        stored = store.get("stored_data", datastore, stored_id)
        if stored["status"] in ("GENERATING", "MODIFYING"):
            raise ApiError(409, f"La donnée stockée {stored_id} est en cours de génération.")
        users = [
            c["_id"] for c in store.items("configurations", datastore) if stored_id in used_stored_data(c)
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
