"""What a file is, told by its bytes: format ids, signatures, the refusal raised at intake, and CRS helpers.

Everything here is shared by the per-family inspectors (``vector``, ``raster``, ``tabular``, ``gtfs``,
``archives``) and by the per-target rules in ``preflight``. Detection is by content, never by the name
alone: a name that lies about its content is refused (research ``peers.md`` §10, complaint 6: broken
files accepted and failing later).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from broker.errors import InvalidInput

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------- refusal


class IntakeRefused(InvalidInput):
    """A file the broker will not take: the API answers 422 with the file name as the field key."""

    def __init__(self, name: str, reason: str, code: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(reason, fields={name: [reason]}, code=code)
        self.name = name
        self.reason = reason
        self.details = details or {}


# --------------------------------------------------------------------------------------------- formats


@dataclass(frozen=True)
class FormatInfo:
    kind: str
    media_type: str
    label: str  # French, with its article: "un GeoPackage"


# The format ids the broker stores on a resource (``Resource.format``) and what they mean.
FORMATS: dict[str, FormatInfo] = {
    "gpkg": FormatInfo("vector", "application/geopackage+sqlite3", "un GeoPackage"),
    "geojson": FormatInfo("vector", "application/geo+json", "un GeoJSON"),
    "shp": FormatInfo("vector", "application/x-shapefile", "un Shapefile"),
    "fgb": FormatInfo("vector", "application/flatgeobuf", "un FlatGeobuf"),
    "csv": FormatInfo("table", "text/csv", "un fichier CSV"),
    "json": FormatInfo("table", "application/json", "un document JSON"),
    "gtfs": FormatInfo("gtfs", "application/zip", "un flux GTFS"),
    "tif": FormatInfo("raster", "image/tiff; application=geotiff", "un GeoTIFF"),
    # OGC 21-026 registers this media type for Cloud Optimized GeoTIFF.
    "cog": FormatInfo("raster", "image/tiff; application=geotiff; profile=cloud-optimized", "un COG"),
    "jp2": FormatInfo("raster", "image/jp2", "une image JPEG 2000"),
    "pdf": FormatInfo("document", "application/pdf", "un PDF"),
    "png": FormatInfo("image", "image/png", "une image PNG"),
    "jpg": FormatInfo("image", "image/jpeg", "une image JPEG"),
    "gif": FormatInfo("image", "image/gif", "une image GIF"),
    "zip": FormatInfo("archive", "application/zip", "une archive ZIP"),
}

# What the bytes say, before any deeper inspection ("content families").
CONTENT_LABELS: dict[str, str] = {
    "pdf": "un PDF",
    "png": "une image PNG",
    "jpeg": "une image JPEG",
    "gif": "une image GIF",
    "zip": "une archive ZIP",
    "gzip": "une archive gzip",
    "bzip2": "une archive bzip2",
    "xz": "une archive xz",
    "7z": "une archive 7-Zip",
    "rar": "une archive RAR",
    "gpkg": "un GeoPackage",
    "fgb": "un FlatGeobuf",
    "sqlite": "une base SQLite (pas un GeoPackage)",
    "tiff": "une image TIFF",
    "jp2": "une image JPEG 2000",
    "shp": "un fichier .shp/.shx de Shapefile",
    "dbf": "une table dBase (.dbf)",
    "json": "un document JSON",
    "geojson": "un GeoJSON",
    "html": "une page HTML",
    "xml": "un document XML",
    "text": "un fichier texte",
    "binary": "un fichier binaire non reconnu",
}

# Extension -> the content families a file with that extension may hold. Extensions absent from this
# table are not checked: the broker cannot say they lie.
EXPECTED_CONTENT: dict[str, frozenset[str]] = {
    "pdf": frozenset({"pdf"}),
    "png": frozenset({"png"}),
    "jpg": frozenset({"jpeg"}),
    "jpeg": frozenset({"jpeg"}),
    "jpe": frozenset({"jpeg"}),
    "gif": frozenset({"gif"}),
    "zip": frozenset({"zip"}),
    # Office Open XML, OpenDocument and KMZ are ZIP containers (ECMA-376 Part 2, ODF 1.2 Part 3).
    **{ext: frozenset({"zip"}) for ext in ("docx", "xlsx", "pptx", "odt", "ods", "odp", "odg", "kmz")},
    "gz": frozenset({"gzip"}),
    "tgz": frozenset({"gzip"}),
    "bz2": frozenset({"bzip2"}),
    "xz": frozenset({"xz"}),
    "7z": frozenset({"7z"}),
    "rar": frozenset({"rar"}),
    "gpkg": frozenset({"gpkg"}),
    "fgb": frozenset({"fgb"}),
    "sqlite": frozenset({"gpkg", "sqlite"}),
    "tif": frozenset({"tiff"}),
    "tiff": frozenset({"tiff"}),
    "jp2": frozenset({"jp2"}),
    "j2k": frozenset({"jp2"}),
    "shp": frozenset({"shp"}),
    "shx": frozenset({"shp"}),
    "dbf": frozenset({"dbf"}),
    "geojson": frozenset({"geojson"}),
    "json": frozenset({"json", "geojson"}),
    "csv": frozenset({"text"}),
    "tsv": frozenset({"text"}),
    "txt": frozenset({"text", "json", "geojson", "xml"}),
    "prj": frozenset({"text"}),
    "cpg": frozenset({"text"}),
    "xml": frozenset({"xml"}),
    "kml": frozenset({"xml"}),
    "gml": frozenset({"xml"}),
    "gpx": frozenset({"xml"}),
    "html": frozenset({"html"}),
    "htm": frozenset({"html"}),
}

# What a producer expects a file with this extension to be, for the "lies about its type" message.
EXTENSION_LABELS: dict[str, str] = {
    "geojson": "un GeoJSON",
    "json": "un document JSON",
    "gpkg": "un GeoPackage",
    "fgb": "un FlatGeobuf",
    "sqlite": "une base SQLite",
    "csv": "un fichier CSV",
    "tsv": "un fichier texte tabulé",
    "txt": "un fichier texte",
    "tif": "une image TIFF",
    "tiff": "une image TIFF",
    "jp2": "une image JPEG 2000",
    "j2k": "une image JPEG 2000",
    "shp": "un Shapefile",
    "shx": "un index de Shapefile (.shx)",
    "dbf": "une table dBase",
    "zip": "une archive ZIP",
    "kmz": "un KMZ",
    "pdf": "un PDF",
    "png": "une image PNG",
    "jpg": "une image JPEG",
    "jpeg": "une image JPEG",
}

# Shapefile parts (ESRI Shapefile Technical Description, 1998): .shp, .shx and .dbf are mandatory.
SHAPEFILE_REQUIRED = ("shx", "dbf")
SHAPEFILE_PARTS = ("shp", "shx", "dbf", "prj", "cpg", "qix", "sbn", "sbx", "fix", "shp.xml")
WORLD_FILE_PARTS = ("tfw", "tifw", "tiffw", "wld", "j2w", "aux.xml", "prj")

# --------------------------------------------------------------------------------------------- targets

# data.gouv.fr hosted uploads: udata refuses any other extension with 400 "This file type is not
# allowed" (research datagouv-api.md §3 and §7.8). Source: opendatateam/udata `udata/settings.py`
# `ALLOWED_RESOURCES_EXTENSIONS` (= `ALLOWED_ARCHIVE_EXTENSIONS` + the rest), commit 25b5a2dd (2026-08).
# Production may override it (research §8): `GET /api/1/datasets/extensions/` is the live truth.
# Note: "tif" is NOT in the list, only "tiff".
DATAGOUV_ARCHIVE_EXTENSIONS: frozenset[str] = frozenset({"tar", "gz", "tgz", "rar", "zip", "7z", "xz", "bz2"})
DATAGOUV_ALLOWED_EXTENSIONS: frozenset[str] = DATAGOUV_ARCHIVE_EXTENSIONS | frozenset(
    {
        # Base
        "csv", "txt", "json", "pdf", "xml", "rtf", "xsd",
        # OpenOffice
        "ods", "odt", "odp", "odg",
        # Microsoft Office
        "xls", "xlsx", "doc", "docx", "pps", "ppt",
        # Images
        "jpeg", "jpg", "jpe", "gif", "png", "dwg", "svg", "tiff", "ecw", "svgz", "jp2", "webp",
        # Geo
        "shp", "kml", "kmz", "gpx", "shx", "ovr", "geojson", "gpkg",
        # Meteorology
        "grib2",
        # RDF
        "rdf", "ttl", "n3",
        # Misc
        "dbf", "prj", "sql", "sqlite", "db", "epub", "sbn", "sbx", "cpg", "lyr", "owl", "dxf", "ics", "ssim",
        "other",
    }
)  # fmt: skip
# The official front end cuts uploads in 20,000,000-byte parts and only above that size (research §3,
# cdata `resourceFileUploadChunk`).
DATAGOUV_CHUNK_BYTES = 20_000_000

# Géoplateforme (research geoplateforme-api.md §4); FlatGeobuf is checked and integrated since 2026-07.
GEOPLATEFORME_VECTOR_FORMATS = frozenset({"gpkg", "geojson", "shp", "csv", "fgb"})
GEOPLATEFORME_RASTER_FORMATS = frozenset({"tif", "cog", "jp2"})
# CSV: the geometry column must bear one of these names, or the coordinates lon/x/longitude + lat/y/latitude.
GEOPLATEFORME_CSV_GEOMETRY_NAMES = frozenset({"json", "geom", "the_geom", "wkb", "wkt"})
GEOPLATEFORME_CSV_X_NAMES = frozenset({"lon", "x", "longitude"})
GEOPLATEFORME_CSV_Y_NAMES = frozenset({"lat", "y", "latitude"})
# cartes.gouv.fr caps: 2 GB per upload, 1 GB per zip entry, 10,000 files per zip (IGNF/cartes.gouv.fr
# `UploadValidationService.php` MAX_UPLOAD_SIZE_BYTES = 2000000000, `ZipFormatHandler.php`). These are the
# interface's caps; the Entrepôt API documents none (UNCONFIRMED), so the broker keeps to them.
GEOPLATEFORME_MAX_BYTES = 2_000_000_000
GEOPLATEFORME_MAX_ZIP_ENTRY_BYTES = 1_000_000_000
GEOPLATEFORME_MAX_ZIP_FILES = 10_000
# PostgreSQL truncates identifiers to NAMEDATALEN - 1 = 63 bytes; the Géoplateforme stores vectors there.
POSTGRES_MAX_IDENTIFIER = 63


# --------------------------------------------------------------------------------------------- names


def extension_of(name: str) -> str:
    """Lower-case last extension, without the dot; "" when there is none (".bashrc" has none)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in base.lstrip("."):
        return ""
    return base.rsplit(".", 1)[-1].lower()


