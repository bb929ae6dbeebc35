"""PublicationRevision -> data.gouv.fr (udata 17) payloads. Pure functions, no I/O.

Facts come from ``research/datagouv-api.md`` (§ numbers below) and udata's code (``opendatateam/udata`` @
25b5a2d). What the research marks UNCONFIRMED is marked so here.
"""

from __future__ import annotations

import ipaddress
import os
import re
import unicodedata
from typing import Any, Literal
from urllib.parse import urlsplit

from connectors.base import Contact, PublicationRevision, ResourceFile, Temporal

# Namespaced extras keys (research §4 "Extras": not check:*, analysis:*, dcat, custom:*; no "." or "$").
PUBLICATION_KEY = "openig-broker:publication-id"
REVISION_KEY = "openig-broker:revision"
RESOURCE_KEY = "openig-broker:resource"  # {"name": ..., "sha256": ...} on each resource the broker owns
SERVICE_KEY = "openig-broker:service"  # the service URL, on each service link the broker owns

TAG_MIN_LENGTH, TAG_MAX_LENGTH = 3, 96  # udata settings TAG_MIN_LENGTH / TAG_MAX_LENGTH (research §2)
TITLE_MAX_LENGTH = 350  # TITLE_SIZE_LIMIT
DESCRIPTION_MAX_LENGTH = 100_000  # DESCRIPTION_SIZE_LIMIT
QUALITY_DESCRIPTION_LENGTH = 100  # the quality score wants a description over 100 characters (research §4)

# Licence ids of the production front end (research §4). The table lives in data.gouv.fr's database, so an
# id outside this list is only a warning: the server has the last word.
LICENSES: frozenset[str] = frozenset(
    {
        "lov2",
        "fr-lo",
        "odc-odbl",
        "odc-by",
        "odc-pddl",
        "cc-by",
        "cc-by-sa",
        "cc-zero",
        "other-at",
        "other-open",
        "other-pd",
        "notspecified",
    }
)
# What producers write in manifests (SPDX ids, French names) -> data.gouv.fr licence ids.
LICENSE_ALIASES: dict[str, str] = {
    "etalab-2.0": "lov2",
    "etalab2": "lov2",
    "lo-2.0": "lov2",
    "lo2": "lov2",
    "licence-ouverte": "lov2",
    "licence-ouverte-2-0": "lov2",
    "licence-ouverte-v2-0": "lov2",
    "licence-ouverte-open-licence-version-2-0": "lov2",
    "etalab-1.0": "fr-lo",
    "licence-ouverte-1-0": "fr-lo",
    "odbl": "odc-odbl",
    "odbl-1.0": "odc-odbl",
    "odc-by-1.0": "odc-by",
    "pddl": "odc-pddl",
    "pddl-1.0": "odc-pddl",
    "cc-by-4.0": "cc-by",
    "cc-by-3.0": "cc-by",
    "cc-by-sa-4.0": "cc-by-sa",
    "cc-by-sa-3.0": "cc-by-sa",
    "cc0": "cc-zero",
    "cc0-1.0": "cc-zero",
    "domaine-public": "other-pd",
}

# udata 17 UpdateFrequency ids, EU vocabulary (research §4). UNCONFIRMED which list production serves (§8).
FREQUENCIES: frozenset[str] = frozenset(
    {
        "continuous",
        "oneMinute",
        "fiveMinutes",
        "tenMinutes",
        "fifteenMinutes",
        "thirtyMinutes",
        "hourly",
        "bihourly",
        "trihourly",
        "twelveHours",
        "severalTimesADay",
        "threeTimesADay",
        "semidaily",
        "daily",
        "fiveTimesAWeek",
        "threeTimesAWeek",
        "semiweekly",
        "weekly",
        "biweekly",
        "threeTimesAMonth",
        "semimonthly",
        "monthly",
        "bimonthly",
        "quarterly",
        "threeTimesAYear",
        "semiannual",
        "annual",
        "biennial",
        "triennial",
        "quadrennial",
        "quinquennial",
        "decennial",
        "bidecennial",
        "tridecennial",
        "punctual",
        "irregular",
        "never",
        "notPlanned",
        "other",
        "unknown",
    }
)
# Legacy udata ids (accepted by the server, research §2), ISO 19115 MD_MaintenanceFrequencyCode and French
# words producers use -> udata 17 ids. Keys are compared slugified, without dashes.
FREQUENCY_ALIASES: dict[str, str] = {
    "realtime": "continuous",
    "continual": "continuous",
    "temps-reel": "continuous",
    "en-continu": "continuous",
    "fourtimesaday": "severalTimesADay",
    "fourtimesaweek": "other",
    "fortnighly": "biweekly",
    "fortnightly": "biweekly",
    "biannual": "semiannual",
    "biannually": "semiannual",
    "annually": "annual",
    "asneeded": "punctual",
    "quotidienne": "daily",
    "quotidien": "daily",
    "journaliere": "daily",
    "hebdomadaire": "weekly",
    "bimensuelle": "semimonthly",
    "mensuelle": "monthly",
    "mensuel": "monthly",
    "bimestrielle": "bimonthly",
    "trimestrielle": "quarterly",
    "trimestriel": "quarterly",
    "semestrielle": "semiannual",
    "semestriel": "semiannual",
    "annuelle": "annual",
    "annuel": "annual",
    "biennale": "biennial",
    "ponctuelle": "punctual",
    "ponctuel": "punctual",
    "irreguliere": "irregular",
    "irregulier": "irregular",
    "jamais": "never",
    "non-planifiee": "notPlanned",
    "inconnue": "unknown",
}

