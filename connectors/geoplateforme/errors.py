"""How Entrepôt API and Keycloak answers become connector errors (geoplateforme-api.md §4).

- 400, 422 and other 4xx: permanent, with the platform's ``error_description`` shown to the producer;
- 401/403 (after one token refresh): a configuration problem for staff;
- 404: :class:`NotFound` (a :class:`RemoteGoneError`): callers that look for something catch it;
- 409: :class:`Conflict`: callers find the existing entity instead (§4: "409 to conflict");
- 408, 423, 429, 5xx, timeouts and connection failures: transient, honouring ``Retry-After``.

Messages never carry a request body or a credential.
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from connectors.base import (
    ConnectorConfigurationError,
    ConnectorError,
    PermanentConnectorError,
    RemoteGoneError,
    TransientConnectorError,
)

TRANSIENT_STATUSES = {408, 423, 425, 429, 500, 502, 503, 504}


class NotFound(RemoteGoneError):
    """The entity does not exist (any more)."""


class Conflict(PermanentConnectorError):
    """The platform already holds an entity with that key (layer name, offering, file identifier)."""


def descriptions(response: httpx.Response) -> list[str]:
    """The platform's explanation: ``error_description`` (list or string), ``message``, or the text."""
    try:
        body: Any = response.json()
    except ValueError:
        text = response.text.strip()
        return [text[:500]] if text else []
    if isinstance(body, dict):
        described = body.get("error_description", body.get("message"))
        if isinstance(described, list):
            return [str(item) for item in described]
        if described:
            return [str(described)]
        if body.get("error"):
            return [str(body["error"])]
    return []


def retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def error_for(response: httpx.Response, action: str) -> ConnectorError:
    """The connector error for a failed answer to ``action`` (French: « la création de la livraison »)."""
    status = response.status_code
    details = descriptions(response)
    detail = " ; ".join(details) if details else response.reason_phrase
    message = f"Géoplateforme : échec de {action} (HTTP {status}) : {detail}"
    fields: dict[str, Any] = {"status": status, "error_description": details}
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientConnectorError(message, retry_after=retry_after(response), fields=fields)
    if status in (401, 403):
        return ConnectorConfigurationError(
            f"Géoplateforme : accès refusé pendant {action} (HTTP {status}) : {detail}. "
            "Vérifiez le compte de service et ses droits sur l'entrepôt.",
            fields=fields,
        )
    if status in (404, 410):
        return NotFound(message, fields=fields)
    if status == 409:
        return Conflict(message, fields=fields)
    return PermanentConnectorError(message, fields=fields)


def transport_error(exc: httpx.HTTPError, action: str) -> TransientConnectorError:
    kind = "délai dépassé" if isinstance(exc, httpx.TimeoutException) else "connexion impossible"
    return TransientConnectorError(
        f"Géoplateforme injoignable pendant {action} ({kind}) ; nouvel essai prévu."
    )