def stem_of(name: str) -> str:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    ext = extension_of(base)
    return base[: -len(ext) - 1] if ext else base


def human_size(size: int) -> str:
    if size >= 1_000_000_000:
        return f"{size / 1_000_000_000:.1f} Go".replace(".", ",")
    if size >= 1_000_000:
        return f"{size / 1_000_000:.1f} Mo".replace(".", ",")
    if size >= 1_000:
        return f"{size / 1_000:.1f} ko".replace(".", ",")
    return f"{size} octets"


# --------------------------------------------------------------------------------------------- signatures

PDF_MAGIC = b"%PDF-"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGICS = (b"PK\x03\x04", b"PK\x05\x06")  # local file header; empty archive (APPNOTE 4.3.7, 4.3.16)
SQLITE_MAGIC = b"SQLite format 3\x00"
TIFF_MAGICS = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # TIFF 6.0 and BigTIFF
JP2_MAGIC = b"\x00\x00\x00\x0cjP  \r\n\x87\n"  # ISO/IEC 15444-1 Annex I, signature box
J2K_MAGIC = b"\xff\x4f\xff\x51"  # raw codestream: SOC + SIZ markers
SHP_MAGIC = b"\x00\x00\x27\x0a"  # file code 9994, big endian
FGB_MAGIC = b"fgb\x03fgb"  # FlatGeobuf 3.x: "fgb", major version, "fgb", patch version
DBF_VERSIONS = frozenset({0x02, 0x03, 0x04, 0x05, 0x30, 0x31, 0x43, 0x63, 0x83, 0x8B, 0x8E, 0xCB, 0xF5, 0xFB})
# GeoPackage 1.2+ sets application_id "GPKG"; 1.0/1.1 used "GP10"/"GP11" (OGC 12-128r18 §1.1.1.1.1).
GPKG_APPLICATION_IDS = (b"GPKG", b"GP10", b"GP11")


