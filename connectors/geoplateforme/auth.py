"""Tokens from the Géoplateforme's Keycloak (geoplateforme-api.md §1, "Authentication").

Two grants: ``client_credentials`` for a service account, and ``password`` (the SDK's default) with,
for an account with 2FA, a ``totp`` form field holding the current RFC 6238 code, computed here with hmac.
The token is cached until shortly before it expires and thrown away on a 401/403 from the API, as the SDK
does (``io/ApiRequester.py``). Scopes: none are sent (UNCONFIRMED that none is ever required).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import threading
import time

import httpx

from connectors.base import ConnectorConfigurationError, TransientConnectorError
from connectors.geoplateforme.config import GeoplateformeConfig
from connectors.geoplateforme.errors import TRANSIENT_STATUSES, retry_after, transport_error

EXPIRY_MARGIN = 30.0


def totp(secret: str, at: float | None = None, *, digits: int = 6, period: int = 30) -> str:
    """The RFC 6238 time-based one-time password (HMAC-SHA1) of a base32 ``secret`` at time ``at``."""
    compact = secret.replace(" ", "").upper()
    key = base64.b32decode(compact + "=" * (-len(compact) % 8))
    counter = int((time.time() if at is None else at) // period)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(code % 10**digits).zfill(digits)


class TokenProvider:
    """Fetches and caches an access token; thread-safe."""

    def __init__(self, config: GeoplateformeConfig, http: httpx.Client) -> None:
        self.config = config
        self.http = http
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()
        self.fetched = 0

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def _form(self) -> dict[str, str]:
        config = self.config
        form = {"client_id": config.client_id}
        if config.client_secret is not None:
            form["client_secret"] = config.client_secret.get_secret_value()
        if config.username:
            form.update(
                grant_type="password",
                username=config.username,
                password=config.password.get_secret_value() if config.password else "",
            )
            if config.totp_secret is not None:
                form["totp"] = totp(config.totp_secret.get_secret_value())
        else:
            form["grant_type"] = "client_credentials"
        return form

    def _fetch(self) -> None:
        action = "l'obtention d'un jeton d'accès"
        try:
            response = self.http.post(self.config.token_url, data=self._form())
        except httpx.HTTPError as exc:
            raise transport_error(exc, action) from exc
        status = response.status_code
        if status in TRANSIENT_STATUSES or status >= 500:
            raise TransientConnectorError(
                f"Le SSO de la Géoplateforme ne répond pas (HTTP {status}) ; nouvel essai prévu.",
                retry_after=retry_after(response),
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            # OAuth2 error body {error, error_description} (§4); the form we sent is never repeated.
            error = body.get("error", "") if isinstance(body, dict) else ""
            description = body.get("error_description", "") if isinstance(body, dict) else ""
            raise ConnectorConfigurationError(
                f"Le SSO de la Géoplateforme refuse l'authentification du client « {self.config.client_id} » "
                f"(HTTP {status} {error} : {description}).",
                fields={"status": status, "error": error},
            )
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in") or 300)
        self._expires_at = time.monotonic() + max(1.0, lifetime - EXPIRY_MARGIN)
        self.fetched += 1
