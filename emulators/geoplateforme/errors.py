"""Error bodies of the emulated Entrepôt API and of its Keycloak token endpoint.

Entrepôt errors are JSON ``{"error": ..., "error_description": [...]}`` with a *list* of strings
(geoplateforme-api.md §4, "Status codes and error bodies", from [SDK] ``io/Errors.py``). The value of
``error`` is UNCONFIRMED (the OpenAPI file was not available): the HTTP reason phrase is used here.
Keycloak errors follow OAuth2: ``{"error": code, "error_description": text}`` (§1, §4).
"""

from __future__ import annotations

from http import HTTPStatus

from fastapi.responses import JSONResponse


class ApiError(Exception):
    """An Entrepôt API error: HTTP status and one or more French descriptions."""

    def __init__(self, status: int, *descriptions: str, headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(descriptions))
        self.status = status
        self.descriptions = list(descriptions) or [HTTPStatus(status).phrase]
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": HTTPStatus(self.status).phrase, "error_description": self.descriptions},
            status_code=self.status,
            headers=self.headers,
        )


class OAuthError(Exception):
    """A Keycloak token endpoint error (RFC 6749 §5.2)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "error_description": self.description},
            status_code=self.status,
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )
