"""A thin httpx client of data.gouv.fr's API (udata 17): one method per route, and the error mapping.

Errors (``connectors.base``)::

    400                        PermanentConnectorError, field errors in ``.fields``, a French message
    400 on "organization"      ConnectorConfigurationError (the key's user is not a member of it)
    401, 403                   ConnectorConfigurationError (staff: key or rights)
    404, 410                   RemoteGoneError
    413, 415, other 4xx        PermanentConnectorError
    423, 429                   TransientConnectorError (``retry_after`` from ``Retry-After``)
    5xx, timeouts, dropped     AmbiguousRequestError (a TransientConnectorError: the write may have happened)
    connection refused         TransientConnectorError

The API key travels in ``X-API-KEY`` (research §1) and never appears in logs or messages.
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

import httpx

from connectors.base import (
    ConnectorConfigurationError,
    ConnectorError,
    PermanentConnectorError,
    RemoteGoneError,
    TransientConnectorError,
)
from connectors.http import make_client

logger = logging.getLogger(__name__)

HEADER_API_KEY = "X-API-KEY"  # udata HEADER_API_KEY (research §1)


class AmbiguousRequestError(TransientConnectorError):
    """No usable answer (timeout, dropped connection, 5xx): the request may have been applied server-side.

    After an ambiguous create, look the object up by the broker's id before creating again (research §7.1).
    """


# --------------------------------------------------------------------------------------------- messages

_FIELD_LABELS = {
    "title": "titre",
    "description": "description",
    "description_short": "description courte",
    "tags": "mots-clés",
    "license": "licence",
    "frequency": "fréquence de mise à jour",
    "temporal_coverage": "couverture temporelle",
    "spatial": "couverture spatiale",
    "spatial.zones": "zones géographiques",
    "spatial.geom": "emprise géographique",
    "spatial.granularity": "granularité spatiale",
    "organization": "organisation",
    "contact_points": "point de contact",
    "extras": "métadonnées supplémentaires",
    "access_type": "type d'accès",
    "url": "URL",
    "file": "fichier",
    "filetype": "type de ressource",
    "type": "type de ressource",
    "format": "format",
    "chunk": "morceau de fichier",
    "Content-Type": "type de contenu",
}

# udata messages -> what a producer can act on (udata forms/fields.py, spatial/forms.py, uris.py, api/).
_TRANSLATIONS: list[tuple[str, str]] = [
    ("must be between 3 and 96 characters long", "chaque mot-clé doit compter entre 3 et 96 caractères"),
    ("Unknown geoid(s)", "zone(s) inconnue(s) de data.gouv.fr"),
    ("is not a valid UpdateFrequency", "fréquence inconnue de data.gouv.fr"),
    ("This file type is not allowed", "extension de fichier refusée par data.gouv.fr"),
    ("is a local URL", "l'URL pointe vers une adresse locale"),
    ("is a private URL", "l'URL pointe vers une adresse privée"),
    ("Invalid TLD", "l'URL n'a pas de domaine public"),
    ("Invalid URL", "URL invalide"),
    ("This field is required", "champ obligatoire"),
    ("Field cannot be longer than", "texte trop long"),
    ("Not a valid choice", "valeur inconnue de data.gouv.fr"),
    ("Not a valid GeoJSON", "géométrie GeoJSON invalide"),
    ("cannot contains a Geozone and a Geometry", "zones et géométrie ne peuvent pas être envoyées ensemble"),
    ("Permission denied for this organization", "la clé d'API n'est pas membre de cette organisation"),
    ("Cannot change owner after creation", "l'organisation d'un jeu de données ne peut pas changer"),
    ("Chunk size mismatch", "taille de morceau incohérente"),
    ("Missing file parameter", "fichier manquant"),
    ("This endpoint only supports remote resources", "seules les ressources distantes sont acceptées ici"),
    ("Cannot modify filetype after creation", "le type d'une ressource ne peut pas changer"),
    ("Wrong contact point id", "point de contact d'une autre organisation"),
    ("expecting application/json", "corps JSON attendu"),
]

_MESSAGE_FIELDS = [
    ("is not a valid UpdateFrequency", "frequency"),
    ("This file type is not allowed", "file"),
    ("Unknown geoid", "spatial.zones"),
    ("This endpoint only supports remote resources", "filetype"),
    ("Cannot modify filetype", "filetype"),
    ("Chunk size mismatch", "chunk"),
    ("Missing file parameter", "file"),
    ("Incorrect file content type", "file"),
]


def _translate(message: str) -> str:
    for needle, french in _TRANSLATIONS:
        if needle in message:
            return f"{french} ({message})"
    return message


def _flatten(errors: Any, prefix: str = "") -> dict[str, str]:
    """``{"spatial": {"zones": ["msg"]}}`` -> ``{"spatial.zones": "msg"}``; lists are joined."""
    flat: dict[str, str] = {}
    if isinstance(errors, dict):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "__all__":
                name = prefix or "__all__"
            flat.update(_flatten(value, name))
    elif isinstance(errors, list | tuple):
        texts = [m for m in errors if isinstance(m, str)]
        nested = [m for m in errors if not isinstance(m, str)]
        if texts:
            flat[prefix or "request"] = " ".join(texts)
        for item in nested:
            flat.update(_flatten(item, prefix))
    elif errors is not None:
        flat[prefix or "request"] = str(errors)
    return flat


def _label(field: str) -> str:
    return _FIELD_LABELS.get(field) or _FIELD_LABELS.get(field.split(".", 1)[0]) or field


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def error_from_response(response: httpx.Response, what: str) -> ConnectorError:
    """The connector error for a non-2xx answer to ``what`` (a French description of the request)."""
    status = response.status_code
    body = _body(response)
    message = str(body.get("message") or body.get("error") or "")
    if status == 400:
        fields = _flatten(body.get("errors")) if body.get("errors") else {}
        if not fields and message:
            field = next((f for needle, f in _MESSAGE_FIELDS if needle in message), "request")
            fields = {field: message}
        if "organization" in fields and "Permission denied" in fields["organization"]:
            return ConnectorConfigurationError(
                "data.gouv.fr refuse de publier pour cette organisation : le compte de la clé d'API n'en est "
                "pas membre. Ajoutez-le à l'organisation ou corrigez l'identifiant d'organisation configuré.",
                fields=fields,
            )
        details = "; ".join(f"{_label(f)} : {_translate(m)}" for f, m in fields.items()) or "requête refusée"
        return PermanentConnectorError(f"data.gouv.fr a refusé {what} — {details}.", fields=fields)
    if status == 401:
        return ConnectorConfigurationError(
            f"data.gouv.fr refuse la clé d'API ({message or 'non authentifié'}) : vérifiez la clé configurée "
            "pour le connecteur data.gouv.fr (une clé de démo ne vaut pas en production)."
        )
    if status == 403:
        return ConnectorConfigurationError(
            f"Le compte de la clé d'API n'a pas le droit de modifier ceci sur data.gouv.fr ({what})."
        )
    if status in (404, 410):
        state = "a été supprimé" if status == 410 else "est introuvable"
        return RemoteGoneError(f"Sur data.gouv.fr, l'objet visé par {what} {state} ({status}).")
    if status == 413:
        return PermanentConnectorError(
            f"Fichier trop volumineux pour data.gouv.fr ({what}) : réduisez la taille des morceaux envoyés.",
            fields={"file": "too_large"},
        )
    if status == 415:
        return PermanentConnectorError(
            f"data.gouv.fr refuse ce contenu ({message or 'type de contenu refusé'}).",
            fields={"file": message},
        )
    if status == 423:
        # Read-only / anti-spam mode: creations are disabled for a while (research §2, §7.7).
        return TransientConnectorError(
            "data.gouv.fr a temporairement désactivé la création de contenu (mode lecture seule) ; nouvel "
            "essai plus tard.",
            retry_after=retry_after(response),
        )
    if status == 429:
        return TransientConnectorError(
            "data.gouv.fr limite le débit des requêtes (429) ; nouvel essai après le délai demandé.",
            retry_after=retry_after(response),
        )
    if status >= 500:
        sentry = response.headers.get("X-Sentry-ID")
        suffix = f" (référence support X-Sentry-ID {sentry})" if sentry else ""
        return AmbiguousRequestError(
            f"data.gouv.fr a répondu {status} à {what}{suffix} ; nouvel essai prévu.",
            retry_after=retry_after(response),
        )
    return PermanentConnectorError(
        f"data.gouv.fr a répondu {status} à {what} : {message or response.reason_phrase}."
    )


# --------------------------------------------------------------------------------------------- client


class DatagouvClient:
    """One method per route of the API subset the connector uses. ``base_url`` ends in ``/api/1``."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        timeout: float = 30.0,
        upload_timeout: float = 600.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        # All writes go through v1; v2 only adds reads and the extras endpoints (research §1).
        root = self.base_url[: -len("/api/1")] if self.base_url.endswith("/api/1") else self.base_url
        self.v2_url = f"{root}/api/2"
        self.timeout = timeout
        self.upload_timeout = upload_timeout
        headers = {HEADER_API_KEY: api_key} if api_key else {}
        self.http = make_client(self.base_url + "/", headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        self.http.close()

    # ----------------------------------------------------------------------------------------- plumbing

    def request(
        self,
        method: str,
        path: str,
        what: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        files: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        url = path if path.startswith("http") else path.lstrip("/")
        started = time.monotonic()
        try:
            response = self.http.request(
                method,
                url,
                json=json,
                params=params,
                data=data,
                files=files,
                headers=headers,
                timeout=httpx.Timeout(timeout, connect=10.0) if timeout else httpx.USE_CLIENT_DEFAULT,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            # Nothing reached the server: safe to retry anything.
            raise TransientConnectorError(
                f"data.gouv.fr est injoignable ({what}) ; nouvel essai prévu."
            ) from exc
        except httpx.TimeoutException as exc:
            raise AmbiguousRequestError(
                f"data.gouv.fr n'a pas répondu à temps ({what}) ; nouvel essai prévu."
            ) from exc
        except httpx.TransportError as exc:
            raise AmbiguousRequestError(
                f"La connexion avec data.gouv.fr a été coupée ({what}) ; nouvel essai prévu."
            ) from exc
        logger.debug(
            "data.gouv.fr %s %s -> %d (%.0f ms)",
            method,
            url,
            response.status_code,
            1000 * (time.monotonic() - started),
        )
        if response.status_code >= 400:
            raise error_from_response(response, what)
        return response

    def json(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        response = self.request(method, path, what, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:
            raise AmbiguousRequestError(f"Réponse illisible de data.gouv.fr ({what}).") from exc

    # ----------------------------------------------------------------------------------------- reference

    def me(self) -> dict[str, Any]:
        return dict(self.json("GET", "me/", "la lecture du compte de la clé d'API"))

    def organization(self, org_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"organizations/{org_id}/", "la lecture de l'organisation"))

    def licenses(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "datasets/licenses/", "la liste des licences"))

    def frequencies(self) -> list[dict[str, Any]]:
        return list(self.json("GET", "datasets/frequencies/", "la liste des fréquences"))

    def extensions(self) -> list[str]:
        return list(self.json("GET", "datasets/extensions/", "la liste des extensions autorisées"))

    # ----------------------------------------------------------------------------------------- datasets

    def organization_datasets(
        self, org_id: str, *, page_size: int = 100, fields: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every dataset of an organization, page by page, deleted and archived ones included (research §2).

        ``fields`` is an ``X-Fields`` mask for the items (flask-restx, research §1, §7.5), e.g. ``id,extras``.
        """
        headers = {"X-Fields": f"data{{{fields}}},next_page"} if fields else None
        page = 1
        while True:
            payload = self.json(
                "GET",
                f"organizations/{org_id}/datasets/",
                "la liste des jeux de données de l'organisation",
                params={"page": page, "page_size": page_size, "sort": "created"},
                headers=headers,
            )
            yield from payload.get("data") or []
            if not payload.get("next_page"):
                return
            page += 1

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return dict(self.json("GET", f"datasets/{dataset_id}/", "la lecture du jeu de données"))

    def create_dataset(self, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(self.json("POST", "datasets/", "la création du jeu de données", json=payload))

    def update_dataset(self, dataset_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        return dict(
            self.json("PUT", f"datasets/{dataset_id}/", "la mise à jour du jeu de données", json=payload)
        )

    def delete_dataset(self, dataset_id: str) -> None:
        self.request("DELETE", f"datasets/{dataset_id}/", "la suppression du jeu de données")

    def put_extras(self, dataset_id: str, extras: dict[str, Any]) -> dict[str, Any]:
        """v2 merge of extras; a null value deletes that key (research §4)."""
        url = f"{self.v2_url}/datasets/{dataset_id}/extras/"
        return dict(self.json("PUT", url, "la mise à jour des métadonnées supplémentaires", json=extras))

    # ----------------------------------------------------------------------------------------- resources

    def create_remote_resource(self, dataset_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        what = f"la création de la ressource « {payload.get('title')} »"
        return dict(self.json("POST", f"datasets/{dataset_id}/resources/", what, json=payload))

    def get_resource(self, dataset_id: str, rid: str) -> dict[str, Any]:
        return dict(self.json("GET", f"datasets/{dataset_id}/resources/{rid}/", "la lecture d'une ressource"))

    def update_resource(self, dataset_id: str, rid: str, payload: dict[str, Any]) -> dict[str, Any]:
        what = f"la mise à jour de la ressource « {payload.get('title')} »"
        return dict(self.json("PUT", f"datasets/{dataset_id}/resources/{rid}/", what, json=payload))

    def delete_resource(self, dataset_id: str, rid: str) -> None:
        self.request("DELETE", f"datasets/{dataset_id}/resources/{rid}/", "la suppression d'une ressource")

    def reorder_resources(self, dataset_id: str, ids: list[str]) -> None:
        self.request("PUT", f"datasets/{dataset_id}/resources/", "le classement des ressources", json=ids)

    def create_contact_point(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``POST /contacts/`` is a get-or-create: 201, or 200 with the existing point."""
        return dict(self.json("POST", "contacts/", "la création du point de contact", json=payload))

    # ----------------------------------------------------------------------------------------- uploads

    @staticmethod
    def _upload_path(dataset_id: str, rid: str | None) -> str:
        # New hosted resource: 201; replacing a resource's file: 200 (research §3).
        return f"datasets/{dataset_id}/resources/{rid}/upload/" if rid else f"datasets/{dataset_id}/upload/"

    def upload(
        self, dataset_id: str, stream: BinaryIO, filename: str, *, rid: str | None = None
    ) -> dict[str, Any]:
        """One multipart request with the whole file in the ``file`` field."""
        what = f"l'envoi du fichier « {filename} »"
        return dict(
            self.json(
                "POST",
                self._upload_path(dataset_id, rid),
                what,
                files={"file": (filename, stream, "application/octet-stream")},
                timeout=self.upload_timeout,
            )
        )

    def upload_part(
        self,
        dataset_id: str,
        *,
        rid: str | None,
        upload_uuid: str,
        filename: str,
        index: int,
        offset: int,
        total_parts: int,
        total_size: int,
        data: bytes,
    ) -> None:
        """One part of a chunked upload; ``chunksize`` must be this part's exact length (research §3)."""
        form = {
            "uuid": upload_uuid,
            "filename": filename,
            "partindex": str(index),
            "partbyteoffset": str(offset),
            "totalparts": str(total_parts),
            "totalfilesize": str(total_size),
            "chunksize": str(len(data)),
        }
        what = f"l'envoi du morceau {index + 1}/{total_parts} de « {filename} »"
        self.request(
            "POST",
            self._upload_path(dataset_id, rid),
            what,
            data=form,
            files={"file": ("blob", data, "application/octet-stream")},
            timeout=self.upload_timeout,
        )

    def finish_parts(
        self,
        dataset_id: str,
        *,
        rid: str | None,
        upload_uuid: str,
        filename: str,
        total_parts: int,
        total_size: int,
    ) -> dict[str, Any]:
        """The final request of a chunked upload: no ``file``; the server combines the parts."""
        form = {
            "uuid": upload_uuid,
            "filename": filename,
            "totalparts": str(total_parts),
            "totalfilesize": str(total_size),
        }
        what = f"l'assemblage du fichier « {filename} »"
        # httpx sends multipart only with files; udata's reqparse reads "form" locations from either encoding.
        return dict(
            self.json(
                "POST", self._upload_path(dataset_id, rid), what, data=form, timeout=self.upload_timeout
            )
        )