# udata 17.6 ALLOWED_ARCHIVE_EXTENSIONS + ALLOWED_RESOURCES_EXTENSIONS defaults (udata settings.py).
# Production may override them (research §3, §7.8, §8): GET /api/1/datasets/extensions/ is the authority.
ARCHIVE_EXTENSIONS: frozenset[str] = frozenset({"tar", "gz", "tgz", "rar", "zip", "7z", "xz", "bz2"})
ALLOWED_EXTENSIONS: frozenset[str] = ARCHIVE_EXTENSIONS | frozenset(
    {
        "csv",
        "txt",
        "json",
        "pdf",
        "xml",
        "rtf",
        "xsd",
        "ods",
        "odt",
        "odp",
        "odg",
        "xls",
        "xlsx",
        "doc",
        "docx",
        "pps",
        "ppt",
        "jpeg",
        "jpg",
        "jpe",
        "gif",
        "png",
        "dwg",
        "svg",
        "tiff",
        "ecw",
        "svgz",
        "jp2",
        "webp",
        "shp",
        "kml",
        "kmz",
        "gpx",
        "shx",
        "ovr",
        "geojson",
        "gpkg",
        "grib2",
        "rdf",
        "ttl",
        "n3",
        "dbf",
        "prj",
        "sql",
        "sqlite",
        "db",
        "epub",
        "sbn",
        "sbx",
        "cpg",
        "lyr",
        "owl",
        "dxf",
    }
)

URL_SCHEMES = ("http", "https", "ftp", "ftps")  # URLS_ALLOWED_SCHEMES (research §3)
# Reserved or private-use names that cannot be in URLS_ALLOWED_TLDS (the IANA list).
_LOCAL_TLDS = frozenset(
    {"local", "localdomain", "internal", "lan", "home", "corp", "test", "invalid", "example"}
)

ResourceKind = Literal["main", "documentation", "update", "api", "code", "other"]

