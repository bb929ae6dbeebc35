"""A thin httpx client for the broker API, with every error turned into a French message.

The dashboard never imports the broker: it talks to the API with the viewer's own token, so the API
enforces rights, and the screens only hide what a role cannot do.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

DEFAULT_API_URL = "http://127.0.0.1:8000"

#: Sent with every write so the audit log says the dashboard did it (the API knows this channel).
CHANNEL_HEADER = {"X-Broker-Channel": "dashboard"}

_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def api_url_from_env(environ: Mapping[str, str] | None = None) -> str:
    """The API's base URL: ``BROKER_API_URL`` (set by `broker up`), else ``BROKER_PUBLIC_URL``."""
    env = os.environ if environ is None else environ
    url = env.get("BROKER_API_URL") or env.get("BROKER_PUBLIC_URL") or DEFAULT_API_URL
    return url.rstrip("/")


@dataclass
class ApiError(Exception):
    """A failed call, said in French; ``fields`` maps a manifest path (``contact.email``) to its messages."""

    message: str
    status: int | None = None
    code: str | None = None
    fields: dict[str, list[str]] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    @property
    def unavailable(self) -> bool:
        """The endpoint does not exist on this broker yet (an older or partial deployment)."""
        return self.code == "endpoint_missing"


def _fields(raw: Any) -> dict[str, list[str]]:
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, list[str]] = {}
    for key, value in raw.items():
        if isinstance(value, str):
            out[str(key)] = [value]
        elif isinstance(value, Sequence):
            out[str(key)] = [str(v) for v in value]
        else:
            out[str(key)] = [str(value)]
    return out


def error_from_response(response: httpx.Response) -> ApiError:
    """Map a non-2xx answer (body ``{"error", "detail", "fields"}``) to a message a person can act on."""
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = {}
    if not isinstance(body, Mapping):
        body = {}
    detail = str(body.get("detail") or "").strip()
    code = str(body.get("error") or "") or None
    fields = _fields(body.get("fields"))
    if status == 401:
        message = "Votre session n'est plus valide : reconnectez-vous."
        if detail:
            message += f" ({detail})"
        return ApiError(message, status, code or "unauthorized")
    if status == 403:
        return ApiError(
            "Vous n'avez pas les droits pour cette action." + (f" {detail}" if detail else ""),
            status,
            code or "forbidden",
        )
    if status in (404, 405) and (detail in ("", "Not Found", "Method Not Allowed")):
        # The route itself is missing (FastAPI's own answer): a feature this broker does not have yet.
        return ApiError("Fonctionnalité bientôt disponible sur ce broker.", status, "endpoint_missing")
    if status == 404:
        return ApiError(detail or "Élément introuvable.", status, code or "not_found")
    if status == 409:
        return ApiError(detail or "Conflit avec l'état actuel.", status, code or "conflict")
    if status == 413:
        return ApiError(detail or "Fichier trop volumineux pour ce broker.", status, code or "too_large")
    if status == 422:
        return ApiError(detail or "Certains champs sont invalides.", status, code or "invalid", fields)
    if status == 429:
        return ApiError("Trop de requêtes : réessayez dans un instant.", status, code or "rate_limited")
    if status == 503:
        return ApiError(
            "Le broker est momentanément indisponible." + (f" {detail}" if detail else ""),
            status,
            code or "unavailable",
        )
    if status >= 500:
        return ApiError(f"Erreur du broker (HTTP {status})." + (f" {detail}" if detail else ""), status, code)
    return ApiError(detail or f"Requête refusée (HTTP {status}).", status, code, fields)


FileTuple = tuple[str, bytes, str]  # (file name, content, media type)


