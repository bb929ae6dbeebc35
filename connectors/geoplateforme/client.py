"""A thin client of the Entrepôt API: bearer token, error mapping, pagination, datastore routes.

Mirrors the SDK's transport (geoplateforme-api.md §6, "Transport"): one wrapper that refreshes the token on
401/403, retries what may succeed later (only idempotent GETs are retried here; other requests fail fast and
the resumable workflow finds their effect on the next attempt), and pages with ``Content-Range``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from connectors.base import ConnectorConfigurationError, TransientConnectorError
from connectors.geoplateforme.auth import TokenProvider
from connectors.geoplateforme.config import GeoplateformeConfig
from connectors.geoplateforme.errors import TRANSIENT_STATUSES, error_for, transport_error
from connectors.http import make_client

logger = logging.getLogger(__name__)

CONTENT_RANGE = re.compile(r"(?P<first>\d+)-(?P<last>\d+)/(?P<total>\d+)")
PAGE_SIZE = 50

Files = Callable[[], dict[str, Any]]


class EntrepotClient:
    def __init__(
        self,
        config: GeoplateformeConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.http = make_client(config.api_url.rstrip("/"), timeout=config.timeout, transport=transport)
        self.sso = make_client(config.token_url, timeout=config.timeout, transport=transport)
        self.tokens = TokenProvider(config, self.sso)
        self.sleep = sleep
        self._datastore: str | None = config.datastore_id

    def close(self) -> None:
        self.http.close()
        self.sso.close()

    # ------------------------------------------------------------------------------------------ transport

    def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        params: Any = None,
        json: Any = None,
        data: dict[str, Any] | None = None,
        files: Files | None = None,
    ) -> httpx.Response:
        """Send one request; ``files`` is a factory so that a retried upload re-opens its file."""
        attempts = 1 + (self.config.request_retries if method == "GET" else 0)
        refreshed = False
        attempt = 0
        while True:
            attempt += 1
            headers = {"Authorization": f"Bearer {self.tokens.token()}"}
            try:
                response = self.http.request(
                    method,
                    path,
                    params=params,
                    json=json,
                    data=data,
                    files=files() if files is not None else None,
                    headers=headers,
                )
            except httpx.HTTPError as exc:
                if attempt < attempts:
                    self.sleep(min(2.0, 0.25 * 2**attempt))
                    continue
                raise transport_error(exc, action) from exc
            if response.status_code in (401, 403) and not refreshed:
                # §1: on a 401 or 403 the SDK throws the token away and fetches a new one.
                logger.info(
                    "géoplateforme: %s %s answered %d, refreshing the token",
                    method,
                    path,
                    response.status_code,
                )
                self.tokens.invalidate()
                refreshed = True
                continue
            if (
                response.status_code in TRANSIENT_STATUSES or response.status_code >= 500
            ) and attempt < attempts:
                self.sleep(min(2.0, 0.25 * 2**attempt))
                continue
            if response.status_code >= 400:
                raise error_for(response, action)
            return response

    def get(self, path: str, *, action: str, params: Any = None) -> Any:
        return self.request("GET", path, action=action, params=params).json()

    def post(self, path: str, *, action: str, json: Any = None, **kwargs: Any) -> Any:
        response = self.request("POST", path, action=action, json=json, **kwargs)
        return response.json() if response.content else None

    def put(self, path: str, *, action: str, json: Any = None, **kwargs: Any) -> Any:
        response = self.request("PUT", path, action=action, json=json, **kwargs)
        return response.json() if response.content else None

    def patch(self, path: str, *, action: str, json: Any = None) -> Any:
        response = self.request("PATCH", path, action=action, json=json)
        return response.json() if response.content else None

    def delete(self, path: str, *, action: str, params: Any = None) -> None:
        self.request("DELETE", path, action=action, params=params)

    def pages(
        self, path: str, *, action: str, params: dict[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of a paged list (``page`` from 1, ``limit``; the total from ``Content-Range``, §4)."""
        page = 1
        seen = 0
        while True:
            response = self.request(
                "GET", path, action=action, params={**(params or {}), "page": page, "limit": PAGE_SIZE}
            )
            items = response.json()
            if not isinstance(items, list):
                raise TransientConnectorError(f"Géoplateforme : réponse inattendue pendant {action}.")
            yield from items
            seen += len(items)
            match = CONTENT_RANGE.search(response.headers.get("Content-Range", ""))
            total = int(match.group("total")) if match else seen
            if not items or seen >= total:
                return
            page += 1

    def list(self, path: str, *, action: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return list(self.pages(path, action=action, params=params))

    # ------------------------------------------------------------------------------------------ datastore

    @property
    def datastore(self) -> str:
        """The datastore id: configured, or the only one of the account's communities (§1, "Who am I")."""
        if self._datastore is None:
            me = self.get("/users/me", action="la lecture du compte")
            stores = []
            for member in me.get("communities_member") or []:
                community = member.get("community") or {}
                datastore = community.get("datastore")
                if isinstance(datastore, dict):
                    datastore = datastore.get("_id")
                if datastore:
                    stores.append(
                        (str(datastore), set(member.get("rights") or []), community.get("technical_name"))
                    )
            usable = [
                store for store in stores if {"UPLOAD", "PROCESSING", "BROADCAST"} <= store[1]
            ] or stores
            if len(usable) != 1:
                names = ", ".join(f"{name} ({ds})" for ds, _, name in usable) or "aucun"
                raise ConnectorConfigurationError(
                    "Impossible de choisir l'entrepôt Géoplateforme de ce compte : "
                    f"{names}. Renseignez datastore_id dans la configuration."
                )
            self._datastore = usable[0][0]
        return self._datastore

    def ds(self, path: str = "") -> str:
        return f"/datastores/{self.datastore}{path}"