# Letters NFKD cannot split into ASCII; python-slugify (text-unidecode), which udata uses, spells them out.
_TRANSLITERATE = str.maketrans(
    {"œ": "oe", "Œ": "OE", "æ": "ae", "Æ": "AE", "ß": "ss", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L"}
)


# --------------------------------------------------------------------------------------------- text


def slugify(value: str) -> str:
    """python-slugify as udata's ``tags.slug`` calls it: transliterate, lowercase, other runs -> ``-``."""
    folded = unicodedata.normalize("NFKD", value.translate(_TRANSLITERATE)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", folded.lower()).strip("-")


def map_tags(keywords: tuple[str, ...] | list[str]) -> tuple[list[str], list[str]]:
    """(tags to send, keywords dropped). Tags are slugified lowercase and deduplicated in order.

    udata refuses a whole payload when one tag is shorter than 3 or longer than 96 characters after slugifying
    (``TagField.pre_validate``, research §2): short ones are dropped, long ones truncated at 96 as udata's own
    ``tags.normalize`` does.
    """
    kept: list[str] = []
    dropped: list[str] = []
    for keyword in keywords:
        tag = slugify(keyword)
        if len(tag) > TAG_MAX_LENGTH:
            tag = tag[:TAG_MAX_LENGTH].rstrip("-")
        if len(tag) < TAG_MIN_LENGTH:
            dropped.append(keyword)
        elif tag not in kept:
            kept.append(tag)
    return kept, dropped


# --------------------------------------------------------------------------------------------- vocabularies


def map_license(value: str | None) -> str | None:
    """The data.gouv.fr licence id for a manifest's licence; ids and unknown values pass through."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text in LICENSES:
        return text
    return _LICENSE_KEYS.get(slugify(text), text)


def _squash(value: str) -> str:
    return slugify(value).replace("-", "")


def map_frequency(value: str | None) -> str | None:
    """The udata 17 frequency id for a manifest's frequency; None when absent; unknown values pass through."""
    if not value or not value.strip():
        return None
    text = value.strip()
    if text in FREQUENCIES:
        return text
    return _FREQUENCY_KEYS.get(_squash(text), text)


_LICENSE_KEYS = {slugify(k): v for k, v in LICENSE_ALIASES.items()} | {slugify(v): v for v in LICENSES}
_FREQUENCY_KEYS = {_squash(k): v for k, v in FREQUENCY_ALIASES.items()} | {_squash(f): f for f in FREQUENCIES}


def map_temporal(temporal: Temporal | None) -> dict[str, str | None] | None:
    """``temporal_coverage`` ``{"start", "end"}``; udata's DateRangeField needs a start (research §2)."""
    if temporal is None or temporal.start is None:
        return None
    return {"start": temporal.start.isoformat(), "end": temporal.end.isoformat() if temporal.end else None}


GEOID = re.compile(r"^(country-group|country-subset|country|fr:[a-z]+):[0-9a-z]+$")


def normalize_zone(zone: str) -> str | None:
    """A geoid as udata resolves it (``geoids.parse``): ``@date`` dropped, lowercase, ``/`` -> ``:``."""
    text = zone.strip().split("@", 1)[0].lower().replace("/", ":")
    return text if GEOID.match(text) else None


def bbox_geom(extent: tuple[float, float, float, float] | None) -> dict[str, Any] | None:
    """A WGS84 bbox (west, south, east, north) as the GeoJSON MultiPolygon udata stores (research §2)."""
    if extent is None:
        return None
    west, south, east, north = extent
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
        return None
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "MultiPolygon", "coordinates": [[ring]]}


def map_spatial(revision: PublicationRevision) -> dict[str, Any]:
    """Zones when the manifest names them, else the extent as a geometry: udata refuses both at once.

    Both keys are always sent so a change of kind clears the other one.
    """
    zones = [z for z in (normalize_zone(zone) for zone in revision.spatial_zones) if z]
    if zones:
        return {"zones": zones, "geom": None}
    return {"zones": [], "geom": bbox_geom(revision.extent_wgs84)}


# --------------------------------------------------------------------------------------------- datasets


def contact_payload(
    contact: Contact | None, organization_name: str, organization_id: str
) -> dict[str, Any] | None:
    """A contact point (``POST /api/1/contacts/``, research §2): role ``contact`` needs an email."""
    if contact is None or not contact.email:
        return None
    return {
        "name": (contact.name or organization_name).strip()[:255],
        "email": contact.email.strip(),
        "role": "contact",
        "organization": organization_id,
    }


def dataset_payload(
    revision: PublicationRevision,
    *,
    private: bool,
    contact_point: str | None = None,
    organization_id: str | None = None,
    create: bool = False,
) -> dict[str, Any]:
    """The dataset body for ``POST /datasets/`` (``create``) or ``PUT /datasets/{id}/``.

    ``private`` is sent on every write (research §2 "private", §7.4). ``organization`` and the broker's extras
    are only sent on create: the organization cannot change afterwards (400), and a PUT carrying ``extras``
    would replace every extra, including the ones data.gouv.fr's own tools write (research §2 "Update
    semantics", §4). Updates of the broker's keys go through the v2 extras endpoint instead.
    """
    tags, _ = map_tags(revision.keywords)
    restricted = revision.access == "restricted"
    payload: dict[str, Any] = {
        "title": revision.title.strip(),
        "description": revision.description,
        "tags": tags,
        "frequency": map_frequency(revision.frequency) or "unknown",
        "temporal_coverage": map_temporal(revision.temporal),
        "spatial": map_spatial(revision),
        "private": private,
        # Restricted publications: metadata only, with the regional access-request flow (peers §12.7).
        "access_type": "restricted" if restricted else "open",
        "authorization_request_url": revision.access_request_url if restricted else None,
        # data.gouv.fr forces the licence to null when access_type is not open (Dataset.clean, research §2).
        "license": None if restricted else map_license(revision.license),
        # `[]` does NOT clear contact points on udata, null does (research §2).
        "contact_points": [contact_point] if contact_point else None,
    }
    if create:
        if organization_id:
            payload["organization"] = organization_id
        payload["extras"] = broker_extras(revision)
    return payload


def broker_extras(revision: PublicationRevision) -> dict[str, Any]:
    return {PUBLICATION_KEY: revision.publication_id, REVISION_KEY: revision.revision}


# --------------------------------------------------------------------------------------------- resources

_DOCUMENT_KINDS = {"document", "documentation"}


def resource_type(resource: ResourceFile) -> ResourceKind:
    """Resource ``type``: sent explicitly, the form and the model disagree on the default (research §3)."""
    if (resource.kind or "").lower() in _DOCUMENT_KINDS:
        return "documentation"
    if (resource.kind or "").lower() in ("api", "service"):
        return "api"
    return "main"


def resource_marker(resource: ResourceFile) -> dict[str, Any]:
    return {"name": resource.name, "sha256": resource.sha256}


def resource_title(resource: ResourceFile) -> str:
    return (resource.title or resource.name).strip()[:TITLE_MAX_LENGTH]


def hosted_metadata(resource: ResourceFile, existing_extras: dict[str, Any] | None = None) -> dict[str, Any]:
    """The PUT that follows every upload: uploads overwrite the title with the file name (research §3).

    The resource's other extras (``check:*`` and ``analysis:*`` written by data.gouv.fr's crawler) are kept:
    a resource PUT replaces the extras dict.
    """
    return {
        "title": resource_title(resource),
        "description": resource.description or "",
        "type": resource_type(resource),
        "extras": {**(existing_extras or {}), RESOURCE_KEY: resource_marker(resource)},
    }


def remote_payload(
    resource: ResourceFile, url: str, existing_extras: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A remote resource (``filetype: remote`` is mandatory on ``POST .../resources/``, research §3)."""
    payload: dict[str, Any] = {
        "title": resource_title(resource),
        "description": resource.description or "",
        "url": url,
        "filetype": "remote",
        "type": resource_type(resource),
        "format": (resource.format or file_extension(resource.name) or "").lower() or None,
        "extras": {**(existing_extras or {}), RESOURCE_KEY: resource_marker(resource)},
    }
    if resource.media_type:
        payload["mime"] = resource.media_type
    if resource.size is not None:
        payload["filesize"] = resource.size
    if resource.sha256:
        payload["checksum"] = {"type": "sha256", "value": resource.sha256}
    return payload


def service_payload(
    title: str, url: str, fmt: str, existing_extras: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A Géoplateforme (or other) service link: a remote resource of type ``api``."""
    return {
        "title": title.strip()[:TITLE_MAX_LENGTH],
        "description": "",
        "url": url,
        "filetype": "remote",
        "type": "api",
        "format": fmt.strip().lower() or None,
        "extras": {**(existing_extras or {}), SERVICE_KEY: url},
    }


def stored_filename(name: str) -> str:
    """The file name data.gouv.fr stores an upload under (udata ``storages.utils.normalize``, dots kept)."""
    folded = unicodedata.normalize("NFKD", name.translate(_TRANSLITERATE)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9.]+", "-", folded.lower()).strip("-")


def file_extension(name: str) -> str | None:
    """The last extension of a file name, lowercase, without the dot."""
    ext = os.path.splitext(name)[1]
    return ext[1:].lower() if ext else None


def upload_allowed(name: str) -> bool:
    """flask-storage checks the *last* extension against ALLOWED_RESOURCES_EXTENSIONS (research §3)."""
    return (file_extension(name) or "") in ALLOWED_EXTENSIONS


def url_problem(url: str, *, allow_local: bool = False) -> str | None:
    """Why data.gouv.fr would refuse ``url`` for a remote resource (udata ``uris.validate``), in French."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "URL mal formée"
    if parts.scheme.lower() not in URL_SCHEMES or not host:
        return "seules les URL http, https, ftp et ftps complètes sont acceptées"
    if parts.username or parts.password:
        return "les identifiants dans l'URL sont refusés"
    if allow_local:
        return None
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if host in ("localhost", "localhost.localdomain"):
            return "adresse locale"
        if "." not in host or host.rsplit(".", 1)[-1] in _LOCAL_TLDS:
            return "nom d'hôte sans domaine public"
        return None
    if ip.is_loopback:
        return "adresse locale"
    if ip.is_private or ip.is_link_local or ip.is_reserved or ip.is_unspecified or ip.is_multicast:
        return "adresse privée"
    return None
