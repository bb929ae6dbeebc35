"""The emulated Keycloak token endpoint of the Géoplateforme SSO (geoplateforme-api.md §1, "Authentication").

``POST /realms/geoplateforme/protocol/openid-connect/token`` with a form body:

- ``grant_type=client_credentials`` with ``client_id``/``client_secret`` (form fields or HTTP Basic): the
  client's service account ([SDK] docs/configuration.md, "Utiliser un compte de service");
- ``grant_type=password`` with ``username``/``password``, ``client_id`` (the public ``gpf-warehouse`` client
  needs no secret) and, for an account with 2FA, a ``totp`` field holding the current RFC 6238 code
  ([SDK] auth/Authentifier.py).

Tokens are opaque here (the API only needs to recognise them); errors are OAuth2
``{error, error_description}``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from emulators.geoplateforme.errors import OAuthError
from emulators.geoplateforme.store import Store

router = APIRouter()
REALM = "geoplateforme"


def totp_code(secret: str, at: float | None = None, *, digits: int = 6, period: int = 30) -> str:
    """RFC 6238 code (HMAC-SHA1) of a base32 secret at time ``at``."""
    key = base64.b32decode(secret.replace(" ", "").upper() + "=" * (-len(secret.replace(" ", "")) % 8))
    counter = int((time.time() if at is None else at) // period)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


def _totp_ok(secret: str, code: str) -> bool:
    now = time.time()
    return any(hmac.compare_digest(totp_code(secret, now + drift * 30), code) for drift in (-1, 0, 1))


def _client_credentials(request: Request, form: dict[str, Any]) -> tuple[str | None, str | None]:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("basic "):
        try:
            decoded = base64.b64decode(header[6:]).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None, None
        client_id, _, secret = decoded.partition(":")
        return client_id, secret
    return form.get("client_id"), form.get("client_secret")


@router.post("/realms/{realm}/protocol/openid-connect/token")
async def token(request: Request, realm: str) -> JSONResponse:
    store: Store = request.app.state.store
    if realm != REALM:
        return JSONResponse({"error": "Realm does not exist"}, status_code=404)
    form = {key: str(value) for key, value in (await request.form()).items()}
    try:
        with store.lock:
            body = _grant(store, request, form)
            store.save()
    except OAuthError as exc:
        return exc.response()
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _grant(store: Store, request: Request, form: dict[str, str]) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise OAuthError(400, "invalid_request", "Missing form parameter: grant_type")
    if grant_type not in ("client_credentials", "password"):
        raise OAuthError(400, "unsupported_grant_type", "Unsupported grant_type")
    client_id, secret = _client_credentials(request, form)
    client = store.data["clients"].get(client_id or "")
    if client is None or (
        client["secret"] is not None and not hmac.compare_digest(client["secret"], secret or "")
    ):
        raise OAuthError(401, "invalid_client", "Invalid client or Invalid client credentials")
    if grant_type == "client_credentials":
        if client["secret"] is None or not client.get("service_account"):
            raise OAuthError(400, "unauthorized_client", "Client not enabled to retrieve service account")
        return store.issue_token(client["service_account"])
    user = store.user_by_username(form.get("username", ""))
    private = (user or {}).get("__", {})
    if user is None or not hmac.compare_digest(private.get("password", ""), form.get("password", "")):
        raise OAuthError(401, "invalid_grant", "Invalid user credentials")
    if private.get("totp_secret"):
        code = form.get("totp", "")
        if not code or not _totp_ok(private["totp_secret"], code):
            raise OAuthError(401, "invalid_grant", "Invalid user credentials")
    return store.issue_token(user["_id"])
