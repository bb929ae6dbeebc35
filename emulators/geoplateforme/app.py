"""The Géoplateforme emulator application: Entrepôt API, Keycloak token endpoint, CSW, emulator admin."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from emulators.geoplateforme import admin, api, keycloak
from emulators.geoplateforme.errors import ApiError
from emulators.geoplateforme.store import Store, locked


def create_app(*, step_seconds: float = 0.5, state_dir: Path | None = None) -> FastAPI:
    """A stateful emulator; asynchronous statuses advance one step every ``step_seconds``."""
    store = Store(step_seconds=step_seconds, state_dir=state_dir)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            store.close()

    app = FastAPI(
        title="Émulateur de la Géoplateforme (API Entrepôt)",
        description="Émulation locale de l'API Entrepôt et de son SSO, pour les démonstrations et les tests.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.store = store

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        messages = [
            f"{'.'.join(str(part) for part in error.get('loc', ()))} : {error.get('msg')}"
            for error in exc.errors()
        ]
        return ApiError(400, *messages).response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return ApiError(exc.status_code, str(exc.detail)).response()

    @app.middleware("http")
    async def inject_faults(request: Request, call_next: Any) -> Response:
        if not request.url.path.startswith("/_emulator"):
            with store.lock:
                remaining = int(store.faults.get("fail_next") or 0)
                if remaining > 0:
                    store.faults["fail_next"] = remaining - 1
                    store.dirty = True
                    status = int(store.faults.get("fail_status") or 503)
                    retry_after = store.faults.get("retry_after")
                    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
                    return ApiError(status, "Erreur injectée par l'émulateur.", headers=headers).response()
        response: Response = await call_next(request)
        return response

    app.include_router(api.router)
    app.include_router(keycloak.router)
    app.include_router(admin.router)

    @app.get("/csw")
    def csw(request: Request) -> Response:
        """Published records, as the platform's CSW serves them (§3, "What the CSW catalogue exposes")."""
        query = {key.lower(): value for key, value in request.query_params.items()}
        if query.get("request", "").lower() != "getrecordbyid" or not query.get("id"):
            body = (
                '<?xml version="1.0" encoding="UTF-8"?><ows:ExceptionReport xmlns:ows="http://www.opengis.net/ows"'
                ' version="1.2.0"><ows:Exception exceptionCode="OperationNotSupported"><ows:ExceptionText>'
                "Seule l'opération GetRecordById est émulée.</ows:ExceptionText></ows:Exception>"
                "</ows:ExceptionReport>"
            )
            return Response(body, status_code=400, media_type="application/xml")
        wanted = set(query["id"].split(","))
        records = []
        with locked(store):
            for metadata in store.data["metadata"].values():
                if metadata["file_identifier"] in wanted and metadata["endpoints"]:
                    path = store.files_dir("metadata", metadata["_id"]) / "metadata.xml"
                    content = path.read_text(encoding="utf-8")
                    records.append(content.split("?>", 1)[-1] if content.startswith("<?xml") else content)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<csw:GetRecordByIdResponse xmlns:csw="http://www.opengis.net/cat/csw/2.0.2">'
            + "".join(records)
            + "</csw:GetRecordByIdResponse>"
        )
        return Response(body, media_type="application/xml")

    @app.get("/")
    def home(request: Request) -> dict[str, str]:
        base = str(request.base_url).rstrip("/")
        return {
            "title": escape(app.title),
            "api": f"{base}/api",
            "token": f"{base}/realms/geoplateforme/protocol/openid-connect/token",
            "csw": f"{base}/csw",
            "admin": f"{base}/_emulator/state",
        }

    return app


def run(port: int, host: str = "127.0.0.1", step_seconds: float = 0.5, state_dir: Path | None = None) -> None:
    """Serve the emulator with uvicorn until interrupted (``broker emulate geoplateforme --port P``)."""
    import uvicorn

    uvicorn.run(
        create_app(step_seconds=step_seconds, state_dir=state_dir),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
    )
