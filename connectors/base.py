"""The connector contract: what the broker hands a target, what it gets back, and how failures are told.

Connector errors::

    ConnectorError
    ├── TransientConnectorError      retry later (timeouts, 429, 5xx, 423); may carry ``retry_after``
    └── PermanentConnectorError      retrying will not help; the producer or staff must act
        ├── ConnectorConfigurationError   bad or missing credentials, endpoint refused us (401/403)
        └── RemoteGoneError               the ledger points at something deleted remotely (404/410)

A connector is framework-free: it never imports fastapi or the broker, never reads broker settings or the
broker's database. It receives a :class:`PublicationRevision` and the target's :class:`LedgerEntry`
and returns the new ledger entry. Every step must be idempotent (find by the broker id stored remotely
before creating) and report progress through ``checkpoint`` so that a killed worker resumes where it was.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- errors


class ConnectorError(Exception):
    """Base class of every error a connector raises."""

    def __init__(self, message: str, *, fields: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class TransientConnectorError(ConnectorError):
    """The remote side may succeed later: retry with backoff, honouring ``retry_after`` (seconds)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, fields: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message, fields=fields)
        self.retry_after = retry_after


class PermanentConnectorError(ConnectorError):
    """Retrying will not help; the message tells the producer what to change."""


class ConnectorConfigurationError(PermanentConnectorError):
    """Credentials or endpoints are wrong or missing: staff must act, not the producer."""


class RemoteGoneError(PermanentConnectorError):
    """An id from the ledger no longer exists remotely (404/410): the ledger needs repair."""


class UnknownConnectorError(LookupError):
    """No connector is registered under that name."""


# --------------------------------------------------------------------------------------------- payload


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Contact(Frozen):
    name: str | None = None
    email: str | None = None


class Temporal(Frozen):
    start: date | None = None
    end: date | None = None


class ResourceFile(Frozen):
    """One resource of a revision, as a connector sees it."""

    name: str = Field(description="File name (sanitised) or the URL's last segment.")
    title: str | None = None
    description: str | None = None
    url: str | None = Field(None, description="Remote resources: the producer's URL.")
    path: Path | None = Field(None, description="Hosted resources: where the broker keeps the bytes.")
    sha256: str | None = None
    size: int | None = None
    media_type: str | None = None
    format: str | None = Field(None, description="Short format id: gpkg, geojson, shp, csv, tif, pdf…")
    kind: str | None = Field(None, description="vector, raster, table, gtfs, document, archive…")
    crs: str | None = Field(None, description="EPSG:xxxx when known.")
    extent_wgs84: tuple[float, float, float, float] | None = None
    inspection: dict[str, Any] = Field(default_factory=dict)
    download_url: str | None = Field(
        None, description="The broker's regional download URL for this resource, when it has one."
    )


class OrganizationRef(Frozen):
    id: str
    slug: str
    name: str
    remote: dict[str, Any] = Field(
        default_factory=dict, description="Per-target ids of the organisation (data.gouv.fr org id…)."
    )


class PublicationRevision(Frozen):
    """Everything a target needs to publish one revision; built by the broker from its database."""

    publication_id: str
    revision: int
    organization: OrganizationRef
    title: str
    description: str = ""
    license: str | None = None
    keywords: tuple[str, ...] = ()
    frequency: str | None = None
    temporal: Temporal | None = None
    contact: Contact | None = None
    access: Literal["open", "restricted"] = "open"
    restricted_users: tuple[str, ...] = ()
    restricted_organizations: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    portals: tuple[str, ...] = ()
    spatial_zones: tuple[str, ...] = ()
    inspire_theme: str | None = None
    extent_wgs84: tuple[float, float, float, float] | None = None
    resources: tuple[ResourceFile, ...] = ()
    needs: tuple[str, ...] = Field((), description="Needs routed to this target by the decision.")
    public_url: str | None = Field(None, description="The broker's public base URL.")
    access_request_url: str | None = None
    landing_url: str | None = None


class LedgerEntry(BaseModel):
    """A publication's identity on one target. Connectors return a new one; the broker stores it."""

    model_config = ConfigDict(extra="forbid")

    remote: dict[str, Any] = Field(default_factory=dict, description="Remote ids, by entity.")
    urls: list[str] = Field(default_factory=list, description="Public URLs (pages, downloads, services).")
    revision: int | None = Field(None, description="The revision last delivered in full.")
    step: str | None = Field(None, description="Last completed step of a multi-step delivery.")
    state: Literal["absent", "present", "withdrawn"] = "absent"


class PreflightProblem(Frozen):
    """One reason a target cannot (fully) take a revision, found before anything is sent."""

    target: str
    resource: str | None = None
    severity: Literal["error", "warning"] = "error"
    code: str
    message: str


class RemoteDrift(Frozen):
    kind: str = Field(description="missing, extra, stale, deleted…")
    entity: str
    message: str


class RemoteState(Frozen):
    exists: bool
    drift: tuple[RemoteDrift, ...] = ()
    remote: dict[str, Any] = Field(default_factory=dict)


Checkpoint = Callable[[LedgerEntry], None]
"""Called by a connector after each completed step; the broker persists the entry at once and may
raise :class:`Superseded` to stop at a step boundary."""


class Superseded(Exception):
    """Raised from ``checkpoint`` when a newer revision replaced the one being delivered."""


# --------------------------------------------------------------------------------------------- base


class ConnectorConfig(BaseModel):
    """Base of every connector's configuration; each connector declares its own subclass."""

    model_config = ConfigDict(frozen=True, extra="forbid")


ConfigT = TypeVar("ConfigT", bound=ConnectorConfig)


def _no_checkpoint(_: LedgerEntry) -> None:
    return None


class BaseConnector(abc.ABC, Generic[ConfigT]):
    """A delivery target. Treat an instance as a singleton per configuration."""

    name: ClassVar[str]
    title: ClassVar[str]
    config_model: ClassVar[type[ConnectorConfig]]

    def __init__(self, config: ConfigT) -> None:
        self.config = config

    @abc.abstractmethod
    def publish(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        """Bring ``revision`` to the target for the first time (or finish a half-done first time)."""

    @abc.abstractmethod
    def update(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        """Bring a newer revision of an already delivered publication."""

    @abc.abstractmethod
    def withdraw(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        """Remove the publication from the target, in dependency order."""

    @abc.abstractmethod
    def inspect_remote(self, revision: PublicationRevision, ledger: LedgerEntry) -> RemoteState:
        """Compare the ledger with what the target holds, without changing anything."""

    def preflight(self, revision: PublicationRevision) -> list[PreflightProblem]:
        """Every reason this target cannot take ``revision``, found without sending anything."""
        return []

    def base_url(self) -> str | None:
        """The base URL this connector calls, for ``GET /api/v1/targets``."""
        return None
