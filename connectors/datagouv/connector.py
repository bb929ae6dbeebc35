"""data.gouv.fr as a delivery target: one dataset per publication, found again by the broker's id.

Identity: the dataset carries ``extras["openig-broker:publication-id"]`` (set at creation, in the same
request, so a dataset is never anonymous), each resource the broker owns carries
``extras["openig-broker:resource"] = {"name", "sha256"}``, each service link
``extras["openig-broker:service"] = url``. Before any create, and after an ambiguous failure, the connector
looks for that id in the organization's datasets (deleted ones included): a create that timed out but
succeeded server-side never produces a second dataset (research §7.1).

Ledger ``remote``::

    {"organization": org id, "dataset": dataset id, "slug": ...,
     "resources": {name: {"id", "sha256", "sha1"?, "mode": "upload"|"link", "url"?}},
     "services": {url: resource id},
     "contact_point": {"id", "key"},
     "uploads": {name: {"uuid", "sha256", "size", "chunk_size", "total_parts", "parts_done", "target",
                        "suspect", "restart", "combine_failures", "started"}}}   # chunked uploads in flight
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from connectors.base import (
    BaseConnector,
    Checkpoint,
    ConnectorConfig,
    ConnectorConfigurationError,
    LedgerEntry,
    PermanentConnectorError,
    PreflightProblem,
    PublicationRevision,
    RemoteDrift,
    RemoteGoneError,
    RemoteState,
    ResourceFile,
    TransientConnectorError,
)
from connectors.datagouv import mapping
from connectors.datagouv.client import AmbiguousRequestError, DatagouvClient

logger = logging.getLogger(__name__)

# Indirection so tests can watch the pacing without sleeping.
_sleep = time.sleep

# Parts of a chunked upload are kept UPLOAD_MAX_RETENTION = 24 h server-side (research §3); start over a bit
# before that rather than combine parts that may be gone.
_UPLOAD_RETENTION_SECONDS = 23 * 3600
_LISTING_FIELDS = "id,extras,deleted,archived,created_at"


class DatagouvConfig(ConnectorConfig):
    base_url: str = Field(
        "https://www.data.gouv.fr/api/1",
        description="API root ending in /api/1 (demo: https://demo.data.gouv.fr/api/1, research §1).",
    )
    api_key: SecretStr | None = Field(
        None, description="X-API-KEY token (udata_…) of a member of the organization."
    )
    organization_id: str = Field(
        "", description="data.gouv.fr organization id; empty: the revision's organization.remote['datagouv']."
    )
    emulator: bool = Field(False, description="The base URL is the local emulator (emulators/datagouv).")
    allow_local_urls: bool = Field(
        False, description="Emulator only: accept localhost and private URLs for remote resources."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds per ordinary request.")
    upload_timeout: float = Field(
        600.0, gt=0, description="Seconds per upload request (one file or one part)."
    )
    chunk_size: int = Field(
        20_000_000, gt=0, description="Chunked upload above this size, in parts of this size (research §3)."
    )
    withdraw_mode: Literal["delete", "archive"] = Field(
        "delete", description="delete: soft delete (purged within a day); archive: kept but out of listings."
    )
    private: bool = Field(False, description="Publish as private drafts (sent explicitly on every write).")
    upload_files: bool = Field(
        True, description="Host files on data.gouv.fr; when False, link the broker's regional download URLs."
    )
    page_size: int = Field(100, gt=0, description="Page size when listing the organization's datasets.")

    @field_validator("base_url")
    @classmethod
    def _api_root(cls, value: str) -> str:
        value = value.rstrip("/")
        if not value.endswith("/api/1"):
            raise ValueError(
                "base_url must be the API root ending in /api/1, e.g. https://www.data.gouv.fr/api/1"
            )
        return value

    @model_validator(mode="after")
    def _local_urls_only_on_emulator(self) -> DatagouvConfig:
        if self.allow_local_urls and not self.emulator:
            raise ValueError("allow_local_urls is only for the emulator: data.gouv.fr refuses local URLs")
        return self


@dataclass(frozen=True)
class _Plan:
    """How one resource reaches data.gouv.fr: uploaded (hosted there) or linked (remote resource)."""

    resource: ResourceFile
    mode: Literal["upload", "link"]
    url: str | None = None


def _no_checkpoint(_: LedgerEntry) -> None:
    return None


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _extras(item: dict[str, Any]) -> dict[str, Any]:
    extras = item.get("extras")
    return extras if isinstance(extras, dict) else {}


def _marker_name(resource: dict[str, Any]) -> str | None:
    marker = _extras(resource).get(mapping.RESOURCE_KEY)
    return str(marker.get("name")) if isinstance(marker, dict) and marker.get("name") else None


def _checksum(resource: dict[str, Any]) -> str | None:
    checksum = resource.get("checksum")
    return str(checksum.get("value")) if isinstance(checksum, dict) and checksum.get("value") else None


def _differs(current: dict[str, Any], payload: dict[str, Any]) -> bool:
    for key, value in payload.items():
        if key == "extras":
            have = _extras(current)
            if any(have.get(k) != v for k, v in value.items()):
                return True
        elif (current.get(key) or None) != (value or None):
            return True
    return False


class DatagouvConnector(BaseConnector[DatagouvConfig]):
    """Publishes datasets on data.gouv.fr (or its emulator) through udata's API."""

    name = "datagouv"
    title = "data.gouv.fr"
    config_model = DatagouvConfig

    def __init__(self, config: DatagouvConfig, *, transport: Any = None) -> None:
        super().__init__(config)
        self._transport = transport
        self._client: DatagouvClient | None = None
        self._client_lock = threading.Lock()
        self._digests: dict[tuple[str, int, int], tuple[str, str]] = {}
        self._last_upload: dict[tuple[str, str], float] = {}

    def base_url(self) -> str:
        return self.config.base_url

    @property
    def client(self) -> DatagouvClient:
        if self.config.api_key is None or not self.config.api_key.get_secret_value():
            raise ConnectorConfigurationError(
                "Aucune clé d'API data.gouv.fr n'est configurée pour le connecteur data.gouv.fr."
            )
        with self._client_lock:
            if self._client is None:
                self._client = DatagouvClient(
                    self.config.base_url,
                    self.config.api_key.get_secret_value(),
                    timeout=self.config.timeout,
                    upload_timeout=self.config.upload_timeout,
                    transport=self._transport,
                )
            return self._client

    def close(self) -> None:
        with self._client_lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    @property
    def _allow_local(self) -> bool:
        return self.config.emulator and self.config.allow_local_urls

    def _organization_id(self, revision: PublicationRevision) -> str:
        if self.config.organization_id:
            return self.config.organization_id
        value = revision.organization.remote.get("datagouv")
        if isinstance(value, dict):
            value = value.get("id") or value.get("organization_id")
        return str(value or "")

    # ----------------------------------------------------------------------------------------- checks

    def _plan(self, revision: PublicationRevision) -> tuple[list[_Plan], list[PreflightProblem]]:
        """Where each resource goes. Restricted publications send no resource at all (metadata only)."""
        if revision.access == "restricted":
            return [], []
        plans: list[_Plan] = []
        problems: list[PreflightProblem] = []
        seen: set[str] = set()
        for resource in revision.resources:
            if resource.name in seen:
                problems.append(
                    self._problem(
                        "duplicate_name", f"Deux ressources s'appellent « {resource.name} ».", resource
                    )
                )
                continue
            seen.add(resource.name)
            hosted = resource.path is not None
            if hosted and self.config.upload_files and mapping.upload_allowed(resource.name):
                plans.append(_Plan(resource, "upload"))
            elif resource.url and not hosted:
                plans.append(_Plan(resource, "link", resource.url))
            elif resource.download_url:
                plans.append(_Plan(resource, "link", resource.download_url))
            elif resource.url:
                plans.append(_Plan(resource, "link", resource.url))
            elif hosted and not mapping.upload_allowed(resource.name):
                problems.append(
                    self._problem(
                        "extension_not_allowed",
                        "data.gouv.fr n'accepte pas l'extension "
                        f"« .{mapping.file_extension(resource.name) or ''} » de « {resource.name} » "
                        "et le broker n'a pas d'URL de téléchargement à lier à la place. "
                        "Envoyez le fichier dans un format accepté (ou dans une archive .zip).",
                        resource,
                    )
                )
            else:
                problems.append(
                    self._problem(
                        "resource_undeliverable",
                        f"« {resource.name} » n'a ni fichier ni URL à publier sur data.gouv.fr.",
                        resource,
                    )
                )
        return plans, problems

    def _problem(
        self,
        code: str,
        message: str,
        resource: ResourceFile | None = None,
        severity: Literal["error", "warning"] = "error",
    ) -> PreflightProblem:
        return PreflightProblem(
            target=self.name,
            resource=resource.name if resource else None,
            severity=severity,
            code=code,
            message=message,
        )

    def preflight(self, revision: PublicationRevision) -> list[PreflightProblem]:
        problems: list[PreflightProblem] = []
        add = problems.append
        warn: Literal["warning"] = "warning"
        if not self._organization_id(revision):
            add(
                self._problem(
                    "organization_unknown",
                    f"L'organisation « {revision.organization.name} » n'a pas d'identifiant data.gouv.fr "
                    "configuré : le personnel d'OPenIG doit le renseigner.",
                )
            )
        title = revision.title.strip()
        if not title:
            add(self._problem("title_missing", "data.gouv.fr exige un titre."))
        elif len(title) > mapping.TITLE_MAX_LENGTH:
            add(self._problem("title_too_long", f"Le titre dépasse {mapping.TITLE_MAX_LENGTH} caractères."))
        description = revision.description.strip()
        if not description:
            add(self._problem("description_missing", "data.gouv.fr exige une description du jeu de données."))
        elif len(description) > mapping.DESCRIPTION_MAX_LENGTH:
            add(self._problem("description_too_long", "La description dépasse 100 000 caractères."))
        elif len(description) <= mapping.QUALITY_DESCRIPTION_LENGTH:
            add(
                self._problem(
                    "description_short",
                    "Description courte : data.gouv.fr compte une description de plus de 100 caractères dans "
                    "son score de qualité.",
                    severity=warn,
                )
            )
        if revision.access == "open":
            license_id = mapping.map_license(revision.license)
            if license_id is None:
                add(
                    self._problem(
                        "license_missing",
                        "Aucune licence : data.gouv.fr affichera « Licence non spécifiée » et baissera "
                        "le score de qualité. La Licence Ouverte 2.0 (lov2) est recommandée.",
                        severity=warn,
                    )
                )
            elif license_id not in mapping.LICENSES:
                add(
                    self._problem(
                        "license_unknown",
                        f"Licence « {revision.license} » inconnue de data.gouv.fr "
                        "(ids : lov2, odc-odbl, cc-by…).",
                        severity=warn,
                    )
                )
        frequency = mapping.map_frequency(revision.frequency)
        if frequency is None:
            add(
                self._problem(
                    "frequency_missing",
                    "Aucune fréquence de mise à jour : data.gouv.fr la compte dans son score de qualité.",
                    severity=warn,
                )
            )
        elif frequency not in mapping.FREQUENCIES:
            add(
                self._problem(
                    "frequency_unknown",
                    f"Fréquence « {revision.frequency} » inconnue de data.gouv.fr "
                    "(ids : daily, weekly, monthly, quarterly, annual, punctual, irregular…).",
                )
            )
        _, dropped = mapping.map_tags(revision.keywords)
        for keyword in dropped:
            add(
                self._problem(
                    "tag_too_short",
                    f"Mot-clé « {keyword} » ignoré : data.gouv.fr exige au moins 3 caractères.",
                    severity=warn,
                )
            )
        for zone in revision.spatial_zones:
            if mapping.normalize_zone(zone) is None:
                add(
                    self._problem(
                        "zone_invalid",
                        f"Zone « {zone} » mal formée : attendu un identifiant comme fr:commune:34172, "
                        "fr:departement:34 ou fr:region:76.",
                    )
                )
        if (
            not revision.spatial_zones
            and revision.extent_wgs84
            and mapping.bbox_geom(revision.extent_wgs84) is None
        ):
            add(
                self._problem(
                    "extent_invalid", "L'emprise n'est pas une emprise WGS84 valide.", severity=warn
                )
            )
        if revision.temporal and revision.temporal.end and not revision.temporal.start:
            add(
                self._problem(
                    "temporal_incomplete",
                    "Couverture temporelle sans date de début : data.gouv.fr ne l'enregistre pas.",
                    severity=warn,
                )
            )
        if revision.contact and not revision.contact.email:
            add(
                self._problem(
                    "contact_without_email",
                    "Le contact n'a pas d'adresse électronique : aucun point de contact ne sera publié.",
                    severity=warn,
                )
            )
        if revision.access == "restricted":
            if not revision.access_request_url:
                add(
                    self._problem(
                        "access_request_url_missing",
                        "Publication restreinte sans URL de demande d'accès : data.gouv.fr n'indiquera pas "
                        "comment obtenir les données.",
                        severity=warn,
                    )
                )
            if revision.resources:
                add(
                    self._problem(
                        "restricted_metadata_only",
                        "Publication restreinte : seules les métadonnées vont sur data.gouv.fr, les fichiers "
                        "restent dans l'entrepôt régional.",
                        severity=warn,
                    )
                )
        plans, plan_problems = self._plan(revision)
        problems.extend(plan_problems)
        for plan in plans:
            problems.extend(self._plan_problems(plan))
        return problems

    def _plan_problems(self, plan: _Plan) -> list[PreflightProblem]:
        resource = plan.resource
        found: list[PreflightProblem] = []
        if plan.mode == "link":
            assert plan.url is not None
            reason = mapping.url_problem(plan.url, allow_local=self._allow_local)
            if reason:
                found.append(
                    self._problem(
                        "url_refused",
                        f"data.gouv.fr refusera l'URL de « {resource.name} » ({reason}) : {plan.url}",
                        resource,
                    )
                )
            if resource.path is not None and plan.url == resource.download_url:
                found.append(
                    self._problem(
                        "linked_not_hosted",
                        f"« {resource.name} » sera lié (URL de téléchargement régionale), pas hébergé sur "
                        "data.gouv.fr.",
                        resource,
                        severity="warning",
                    )
                )
            return found
        path = resource.path
        if path is None or not path.is_file():
            found.append(
                self._problem(
                    "file_missing",
                    f"Le fichier « {resource.name} » est introuvable dans le dépôt du broker.",
                    resource,
                )
            )
            return found
        size = path.stat().st_size
        if size > self.config.chunk_size:
            parts = math.ceil(size / self.config.chunk_size)
            found.append(
                self._problem(
                    "chunked_upload",
                    f"« {resource.name} » ({size / 1e6:.0f} Mo) sera envoyé en {parts} morceaux.",
                    resource,
                    severity="warning",
                )
            )
        return found

    def _raise_blocking(self, revision: PublicationRevision) -> None:
        errors = [p for p in self.preflight(revision) if p.severity == "error"]
        if not errors:
            return
        fields = {p.resource or p.code: p.message for p in errors}
        if any(p.code == "organization_unknown" for p in errors):
            raise ConnectorConfigurationError(errors[0].message, fields=fields)
        raise PermanentConnectorError(" ".join(p.message for p in errors), fields=fields)

    # ----------------------------------------------------------------------------------------- delivery

    def publish(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        return self._sync(revision, ledger, checkpoint)

    def update(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        # The same steps: a metadata PUT, only the files whose content changed, resources dropped removed.
        return self._sync(revision, ledger, checkpoint)

    def _sync(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint
    ) -> LedgerEntry:
        self._raise_blocking(revision)
        org_id = self._organization_id(revision)
        progress = ledger.model_copy(deep=True)
        remote = progress.remote
        remote["organization"] = org_id
        remote.pop("withdrawn", None)

        dataset = self._locate(revision, remote, org_id)
        if dataset is None:
            dataset = self._with_contact(
                revision, org_id, remote, lambda cp: self._create(revision, org_id, cp)
            )
        else:
            current = dataset
            dataset = self._with_contact(
                revision, org_id, remote, lambda cp: self._refresh(revision, current, cp)
            )
        remote["dataset"] = dataset["id"]
        remote["slug"] = dataset.get("slug")
        progress.step = "dataset"
        progress.urls = [dataset["page"]] if dataset.get("page") else []
        checkpoint(progress.model_copy(deep=True))

        dataset = self._sync_resources(revision, dataset, progress, checkpoint)
        remote.pop("uploads", None)
        logger.info(
            "data.gouv.fr: publication %s revision %d delivered as dataset %s",
            revision.publication_id,
            revision.revision,
            dataset["id"],
        )
        return LedgerEntry(
            state="present",
            revision=revision.revision,
            step="done",
            remote=remote,
            urls=self._urls(dataset, remote),
        )

    def _urls(self, dataset: dict[str, Any], remote: dict[str, Any]) -> list[str]:
        urls = [dataset["page"]] if dataset.get("page") else []
        ours = {entry["id"] for entry in (remote.get("resources") or {}).values()}
        for resource in dataset.get("resources") or []:
            if resource["id"] in ours and resource.get("latest"):
                urls.append(resource["latest"])
        urls.extend(url for url in (remote.get("services") or {}) if url not in urls)
        return urls

    # ----------------------------------------------------------------------------------------- dataset

    def _locate(
        self, revision: PublicationRevision, remote: dict[str, Any], org_id: str
    ) -> dict[str, Any] | None:
        """This publication's dataset: the ledger's id if it still exists, else a search by the broker id."""
        client = self.client
        dataset_id = remote.get("dataset")
        if dataset_id:
            try:
                dataset = client.get_dataset(str(dataset_id))
            except RemoteGoneError:
                logger.info("data.gouv.fr: dataset %s of the ledger is gone (purged?)", dataset_id)
            else:
                owner = _extras(dataset).get(mapping.PUBLICATION_KEY)
                if owner in (None, revision.publication_id):
                    return dataset
                logger.warning(
                    "data.gouv.fr: dataset %s belongs to publication %s, not ours", dataset_id, owner
                )
        if not org_id:
            return None
        return self._find(revision.publication_id, org_id)

    def _find(self, publication_id: str, org_id: str) -> dict[str, Any] | None:
        """Search the organization's datasets (deleted and archived ones included) for the broker's id."""
        client = self.client
        matches = [
            item
            for item in client.organization_datasets(
                org_id, page_size=self.config.page_size, fields=_LISTING_FIELDS
            )
            if _extras(item).get(mapping.PUBLICATION_KEY) == publication_id
        ]
        if not matches:
            return None
        live = sorted(
            (m for m in matches if not m.get("deleted")), key=lambda m: str(m.get("created_at") or "")
        )
        if len(live) > 1:
            logger.warning(
                "data.gouv.fr: %d live datasets carry publication %s (%s); the oldest is used",
                len(live),
                publication_id,
                ", ".join(str(m["id"]) for m in live),
            )
        # Only deleted ones, not purged yet: the latest deleted is restored (research §2 "deleted").
        chosen = live[0] if live else max(matches, key=lambda m: str(m.get("deleted") or ""))
        return client.get_dataset(str(chosen["id"]))

    def _create(
        self, revision: PublicationRevision, org_id: str, contact_point: str | None
    ) -> dict[str, Any]:
        payload = mapping.dataset_payload(
            revision,
            private=self.config.private,
            contact_point=contact_point,
            organization_id=org_id,
            create=True,
        )
        try:
            return self.client.create_dataset(payload)
        except AmbiguousRequestError:
            # The create may have been committed: look before anyone creates again (research §7.1).
            try:
                found = self._find(revision.publication_id, org_id)
            except TransientConnectorError:
                found = None
            if found is not None:
                logger.info(
                    "data.gouv.fr: create of %s was committed despite the error", revision.publication_id
                )
                return found
            raise

    def _refresh(
        self, revision: PublicationRevision, dataset: dict[str, Any], contact_point: str | None
    ) -> dict[str, Any]:
        """PUT the metadata (restoring a deleted or archived dataset), then the broker's extras if needed."""
        client = self.client
        body = mapping.dataset_payload(revision, private=self.config.private, contact_point=contact_point)
        if dataset.get("deleted"):
            body["deleted"] = None  # only an explicit null restores a soft-deleted dataset (research §2)
        if dataset.get("archived"):
            body["archived"] = None
        try:
            updated = client.update_dataset(dataset["id"], body)
        except RemoteGoneError as exc:
            raise TransientConnectorError(
                "Le jeu de données data.gouv.fr a changé d'état pendant la mise à jour ; nouvel essai prévu."
            ) from exc
        wanted = mapping.broker_extras(revision)
        if any(_extras(updated).get(k) != v for k, v in wanted.items()):
            updated["extras"] = client.put_extras(updated["id"], wanted)
        return updated

    def _with_contact(
        self,
        revision: PublicationRevision,
        org_id: str,
        remote: dict[str, Any],
        write: Any,
    ) -> dict[str, Any]:
        """Run a dataset write with the contact point; a stale cached contact point is replaced once."""
        contact = self._contact_point(revision, org_id, remote)
        try:
            return dict(write(contact))
        except PermanentConnectorError as exc:
            if (
                contact is None
                or "contact_points" not in exc.fields
                or isinstance(exc, ConnectorConfigurationError)
            ):
                raise
            remote.pop("contact_point", None)
            return dict(write(self._contact_point(revision, org_id, remote)))

    def _contact_point(
        self, revision: PublicationRevision, org_id: str, remote: dict[str, Any]
    ) -> str | None:
        payload = mapping.contact_payload(revision.contact, revision.organization.name, org_id)
        if payload is None:
            remote.pop("contact_point", None)
            return None
        key = f"{payload['name']}|{payload['email']}"
        cached = remote.get("contact_point")
        if isinstance(cached, dict) and cached.get("key") == key and cached.get("id"):
            return str(cached["id"])
        try:
            point = self.client.create_contact_point(payload)
        except ConnectorConfigurationError:
            raise
        except PermanentConnectorError as exc:
            # A contact point is a nice-to-have: publish without one rather than fail the delivery.
            logger.warning(
                "data.gouv.fr: contact point refused, dataset published without it: %s", exc.message
            )
            return None
        remote["contact_point"] = {"id": point["id"], "key": key}
        return str(point["id"])

    # ----------------------------------------------------------------------------------------- resources

    def _sync_resources(
        self,
        revision: PublicationRevision,
        dataset: dict[str, Any],
        progress: LedgerEntry,
        checkpoint: Checkpoint,
    ) -> dict[str, Any]:
        client = self.client
        dataset_id = dataset["id"]
        plans, _ = self._plan(revision)
        entries: dict[str, Any] = progress.remote.setdefault("resources", {})
        claimed: set[str] = set()
        for plan in plans:
            name = plan.resource.name
            current = self._match(plan, entries.get(name), dataset, claimed)
            entry = self._deliver_resource(dataset_id, plan, current, entries.get(name), progress, checkpoint)
            claimed.add(entry["id"])
            entries[name] = entry
            progress.step = f"resource:{name}"
            checkpoint(progress.model_copy(deep=True))

        wanted = {plan.resource.name for plan in plans}
        dropped_ids = {entry.get("id") for name, entry in entries.items() if name not in wanted}
        for resource in dataset.get("resources") or []:
            if resource["id"] in claimed:
                continue
            if _marker_name(resource) is not None or resource["id"] in dropped_ids:
                self._delete_resource(dataset_id, resource["id"])
        for name in [n for n in entries if n not in wanted]:
            del entries[name]
        progress.step = "resources"
        checkpoint(progress.model_copy(deep=True))

        refreshed = client.get_dataset(dataset_id)
        self._order(refreshed, [entries[plan.resource.name]["id"] for plan in plans])
        return refreshed

    def _delete_resource(self, dataset_id: str, rid: str) -> None:
        with contextlib.suppress(RemoteGoneError):  # already gone: the goal is reached
            self.client.delete_resource(dataset_id, rid)

    def _order(self, dataset: dict[str, Any], ours: list[str]) -> None:
        """Revision order first, others after: uploads and remote creates are prepended (research §3)."""
        current = [r["id"] for r in dataset.get("resources") or []]
        desired = [rid for rid in ours if rid in current] + [rid for rid in current if rid not in ours]
        if desired != current:
            self.client.reorder_resources(dataset["id"], desired)
            by_id = {r["id"]: r for r in dataset["resources"]}
            dataset["resources"] = [by_id[rid] for rid in desired]

    def _match(
        self, plan: _Plan, entry: dict[str, Any] | None, dataset: dict[str, Any], claimed: set[str]
    ) -> dict[str, Any] | None:
        """The remote resource for ``plan``: the ledger's id, else the broker's marker, else a lost upload."""
        resources = [r for r in dataset.get("resources") or [] if r["id"] not in claimed]
        if entry and entry.get("id"):
            for resource in resources:
                if resource["id"] == entry["id"]:
                    return resource
        for resource in resources:
            if _marker_name(resource) == plan.resource.name:
                return resource
        if plan.mode == "upload":
            # An upload whose answer was lost made a resource the broker never marked: same bytes, no marker.
            _, sha1 = self._digest(plan.resource)
            for resource in resources:
                extras = _extras(resource)
                if (
                    resource.get("filetype") == "file"
                    and mapping.RESOURCE_KEY not in extras
                    and mapping.SERVICE_KEY not in extras
                    and _checksum(resource) == sha1
                ):
                    logger.info(
                        "data.gouv.fr: adopting resource %s (an upload whose answer was lost)", resource["id"]
                    )
                    return resource
        return None

    def _deliver_resource(
        self,
        dataset_id: str,
        plan: _Plan,
        current: dict[str, Any] | None,
        known: dict[str, Any] | None,
        progress: LedgerEntry,
        checkpoint: Checkpoint,
    ) -> dict[str, Any]:
        client = self.client
        resource = plan.resource
        if plan.mode == "link":
            assert plan.url is not None
            if current is not None and current.get("filetype") != "remote":
                self._delete_resource(dataset_id, current["id"])  # filetype cannot change (research §3)
                current = None
            if current is None:
                current = client.create_remote_resource(
                    dataset_id, mapping.remote_payload(resource, plan.url)
                )
            else:
                payload = mapping.remote_payload(resource, plan.url, _extras(current))
                if _differs(current, payload):
                    current = client.update_resource(dataset_id, current["id"], payload)
            return {"id": current["id"], "sha256": resource.sha256, "mode": "link", "url": plan.url}

        if (
            current is not None
            and known
            and known.get("id") == current["id"]
            and resource.sha256
            and known.get("sha256") == resource.sha256
            and known.get("sha1")
            and _checksum(current) == known["sha1"]
        ):
            # The ledger proves the hosted file is this one: no need to read the local file again.
            sha256, sha1 = str(resource.sha256), str(known["sha1"])
        else:
            sha256, sha1 = self._digest(resource)
        if current is not None and current.get("filetype") != "file":
            self._delete_resource(dataset_id, current["id"])
            current = None
        uploaded = False
        if current is None or _checksum(current) != sha1:
            current = self._upload(dataset_id, plan, current["id"] if current else None, progress, checkpoint)
            uploaded = True
            # Remember the id before the metadata PUT: if that PUT fails, the retry finds the file by id.
            progress.remote.setdefault("resources", {})[resource.name] = {
                "id": current["id"],
                "sha256": sha256,
                "sha1": sha1,
                "mode": "upload",
            }
            checkpoint(progress.model_copy(deep=True))
        (progress.remote.get("uploads") or {}).pop(resource.name, None)
        # Uploads overwrite title, format and mime with the file's: re-send the metadata (research §3).
        metadata = mapping.hosted_metadata(resource, _extras(current))
        if uploaded or _differs(current, metadata):
            current = client.update_resource(dataset_id, current["id"], metadata)
        return {"id": current["id"], "sha256": sha256, "sha1": sha1, "mode": "upload"}

    def _digest(self, resource: ResourceFile) -> tuple[str, str]:
        """(sha256, sha1) of a hosted file, read once per file version; sha1 is what data.gouv.fr computes."""
        path = resource.path
        if path is None or not path.is_file():
            raise PermanentConnectorError(
                f"Le fichier « {resource.name} » est introuvable dans le dépôt du broker.",
                fields={resource.name: "file_missing"},
            )
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        cached = self._digests.get(key)
        if cached is None:
            sha256, sha1 = hashlib.sha256(), hashlib.sha1()
            with path.open("rb") as stream:
                while block := stream.read(1024 * 1024):
                    sha256.update(block)
                    sha1.update(block)
            cached = (sha256.hexdigest(), sha1.hexdigest())
            self._digests[key] = cached
        if resource.sha256 and cached[0] != resource.sha256:
            raise PermanentConnectorError(
                f"Le fichier « {resource.name} » ne correspond plus à son empreinte sha256 ; renvoyez-le.",
                fields={resource.name: "checksum_mismatch"},
            )
        return cached

    def _pace(self, dataset_id: str, filename: str) -> None:
        """Two uploads of one file name in the same second collide on the storage key (research §7.2)."""
        key = (dataset_id, mapping.stored_filename(filename))
        last = self._last_upload.get(key)
        if last is not None:
            wait = 1.05 - (time.monotonic() - last)
            if wait > 0:
                _sleep(wait)
        self._last_upload[key] = time.monotonic()

    def _upload(
        self,
        dataset_id: str,
        plan: _Plan,
        rid: str | None,
        progress: LedgerEntry,
        checkpoint: Checkpoint,
    ) -> dict[str, Any]:
        resource = plan.resource
        assert resource.path is not None
        size = resource.path.stat().st_size
        self._pace(dataset_id, resource.name)
        if size > self.config.chunk_size:
            return self._upload_chunked(dataset_id, resource, rid, size, progress, checkpoint)
        with resource.path.open("rb") as stream:
            return self.client.upload(dataset_id, stream, resource.name, rid=rid)

    def _upload_chunked(
        self,
        dataset_id: str,
        resource: ResourceFile,
        rid: str | None,
        size: int,
        progress: LedgerEntry,
        checkpoint: Checkpoint,
    ) -> dict[str, Any]:
        """udata's chunked protocol (research §3), resumable: the uuid and the parts sent live in the ledger.

        A part that got no usable answer is "suspect": it may be stored already, and flask-storage refuses to
        overwrite a part (UNCONFIRMED for flask-storage 2.0, research §7.2). It is sent once more; a second
        ambiguous failure on it starts the upload over with a new uuid, as the research advises.
        """
        assert resource.path is not None
        sha256, _ = self._digest(resource)
        chunk = self.config.chunk_size
        uploads: dict[str, Any] = progress.remote.setdefault("uploads", {})
        state = uploads.get(resource.name)
        target = rid or "new"
        fresh = (
            not isinstance(state, dict)
            or state.get("restart")
            or state.get("sha256") != sha256
            or state.get("chunk_size") != chunk
            or state.get("target") != target
            or time.time() - float(state.get("started_ts") or 0) > _UPLOAD_RETENTION_SECONDS
        )
        if fresh:
            state = {
                "uuid": str(uuid.uuid4()),
                "sha256": sha256,
                "size": size,
                "chunk_size": chunk,
                "total_parts": math.ceil(size / chunk),
                "parts_done": 0,
                "target": target,
                "suspect": None,
                "restart": False,
                "combine_failures": 0,
                "started": _now(),
                "started_ts": time.time(),
            }
            uploads[resource.name] = state
            checkpoint(progress.model_copy(deep=True))
        assert isinstance(state, dict)
        total = int(state["total_parts"])
        client = self.client
        with resource.path.open("rb") as stream:
            for index in range(int(state["parts_done"]), total):
                stream.seek(index * chunk)
                data = stream.read(chunk)
                try:
                    client.upload_part(
                        dataset_id,
                        rid=rid,
                        upload_uuid=state["uuid"],
                        filename=resource.name,
                        index=index,
                        offset=index * chunk,
                        total_parts=total,
                        total_size=size,
                        data=data,
                    )
                except AmbiguousRequestError:
                    if state.get("suspect") == index:
                        state["restart"] = True
                    state["suspect"] = index
                    checkpoint(progress.model_copy(deep=True))
                    raise
                except TransientConnectorError:
                    checkpoint(progress.model_copy(deep=True))  # a definite refusal: the part was not stored
                    raise
                state["parts_done"] = index + 1
                state["suspect"] = None
                progress.step = f"upload:{resource.name}:{index + 1}/{total}"
                checkpoint(progress.model_copy(deep=True))
        try:
            result = client.finish_parts(
                dataset_id,
                rid=rid,
                upload_uuid=state["uuid"],
                filename=resource.name,
                total_parts=total,
                total_size=size,
            )
        except AmbiguousRequestError:
            # Parts outlive a failed combine, so it can be retried; if it keeps failing, start over.
            state["combine_failures"] = int(state.get("combine_failures") or 0) + 1
            state["restart"] = state["combine_failures"] >= 2
            checkpoint(progress.model_copy(deep=True))
            raise
        except PermanentConnectorError:
            uploads.pop(resource.name, None)
            checkpoint(progress.model_copy(deep=True))
            raise
        uploads.pop(resource.name, None)
        return result

    # ----------------------------------------------------------------------------------------- services

    def set_service_links(
        self,
        revision: PublicationRevision,
        ledger: LedgerEntry,
        links: list[tuple[str, str, str]],
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> LedgerEntry:
        """Make the dataset's service links exactly ``links`` = [(title, url, format)], idempotently.

        Each link is a remote resource of type ``api`` marked with ``extras["openig-broker:service"] = url``;
        links no longer listed are deleted, file resources are left alone.
        """
        org_id = self._organization_id(revision)
        progress = ledger.model_copy(deep=True)
        remote = progress.remote
        dataset = self._locate(revision, remote, org_id)
        if dataset is None or dataset.get("deleted"):
            raise PermanentConnectorError(
                "Le jeu de données n'est pas publié sur data.gouv.fr : "
                "publiez-le avant d'y lier des services."
            )
        client = self.client
        dataset_id = dataset["id"]
        remote["dataset"] = dataset_id
        services: dict[str, str] = remote.setdefault("services", {})
        resources = dataset.get("resources") or []
        by_id = {r["id"]: r for r in resources}
        by_url = {
            str(_extras(r)[mapping.SERVICE_KEY]): r for r in resources if mapping.SERVICE_KEY in _extras(r)
        }
        claimed: set[str] = set()
        wanted: list[str] = []
        for title, url, fmt in links:
            if url in wanted:
                continue
            wanted.append(url)
            problem = mapping.url_problem(url, allow_local=self._allow_local)
            if problem:
                raise PermanentConnectorError(
                    f"data.gouv.fr refusera le lien de service « {title} » ({problem}) : {url}",
                    fields={url: problem},
                )
            current = by_id.get(services.get(url, "")) or by_url.get(url)
            if current is None:
                current = client.create_remote_resource(dataset_id, mapping.service_payload(title, url, fmt))
            else:
                payload = mapping.service_payload(title, url, fmt, _extras(current))
                if _differs(current, payload):
                    current = client.update_resource(dataset_id, current["id"], payload)
            services[url] = current["id"]
            claimed.add(current["id"])
            progress.step = f"service:{url}"
            checkpoint(progress.model_copy(deep=True))
        for resource in resources:
            if mapping.SERVICE_KEY in _extras(resource) and resource["id"] not in claimed:
                self._delete_resource(dataset_id, resource["id"])
        for url in [u for u in services if u not in wanted]:
            del services[url]
        progress.step = "services"
        progress.urls = [u for u in progress.urls if u not in wanted] + wanted
        checkpoint(progress.model_copy(deep=True))
        return progress

    # ----------------------------------------------------------------------------------------- withdraw

    def withdraw(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        org_id = self._organization_id(revision)
        remote = ledger.model_copy(deep=True).remote
        dataset = self._locate(revision, remote, org_id)
        mode = self.config.withdraw_mode
        if dataset is not None:
            client = self.client
            if mode == "delete" and not dataset.get("deleted"):
                with contextlib.suppress(RemoteGoneError):  # deleted meanwhile: the goal is reached
                    client.delete_dataset(dataset["id"])
            elif mode == "archive" and not dataset.get("archived") and not dataset.get("deleted"):
                # No archive endpoint: `archived` is a writable date (research §2; UNCONFIRMED, no API test).
                client.update_dataset(dataset["id"], {"archived": _now(), "private": self.config.private})
            remote["dataset"] = dataset["id"]
        remote["withdrawn"] = mode
        remote.pop("uploads", None)
        entry = LedgerEntry(
            state="withdrawn", revision=ledger.revision, step="withdrawn", remote=remote, urls=[]
        )
        checkpoint(entry.model_copy(deep=True))
        logger.info("data.gouv.fr: publication %s withdrawn (%s)", revision.publication_id, mode)
        return entry

    # ----------------------------------------------------------------------------------------- drift

    def inspect_remote(self, revision: PublicationRevision, ledger: LedgerEntry) -> RemoteState:
        org_id = self._organization_id(revision)
        remote = dict(ledger.remote)
        dataset = self._locate(revision, remote, org_id)
        present = ledger.state == "present"
        if dataset is None:
            drift: tuple[RemoteDrift, ...] = ()
            if present:
                drift = (
                    RemoteDrift(
                        kind="missing",
                        entity="dataset",
                        message="Le jeu de données a disparu de data.gouv.fr (purgé après suppression ?).",
                    ),
                )
            return RemoteState(exists=False, drift=drift)

        found: list[RemoteDrift] = []
        deleted, archived = bool(dataset.get("deleted")), bool(dataset.get("archived"))
        if ledger.remote.get("dataset") and ledger.remote["dataset"] != dataset["id"]:
            found.append(
                RemoteDrift(
                    kind="stale",
                    entity="dataset.id",
                    message=f"Le registre pointe vers {ledger.remote['dataset']}, data.gouv.fr porte la "
                    f"publication sur {dataset['id']}.",
                )
            )
        if present and deleted:
            found.append(
                RemoteDrift(kind="deleted", entity="dataset", message="Le jeu de données a été supprimé.")
            )
        if present and archived:
            found.append(
                RemoteDrift(kind="archived", entity="dataset", message="Le jeu de données a été archivé.")
            )
        if ledger.state == "withdrawn" and not deleted and not archived:
            found.append(
                RemoteDrift(kind="extra", entity="dataset", message="Le jeu de données est toujours publié.")
            )
        if present and not deleted:
            found.extend(self._metadata_drift(revision, dataset))
            found.extend(self._resource_drift(revision, ledger, dataset))
        ours = {
            name: entry.get("id")
            for name, entry in (ledger.remote.get("resources") or {}).items()
            if entry.get("id")
        }
        return RemoteState(
            exists=not deleted,
            drift=tuple(found),
            remote={
                "dataset": dataset["id"],
                "slug": dataset.get("slug"),
                "page": dataset.get("page"),
                "deleted": dataset.get("deleted"),
                "archived": dataset.get("archived"),
                "private": dataset.get("private"),
                "resources": ours,
            },
        )

    def _metadata_drift(self, revision: PublicationRevision, dataset: dict[str, Any]) -> list[RemoteDrift]:
        expected = mapping.dataset_payload(revision, private=self.config.private)
        have: dict[str, Any] = {
            "title": dataset.get("title"),
            "description": dataset.get("description"),
            "license": None if dataset.get("license") in (None, "notspecified") else dataset.get("license"),
            "frequency": dataset.get("frequency"),
            "tags": sorted(dataset.get("tags") or []),
            "private": bool(dataset.get("private")),
            "access_type": dataset.get("access_type") or "open",
            "authorization_request_url": dataset.get("authorization_request_url"),
            "temporal_coverage": _dates(dataset.get("temporal_coverage")),
            "spatial.zones": sorted((dataset.get("spatial") or {}).get("zones") or []),
        }
        want: dict[str, Any] = {
            "title": expected["title"],
            "description": expected["description"],
            "license": None if expected["license"] in (None, "notspecified") else expected["license"],
            "frequency": expected["frequency"],
            "tags": sorted(expected["tags"]),
            "private": expected["private"],
            "access_type": expected["access_type"],
            "authorization_request_url": expected["authorization_request_url"],
            "temporal_coverage": expected["temporal_coverage"],
            "spatial.zones": sorted(expected["spatial"]["zones"]),
        }
        found = [
            RemoteDrift(
                kind="stale",
                entity=f"dataset.{key}",
                message=f"« {key} » diffère sur data.gouv.fr (modifié hors du broker ?) : {have[key]!r} "
                "au lieu de "
                f"{want[key]!r}.",
            )
            for key in want
            if (have[key] or None) != (want[key] or None)
        ]
        if _extras(dataset).get(mapping.PUBLICATION_KEY) != revision.publication_id:
            found.append(
                RemoteDrift(
                    kind="stale",
                    entity="dataset.extras",
                    message="L'identifiant du broker a été retiré des métadonnées supplémentaires.",
                )
            )
        return found

    def _resource_drift(
        self, revision: PublicationRevision, ledger: LedgerEntry, dataset: dict[str, Any]
    ) -> list[RemoteDrift]:
        plans, _ = self._plan(revision)
        entries: dict[str, Any] = ledger.remote.get("resources") or {}
        services = set((ledger.remote.get("services") or {}).values())
        resources = dataset.get("resources") or []
        by_id = {r["id"]: r for r in resources}
        seen: set[str] = set()
        found: list[RemoteDrift] = []
        for plan in plans:
            name = plan.resource.name
            entry = entries.get(name) or {}
            current = by_id.get(entry.get("id", ""))
            if current is None:
                current = next((r for r in resources if _marker_name(r) == name), None)
            if current is None:
                found.append(
                    RemoteDrift(
                        kind="missing",
                        entity=f"resource:{name}",
                        message="Ressource absente de data.gouv.fr.",
                    )
                )
                continue
            seen.add(current["id"])
            if entry.get("sha1") and _checksum(current) != entry["sha1"]:
                found.append(
                    RemoteDrift(
                        kind="changed",
                        entity=f"resource:{name}",
                        message="Le fichier hébergé sur data.gouv.fr n'est plus celui envoyé par le broker.",
                    )
                )
            marker = _extras(current).get(mapping.RESOURCE_KEY)
            if (
                plan.resource.sha256
                and isinstance(marker, dict)
                and marker.get("sha256") != plan.resource.sha256
            ):
                found.append(
                    RemoteDrift(
                        kind="stale",
                        entity=f"resource:{name}",
                        message="La ressource date d'une révision antérieure.",
                    )
                )
            if (current.get("title") or "") != mapping.resource_title(plan.resource):
                found.append(
                    RemoteDrift(
                        kind="stale",
                        entity=f"resource:{name}.title",
                        message=f"Titre modifié sur data.gouv.fr : « {current.get('title')} ».",
                    )
                )
        for resource in resources:
            if resource["id"] in seen or resource["id"] in services:
                continue
            extras = _extras(resource)
            if mapping.SERVICE_KEY in extras:
                message = "Lien de service inconnu du registre."
            elif _marker_name(resource) is not None:
                message = "Ressource du broker qui n'est plus dans la révision."
            else:
                message = "Ressource ajoutée sur data.gouv.fr hors du broker (laissée en place)."
            found.append(
                RemoteDrift(
                    kind="extra",
                    entity=f"resource:{resource.get('title') or resource['id']}",
                    message=message,
                )
            )
        return found

    def reconcile(
        self,
        revision: PublicationRevision,
        ledger: LedgerEntry,
        repair: bool,
        checkpoint: Checkpoint = _no_checkpoint,
    ) -> tuple[RemoteState, LedgerEntry]:
        """The drift found, and the ledger after repair (unchanged without ``repair`` or without drift).

        Repair re-runs the delivery: it restores a deleted or archived dataset and hand-edited metadata,
        re-creates missing resources and re-uploads replaced files; for a withdrawn publication it withdraws
        again. Resources added by hand on data.gouv.fr are reported, never deleted.
        """
        state = self.inspect_remote(revision, ledger)
        if not repair or not state.drift:
            return state, ledger
        if ledger.state == "withdrawn":
            return state, self.withdraw(revision, ledger, checkpoint)
        return state, self._sync(revision, ledger, checkpoint)


def _dates(temporal: Any) -> dict[str, str | None] | None:
    if not isinstance(temporal, dict) or not temporal.get("start"):
        return None
    end = temporal.get("end")
    return {"start": str(temporal["start"])[:10], "end": str(end)[:10] if end else None}
