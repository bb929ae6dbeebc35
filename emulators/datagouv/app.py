"""A faithful local emulator of the data.gouv.fr (udata 17) API subset a publishing client uses.

Routes, payloads, status codes and error bodies follow ``research/datagouv-api.md`` and udata's code
(``opendatateam/udata`` @ 25b5a2d); comments cite both. What the research marks UNCONFIRMED is marked so here.

The emulator's own admin API lives under ``/_emulator/`` (see :mod:`emulators.datagouv.admin`): it is NOT part
of data.gouv.fr. Hosted files are served under ``/s/resources/`` (production: ``static.data.gouv.fr``),
dataset pages under ``/datasets/{slug}/`` (production: the cdata front end).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import logging
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from emulators.datagouv import forms, reference, serialize
from emulators.datagouv.faults import FaultMiddleware, Runtime
from emulators.datagouv.forms import ApiError
from emulators.datagouv.store import FileExists, Record, Store, is_object_id, iso, object_id

logger = logging.getLogger(__name__)

# flask-restx / werkzeug default bodies (udata answers these when it aborts without a message).
NOT_FOUND = (
    "The requested URL was not found on the server. If you entered the URL manually please check your "
    "spelling and try again."
)
UNAUTHORIZED = (
    "The server could not verify that you are authorized to access the URL requested. You either supplied "
    "the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the "
    "credentials required."
)
METHOD_NOT_ALLOWED = "The method is not allowed for the requested URL."
FORBIDDEN = "You do not have the permission to modify that object."  # udata handle_permission_denied
READ_ONLY = "Due to security reasons, the creation of new content is currently disabled."  # settings 423
DELETED = "Dataset has been deleted"
INTERNAL = "Internal Server Error"
# udata UDataApi.unauthorized: the challenge sent with every 401.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="uData"'}
HEADER_API_KEY = "X-API-KEY"


class Emulator:
    """The state and the request helpers shared by the routes."""

    def __init__(self, store: Store, runtime: Runtime) -> None:
        self.store = store
        self.runtime = runtime

    # ----------------------------------------------------------------------------------------- auth

    def user(self, request: Request) -> Record | None:
        """udata ``UDataApi.authentify``: a bad key is a 401 on any route, even a read."""
        token = request.headers.get(HEADER_API_KEY)
        if not token:
            return None
        user, error = self.store.authenticate(token)
        if user is None:
            message = {"revoked": "Revoked API token", "inactive": "Inactive user"}.get(
                error or "", "Invalid API token"
            )
            raise ApiError(401, {"message": message}, CHALLENGE)
        return user

    def secure(self, request: Request, *, blocklisted: bool = False) -> Record:
        """udata ``UDataApi._apply_secure``: read-only mode first (423), then authentication (401)."""
        user = self.user(request)
        if user is not None and not user.get("sysadmin") and self.runtime.read_only and blocklisted:
            # METHOD_BLOCKLIST holds DatasetListAPI.post, ResourcesAPI.post, UploadNewDatasetResource.post,
            # UploadDatasetResource.post, ContactPointsListAPI.post… (research §2; udata settings.py).
            raise ApiError(423, {"message": READ_ONLY})
        if user is None:
            raise ApiError(401, {"message": UNAUTHORIZED}, CHALLENGE)
        return user

    # ----------------------------------------------------------------------------------------- lookups

    def dataset_or_404(self, request: Request, ident: str) -> Record:
        dataset, redirected = self.store.dataset(ident)
        if dataset is None:
            raise ApiError(404, {"message": NOT_FOUND})
        if redirected:
            # udata routing: an old slug answers 308 to the current URL (research §1).
            location = str(request.url).replace(f"/{ident}/", f"/{dataset['slug']}/", 1)
            raise ApiError(308, {}, {"Location": location})
        return dataset

    def readable_or_error(self, dataset: Record, user: Record | None) -> None:
        """``DatasetAPI.get``: 410 for a deleted public dataset, else 404, unless the caller may read it."""
        if not serialize.can_read_dataset(self.store, dataset, user):
            if not dataset.get("private") and dataset.get("deleted"):
                raise ApiError(410, {"message": DELETED})
            raise ApiError(404, {"message": NOT_FOUND})

    def check_edit(self, dataset: Record, user: Record) -> None:
        if not serialize.can_edit_dataset(self.store, dataset, user):
            raise ApiError(403, {"message": FORBIDDEN})

    @staticmethod
    def resource_or_404(dataset: Record, rid: str) -> Record:
        for resource in dataset.get("resources") or []:
            if resource["id"] == rid:
                return resource
        raise ApiError(404, {"message": "Resource does not exist"})  # udata ResourceMixin

    def organization_or_404(self, ident: str) -> Record:
        org = self.store.state["organizations"].get(ident) or self.store.organization_by_slug(ident)
        if org is None:
            raise ApiError(404, {"message": NOT_FOUND})
        return org

    # ----------------------------------------------------------------------------------------- bodies

    @staticmethod
    async def json_object(request: Request) -> dict[str, Any]:
        """udata ``api.validate``: Content-Type first, then a JSON object (research §2)."""
        if "application/json" not in request.headers.get("content-type", ""):
            raise ApiError(400, {"errors": {"Content-Type": "expecting application/json"}})
        return Emulator.check_object(request, await Emulator.raw_json(request))

    @staticmethod
    def check_object(request: Request, body: Any) -> dict[str, Any]:
        if "application/json" not in request.headers.get("content-type", ""):
            raise ApiError(400, {"errors": {"Content-Type": "expecting application/json"}})
        if not isinstance(body, dict):
            raise ApiError(400, {"errors": {"request": "expecting a JSON object"}})
        return body

    @staticmethod
    async def raw_json(request: Request) -> Any:
        """Flask's ``request.json``: 415 without a JSON Content-Type, 400 on a body that does not parse."""
        if "application/json" not in request.headers.get("content-type", ""):
            # Inferred from Flask >= 2.3 Request.json (on_json_loading_failed(None)).
            raise ApiError(
                415,
                {
                    "message": "Did not attempt to load JSON data because the request Content-Type was not "
                    "'application/json'."
                },
            )
        raw = await request.body()
        try:
            return json.loads(raw or b"null")
        except ValueError as exc:
            raise ApiError(400, {"message": f"Failed to decode JSON object: {exc}"}) from None

    @staticmethod
    def log_keys(request: Request, body: dict[str, Any]) -> None:
        """Note the body's keys in the request log (``/_emulator/requests``), never the values."""
        entry = request.scope.get("state", {}).get("log")
        if entry is not None:
            entry["body_keys"] = sorted(body)

    @staticmethod
    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def render(self, request: Request, payload: Any, status: int = 200) -> Response:
        """Apply an ``X-Fields`` mask (flask-restx, research §1) and answer JSON."""
        mask_text = request.headers.get("X-Fields")
        if mask_text:
            try:
                payload = serialize.apply_mask(payload, serialize.parse_mask(mask_text))
            except ValueError:
                raise ApiError(400, {"message": "Mask parse error: Unexpected end of mask"}) from None
        return JSONResponse(payload, status_code=status)

    def dataset_payload(self, request: Request, dataset: Record, user: Record | None) -> dict[str, Any]:
        return serialize.dataset_out(self.store, dataset, self.base(request), user)

    # ----------------------------------------------------------------------------------------- writes

    def apply_dataset(self, dataset: Record, changes: dict[str, Any]) -> None:
        """Save a validated change set; ``Dataset.clean`` and slug rules included. Call with the lock held."""
        stamp = iso()
        for key, value in changes.items():
            if key == "resources":
                self._replace_resources(dataset, value, stamp)
            else:
                dataset[key] = value
        if dataset.get("access_type") and dataset["access_type"] != "open":
            dataset["license"] = None  # Dataset.clean (research §2, "license")
        if "title" in changes:
            slug = self.store.unique_slug(dataset["title"], exclude=dataset["id"])
            if slug != dataset.get("slug"):
                if dataset.get("slug"):
                    self.store.state["slug_redirects"][dataset["slug"]] = dataset["id"]
                dataset["slug"] = slug
        dataset["last_modified"] = stamp

    def _replace_resources(
        self, dataset: Record, cleaned: list[tuple[str | None, dict[str, Any]]], stamp: str
    ) -> None:
        existing = {r["id"]: r for r in dataset.get("resources") or []}
        kept: list[Record] = []
        for rid, values in cleaned:
            if rid is not None and rid in existing:
                resource = existing.pop(rid)
                resource.update(values)
                resource["last_modified"] = stamp
            else:
                # Unknown or missing ids get a server-generated UUID (research §2).
                resource = self.new_resource(values, stamp)
            kept.append(resource)
        for dropped in existing.values():
            self.store.delete_resource_file(dropped.get("fs_filename"))
        dataset["resources"] = kept

    @staticmethod
    def new_resource(values: dict[str, Any], stamp: str | None = None) -> Record:
        stamp = stamp or iso()
        resource: Record = {
            "id": str(uuid.uuid4()),
            "title": None,
            "description": "",
            "filetype": "file",
            "type": "main",  # model default (research §3)
            "format": None,
            "url": None,
            "checksum": None,
            "filesize": None,
            "mime": None,
            "extras": {},
            "schema": None,
            "fs_filename": None,
            "created_at": stamp,
            "last_modified": stamp,
        }
        resource.update(values)
        return resource

    # ----------------------------------------------------------------------------------------- uploads

    async def handle_upload(self, request: Request, dataset: Record) -> tuple[Record | None, str | None]:
        """udata ``storages.api.handle_upload`` + ``UploadMixin.handle_upload``.

        Returns (file infos, None) once a whole file is stored, or (None, None) after a stored chunk (the
        caller answers ``{"success": true}``). Errors raise :class:`ApiError`.
        """
        form = await request.form(max_files=4, max_fields=32)
        args: dict[str, Any] = {}
        for name in ("partindex", "partbyteoffset", "totalparts", "chunksize", "totalfilesize"):
            raw = form.get(name)
            if raw is None or raw == "":
                args[name] = None
                continue
            try:
                args[name] = int(str(raw))
            except ValueError:
                # flask-restx reqparse's error shape.
                raise ApiError(
                    400,
                    {
                        "errors": {name: f"invalid literal for int() with base 10: {str(raw)!r}"},
                        "message": "Input payload validation failed",
                    },
                ) from None
        upload_uuid = str(form.get("uuid") or "")
        filename_arg = str(form.get("filename") or "")
        upload = form.get("file")
        file = upload if isinstance(upload, UploadFile) else None
        log = request.scope.get("state", {}).get("log")
        is_chunk = bool(args["totalparts"] and args["totalparts"] > 1)

        if is_chunk:
            if log is not None:
                log["upload"] = {
                    "uuid": upload_uuid,
                    "partindex": args["partindex"],
                    "part": file is not None,
                }
            if file is not None:
                self._save_chunk(file, upload_uuid, filename_arg, args)
                return None, None
            filename = reference.normalize_filename(filename_arg)
            source = self._combine_chunks(upload_uuid, int(args["totalparts"]))
        elif file is None:
            raise ApiError(400, {"success": False, "error": "Missing file parameter"})
        else:
            filename = reference.normalize_filename(file.filename or "")
            source = self.store.temp_file()
            with source.open("wb") as out:
                shutil.copyfileobj(file.file, out, 1024 * 1024)

        try:
            infos = self._save_upload(request, dataset, source, filename)
        finally:
            source.unlink(missing_ok=True)
        if is_chunk:
            # Parts are dropped once the file reached its destination, so a failed combine can be retried.
            self.store.discard_chunks(upload_uuid)
        return infos, None

    def _save_chunk(self, file: UploadFile, upload_uuid: str, filename: str, args: dict[str, Any]) -> None:
        part = args["partindex"]
        if part is None or not upload_uuid:
            raise ApiError(500, {"message": INTERNAL})
        tmp = self.store.temp_file()
        with tmp.open("wb") as out:
            shutil.copyfileobj(file.file, out, 1024 * 1024)
        if tmp.stat().st_size != args["chunksize"]:
            tmp.unlink(missing_ok=True)
            raise ApiError(400, {"success": False, "error": "Chunk size mismatch"})
        target = self.store.chunk_path(upload_uuid, part)
        if target.exists():
            # flask-storage saves without overwrite: a part sent twice raises FileExists, an unhandled 500.
            # UNCONFIRMED for flask-storage 2.0 (research §7.2, issue datagouv/data.gouv.fr#1274).
            tmp.unlink(missing_ok=True)
            raise ApiError(500, {"message": INTERNAL})
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(tmp), target)
        with self.store.writing() as state:
            meta = state["chunks"].setdefault(upload_uuid, {"parts": []})
            meta.update({"filename": filename, "totalparts": args["totalparts"], "lastchunk": iso()})
            if part not in meta["parts"]:
                meta["parts"].append(part)

    def _combine_chunks(self, upload_uuid: str, totalparts: int) -> Path:
        combined = self.store.temp_file()
        with combined.open("wb") as out:
            for part in range(totalparts):
                path = self.store.chunk_path(upload_uuid, part) if upload_uuid else None
                if path is None or not path.is_file():
                    # ChunksReader reads a missing part: FileNotFound, an unhandled 500 (UNCONFIRMED).
                    combined.unlink(missing_ok=True)
                    raise ApiError(500, {"message": INTERNAL})
                with path.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 1024 * 1024)
        return combined

    def _save_upload(self, request: Request, dataset: Record, source: Path, filename: str) -> Record:
        base = self.base(request)
        if not reference.storage_allows(filename):
            # udata handle_unauthorized_file_type; the missing space after the dot is in udata's message.
            raise ApiError(
                400,
                {
                    "message": "This file type is not allowed.The allowed file type list is available at "
                    f"{base}/api/1/datasets/extensions/"
                },
            )
        # UploadMixin: the storage key is "<slug>/<YYYYMMDD-HHMMSS>/<file>": the URL changes on every upload.
        prefix = f"{dataset['slug']}/{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}"
        fs_filename = f"{prefix}/{filename}"
        sha1 = hashlib.sha1()
        size = 0
        with source.open("rb") as stream:
            while block := stream.read(1024 * 1024):
                sha1.update(block)
                size += len(block)
        try:
            self.store.store_resource_file(source, fs_filename)
        except FileExists:
            # Same file name uploaded twice in the same second (research §7.2): FileExists, a 500.
            raise ApiError(500, {"message": INTERNAL}) from None
        mime = reference.guess_mime(fs_filename)
        if "html" in mime:
            self.store.delete_resource_file(fs_filename)
            raise ApiError(415, {"message": "Incorrect file content type: HTML"})
        return {
            "url": f"{base}/s/resources/{fs_filename}",
            "fs_filename": fs_filename,
            "title": filename.rsplit("/", 1)[-1],
            "checksum": {"type": "sha1", "value": sha1.hexdigest()},
            "filesize": size,
            "mime": mime,
            "format": reference.extension(fs_filename),
            "last_modified": iso(),
        }