def sniff_binary(head: bytes) -> str | None:
    """The content family told by leading bytes alone, or None for text or unknown bytes."""
    if head.startswith(PDF_MAGIC):
        return "pdf"
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(ZIP_MAGICS):
        return "zip"
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(TIFF_MAGICS):
        return "tiff"
    if head.startswith((JP2_MAGIC, J2K_MAGIC)):
        return "jp2"
    if head.startswith(FGB_MAGIC):
        return "fgb"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"7z\xbc\xaf\x27\x1c"):
        return "7z"
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(SHP_MAGIC) and len(head) >= 100 and int.from_bytes(head[28:32], "little") == 1000:
        return "shp"
    return None


def looks_like_dbf(head: bytes) -> bool:
    """dBase III+ header: version byte, then header and record lengths that make sense."""
    if len(head) < 32 or head[0] not in DBF_VERSIONS:
        return False
    header_length = int.from_bytes(head[8:10], "little")
    record_length = int.from_bytes(head[10:12], "little")
    return header_length >= 33 and (header_length - 1) % 32 == 0 and record_length >= 1


# --------------------------------------------------------------------------------------------- CRS


def crs_code(value: Any) -> str | None:
    """``EPSG:xxxx`` (or another authority code) for a CRS given as WKT, PROJJSON or a code; None if
    pyproj cannot name it with reasonable confidence."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if value is None or value == "":
        return None
    try:
        crs = CRS.from_user_input(value)
    except CRSError:
        return None
    epsg = crs.to_epsg(min_confidence=70)
    if epsg is not None:
        return f"EPSG:{epsg}"
    authority = crs.to_authority(min_confidence=70)
    if authority is not None:
        return f"{authority[0]}:{authority[1]}"
    return None


def _finite(values: Any) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


def wgs84_extent(bounds: Any, crs: Any) -> list[float] | None:
    """``[west, south, east, north]`` in lon/lat (always_xy) for native ``(minx, miny, maxx, maxy)``."""
    from pyproj import CRS, Transformer
    from pyproj.exceptions import CRSError, ProjError

    if bounds is None or crs is None:
        return None
    box = [float(v) for v in bounds]
    if len(box) != 4 or not _finite(box) or box[0] > box[2] or box[1] > box[3]:
        return None
    try:
        source = CRS.from_user_input(crs)
        transformer = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True)
        west, south, east, north = transformer.transform_bounds(
            box[0], box[1], box[2], box[3], densify_pts=21
        )
    except (CRSError, ProjError, ValueError) as exc:
        logger.info("no WGS84 extent for %s in %s: %s", box, crs, exc)
        return None
    result = [west, south, east, north]
    # Out-of-range results come from coordinates that do not belong to the declared CRS (a geographic
    # CRS "transforms" 770000 to 770000): no extent rather than a false one.
    if not _finite(result) or west < -180.5 or east > 180.5 or south < -90.5 or north > 90.5:
        return None
    return [round(v, 7) for v in result]


def extent_warnings(native: list[float] | None, crs: Any, extent: list[float] | None) -> list[str]:
    """Coordinates that do not fit the declared CRS: the classic "wrong .prj" (peers.md §10, complaint 9)."""
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if native is None or crs is None:
        return []
    try:
        source = CRS.from_user_input(crs)
    except CRSError:
        return []
    code = crs_code(crs) or source.name
    if source.is_geographic and (
        native[0] < -180.5 or native[2] > 360.5 or native[1] < -90.5 or native[3] > 90.5
    ):
        return [
            f"Les coordonnées ({_fmt_box(native)}) sortent des bornes d'un système géographique : "
            f"la projection déclarée ({code}) est sans doute fausse."
        ]
    area = source.area_of_use
    if extent is None:
        return [
            f"L'emprise ne peut pas être convertie en WGS84 depuis {code} : projection déclarée douteuse."
        ]
    if area is not None:
        margin = 1.0  # degrees; area_of_use is coarse and data often spills a little over borders
        if (
            extent[2] < area.west - margin
            or extent[0] > area.east + margin
            or extent[3] < area.south - margin
            or extent[1] > area.north + margin
        ):
            return [
                f"L'emprise ({_fmt_box(extent)} en WGS84) tombe hors de la zone d'usage de {code} "
                f"({area.name}) : la projection déclarée est sans doute fausse."
            ]
    return []


def _fmt_box(box: list[float]) -> str:
    return ", ".join(f"{v:.6g}" for v in box)


def union_extent(extents: list[list[float]]) -> list[float] | None:
    if not extents:
        return None
    return [
        min(e[0] for e in extents),
        min(e[1] for e in extents),
        max(e[2] for e in extents),
        max(e[3] for e in extents),
    ]


def jsonable(value: Any) -> Any:
    """Plain Python for values read by GDAL (numpy scalars, bytes, dates), so details serialise."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return jsonable(item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, bytes):
        return value[:64].hex()
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return str(value)


def read_head(path: Path, size: int = 65536) -> bytes:
    with path.open("rb") as handle:
        return handle.read(size)