class BrokerClient:
    """Calls to ``/api/v1`` with one viewer's bearer token."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._transport = transport

    @contextmanager
    def _http(self, timeout: float | None = None) -> Iterator[httpx.Client]:
        headers = {"Accept": "application/json", **CHANNEL_HEADER}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        host = urlsplit(self.base_url).hostname or ""
        # A proxy from the environment must never see loopback calls (nor the token they carry).
        trust_env = host not in _LOOPBACK_HOSTS
        with httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=timeout or self.timeout,
            trust_env=trust_env,
            transport=self._transport,
        ) as client:
            yield client

    def request(self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any) -> Any:
        """The decoded JSON answer, or :class:`ApiError` with a French message."""
        params = kwargs.pop("params", None)
        if params:
            kwargs["params"] = {k: v for k, v in params.items() if v not in (None, "", [])}
        try:
            with self._http(timeout) as http:
                response = http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ApiError(
                f"Le broker ({self.base_url}) n'a pas répondu à temps. Réessayez dans un instant.",
                code="timeout",
            ) from None
        except httpx.HTTPError:
            raise ApiError(
                f"Impossible de joindre le broker à {self.base_url}. Vérifiez qu'il est démarré "
                "(`broker up`) et l'adresse BROKER_API_URL.",
                code="unreachable",
            ) from None
        if response.status_code >= 400:
            raise error_from_response(response)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise ApiError(
                f"Réponse illisible du broker (HTTP {response.status_code}).", response.status_code
            ) from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    # -- identity and reference data
    def me(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v1/auth/me")
        return result

    def organizations(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/organizations"))

    def targets(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/targets"))

    def categories(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v1/categories")
        return result

    def manifest_schema(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v1/manifest/schema")
        return result

    # -- publications
    def publications(
        self,
        *,
        organization: str | None = None,
        state: str | None = None,
        category: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.get(
            "/api/v1/publications",
            organization=organization,
            state=state,
            category=category,
            limit=limit,
            offset=offset,
        )
        return result

    def publication(self, publication_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/v1/publications/{publication_id}")
        return result

    @staticmethod
    def _submission(manifest: Mapping[str, Any], files: Sequence[FileTuple]) -> dict[str, Any]:
        """The multipart body the API expects: a ``manifest`` part (JSON) and one ``files`` part per file."""
        parts: list[tuple[str, tuple[str | None, bytes | str, str]]] = [
            ("manifest", (None, json.dumps(manifest, ensure_ascii=False), "application/json"))
        ]
        parts += [("files", (name, content, media_type)) for name, content, media_type in files]
        return {"files": parts}

    def plan(self, manifest: Mapping[str, Any], files: Sequence[FileTuple] = ()) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/plan", timeout=300.0, **self._submission(manifest, files)
        )
        return result

    def publish(self, manifest: Mapping[str, Any], files: Sequence[FileTuple] = ()) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST", "/api/v1/publications", timeout=300.0, **self._submission(manifest, files)
        )
        return result

    def revise(
        self, publication_id: str, manifest: Mapping[str, Any], files: Sequence[FileTuple] = ()
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.request(
            "POST",
            f"/api/v1/publications/{publication_id}/revisions",
            timeout=300.0,
            **self._submission(manifest, files),
        )
        return result

    def withdraw(self, publication_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/api/v1/publications/{publication_id}")
        return result

    # -- deliveries and audit log
    def deliveries(
        self, *, state: str | None = None, target: str | None = None, limit: int = 1000
    ) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/deliveries", state=state, target=target, limit=limit))

    def retry(self, delivery_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/api/v1/deliveries/{delivery_id}/retry")
        return result

    def events(
        self,
        *,
        publication: str | None = None,
        organization: str | None = None,
        limit: int = 200,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        return list(
            self.get(
                "/api/v1/events",
                publication=publication,
                organization=organization,
                limit=limit,
                before=before,
            )
        )

    # -- gaps, statistics, migrations (newer endpoints: callers handle ApiError.unavailable)
    def gaps(self) -> list[dict[str, Any]]:
        return list(self.get("/api/v1/gaps"))

    def gap(self, gap_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/api/v1/gaps/{gap_id}")
        return result

    def update_gap(self, gap_id: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", f"/api/v1/gaps/{gap_id}", json=dict(changes))
        return result

    def migration_stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self.get("/api/v1/stats/migration")
        return result

    def migrations(self) -> list[dict[str, Any]]:
        answer = self.get("/api/v1/migrations")
        if isinstance(answer, Mapping):  # a paged answer {"data": [...]} is accepted too
            return list(answer.get("data") or [])
        return list(answer or [])