# --------------------------------------------------------------------------------------------- helpers


def _int_arg(request: Request, name: str, default: int, help_text: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        # flask-restx ``positive`` via reqparse (add_pagination_arguments).
        raise ApiError(400, {"errors": {name: help_text}, "message": "Input payload validation failed"})
    return value


def _bool_arg(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "on", "yes"):
        return True
    if lowered in ("false", "0", "off", "no"):
        return False
    raise ApiError(
        400,
        {
            "errors": {name: f"Invalid literal for boolean(): {raw}"},
            "message": "Input payload validation failed",
        },
    )


_SORTS = {"title": "title", "created": "created_at", "last_update": "last_modified"}


def _sorted(datasets: list[Record], sort: str | None) -> list[Record]:
    if not sort:
        return datasets
    reverse = sort.startswith("-")
    key = _SORTS.get(sort.lstrip("-"))
    if key is None:
        return datasets  # metrics sorts (reuses, followers, views) are all zero here
    return sorted(datasets, key=lambda d: d.get(key) or "", reverse=reverse)


def _paginate(
    emulator: Emulator, request: Request, datasets: list[Record], user: Record | None, default_size: int = 20
) -> dict[str, Any]:
    page_number = _int_arg(request, "page", 1, "The page to fetch")
    page_size = _int_arg(request, "page_size", default_size, "The page size to fetch")
    start = (page_number - 1) * page_size
    chunk = datasets[start : start + page_size]
    url = str(request.url.remove_query_params(["page", "page_size"]))
    return serialize.page(
        [emulator.dataset_payload(request, d, user) for d in chunk],
        page_number,
        page_size,
        len(datasets),
        url,
    )


def _visible(emulator: Emulator, dataset: Record, user: Record | None) -> bool:
    """udata ``visible_by_user``: public, live and not archived, or owned by the caller (any state)."""
    if not dataset.get("private") and not dataset.get("archived") and not dataset.get("deleted"):
        return True
    if user is None:
        return False
    if user.get("sysadmin") or dataset.get("owner") == user["id"]:
        return True
    return emulator.store.role_in(dataset.get("organization"), user) is not None


def _require_auth_for_filter(user: Record | None) -> None:
    if user is None:
        raise ApiError(401, {"message": UNAUTHORIZED}, CHALLENGE)


def _dataset_page_html(emulator: Emulator, request: Request, dataset: Record) -> str:
    base = emulator.base(request)
    items = "".join(
        f'<li><a href="{html.escape(r["url"] or "")}">{html.escape(r["title"] or "")}</a> '
        f"({html.escape(r.get('format') or '?')})</li>"
        for r in dataset.get("resources") or []
    )
    state = " (supprimé)" if dataset.get("deleted") else " (archivé)" if dataset.get("archived") else ""
    return (
        "<!doctype html><html lang='fr'><head><meta charset='utf-8'>"
        f"<title>{html.escape(dataset['title'])} - data.gouv.fr (émulateur)</title></head><body>"
        "<p><em>Émulateur local de data.gouv.fr</em> - "
        f"<a href='{base}/api/1/datasets/{dataset['id']}/'>API</a></p>"
        f"<h1>{html.escape(dataset['title'])}{state}</h1>"
        f"<div>{html.escape(dataset['description'])}</div><h2>Ressources</h2><ul>{items}</ul></body></html>"
    )


# --------------------------------------------------------------------------------------------- the app


def create_app(
    *, allow_local_urls: bool = False, read_only: bool = False, state_dir: Path | None = None
) -> FastAPI:
    """Build the emulator. ``state_dir`` persists everything as JSON (and files) so a restart keeps data."""
    from emulators.datagouv import admin

    store = Store(state_dir)
    runtime = Runtime(read_only=read_only, allow_local_urls=allow_local_urls)
    emu = Emulator(store, runtime)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        store.close()

    app = FastAPI(
        lifespan=lifespan,
        title="data.gouv.fr emulator (udata 17 API subset)",
        description="Local emulator of data.gouv.fr's API. `/_emulator/` is the emulator's own admin API, "
        "not part of data.gouv.fr.",
        docs_url="/_emulator/docs",
        openapi_url="/_emulator/openapi.json",
        redoc_url=None,
    )
    app.state.emulator = emu
    app.add_middleware(FaultMiddleware, runtime=runtime)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        if exc.status in (204, 308):
            return Response(status_code=exc.status, headers=exc.headers)
        return JSONResponse(exc.body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> Response:
        message = {404: NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(exc.status_code, str(exc.detail))
        return JSONResponse({"message": message}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> Response:
        logger.exception("data.gouv.fr emulator: unhandled error")
        return JSONResponse({"message": INTERNAL}, status_code=500)

    app.include_router(admin.router(emu))
    _reference_routes(app, emu)
    _dataset_routes(app, emu)
    _resource_routes(app, emu)
    _other_routes(app, emu)

    return app


def _reference_routes(app: FastAPI, emu: Emulator) -> None:
    @app.get("/api/1/datasets/licenses/")
    async def licenses(request: Request) -> Response:
        emu.user(request)
        return emu.render(request, reference.LICENSES)

    @app.get("/api/1/datasets/frequencies/")
    async def frequencies(request: Request) -> Response:
        emu.user(request)
        return emu.render(request, [{"id": fid, "label": label} for fid, label in reference.FREQUENCIES])

    @app.get("/api/1/datasets/extensions/")
    async def extensions(request: Request) -> Response:
        emu.user(request)
        return emu.render(request, sorted(reference.ALLOWED_EXTENSIONS))

    @app.get("/api/1/datasets/resource_types/")
    async def resource_types(request: Request) -> Response:
        emu.user(request)
        return emu.render(request, [{"id": rid, "label": label} for rid, label in reference.RESOURCE_TYPES])

    @app.get("/api/1/spatial/levels/")
    async def levels(request: Request) -> Response:
        return emu.render(request, [{"id": lid, "name": name} for lid, name, _ in reference.LEVELS])

    @app.get("/api/1/spatial/granularities/")
    async def granularities(request: Request) -> Response:
        return emu.render(request, [{"id": gid, "name": name} for gid, name in reference.GRANULARITIES])

    def feature(zone: Record) -> dict[str, Any]:
        # GeoZone.toGeoJSON; the emulator holds no geometries.
        return {
            "id": zone["id"],
            "type": "Feature",
            "geometry": None,
            "properties": {
                "name": zone["name"],
                "code": zone["code"],
                "level": zone["level"],
                "slug": reference.slugify(zone["name"]),
                "uri": None,
            },
        }

    @app.get("/api/1/spatial/zones/suggest/")
    async def suggest_zones(request: Request) -> Response:
        q = (request.query_params.get("q") or "").lower()
        size = _int_arg(request, "size", 10, "The amount of suggestion to fetch")
        order = {lid: level for lid, _, level in reference.LEVELS}
        found = [
            z
            for z in emu.store.zones().values()
            if q in z["name"].lower() or q in z["code"].lower() or q in z["id"].lower()
        ]
        found.sort(key=lambda z: order.get(z["level"], 999))
        return emu.render(
            request,
            [
                {"id": z["id"], "name": z["name"], "code": z["code"], "level": z["level"], "uri": None}
                for z in found[:size]
            ],
        )

    @app.get("/api/1/spatial/zone/{zone_id}/")
    async def zone(request: Request, zone_id: str) -> Response:
        geoid = reference.parse_geoid(zone_id)
        found = emu.store.zones().get(geoid or "")
        if found is None:
            raise ApiError(404, {"message": NOT_FOUND})
        return emu.render(request, feature(found))

    @app.get("/api/1/spatial/zones/{zone_ids}/")
    async def zones(request: Request, zone_ids: str) -> Response:
        table = emu.store.zones()
        ids = [reference.parse_geoid(z) or z for z in zone_ids.split(",") if z]
        missing = [z for z in ids if z not in table]
        if missing:
            # udata indexes the bulk result without a check: an unknown id is a 500 there. The emulator is
            # kinder and answers 404 (deliberate difference).
            raise ApiError(404, {"message": NOT_FOUND})
        return emu.render(
            request, {"type": "FeatureCollection", "features": [feature(table[z]) for z in ids]}
        )

    @app.get("/api/1/contacts/roles/")
    async def contact_roles(request: Request) -> Response:
        return emu.render(request, [{"id": rid, "label": label} for rid, label in reference.CONTACT_ROLES])


def _dataset_routes(app: FastAPI, emu: Emulator) -> None:
    store = emu.store

    @app.get("/api/1/datasets/")
    async def list_datasets(request: Request) -> Response:
        user = emu.user(request)
        params = request.query_params
        with store.lock:
            datasets = [d for d in store.state["datasets"].values() if _visible(emu, d, user)]
            org = params.get("organization")
            if org:
                if not is_object_id(org):
                    raise ApiError(400, {"message": "Organization arg must be an identifier"})
                datasets = [d for d in datasets if d.get("organization") == org]
            owner = params.get("owner")
            if owner:
                if not is_object_id(owner):
                    raise ApiError(400, {"message": "Owner arg must be an identifier"})
                datasets = [d for d in datasets if d.get("owner") == owner]
            for tag in params.getlist("tag"):
                datasets = [d for d in datasets if tag in (d.get("tags") or [])]
            for key in ("license", "access_type", "frequency"):
                if params.get(key):
                    datasets = [d for d in datasets if d.get(key) == params[key]]
            if params.get("geozone"):
                datasets = [
                    d for d in datasets if params["geozone"] in ((d.get("spatial") or {}).get("zones") or [])
                ]
            if params.get("format"):
                fmt = params["format"]
                datasets = [
                    d for d in datasets if any(r.get("format") == fmt for r in d.get("resources") or [])
                ]
            q = (params.get("q") or "").lower().split()
            if q:
                datasets = [
                    d for d in datasets if all(w in f"{d['title']} {d['description']}".lower() for w in q)
                ]
            for flag in ("archived", "deleted"):
                wanted = _bool_arg(request, flag)
                if wanted is not None:
                    _require_auth_for_filter(user)
                    datasets = [d for d in datasets if bool(d.get(flag)) == wanted]
            private = _bool_arg(request, "private")
            if private is not None:
                _require_auth_for_filter(user)
                datasets = [d for d in datasets if bool(d.get("private")) == private]
            # DEFAULT_SORTING is "-created_at_internal".
            datasets = _sorted(datasets, params.get("sort") or "-created")
            payload = _paginate(emu, request, datasets, user)
        return emu.render(request, payload)

    @app.post("/api/1/datasets/")
    async def create_dataset(request: Request) -> Response:
        user = emu.secure(request, blocklisted=True)
        body = await emu.json_object(request)
        emu.log_keys(request, body)
        with store.writing() as state:
            changes = forms.clean_dataset(
                store, body, None, user=user, allow_local=emu.runtime.allow_local_urls
            )
            stamp = iso()
            dataset: Record = {
                "id": object_id(),
                "slug": None,
                "created_at": stamp,
                "last_modified": stamp,
                "deleted": None,
                "archived": None,
                "featured": False,
                "resources": [],
                "acronym": None,
                "description_short": None,
                "license": None,
                "temporal_coverage": None,
                "spatial": None,
                "frequency_date": None,
                "authorization_request_url": None,
                "access_type_reason_category": None,
                "access_type_reason": None,
                "access_audiences": [],
            }
            emu.apply_dataset(dataset, changes)
            state["datasets"][dataset["id"]] = dataset
            payload = emu.dataset_payload(request, dataset, user)
        return emu.render(request, payload, 201)

    @app.get("/api/1/datasets/r/{rid}")
    async def resource_redirect(request: Request, rid: str) -> Response:
        with store.lock:
            for dataset in store.state["datasets"].values():
                for resource in dataset.get("resources") or []:
                    if resource["id"] == rid and resource.get("url"):
                        return RedirectResponse(resource["url"].strip(), status_code=302)
        raise ApiError(404, {"message": "Resource not found"})

    @app.get("/api/1/datasets/{ident}/")
    async def get_dataset(request: Request, ident: str) -> Response:
        user = emu.user(request)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.readable_or_error(dataset, user)
            payload = emu.dataset_payload(request, dataset, user)
        return emu.render(request, payload)

    @app.put("/api/1/datasets/{ident}/")
    async def update_dataset(request: Request, ident: str) -> Response:
        user = emu.secure(request)
        raw = await emu.raw_json(request)
        with store.writing():
            dataset = emu.dataset_or_404(request, ident)
            # DatasetAPI.put reads `request.json.get("deleted", True)`: only an explicit null restores (§2).
            request_deleted = raw.get("deleted", True) if isinstance(raw, dict) else True
            if dataset.get("deleted") and request_deleted is not None:
                raise ApiError(410, {"message": DELETED})
            emu.check_edit(dataset, user)
            body = emu.check_object(request, raw)
            emu.log_keys(request, body)
            changes = forms.clean_dataset(
                store, body, dataset, user=user, allow_local=emu.runtime.allow_local_urls
            )
            emu.apply_dataset(dataset, changes)
            payload = emu.dataset_payload(request, dataset, user)
        return emu.render(request, payload)

    @app.delete("/api/1/datasets/{ident}/")
    async def delete_dataset(request: Request, ident: str) -> Response:
        user = emu.secure(request)
        with store.writing():
            dataset = emu.dataset_or_404(request, ident)
            if dataset.get("deleted"):
                raise ApiError(410, {"message": DELETED})
            emu.check_edit(dataset, user)
            dataset["deleted"] = iso()  # a soft delete; purged "by the end of the day" (research §2)
            dataset["last_modified"] = dataset["deleted"]
        return Response(status_code=204)

    # ----------------------------------------------------------------------------------------- v2 extras

    @app.get("/api/2/datasets/{ident}/extras/")
    async def get_extras(request: Request, ident: str) -> Response:
        user = emu.user(request)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.readable_or_error(dataset, user)
            return emu.render(request, dict(dataset.get("extras") or {}))

    @app.put("/api/2/datasets/{ident}/extras/")
    async def put_extras(request: Request, ident: str) -> Response:
        user = emu.secure(request)
        data = await emu.raw_json(request)
        with store.writing():
            dataset = emu.dataset_or_404(request, ident)
            if not isinstance(data, dict):
                raise ApiError(400, {"message": "Wrong payload format, dict expected"})
            if dataset.get("deleted"):
                raise ApiError(410, {"message": DELETED})
            emu.check_edit(dataset, user)
            extras = dict(dataset.get("extras") or {})
            for key, value in data.items():
                if value is None:
                    extras.pop(key, None)  # a null value deletes the key (research §4)
                else:
                    extras[key] = value
            forms.model_checks(store, dataset, {"extras": extras})
            dataset["extras"] = extras
            dataset["last_modified"] = iso()
            return emu.render(request, extras)

    @app.delete("/api/2/datasets/{ident}/extras/")
    async def delete_extras(request: Request, ident: str) -> Response:
        user = emu.secure(request)
        data = await emu.raw_json(request)
        with store.writing():
            dataset = emu.dataset_or_404(request, ident)
            if not isinstance(data, list):
                raise ApiError(400, {"message": "Wrong payload format, list expected"})
            if dataset.get("deleted"):
                raise ApiError(410, {"message": DELETED})
            if not serialize.can_edit_dataset(store, dataset, user):
                raise ApiError(403, {"message": FORBIDDEN})
            for key in data:
                (dataset.get("extras") or {}).pop(key, None)
            dataset["last_modified"] = iso()
        return Response(status_code=204)

    @app.get("/api/2/datasets/{ident}/resources/")
    async def list_resources_v2(request: Request, ident: str) -> Response:
        user = emu.user(request)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.readable_or_error(dataset, user)
            resources = list(dataset.get("resources") or [])
            rtype = request.query_params.get("type")
            if rtype:
                resources = [r for r in resources if r.get("type") == rtype]
            q = (request.query_params.get("q") or "").lower()
            if q:
                resources = [r for r in resources if q in (r.get("title") or "").lower()]
            page_number = _int_arg(request, "page", 1, "The page to fetch")
            page_size = _int_arg(request, "page_size", 50, "The page size to fetch")
            start = (page_number - 1) * page_size
            base = emu.base(request)
            items = [serialize.resource_out(r, base) for r in resources[start : start + page_size]]
            url = str(request.url.remove_query_params(["page", "page_size"]))
            payload = serialize.page(items, page_number, page_size, len(resources), url)
        return emu.render(request, payload)

    @app.get("/api/2/datasets/resources/{rid}/")
    async def resource_v2(request: Request, rid: str) -> Response:
        user = emu.user(request)
        with store.lock:
            for dataset in store.state["datasets"].values():
                for resource in dataset.get("resources") or []:
                    if resource["id"] == rid:
                        emu.readable_or_error(dataset, user)
                        return emu.render(
                            request,
                            {
                                "resource": serialize.resource_out(resource, emu.base(request)),
                                "dataset_id": dataset["id"],
                            },
                        )
        raise ApiError(404, {"message": NOT_FOUND})


def _resource_routes(app: FastAPI, emu: Emulator) -> None:
    store = emu.store

    @app.post("/api/1/datasets/{ident}/resources/")
    async def create_remote_resource(request: Request, ident: str) -> Response:
        user = emu.secure(request, blocklisted=True)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.check_edit(dataset, user)
        body = await emu.json_object(request)
        values, errors = forms.clean_resource(body, None, allow_local=emu.runtime.allow_local_urls)
        if errors:
            raise forms.form_errors(errors)
        if values["filetype"] != "remote":
            raise ApiError(400, {"message": "This endpoint only supports remote resources"})
        with store.writing():
            resource = emu.new_resource(values)
            # Dataset.add_resource prepends (research §3).
            dataset["resources"] = [resource, *(dataset.get("resources") or [])]
            dataset["last_modified"] = resource["created_at"]
            payload = serialize.resource_out(resource, emu.base(request))
        return emu.render(request, payload, 201)

    @app.put("/api/1/datasets/{ident}/resources/")
    async def reorder_resources(request: Request, ident: str) -> Response:
        user = emu.secure(request)
        body = await emu.raw_json(request)
        with store.writing():
            dataset = emu.dataset_or_404(request, ident)
            emu.check_edit(dataset, user)
            resources = dataset.get("resources") or []
            if not isinstance(body, list):
                raise ApiError(400, {"errors": {"request": "expecting a JSON list"}})
            if len(resources) != len(body):
                raise ApiError(
                    400,
                    {
                        "message": f"All resources must be reordered, you provided {len(body)} "
                        f"out of {len(resources)}"
                    },
                )
            if any(isinstance(r, dict) and "id" not in r for r in body):
                raise ApiError(400, {"message": "Each resource must have an 'id' field"})
            ids = [r["id"] if isinstance(r, dict) else r for r in body]
            current = {r["id"]: r for r in resources}
            if set(ids) != set(current):
                raise ApiError(
                    400, {"message": f"Resource ids must match existing ones in dataset, ie: {set(current)}"}
                )
            dataset["resources"] = [current[i] for i in ids]
            dataset["last_modified"] = iso()
            base = emu.base(request)
            payload = [serialize.resource_out(r, base) for r in dataset["resources"]]
        return emu.render(request, payload)

    @app.post("/api/1/datasets/{ident}/upload/")
    async def upload_new(request: Request, ident: str) -> Response:
        user = emu.secure(request, blocklisted=True)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.check_edit(dataset, user)
        infos, _ = await emu.handle_upload(request, dataset)
        if infos is None:
            return JSONResponse({"success": True})
        with store.writing():
            resource = emu.new_resource({**infos, "filetype": "file", "type": "main"})
            dataset["resources"] = [resource, *(dataset.get("resources") or [])]
            dataset["last_modified"] = resource["created_at"]
            payload = {**serialize.resource_out(resource, emu.base(request)), "success": True}
        return emu.render(request, payload, 201)

    @app.post("/api/1/datasets/{ident}/resources/{rid}/upload/")
    async def upload_replace(request: Request, ident: str, rid: str) -> Response:
        user = emu.secure(request, blocklisted=True)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.check_edit(dataset, user)
            resource = emu.resource_or_404(dataset, rid)
        old_file = resource.get("fs_filename")
        infos, _ = await emu.handle_upload(request, dataset)
        if infos is None:
            return JSONResponse({"success": True})
        with store.writing():
            # The upload overwrites title, format and mime (research §3 "Update, replace").
            resource.update(infos)
            dataset["last_modified"] = infos["last_modified"]
            if old_file and old_file != infos["fs_filename"]:
                store.delete_resource_file(old_file)
            payload = {**serialize.resource_out(resource, emu.base(request)), "success": True}
        return emu.render(request, payload)

    @app.get("/api/1/datasets/{ident}/resources/{rid}/")
    async def get_resource(request: Request, ident: str, rid: str) -> Response:
        user = emu.user(request)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.readable_or_error(dataset, user)
            resource = emu.resource_or_404(dataset, rid)
            return emu.render(request, serialize.resource_out(resource, emu.base(request)))

    @app.put("/api/1/datasets/{ident}/resources/{rid}/")
    async def update_resource(request: Request, ident: str, rid: str) -> Response:
        user = emu.secure(request)
        with store.lock:
            dataset = emu.dataset_or_404(request, ident)
            emu.check_edit(dataset, user)
            resource = emu.resource_or_404(dataset, rid)
        body = await emu.json_object(request)
        values, errors = forms.clean_resource(body, resource, allow_local=emu.runtime.allow_local_urls)
        if errors:
            raise forms.form_errors(errors)
        if body.get("filetype") and body["filetype"] != resource["filetype"]:
            raise ApiError(400, {"message": "Cannot modify filetype after creation"})
        with store.writing():
            resource.update(values)
            if "schema" in body and body["schema"] is None:
                resource["schema"] = None
            if resource["filetype"] != "file" and "checksum" in body and body["checksum"] is None:
                resource["checksum"] = None
            resource["last_modified"] = iso()
            dataset["last_modified"] = resource["last_modified"]
            return emu.render(request, serialize.resource_out(resource, emu.base(request)))

    @app.delete("/api/1/datasets/{ident}/resources/{rid}/")
    async def delete_resource(request: Request, ident: str, rid: str) -> Response:
        user = emu.secure(request)
        with store.writing():
            dataset = emu.dataset_or_404(request, ident)
            emu.check_edit(dataset, user)
            resource = emu.resource_or_404(dataset, rid)
            dataset["resources"] = [r for r in dataset["resources"] if r["id"] != rid]
            store.delete_resource_file(resource.get("fs_filename"))
            dataset["last_modified"] = iso()
        return Response(status_code=204)


def _other_routes(app: FastAPI, emu: Emulator) -> None:
    store = emu.store

    @app.get("/api/1/me/")
    async def me(request: Request) -> Response:
        user = emu.secure(request)
        base = emu.base(request)
        with store.lock:
            orgs = [serialize.org_ref(o, base) for o in store.user_organizations(user)]
        payload = {
            **(serialize.user_ref(user, base) or {}),
            "email": user["email"],
            "about": None,
            "roles": ["admin"] if user.get("sysadmin") else [],
            "organizations": orgs,
            "since": user["created_at"],
            "metrics": {"datasets": 0, "followers": 0, "following": 0, "reuses": 0},
        }
        return emu.render(request, payload)

    @app.get("/api/1/organizations/{ident}/")
    async def get_organization(request: Request, ident: str) -> Response:
        emu.user(request)
        base = emu.base(request)
        with store.lock:
            org = emu.organization_or_404(ident)
            payload = {
                **(serialize.org_ref(org, base) or {}),
                "description": org.get("description") or "",
                "created_at": org["created_at"],
                "last_modified": org["created_at"],
                "deleted": None,
                "url": None,
                "members": [
                    {"user": serialize.user_ref(store.state["users"].get(m["user"]), base), "role": m["role"]}
                    for m in org["members"]
                ],
                "metrics": {
                    "datasets": sum(
                        1 for d in store.state["datasets"].values() if d.get("organization") == org["id"]
                    ),
                    "members": len(org["members"]),
                },
                "extras": {},
            }
        return emu.render(request, payload)

    @app.get("/api/1/organizations/{ident}/datasets/")
    async def organization_datasets(request: Request, ident: str) -> Response:
        user = emu.user(request)
        with store.lock:
            org = emu.organization_or_404(ident)
            # OrgDatasetsAPI: owned_by(org), private ones only for members; deleted and archived ones are NOT
            # filtered out (research §2 "Listing notes"): check each item's `deleted` / `archived`.
            member = user is not None and (user.get("sysadmin") or store.role_in(org["id"], user) is not None)
            datasets = [
                d
                for d in store.state["datasets"].values()
                if d.get("organization") == org["id"] and (member or not d.get("private"))
            ]
            datasets = _sorted(datasets, request.query_params.get("sort"))
            payload = _paginate(emu, request, datasets, user)
        return emu.render(request, payload)

    @app.post("/api/1/contacts/")
    async def create_contact(request: Request) -> Response:
        user = emu.secure(request, blocklisted=True)
        body = await emu.json_object(request)
        errors: dict[str, list[str]] = {}
        name = body.get("name")
        if not name:
            errors["name"] = ["Field is required"]
        elif len(str(name)) > 255:
            errors["name"] = ["String value is too long"]
        role = body.get("role")
        if not role:
            errors["role"] = ["Field is required"]
        elif role not in reference.CONTACT_ROLE_IDS:
            errors["role"] = [f"Value must be one of {sorted(reference.CONTACT_ROLE_IDS)}"]
        org_id = body.get("organization")
        with store.writing() as state:
            if org_id:
                if org_id not in state["organizations"]:
                    errors["organization"] = [f"Unknown reference: {org_id}"]
                elif not user.get("sysadmin") and store.role_in(org_id, user) is None:
                    errors["organization"] = ["Permission denied for this organization"]
            if errors:
                # UNCONFIRMED: contact points use udata's api_fields `patch`; the error shape may differ.
                raise forms.model_error(errors, "Validation error")
            if role == "contact" and not body.get("email") and not body.get("contact_form"):
                raise forms.model_error(
                    {}, "At least an email or a contact form is required for a contact point"
                )
            owner = None if org_id else user["id"]
            key = (name, body.get("email"), body.get("contact_form"), role, owner, org_id)
            for point in state["contact_points"].values():
                existing = (
                    point["name"], point.get("email"), point.get("contact_form"), point["role"],
                    point.get("owner"), point.get("organization"),
                )  # fmt: skip
                if existing == key:
                    # ContactPointsListAPI.post is an atomic get_or_create: 200 when it already exists.
                    return emu.render(request, serialize.contact_out(point), 200)
            point = {
                "id": object_id(),
                "name": name,
                "email": body.get("email"),
                "contact_form": body.get("contact_form"),
                "role": role,
                "owner": owner,
                "organization": org_id,
            }
            state["contact_points"][point["id"]] = point
        return emu.render(request, serialize.contact_out(point), 201)

    @app.get("/api/1/contacts/{cid}/")
    async def get_contact(request: Request, cid: str) -> Response:
        with store.lock:
            point = store.state["contact_points"].get(cid)
            if point is None:
                raise ApiError(404, {"message": NOT_FOUND})
            return emu.render(request, serialize.contact_out(point))

    # ----------------------------------------------------------------------------------------- web side

    @app.get("/s/resources/{path:path}")
    async def static_file(path: str) -> Response:
        try:
            target = store.resource_path(path)
        except ValueError:
            raise ApiError(404, {"message": NOT_FOUND}) from None
        if not target.is_file():
            raise ApiError(404, {"message": NOT_FOUND})
        return FileResponse(target, media_type=reference.guess_mime(path))

    @app.get("/datasets/{ident}/")
    async def dataset_page(request: Request, ident: str) -> Response:
        with store.lock:
            dataset, _ = store.dataset(ident)
            if dataset is None or dataset.get("private"):
                return HTMLResponse("<h1>Page non trouvée</h1>", status_code=404)
            return HTMLResponse(_dataset_page_html(emu, request, dataset))


def run(
    port: int,
    host: str = "127.0.0.1",
    allow_local_urls: bool = False,
    state_dir: Path | None = None,
    read_only: bool = False,
) -> None:
    """Serve the emulator with uvicorn (what ``broker emulate datagouv --port P`` calls)."""
    import uvicorn

    app = create_app(allow_local_urls=allow_local_urls, read_only=read_only, state_dir=state_dir)
    logger.info("data.gouv.fr emulator on http://%s:%d/api/1/ (admin: /_emulator/)", host, port)
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)


__all__ = ["Emulator", "create_app", "run"]
