"""The Géoplateforme (cartes.gouv.fr) as a delivery target."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from connectors.base import (
    BaseConnector,
    Checkpoint,
    LedgerEntry,
    PreflightProblem,
    PublicationRevision,
    RemoteDrift,
    RemoteState,
)
from connectors.geoplateforme import inspection
from connectors.geoplateforme.client import EntrepotClient
from connectors.geoplateforme.config import GeoplateformeConfig
from connectors.geoplateforme.errors import NotFound
from connectors.geoplateforme.metadata import file_identifier
from connectors.geoplateforme.workflow import DEFAULT_SERVICES, SERVICES, Delivery


def _no_checkpoint(_: LedgerEntry) -> None:
    return None


class GeoplateformeConnector(BaseConnector[GeoplateformeConfig]):
    """Publishes vector data as WFS / WMS / vector tiles, rasters as WMTS / WMS, files for download, and an
    ISO 19139 record in the catalogue, through the Entrepôt API (geoplateforme-api.md)."""

    name = "geoplateforme"
    title = "Géoplateforme (cartes.gouv.fr)"
    config_model = GeoplateformeConfig

    def __init__(
        self,
        config: GeoplateformeConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(config)
        self._transport = transport
        self._sleep = sleep
        self._client: EntrepotClient | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> EntrepotClient:
        with self._lock:
            if self._client is None:
                self._client = EntrepotClient(self.config, transport=self._transport, sleep=self._sleep)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def base_url(self) -> str:
        return self.config.api_url

    def _delivery(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint
    ) -> Delivery:
        return Delivery(self.client, self.config, revision, ledger, checkpoint, sleep=self._sleep)

    # ----------------------------------------------------------------------------------------- delivery

    def publish(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        return self._delivery(revision, ledger, checkpoint).publish()

    def update(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        # The same steps: each finds what is there, updates stored data in place (a new execution into
        # output.stored_data.id), replaces changed configurations and resynchronises offerings (§2.5).
        return self._delivery(revision, ledger, checkpoint).publish()

    def withdraw(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        return self._delivery(revision, ledger, checkpoint).withdraw()

    # ----------------------------------------------------------------------------------------- checks

    def preflight(self, revision: PublicationRevision) -> list[PreflightProblem]:
        problems = inspection.preflight(
            revision,
            max_upload_bytes=self.config.max_upload_bytes,
            services_for=SERVICES,
            default_services=DEFAULT_SERVICES,
        )
        if revision.access == "restricted" and revision.resources:
            problems.append(
                PreflightProblem(
                    target=self.name,
                    severity="warning",
                    code="permissions_manual",
                    message="Les services restreints sont publiés sur les points d'accès privés de la "
                    "Géoplateforme ; les permissions des utilisateurs s'y accordent dans cartes.gouv.fr.",
                )
            )
        return problems

    # ----------------------------------------------------------------------------------------- drift

    def inspect_remote(self, revision: PublicationRevision, ledger: LedgerEntry) -> RemoteState:
        client = self.client
        drift: list[RemoteDrift] = []
        found: dict[str, Any] = {"offerings": {}, "stored_data": {}, "configurations": {}}

        def get(collection: str, entity_id: str) -> dict[str, Any] | None:
            try:
                detail: dict[str, Any] = client.get(
                    client.ds(f"/{collection}/{entity_id}"), action="la vérification"
                )
                return detail
            except NotFound:
                return None

        remote = ledger.remote
        for key, offering in (remote.get("offerings") or {}).items():
            current = get("offerings", offering["id"])
            if current is None:
                drift.append(
                    RemoteDrift(
                        kind="deleted",
                        entity=f"offering:{key}",
                        message=f"L'offre {offering.get('type')} a été dépubliée de la Géoplateforme.",
                    )
                )
                continue
            found["offerings"][key] = current.get("status")
            if current.get("status") != "PUBLISHED":
                drift.append(
                    RemoteDrift(
                        kind="stale",
                        entity=f"offering:{key}",
                        message=f"L'offre {offering.get('type')} est au statut {current.get('status')}.",
                    )
                )
            elif current.get("available") is False:
                drift.append(
                    RemoteDrift(
                        kind="stale",
                        entity=f"offering:{key}",
                        message=f"L'offre {offering.get('type')} a été rendue indisponible.",
                    )
                )
        for name, state in (remote.get("resources") or {}).items():
            for track, stored_id in (state.get("stored_data") or {}).items():
                current = get("stored_data", stored_id)
                if current is None:
                    drift.append(
                        RemoteDrift(
                            kind="deleted",
                            entity=f"stored_data:{name}:{track}",
                            message=f"La donnée stockée ({track}) de « {name} » a été supprimée.",
                        )
                    )
                    continue
                found["stored_data"][f"{name}:{track}"] = current.get("status")
                if current.get("status") != "GENERATED":
                    drift.append(
                        RemoteDrift(
                            kind="stale",
                            entity=f"stored_data:{name}:{track}",
                            message=f"La donnée stockée ({track}) de « {name} » est au statut "
                            f"{current.get('status')}.",
                        )
                    )
            for config_type, configuration in (state.get("configurations") or {}).items():
                current = get("configurations", configuration["id"])
                if current is None:
                    drift.append(
                        RemoteDrift(
                            kind="deleted",
                            entity=f"configuration:{name}:{config_type}",
                            message=f"La configuration {config_type} de « {name} » a été supprimée.",
                        )
                    )
                else:
                    found["configurations"][f"{name}:{config_type}"] = current.get("status")
        metadata = remote.get("metadata") or {}
        if metadata.get("id"):
            current = get("metadata", metadata["id"])
            if current is None:
                drift.append(
                    RemoteDrift(
                        kind="deleted",
                        entity="metadata",
                        message="La fiche de métadonnées a été supprimée de la Géoplateforme.",
                    )
                )
            else:
                found["metadata"] = {"published": bool(current.get("endpoints"))}
                if metadata.get("published") and not current.get("endpoints"):
                    drift.append(
                        RemoteDrift(
                            kind="stale",
                            entity="metadata",
                            message="La fiche n'est plus publiée dans le catalogue.",
                        )
                    )
        if ledger.state == "withdrawn":
            left = client.list(
                client.ds("/configurations"),
                action="la vérification",
                params={"tags[openig_publication]": revision.publication_id},
            )
            left += client.list(
                client.ds("/stored_data"),
                action="la vérification",
                params={"tags[openig_publication]": revision.publication_id},
            )
            left += client.list(
                client.ds("/metadata"),
                action="la vérification",
                params={"file_identifier": file_identifier(revision.publication_id)},
            )
            for item in left:
                drift.append(
                    RemoteDrift(
                        kind="extra",
                        entity=str(item.get("_id")),
                        message="Une entité de la publication retirée est encore sur la Géoplateforme.",
                    )
                )
            return RemoteState(exists=bool(left), drift=tuple(drift), remote=found)
        exists = bool(found["offerings"] or found["stored_data"] or found.get("metadata"))
        return RemoteState(exists=exists, drift=tuple(drift), remote=found)
