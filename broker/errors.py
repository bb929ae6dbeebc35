"""One error base for the whole service, rendered in one place as ``{"error", "detail", "fields"}``.

Services raise these; routes never raise ``HTTPException``. ``detail`` is safe to show to a producer
(French); log details stay in the logs.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class BrokerError(Exception):
    """Base of every expected error: an HTTP status, a stable code and a user-safe message."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        detail: str,
        *,
        fields: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.fields = fields or {}
        self.headers = headers or {}
        if code:
            self.code = code

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "detail": self.detail}
        if self.fields:
            body["fields"] = self.fields
        return body


class InvalidInput(BrokerError):
    status_code = 422
    code = "invalid"


class NotFound(BrokerError):
    status_code = 404
    code = "not_found"


class Conflict(BrokerError):
    status_code = 409
    code = "conflict"


class Unauthorized(BrokerError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, detail: str, *, error: str = "invalid_token", **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        # RFC 6750 §3: tell the client which scheme and why.
        self.headers.setdefault(
            "WWW-Authenticate",
            f'Bearer realm="broker", error="{error}"' if error else 'Bearer realm="broker"',
        )


class Forbidden(BrokerError):
    status_code = 403
    code = "forbidden"


class PayloadTooLarge(BrokerError):
    status_code = 413
    code = "too_large"


class Unavailable(BrokerError):
    status_code = 503
    code = "unavailable"


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body",)]
    return ".".join(parts) or "body"


def install_error_handlers(app: FastAPI) -> None:
    """Render every error as JSON; nothing expected ever becomes a bare 500."""

    @app.exception_handler(BrokerError)
    async def _broker_error(_: Request, exc: BrokerError) -> JSONResponse:
        return JSONResponse(exc.to_body(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        fields: dict[str, list[str]] = {}
        for err in exc.errors():
            fields.setdefault(_field_path(err.get("loc", ())), []).append(str(err.get("msg")))
        body = {"error": "invalid", "detail": "La requête est invalide.", "fields": fields}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        body = {"error": codes.get(exc.status_code, "http_error"), "detail": str(exc.detail)}
        return JSONResponse(body, status_code=exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        body = {"error": "internal_error", "detail": "Erreur interne du broker ; elle a été journalisée."}
        return JSONResponse(body, status_code=500)
