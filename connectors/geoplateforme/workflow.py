"""One delivery to the Géoplateforme as a resumable state machine (geoplateforme-api.md §2, §6).

The model is the SDK's and cartes.gouv.fr's (§6):

- **the datastore is the state store**: every entity we create is tagged with the publication id
  (``openig_publication``), the resource (``openig_resource``), its track or service, and ``datasheet_name``
  (which groups them in cartes.gouv.fr's "fiche de données", §3); each step *finds before it creates* and
  derives what is left to do from the platform's statuses, never from our own memory;
- **ids are resolved at run time**: processings by name and endpoints by type and openness, per datastore;
- **one step, one checkpoint**: ``checkpoint`` receives the ledger after each step that changed something,
  with ``ledger.step`` naming it and the ids in ``ledger.remote``; a worker killed at any point resumes where
  the platform is (e.g. after ``…:upload_closed``: the closed upload is found by its tags and its checks are
  awaited; nothing is sent twice);
- **waiting is bounded**: polls back off from ``poll_interval`` to ``max_poll_interval``, and past
  ``deadline_seconds`` the delivery stops with a :class:`TransientConnectorError` so that the broker retries
  later and resumes: a delivery is never stuck.

Tracks of a resource (one upload, one processing, one stored data each):

=========  =================  ===============================================  ========================
track      upload type        processing (§2.2)                                stored data
=========  =================  ===============================================  ========================
vector     VECTOR             Intégration de données vecteur livrées en base   VECTOR-DB
tiles      (the VECTOR-DB)    Calcul ou mise à jour de pyramide vecteur        ROK4-PYRAMID-VECTOR
raster     RASTER             Calcul de pyramide raster                        ROK4-PYRAMID-RASTER
archive    ARCHIVE            Recopie d'une archive livrée                     ARCHIVE
=========  =================  ===============================================  ========================

Services: ``wfs`` → WFS, ``wms`` → WMS-VECTOR (with a default SLD 1.0.0 style) or WMS-RASTER, ``wmts`` →
VECTOR-TMS (vector tiles) or WMTS-TMS, ``download`` → DOWNLOAD of an archive of the file. Offerings go on the
open endpoint for open data and on the private one for restricted data (§2.5).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

from connectors.base import (
    Checkpoint,
    ConnectorConfigurationError,
    LedgerEntry,
    PermanentConnectorError,
    PublicationRevision,
    ResourceFile,
    TransientConnectorError,
)
from connectors.geoplateforme import inspection, styles
from connectors.geoplateforme.client import EntrepotClient
from connectors.geoplateforme.config import GeoplateformeConfig
from connectors.geoplateforme.errors import Conflict, NotFound
from connectors.geoplateforme.metadata import PROTOCOLS, ServiceLink, file_identifier, iso19139_record
from connectors.geoplateforme.services import ServiceBodies, slug

logger = logging.getLogger(__name__)
T = TypeVar("T")

VECTOR_DB = "Intégration de données vecteur livrées en base"
RASTER_PYRAMID = "Calcul de pyramide raster"
VECTOR_PYRAMID = "Calcul ou mise à jour de pyramide vecteur"
ARCHIVE_COPY = "Recopie d'une archive livrée"

# Manifest service -> configuration type, per kind of resource.
SERVICES: dict[str, dict[str, str]] = {
    "vector": {"wfs": "WFS", "api": "WFS", "wms": "WMS-VECTOR", "wmts": "VECTOR-TMS", "download": "DOWNLOAD"},
    "raster": {"wmts": "WMTS-TMS", "wms": "WMS-RASTER", "download": "DOWNLOAD"},
    "archive": {"download": "DOWNLOAD"},
}
DEFAULT_SERVICES: dict[str, tuple[str, ...]] = {
    "vector": ("wfs", "wms"),
    "raster": ("wmts", "wms"),
    "archive": ("download",),
}
# Configuration type -> the track whose stored data it serves.
TRACK_OF = {
    "WFS": "vector",
    "WMS-VECTOR": "vector",
    "VECTOR-TMS": "tiles",
    "WMTS-TMS": "raster",
    "WMS-RASTER": "raster",
    "DOWNLOAD": "archive",
}
URL_PROTOCOLS = {
    "WFS": "OGC:WFS",
    "WMS": "OGC:WMS",
    "WMTS": "OGC:WMTS",
    "TMS": "OSGeo:TMS",
    "DOWNLOAD": PROTOCOLS["DOWNLOAD"],
}
RUNNING = ("CREATED", "WAITING", "PROGRESS")
LOG_PREFIX = re.compile(r"^\S*\d{4}-\d{2}-\d{2}[T ][\d:.,]+\S*\s+(?:(?:INFO|WARNING|WARN|ERROR|DEBUG)\s+)?")
PM_RESOLUTION_0 = 156543.03392804097  # metres per pixel at level 0 of the PM tile matrix set
# Records are compared without their date stamp, so that an unchanged record is not sent again the next day.
_EPOCH = date(2000, 1, 1)
# Pre-flight problems that make a delivery impossible; the platform's own checks judge the rest (SRS
# consistency, table names) and their messages reach the producer.
BLOCKING = {
    "file_missing",
    "shapefile_not_zipped",
    "srs_missing",
    "srs_unknown",
    "too_large",
    "format_not_integrated",
}


# ----------------------------------------------------------------------------------------------- plans


@dataclass
class Track:
    resource: ResourceFile
    key: str
    processing: str
    digest: str
    srs: str
    upload_type: str | None = None
    # (local file, path in the upload), computed only when an upload is really sent
    files: Callable[[], list[tuple[Path, str]]] = list
    parameters: dict[str, Any] = field(default_factory=dict)
    storage_tags: list[str] | None = None
    source: str | None = None  # input stored data of a derived track

    @property
    def label(self) -> str:
        return f"{self.key}:{self.resource.name}"


@dataclass
class Plan:
    resource: ResourceFile
    kind: str
    services: list[str]  # configuration types, in publication order


def plan_revision(revision: PublicationRevision) -> list[Plan]:
    plans = []
    for resource in revision.resources:
        kind = inspection.classify(resource)
        if kind == "link" or inspection.resource_format(resource) in inspection.CHECKED_NOT_INTEGRATED:
            continue
        wanted = revision.services or DEFAULT_SERVICES[kind]
        types: list[str] = []
        for service in wanted:
            config_type = SERVICES[kind].get(service)
            if config_type and config_type not in types:
                types.append(config_type)
        if types:
            plans.append(Plan(resource, kind, types))
    return plans


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fingerprint(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def pm_level(resolution_m: float | None) -> int:
    """The PM tile matrix level closest to a ground resolution in metres."""
    if not resolution_m or resolution_m <= 0:
        return 18
    return max(0, min(21, round(math.log2(PM_RESOLUTION_0 / resolution_m))))


# ----------------------------------------------------------------------------------------------- delivery


class Delivery:
    """One publish, update or withdraw of one revision; create one per call."""

    def __init__(
        self,
        client: EntrepotClient,
        config: GeoplateformeConfig,
        revision: PublicationRevision,
        ledger: LedgerEntry,
        checkpoint: Checkpoint,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.config = config
        self.revision = revision
        self.checkpoint = checkpoint
        self.sleep = sleep
        self.progress = ledger.model_copy(deep=True)
        self.started = time.monotonic()
        self.deadline = self.started + config.deadline_seconds
        self.pid = revision.publication_id
        self._endpoints: list[dict[str, Any]] | None = None
        self._processings: dict[str, str] | None = None
        self._workdir: Path | None = None
        self.bodies = ServiceBodies(config, revision)

    # ------------------------------------------------------------------------------------------------- ledger

    @property
    def remote(self) -> dict[str, Any]:
        return self.progress.remote

    def resource_state(self, resource: ResourceFile) -> dict[str, Any]:
        state: dict[str, Any] = self.remote.setdefault("resources", {}).setdefault(resource.name, {})
        for key in ("uploads", "stored_data", "executions", "configurations"):
            state.setdefault(key, {})
        return state

    def save(self, step: str) -> None:
        self.progress.step = step
        self.progress.urls = self._urls()
        self.checkpoint(self.progress.model_copy(deep=True))

    def _urls(self) -> list[str]:
        urls: list[str] = []
        for offering in (self.remote.get("offerings") or {}).values():
            urls.extend(url for url in offering.get("urls", []) if url not in urls)
        metadata = self.remote.get("metadata") or {}
        if metadata.get("published") and metadata.get("csw_url"):
            urls.append(metadata["csw_url"])
        return urls

    # ------------------------------------------------------------------------------------------------ helpers

    def tags(self, resource: ResourceFile | None = None, **extra: str) -> dict[str, str]:
        tags = {"openig_publication": self.pid}
        if resource is not None:
            tags["openig_resource"] = resource.name
        tags.update(extra)
        return tags

    def _all_tags(self, tags: dict[str, str]) -> dict[str, str]:
        """The lookup tags plus ``datasheet_name`` (§3, cartes.gouv.fr's "fiche de données")."""
        return {**tags, "datasheet_name": self.revision.title}

    def find(self, collection: str, tags: dict[str, str], **params: str) -> list[dict[str, Any]]:
        query: dict[str, str] = {f"tags[{key}]": value for key, value in tags.items()}
        query.update(params)
        return self.client.list(
            self.client.ds(f"/{collection}"), action=f"la recherche de {collection}", params=query
        )

    def detail(self, collection: str, entity_id: str) -> dict[str, Any]:
        detail: dict[str, Any] = self.client.get(
            self.client.ds(f"/{collection}/{entity_id}"), action=f"la lecture de {collection} {entity_id}"
        )
        return detail

    def add_tags(self, collection: str, entity_id: str, tags: dict[str, str]) -> None:
        self.client.post(
            self.client.ds(f"/{collection}/{entity_id}/tags"), json=tags, action="l'ajout d'étiquettes"
        )

    def delete(self, collection: str, entity_id: str, what: str) -> bool:
        """DELETE, tolerating an entity already gone (the SDK's ``not_found_ok``)."""
        try:
            self.client.delete(
                self.client.ds(f"/{collection}/{entity_id}"), action=f"la suppression de {what}"
            )
        except NotFound:
            return False
        return True

    def wait(self, what: str, fetch: Callable[[], T], done: Callable[[T], bool]) -> T:
        """Poll ``fetch`` until ``done``; past the deadline, stop transiently so the broker resumes later."""
        interval = self.config.poll_interval
        while True:
            value = fetch()
            if done(value):
                return value
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                elapsed = time.monotonic() - self.started
                raise TransientConnectorError(
                    f"Géoplateforme : {what} toujours en cours après {elapsed:.0f} s ; la livraison "
                    "reprendra à cette étape au prochain essai.",
                    retry_after=self.config.max_poll_interval,
                )
            self.sleep(min(interval, remaining))
            interval = min(interval * 1.5, self.config.max_poll_interval)

    def wait_gone(self, collection: str, entity_id: str, what: str) -> None:
        def fetch() -> dict[str, Any] | None:
            try:
                return self.detail(collection, entity_id)
            except NotFound:
                return None

        self.wait(what, fetch, lambda value: value is None)

    def endpoint(self, config_type: str, is_open: bool) -> dict[str, Any]:
        if self._endpoints is None:
            datastore = self.client.get(self.client.ds(), action="la lecture de l'entrepôt")
            self._endpoints = [
                entry["endpoint"] for entry in datastore.get("endpoints", []) if entry.get("endpoint")
            ]
        types = ("METADATA", "CSW") if config_type == "METADATA" else (config_type,)
        for endpoint in self._endpoints:
            if endpoint.get("type") in types and bool(endpoint.get("open")) == is_open:
                return endpoint
        raise ConnectorConfigurationError(
            f"L'entrepôt Géoplateforme n'a pas de point d'accès {config_type} "
            f"{'ouvert' if is_open else 'privé'} : demandez-le à l'IGN."
        )

    def processing(self, name: str) -> str:
        """A processing's id, resolved by name in this datastore (§2.2 step 7: ids differ per environment)."""
        if self._processings is None:
            items = self.client.list(self.client.ds("/processings"), action="la liste des traitements")
            self._processings = {item["name"]: item["_id"] for item in items}
        if name not in self._processings:
            raise ConnectorConfigurationError(
                f"Le traitement « {name} » n'est pas ouvert sur cet entrepôt Géoplateforme."
            )
        return self._processings[name]

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            self._workdir = Path(tempfile.mkdtemp(prefix="gpf-delivery-"))
        return self._workdir

    def cleanup(self) -> None:
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # ------------------------------------------------------------------------------------------------ publish

    def publish(self) -> LedgerEntry:
        """Publish or update: bring the platform to the revision, whatever it holds now."""
        try:
            self.remote["datastore"] = self.client.datastore
            self.remote.setdefault("offerings", {})
            plans = plan_revision(self.revision)
            blocking = self._blocking_problems(plans)
            if blocking:
                raise PermanentConnectorError(
                    " ; ".join(p.message for p in blocking),
                    fields={p.resource or "": p.code for p in blocking},
                )
            for plan in plans:
                self.deliver(plan)
            self.remove_stale(plans)
            self.ensure_metadata()
            self.sweep_uploads()
        finally:
            self.cleanup()
        self.progress.state = "present"
        self.progress.revision = self.revision.revision
        self.progress.step = "done"
        self.progress.urls = self._urls()
        logger.info("géoplateforme: publication %s revision %d delivered", self.pid, self.revision.revision)
        return self.progress.model_copy(deep=True)

    def _blocking_problems(self, plans: list[Plan]) -> list[Any]:
        planned = {plan.resource.name for plan in plans}
        problems = inspection.preflight(
            self.revision,
            max_upload_bytes=self.config.max_upload_bytes,
            services_for=SERVICES,
            default_services=DEFAULT_SERVICES,
        )
        return [p for p in problems if p.code in BLOCKING and (p.resource is None or p.resource in planned)]

    def deliver(self, plan: Plan) -> None:
        resource = plan.resource
        state = self.resource_state(resource)
        state["kind"] = plan.kind
        if plan.kind == "vector":
            vector = self.vector_track(resource)
            stored, _ = self.integrate(vector)
            tables = (stored.get("type_infos") or {}).get("relations", [])
            for config_type in plan.services:
                if config_type == "WFS":
                    self.publish_service(
                        plan, config_type, self.bodies.wfs(plan.resource, stored, tables), vector.digest
                    )
                elif config_type == "WMS-VECTOR":
                    relations = self.styled_relations(resource, tables)
                    if relations:
                        self.publish_service(
                            plan,
                            config_type,
                            self.bodies.wms_vector(plan.resource, stored, relations),
                            vector.digest,
                        )
                elif config_type == "VECTOR-TMS":
                    tiles = self.tiles_track(resource, vector, stored)
                    pyramid, _ = self.integrate(tiles)
                    self.publish_service(
                        plan,
                        config_type,
                        self.bodies.vector_tms(plan.resource, pyramid, tables),
                        tiles.digest,
                    )
                elif config_type == "DOWNLOAD":
                    self.publish_download(plan)
        elif plan.kind == "raster":
            raster = self.raster_track(resource)
            for config_type in plan.services:
                if config_type in ("WMTS-TMS", "WMS-RASTER"):
                    pyramid, _ = self.integrate(raster)
                    self.publish_service(
                        plan,
                        config_type,
                        self.bodies.pyramid(plan.resource, config_type, pyramid),
                        raster.digest,
                    )
                elif config_type == "DOWNLOAD":
                    self.publish_download(plan)
        else:
            self.publish_download(plan)

    def publish_download(self, plan: Plan) -> None:
        archive = self.archive_track(plan.resource)
        stored, _ = self.integrate(archive)
        self.publish_service(plan, "DOWNLOAD", self.bodies.download(plan.resource, stored), archive.digest)

    # ------------------------------------------------------------------------------------------------- tracks

    def _source_digest(self, resource: ResourceFile) -> str:
        if resource.sha256:
            return resource.sha256
        assert resource.path is not None
        return _sha256(resource.path)

    def _single_file(self, resource: ResourceFile) -> list[tuple[Path, str]]:
        assert resource.path is not None
        return [(resource.path, f"data/{inspection.remote_name(resource)}")]

    def _files(self, resource: ResourceFile) -> list[tuple[Path, str]]:
        """Local files and their path in the upload (``data/<name>``, §2.1 step 2)."""
        assert resource.path is not None
        if not inspection.is_shapefile_zip(resource):
            return self._single_file(resource)
        # A shapefile goes as one request per component file (§2.1 step 2).
        target = self.workdir / slug(resource.name)
        target.mkdir(parents=True, exist_ok=True)
        files = []
        with zipfile.ZipFile(resource.path) as archive:
            for member in archive.infolist():
                name = Path(member.filename).name
                if member.is_dir() or not name or name.startswith("."):
                    continue
                if Path(name).suffix.lower() not in inspection.SHAPEFILE_PARTS:
                    continue
                destination = target / name
                with archive.open(member) as source, destination.open("wb") as out:
                    shutil.copyfileobj(source, out)
                files.append((destination, f"data/{name}"))
        if not any(remote.lower().endswith(".shp") for _, remote in files):
            raise PermanentConnectorError(
                f"L'archive « {resource.name} » ne contient pas de fichier .shp.",
                fields={resource.name: "no_shapefile"},
            )
        return files

    def vector_track(self, resource: ResourceFile) -> Track:
        srs = resource.crs or ""
        return Track(
            resource=resource,
            key="vector",
            processing=VECTOR_DB,
            digest=_fingerprint("vector", self._source_digest(resource), srs),
            srs=srs,
            upload_type="VECTOR",
            files=functools.partial(self._files, resource),
            storage_tags=["VECTEUR"],
        )

    def tiles_track(self, resource: ResourceFile, vector: Track, stored: dict[str, Any]) -> Track:
        parameters = {"bottom_level": "16", "top_level": "5"}
        return Track(
            resource=resource,
            key="tiles",
            processing=VECTOR_PYRAMID,
            digest=_fingerprint("tiles", vector.digest, parameters),
            srs=vector.srs,
            parameters=parameters,
            storage_tags=["PYRAMIDE"],
            source=stored["_id"],
        )

    def raster_track(self, resource: ResourceFile) -> Track:
        try:
            _, resolution = inspection.raster_summary(resource)
        except Exception:
            resolution = None
        bottom = pm_level(resolution)
        parameters = {
            "tms": self.config.raster_tms,
            "compression": "jpg",
            "interpolation": "bicubic",
            "bottom": str(bottom),
            "top": str(min(bottom, 6)),
        }
        srs = resource.crs or ""
        return Track(
            resource=resource,
            key="raster",
            processing=RASTER_PYRAMID,
            digest=_fingerprint("raster", self._source_digest(resource), srs, parameters),
            srs=srs,
            upload_type="RASTER",
            files=functools.partial(self._files, resource),
            parameters=parameters,
            storage_tags=["PYRAMIDE"],
        )

    def archive_track(self, resource: ResourceFile) -> Track:
        # UNCONFIRMED which SRS an archive upload should declare; the resource's, else WGS84.
        srs = resource.crs or "EPSG:4326"
        assert resource.path is not None
        return Track(
            resource=resource,
            key="archive",
            processing=ARCHIVE_COPY,
            digest=_fingerprint("archive", self._source_digest(resource), srs),
            srs=srs,
            upload_type="ARCHIVE",
            files=functools.partial(self._single_file, resource),
        )

    def stored_name(self, track: Track) -> str:
        return f"{self.revision.title} – {track.resource.title or track.resource.name} ({track.key})"

    # ---------------------------------------------------------------------------------------------- integrate

    def find_stored(self, track: Track) -> dict[str, Any] | None:
        found = self.find("stored_data", self.tags(track.resource, openig_track=track.key))
        if not found:
            # A crash between creating the execution and tagging its output leaves it untagged: adopt it.
            for item in self.find("stored_data", {}, name=self.stored_name(track)):
                candidate = self.detail("stored_data", item["_id"])
                if not (candidate.get("tags") or {}).get("openig_publication"):
                    self.add_tags(
                        "stored_data",
                        candidate["_id"],
                        self._all_tags(self.tags(track.resource, openig_track=track.key)),
                    )
                    return self.detail("stored_data", candidate["_id"])
            return None
        return self.detail("stored_data", found[0]["_id"])

    def integrate(self, track: Track) -> tuple[dict[str, Any], bool]:
        """The track's stored data, GENERATED from the current files; True when this call (re)generated it."""
        state = self.resource_state(track.resource)
        stored = self.find_stored(track)
        if stored is not None:
            state["stored_data"][track.key] = stored["_id"]
            tags = stored.get("tags") or {}
            if tags.get("openig_sha256") == track.digest and stored.get("status") == "GENERATED":
                if tags.get("datasheet_name") != self.revision.title:
                    self.add_tags("stored_data", stored["_id"], {"datasheet_name": self.revision.title})
                return stored, False
            running = self._running_execution(stored["_id"])
            if running is not None:
                if self._execution_matches(running, track):
                    return self._finish(track, running, stored["_id"]), True
                # Work for an older revision: stop it (§6, the SDK aborts what it no longer wants).
                self._abort(running)
            if stored.get("status") == "UNSTABLE" and not self._used_by_configurations(stored["_id"]):
                # §6: a stored data in UNSTABLE is an error; nothing serves it, so start afresh.
                self.delete("stored_data", stored["_id"], "la donnée stockée instable")
                state["stored_data"].pop(track.key, None)
                stored = None

        inputs: dict[str, list[str]]
        upload: dict[str, Any] | None = None
        if track.upload_type:
            upload = self.ensure_upload(track)
            inputs = {"upload": [upload["_id"]]}
        else:
            assert track.source is not None
            inputs = {"stored_data": [track.source]}
        if stored is not None:
            # §2.5: update the data in place, then resynchronise the offerings.
            output: dict[str, Any] = {"stored_data": {"id": stored["_id"]}}
        else:
            output = {"stored_data": {"name": self.stored_name(track)}}
            if track.storage_tags:
                output["stored_data"]["storage_tags"] = track.storage_tags
        body = {
            "processing": self.processing(track.processing),
            "inputs": inputs,
            "output": output,
            "parameters": track.parameters,
        }
        execution = self.client.post(
            self.client.ds("/processings/executions"),
            json=body,
            action=f"la création du traitement « {track.processing} » pour « {track.resource.name} »",
        )
        stored_id = execution["output"]["stored_data"]["_id"]
        if stored is None:
            self.add_tags(
                "stored_data", stored_id, self._all_tags(self.tags(track.resource, openig_track=track.key))
            )
        if upload is not None:
            # [CGF] keeps the spawned ids on the upload before launch (§6).
            self.add_tags(
                "uploads",
                upload["_id"],
                {"openig_execution": execution["_id"], "openig_stored_data": stored_id},
            )
        state["executions"][track.key] = execution["_id"]
        state["stored_data"][track.key] = stored_id
        self.save(f"{track.label}:processing_created")
        return self._finish(track, execution, stored_id), True

    def _running_execution(self, stored_id: str) -> dict[str, Any] | None:
        items = self.client.list(
            self.client.ds("/processings/executions"),
            action="la recherche des traitements",
            params={"output_stored_data": stored_id},
        )
        running = [item for item in items if item.get("status") in RUNNING]
        return (
            self.client.get(
                self.client.ds(f"/processings/executions/{running[-1]['_id']}"),
                action="la lecture du traitement",
            )
            if running
            else None
        )

    def _execution_matches(self, execution: dict[str, Any], track: Track) -> bool:
        inputs = execution.get("inputs") or {}
        if track.upload_type is None:
            return [item.get("_id") for item in inputs.get("stored_data") or []] == [track.source]
        for item in inputs.get("upload") or []:
            try:
                upload = self.detail("uploads", item["_id"])
            except NotFound:
                return False
            if (upload.get("tags") or {}).get("openig_sha256") == track.digest:
                return True
        return False

    def _abort(self, execution: dict[str, Any]) -> None:
        try:
            if execution.get("status") == "CREATED":
                self.delete("processings/executions", execution["_id"], "un traitement périmé")
                return
            self.client.post(
                self.client.ds(f"/processings/executions/{execution['_id']}/abort"),
                action="l'arrêt d'un traitement périmé",
            )
        except (NotFound, Conflict):
            return
        self.wait(
            "l'arrêt d'un traitement périmé",
            lambda: self.client.get(
                self.client.ds(f"/processings/executions/{execution['_id']}"),
                action="la lecture du traitement",
            ),
            lambda item: item.get("status") not in RUNNING,
        )

    def _used_by_configurations(self, stored_id: str) -> bool:
        return bool(
            self.client.list(
                self.client.ds("/configurations"),
                action="la recherche des configurations",
                params={"stored_data": stored_id},
            )
        )

    def _finish(self, track: Track, execution: dict[str, Any], stored_id: str) -> dict[str, Any]:
        path = self.client.ds(f"/processings/executions/{execution['_id']}")
        if execution.get("status") == "CREATED":
            self.client.post(f"{path}/launch", action=f"le lancement du traitement « {track.processing} »")
            self.save(f"{track.label}:processing_launched")
        final = self.wait(
            f"le traitement « {track.processing} » de « {track.resource.name} »",
            lambda: self.client.get(path, action="la lecture du traitement"),
            lambda item: item.get("status") not in RUNNING,
        )
        if final.get("status") != "SUCCESS":
            logs = self._log_lines(f"{path}/logs")
            raise PermanentConnectorError(
                f"Le traitement « {track.processing} » de « {track.resource.name} » a échoué sur la "
                f"Géoplateforme ({final.get('status')})" + (f" : {' | '.join(logs)}" if logs else "."),
                fields={track.resource.name: "processing_failed"},
            )
        # [CGF] counts the step done only when the execution succeeded *and* the data is GENERATED (§2.2).
        stored = self.wait(
            f"la génération de la donnée de « {track.resource.name} »",
            lambda: self.detail("stored_data", stored_id),
            lambda item: item.get("status") in ("GENERATED", "UNSTABLE"),
        )
        if stored.get("status") != "GENERATED":
            raise PermanentConnectorError(
                f"La donnée stockée de « {track.resource.name} » est instable après le traitement.",
                fields={track.resource.name: "stored_data_unstable"},
            )
        self.add_tags(
            "stored_data",
            stored_id,
            {
                "openig_sha256": track.digest,
                "openig_revision": str(self.revision.revision),
                "datasheet_name": self.revision.title,
            },
        )
        state = self.resource_state(track.resource)
        # §2.2: the upload should be deleted once integrated.
        for item in (final.get("inputs") or {}).get("upload") or []:
            self.delete("uploads", item["_id"], "la livraison intégrée")
        state["uploads"].pop(track.key, None)
        self.save(f"{track.label}:processed")
        return self.detail("stored_data", stored_id)

    def _log_lines(self, path: str, keep: int = 12) -> list[str]:
        """The last lines of a check's or an execution's log (a paged JSON list, or plain text)."""
        try:
            lines = [str(line) for line in self.client.pages(path, action="la lecture des journaux")]
        except TransientConnectorError:
            try:
                lines = self.client.request("GET", path, action="la lecture des journaux").text.splitlines()
            except (TransientConnectorError, PermanentConnectorError):
                return []
        except PermanentConnectorError:
            return []
        cleaned = [(LOG_PREFIX.sub("", line).strip(), line) for line in lines if line.strip()]
        errors = [text for text, raw in cleaned if "ERROR" in raw or "ERREUR" in raw.upper()]
        return (errors or [text for text, _ in cleaned])[-keep:]

    # ------------------------------------------------------------------------------------------------- upload

    def upload_name(self, track: Track) -> str:
        return f"{track.resource.name} ({track.key}, {track.digest[:12]})"

    def ensure_upload(self, track: Track) -> dict[str, Any]:
        """A CLOSED upload of the track's files whose checks passed (§2.1), found or made."""
        state = self.resource_state(track.resource)
        tags = self.tags(track.resource, openig_track=track.key, openig_sha256=track.digest)
        found = self.find("uploads", tags)
        upload = self.detail("uploads", found[0]["_id"]) if found else None
        if upload is None:
            for item in self.find("uploads", {}, name=self.upload_name(track)):
                candidate = self.detail("uploads", item["_id"])
                if not (candidate.get("tags") or {}).get("openig_publication"):
                    self.add_tags("uploads", candidate["_id"], self._all_tags(tags))
                    upload = candidate
                    break
        if upload is None:
            upload = self.client.post(
                self.client.ds("/uploads"),
                json={
                    "name": self.upload_name(track),
                    "description": f"{self.revision.title} — publication {self.pid}, "
                    f"révision {self.revision.revision}",
                    "type": track.upload_type,
                    "srs": track.srs,
                },
                action=f"la création de la livraison de « {track.resource.name} »",
            )
            self.add_tags("uploads", upload["_id"], self._all_tags(tags))
            state["uploads"][track.key] = upload["_id"]
            self.save(f"{track.label}:upload_created")
        state["uploads"][track.key] = upload["_id"]
        if upload.get("status") == "OPEN":
            self._push_files(track, upload)
            self.client.post(
                self.client.ds(f"/uploads/{upload['_id']}/close"),
                action=f"la fermeture de la livraison de « {track.resource.name} »",
            )
            self.save(f"{track.label}:upload_closed")
        self._wait_checks(track, upload["_id"])
        self.save(f"{track.label}:checks_passed")
        return upload

    def _push_files(self, track: Track, upload: dict[str, Any]) -> None:
        """One request per file, skipping what ``/tree`` shows complete (the SDK's resume, §2.1 step 4)."""
        path = self.client.ds(f"/uploads/{upload['_id']}")
        tree = self.client.get(f"{path}/tree", action="la lecture du contenu de la livraison")
        present = dict(_flatten(tree))
        lines = []
        for local, remote in track.files():
            size = local.stat().st_size
            lines.append(f"{_md5(local)}  {remote}\n")
            if present.get(remote) == size:
                continue
            if remote in present:  # a partly sent file is deleted and sent again: there is no append mode
                self.client.delete(
                    f"{path}/data", params={"path": remote}, action="la suppression d'un envoi partiel"
                )
            with local.open("rb") as handle:

                def files(handle: Any = handle, name: str = Path(remote).name) -> dict[str, Any]:
                    handle.seek(0)
                    return {"file": (name, handle, "application/octet-stream")}

                self.client.request(
                    "POST",
                    f"{path}/data",
                    params={"path": remote},
                    files=files,
                    action=f"l'envoi de {remote}",
                )
        # §2.1 step 3: "<md5>  data/<name>", two spaces, one line per file.
        content = "".join(lines).encode()
        self.client.request(
            "POST",
            f"{path}/md5",
            files=lambda: {"file": (f"{slug(track.resource.name)}.md5", content, "text/plain")},
            action="l'envoi des sommes de contrôle",
        )

    def _wait_checks(self, track: Track, upload_id: str) -> None:
        path = self.client.ds(f"/uploads/{upload_id}")

        def fetch() -> tuple[dict[str, Any], dict[str, Any]]:
            upload = self.client.get(path, action="la lecture de la livraison")
            report = self.client.get(f"{path}/checks", action="la lecture des vérifications")
            return upload, report

        def finished(value: tuple[dict[str, Any], dict[str, Any]]) -> bool:
            upload, report = value
            # §2.1 step 6: finished when nothing is asked or in progress.
            return (
                upload.get("status") in ("CLOSED", "UNSTABLE")
                and not report.get("asked")
                and not report.get("in_progress")
            )

        upload, report = self.wait(f"les vérifications de « {track.resource.name} »", fetch, finished)
        failed = report.get("failed") or []
        if not failed and upload.get("status") != "UNSTABLE":
            return
        messages = []
        for item in failed:
            name = (item.get("check") or {}).get("name", "vérification")
            lines = self._log_lines(self.client.ds(f"/checks/executions/{item['_id']}/logs"))
            messages.append(f"{name} : {' | '.join(lines) if lines else 'échec sans journal'}")
        # The producer fixes the file and publishes a new revision: leave nothing half-done behind.
        self.delete("uploads", upload_id, "la livraison refusée")
        self.resource_state(track.resource)["uploads"].pop(track.key, None)
        raise PermanentConnectorError(
            f"La Géoplateforme a refusé « {track.resource.name} » : "
            + (" ; ".join(messages) or "vérifications en échec."),
            fields={track.resource.name: "checks_failed"},
        )

    def sweep_uploads(self) -> None:
        """Uploads of this publication left by an interrupted run (integration is done by now)."""
        for item in self.find("uploads", self.tags()):
            if item.get("status") != "CHECKING":
                self.delete("uploads", item["_id"], "une livraison résiduelle")

    # ----------------------------------------------------------------------------------------- configurations

    def styled_relations(self, resource: ResourceFile, tables: list[dict[str, Any]]) -> list[dict[str, str]]:
        """One default style per geometry family, uploaded as GEOSERVER-STYLE statics (§2.3)."""
        local: dict[str, str | None] = {}
        try:
            for layer in inspection.vector_layers(resource):
                local[inspection.normalise_name(layer.name)] = layer.geometry_type
        except Exception:
            local = {}
        relations = []
        for table in tables:
            attributes = table.get("attributes") or {}
            geometry = next(
                (str(kind) for kind in attributes.values() if "geometry" in str(kind).lower()), None
            )
            known = local.get(table["name"])
            if geometry is None and not known:
                continue  # no geometry: nothing to draw in a WMS
            family = styles.geometry_family(known if known and known != "Unknown" else geometry)
            relations.append({"name": table["name"], "style": self.ensure_style(resource, family)})
        return relations

    def style_name(self, resource: ResourceFile, family: str) -> str:
        return f"openig-{self.pid}-{slug(resource.name)}-{family}"

    def ensure_style(self, resource: ResourceFile, family: str) -> str:
        name = self.style_name(resource, family)
        found = self.client.list(
            self.client.ds("/statics"), action="la recherche des styles", params={"name": name}
        )
        if found:
            return str(found[0]["_id"])
        content = styles.default_sld(family, self.revision.title)
        static = self.client.post(
            self.client.ds("/statics"),
            data={
                "name": name,
                "type": "GEOSERVER-STYLE",
                "description": f"Style par défaut ({family}) — OPenIG",
            },
            files=lambda: {"file": (f"{name}.sld", content, "application/vnd.ogc.sld+xml")},
            action="l'envoi du style par défaut",
        )
        statics = self.resource_state(resource).setdefault("statics", {})
        statics[family] = static["_id"]
        self.save(f"style:{resource.name}:{family}")
        return str(static["_id"])

    def publish_service(self, plan: Plan, config_type: str, body: dict[str, Any], data_digest: str) -> None:
        configuration = self.ensure_configuration(plan, config_type, body, data_digest)
        self.ensure_offering(plan, configuration, data_digest)

    def ensure_configuration(
        self, plan: Plan, config_type: str, body: dict[str, Any], data_digest: str
    ) -> dict[str, Any]:
        resource = plan.resource
        state = self.resource_state(resource)
        tags = self.tags(resource, openig_service=config_type)
        wanted = _fingerprint({key: value for key, value in body.items() if key != "layer_name"})
        found = self.find("configurations", tags)
        configuration = self.detail("configurations", found[0]["_id"]) if found else None
        if configuration is None:
            configuration = self._create_configuration(body, tags, wanted, data_digest)
            state["configurations"][config_type] = {
                "id": configuration["_id"],
                "layer_name": configuration["layer_name"],
            }
            self.save(f"{config_type}:{resource.name}:configured")
            return configuration
        state["configurations"][config_type] = {
            "id": configuration["_id"],
            "layer_name": configuration["layer_name"],
        }
        current = configuration.get("tags") or {}
        if current.get("openig_body") != wanted:
            # §2.4: PUT replaces the configuration (layer_name cannot change); a published one is pushed.
            replacement = {**body, "layer_name": configuration["layer_name"]}
            self._wait_not_publishing(configuration["_id"])
            self.client.put(
                self.client.ds(f"/configurations/{configuration['_id']}"),
                json=replacement,
                action=f"la mise à jour de la configuration {config_type} de « {resource.name} »",
            )
            self.add_tags(
                "configurations",
                configuration["_id"],
                {"openig_body": wanted, "datasheet_name": self.revision.title},
            )
            configuration = self.detail("configurations", configuration["_id"])
            self.save(f"{config_type}:{resource.name}:reconfigured")
        return configuration

    def _wait_not_publishing(self, configuration_id: str) -> None:
        self.wait(
            "la publication en cours de la configuration",
            lambda: self._offerings(configuration_id),
            lambda offerings: not any(o.get("status") == "PUBLISHING" for o in offerings),
        )

    def _create_configuration(
        self, body: dict[str, Any], tags: dict[str, str], wanted: str, data_digest: str
    ) -> dict[str, Any]:
        own_tags = self._all_tags({**tags, "openig_body": wanted, "openig_synced": data_digest})
        # A crash between the creation and the tagging leaves an untagged configuration of ours: adopt it.
        for item in self.find("configurations", {}, name=body["name"], type=body["type"]):
            candidate = self.detail("configurations", item["_id"])
            if not (candidate.get("tags") or {}).get("openig_publication"):
                self.client.put(
                    self.client.ds(f"/configurations/{candidate['_id']}"),
                    json={**body, "layer_name": candidate["layer_name"]},
                    action="la mise à jour d'une configuration reprise",
                )
                self.add_tags("configurations", candidate["_id"], own_tags)
                return self.detail("configurations", candidate["_id"])
        base = body["layer_name"]
        for attempt in range(1, 21):
            layer_name = base if attempt == 1 else f"{base}_{attempt}"
            try:
                created = self.client.post(
                    self.client.ds("/configurations"),
                    json={**body, "layer_name": layer_name},
                    action=f"la création de la configuration {body['type']}",
                )
            except Conflict:
                # §2.4: layer_name is unique across the whole platform for a type: take the next suffix.
                logger.info(
                    "géoplateforme: layer name %s taken for %s, trying another", layer_name, body["type"]
                )
                continue
            self.add_tags("configurations", created["_id"], own_tags)
            return self.detail("configurations", created["_id"])
        raise PermanentConnectorError(
            f"Aucun nom de couche libre pour « {base} » ({body['type']}) sur la Géoplateforme.",
            fields={"layer_name": base},
        )

    # ---------------------------------------------------------------------------------------------- offerings

    def _offerings(self, configuration_id: str) -> list[dict[str, Any]]:
        return self.client.list(
            self.client.ds(f"/configurations/{configuration_id}/offerings"),
            action="la liste des offres de la configuration",
        )

    def _offering(self, offering_id: str) -> dict[str, Any] | None:
        try:
            return self.detail("offerings", offering_id)
        except NotFound:
            return None

    def unpublish(self, offering: dict[str, Any]) -> None:
        """DELETE the offering and wait for its 404 (§2.6: asynchronous, through UNPUBLISHING)."""
        current = self._offering(offering["_id"])
        if current is None:
            return
        if current.get("status") == "PUBLISHING":
            current = self.wait(
                "la publication en cours d'une offre",
                lambda: self._offering(offering["_id"]),
                lambda item: item is None or item.get("status") != "PUBLISHING",
            )
            if current is None:
                return
        if current.get("status") != "UNPUBLISHING":
            self.delete("offerings", offering["_id"], "l'offre")
        self.wait_gone("offerings", offering["_id"], "la dépublication d'une offre")

    def ensure_offering(self, plan: Plan, configuration: dict[str, Any], data_digest: str) -> None:
        resource = plan.resource
        config_type = configuration["type"]
        is_open = self.revision.access == "open"
        endpoint = self.endpoint(config_type, is_open)
        key = f"{resource.name}:{config_type}"
        offerings = self.remote.setdefault("offerings", {})
        mine = None
        for offering in self._offerings(configuration["_id"]):
            if (
                offering.get("endpoint", {}).get("_id") == endpoint["_id"]
                and offering.get("status") != "UNPUBLISHING"
            ):
                mine = offering
            else:
                # Access changed (open <-> restricted) or a leftover: unpublish from the other endpoint.
                self.unpublish(offering)
        if mine is None:
            try:
                # §2.5: send `open`, never the removed `visibility`.
                mine = self.client.post(
                    self.client.ds(f"/configurations/{configuration['_id']}/offerings"),
                    json={"endpoint": endpoint["_id"], "open": is_open},
                    action=f"la publication {config_type} de « {resource.name} »",
                )
            except Conflict:
                mine = next(
                    o
                    for o in self._offerings(configuration["_id"])
                    if o["endpoint"]["_id"] == endpoint["_id"]
                )
            offerings[key] = {
                "id": mine["_id"],
                "type": config_type,
                "layer_name": configuration["layer_name"],
                "endpoint": endpoint["_id"],
                "open": is_open,
                "urls": [],
                "status": mine.get("status"),
            }
            self.save(f"{config_type}:{resource.name}:offering_created")
        published = self._wait_published(mine["_id"], resource, config_type)
        if (configuration.get("tags") or {}).get("openig_synced") != data_digest:
            # §2.5: resynchronise after the data changed (PUT /offerings/{id}, no body).
            self.client.put(
                self.client.ds(f"/offerings/{mine['_id']}"),
                action=f"la resynchronisation {config_type} de « {resource.name} »",
            )
            published = self._wait_published(mine["_id"], resource, config_type)
            self.add_tags("configurations", configuration["_id"], {"openig_synced": data_digest})
        offerings[key] = {
            "id": published["_id"],
            "type": config_type,
            "layer_name": published.get("layer_name", configuration["layer_name"]),
            "endpoint": endpoint["_id"],
            "open": bool(published.get("open", is_open)),
            "urls": [item["url"] for item in published.get("urls") or [] if item.get("url")],
            "url_types": [item.get("type") for item in published.get("urls") or []],
            "status": published.get("status"),
        }
        self.save(f"{config_type}:{resource.name}:published")

    def _wait_published(self, offering_id: str, resource: ResourceFile, config_type: str) -> dict[str, Any]:
        offering = self.wait(
            f"la publication {config_type} de « {resource.name} »",
            lambda: self.detail("offerings", offering_id),
            # §2.5 step 13: poll until PUBLISHED; UNSTABLE means failure.
            lambda item: item.get("status") in ("PUBLISHED", "UNSTABLE"),
        )
        if offering.get("status") == "UNSTABLE":
            self.unpublish(offering)
            self.remote.get("offerings", {}).pop(f"{resource.name}:{config_type}", None)
            raise TransientConnectorError(
                f"La publication {config_type} de « {resource.name} » est instable sur la Géoplateforme ; "
                "elle a été retirée et sera recréée au prochain essai."
            )
        return offering

    # ----------------------------------------------------------------------------------------------- metadata

    def service_links(self) -> list[ServiceLink]:
        links = []
        for offering in (self.remote.get("offerings") or {}).values():
            types = offering.get("url_types") or [None] * len(offering.get("urls", []))
            for url, kind in zip(offering.get("urls", []), types, strict=False):
                protocol = URL_PROTOCOLS.get(str(kind)) if kind else None
                links.append(
                    ServiceLink(
                        url,
                        protocol or PROTOCOLS["LINK"],
                        offering.get("layer_name"),
                        f"Service {offering.get('type')} de la Géoplateforme",
                    )
                )
        return links

    def ensure_metadata(self) -> None:
        """Upload, update and publish the ISO 19139 record on the catalogue endpoint (§3)."""
        identifier = file_identifier(self.pid)
        links = self.service_links()
        record = iso19139_record(self.revision, links)
        digest = _fingerprint(iso19139_record(self.revision, links, date_stamp=_EPOCH).decode())
        kind = "INSPIRE" if self.revision.inspire_theme else "ISOAP"
        open_data = self.revision.access == "open"
        state = self.remote.setdefault("metadata", {})
        found = self.find("metadata", {}, file_identifier=identifier)
        metadata = self.detail("metadata", found[0]["_id"]) if found else None
        if metadata is None:
            try:
                metadata = self.client.post(
                    self.client.ds("/metadata"),
                    data={"type": kind, "open_data": "true" if open_data else "false"},
                    files=lambda: {"file": (f"{identifier}.xml", record, "application/xml")},
                    action="l'envoi de la fiche de métadonnées",
                )
            except Conflict as exc:
                raise PermanentConnectorError(
                    f"L'identifiant de fiche {identifier} est déjà pris hors de cet entrepôt Géoplateforme.",
                    fields={"file_identifier": identifier},
                ) from exc
            assert metadata is not None
            self.add_tags(
                "metadata", metadata["_id"], self._all_tags({**self.tags(), "openig_sha256": digest})
            )
            state.update(id=metadata["_id"], file_identifier=identifier, published=False)
            self.save("metadata:uploaded")
        else:
            state.update(id=metadata["_id"], file_identifier=identifier)
            if (metadata.get("tags") or {}).get("openig_sha256") != digest:
                # §3: PUT replaces the file; the file identifier does not change.
                self.client.put(
                    self.client.ds(f"/metadata/{metadata['_id']}"),
                    files=lambda: {"file": (f"{identifier}.xml", record, "application/xml")},
                    action="la mise à jour de la fiche de métadonnées",
                )
                self.add_tags(
                    "metadata",
                    metadata["_id"],
                    {"openig_sha256": digest, "datasheet_name": self.revision.title},
                )
                self.save("metadata:updated")
            if metadata.get("type") != kind or bool(metadata.get("open_data")) != open_data:
                self.client.patch(
                    self.client.ds(f"/metadata/{metadata['_id']}"),
                    json={"type": kind, "open_data": open_data},
                    action="la mise à jour des attributs de la fiche",
                )
        endpoint = self.endpoint("METADATA", True)
        current = self.detail("metadata", metadata["_id"])
        if not any(item.get("_id") == endpoint["_id"] for item in current.get("endpoints") or []):
            self.client.post(
                self.client.ds("/metadata/publication"),
                json={"file_identifiers": [identifier], "endpoint": endpoint["_id"]},
                action="la publication de la fiche dans le catalogue",
            )
        state.update(
            published=True,
            endpoint=endpoint["_id"],
            csw_url=self.bodies.csw_record_url(),
            type=kind,
            open_data=open_data,
        )
        self.save("metadata:published")

    # ------------------------------------------------------------------------------------------------ removal

    def remove_stale(self, plans: list[Plan]) -> None:
        """What this publication has on the platform and the revision no longer wants, in dependency order."""
        wanted_services = {
            (plan.resource.name, config_type) for plan in plans for config_type in plan.services
        }
        wanted_tracks = {
            (plan.resource.name, TRACK_OF[config_type]) for plan in plans for config_type in plan.services
        }
        wanted_tracks |= {(name, "vector") for name, track in wanted_tracks if track == "tiles"}
        wanted_styles = {plan.resource.name for plan in plans if "WMS-VECTOR" in plan.services}
        self._remove(wanted_services, wanted_tracks, wanted_styles)

    def _remove(
        self,
        wanted_services: set[tuple[str, str]],
        wanted_tracks: set[tuple[str, str]],
        wanted_styles: set[str],
        *,
        metadata: bool = False,
    ) -> None:
        resources = self.remote.setdefault("resources", {})
        offerings = self.remote.setdefault("offerings", {})
        stored_items = [
            self.detail("stored_data", item["_id"]) for item in self.find("stored_data", self.tags())
        ]
        doomed_stored = [
            item
            for item in stored_items
            if ((item.get("tags") or {}).get("openig_resource"), (item.get("tags") or {}).get("openig_track"))
            not in wanted_tracks
        ]
        # 1. running executions into data we drop (§2.6, [CGF] DatastoreCleanupWorkflow step 1)
        for stored in doomed_stored:
            running = self._running_execution(stored["_id"])
            if running is not None:
                self._abort(running)
        # 2. offerings, then 3. configurations once UNPUBLISHED
        configurations = [
            self.detail("configurations", item["_id"]) for item in self.find("configurations", self.tags())
        ]
        doomed = [
            item
            for item in configurations
            if ((item.get("tags") or {}).get("openig_resource"), item.get("type")) not in wanted_services
        ]
        for configuration in doomed:
            for offering in self._offerings(configuration["_id"]):
                self.unpublish(offering)
            name = (configuration.get("tags") or {}).get("openig_resource", "")
            offerings.pop(f"{name}:{configuration.get('type')}", None)
        if doomed:
            self.save("offerings:removed")
        for configuration in doomed:
            configuration_id = str(configuration["_id"])
            self.wait(
                "le retour de la configuration à l'état UNPUBLISHED",
                functools.partial(self._configuration_status, configuration_id),
                lambda status: status in (None, "UNPUBLISHED"),
            )
            self.delete("configurations", configuration["_id"], "la configuration")
            name = (configuration.get("tags") or {}).get("openig_resource", "")
            resources.get(name, {}).get("configurations", {}).pop(configuration.get("type"), None)
            self.save(f"{configuration.get('type')}:{name}:removed")
        # 4. the metadata record, unpublished first (withdrawal only)
        if metadata:
            self.remove_metadata()
        # 5. statics (styles) of resources that no longer have a WMS-VECTOR
        for item in self.client.list(
            self.client.ds("/statics"),
            action="la recherche des styles",
            params={"name": f"openig-{self.pid}-%"},
        ):
            name = str(item.get("name", ""))
            if not any(name.startswith(f"openig-{self.pid}-{slug(resource)}-") for resource in wanted_styles):
                self.delete("statics", item["_id"], "le style")
                for state in resources.values():
                    for family, static_id in list((state.get("statics") or {}).items()):
                        if static_id == item["_id"]:
                            state["statics"].pop(family)
        # 7. stored data, 8. uploads
        for stored in doomed_stored:
            self.delete("stored_data", stored["_id"], "la donnée stockée")
            tags = stored.get("tags") or {}
            resources.get(tags.get("openig_resource", ""), {}).get("stored_data", {}).pop(
                tags.get("openig_track"), None
            )
        if doomed_stored:
            self.save("stored_data:removed")
        for name in [name for name in resources if not any(name == wanted for wanted, _ in wanted_tracks)]:
            if not any(resources[name].get(key) for key in ("stored_data", "configurations", "statics")):
                resources.pop(name)

    def _configuration_status(self, configuration_id: str) -> str | None:
        try:
            return str(self.detail("configurations", configuration_id).get("status"))
        except NotFound:
            return None

    def withdraw(self) -> LedgerEntry:
        """Remove everything of this publication, in dependency order (§2.6)."""
        self.remote["datastore"] = self.client.datastore
        self._remove(set(), set(), set(), metadata=True)
        for item in self.find("uploads", self.tags()):
            self.delete("uploads", item["_id"], "la livraison")
        self.remote.pop("resources", None)
        self.remote["offerings"] = {}
        self.progress.state = "withdrawn"
        self.progress.urls = []
        self.save("withdrawn")
        logger.info("géoplateforme: publication %s withdrawn", self.pid)
        return self.progress.model_copy(deep=True)

    def remove_metadata(self) -> None:
        identifier = file_identifier(self.pid)
        for item in self.find("metadata", {}, file_identifier=identifier):
            metadata = self.detail("metadata", item["_id"])
            endpoints = [endpoint["_id"] for endpoint in metadata.get("endpoints") or []]
            for endpoint in endpoints:
                self.client.post(
                    self.client.ds("/metadata/unpublication"),
                    json={"file_identifiers": [identifier], "endpoint": endpoint},
                    action="le retrait de la fiche du catalogue",
                )
            if endpoints:
                self.save("metadata:unpublished")
            self.delete("metadata", metadata["_id"], "la fiche de métadonnées")
        self.remote.pop("metadata", None)
        self.save("metadata:removed")


def _flatten(tree: Any, prefix: str = "") -> list[tuple[str, int]]:
    """``/tree`` entries as (path, size) pairs."""
    entries: list[tuple[str, int]] = []
    for item in tree or []:
        path = f"{prefix}{item.get('name')}"
        if item.get("type") == "DIRECTORY":
            entries.extend(_flatten(item.get("children"), f"{path}/"))
        else:
            entries.append((path, int(item.get("size") or 0)))
    return entries
