"""What a file is, as intake describes it, and a first guess for resources given only by URL.

Files sent to the broker are inspected by content (``broker.intake.inspect.inspect_file``); a URL resource
that is not fetched is described from its declared format or its extension.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

# extension -> (format id, kind, media type)
FORMATS: dict[str, tuple[str, str, str]] = {
    "gpkg": ("gpkg", "vector", "application/geopackage+sqlite3"),
    "geojson": ("geojson", "vector", "application/geo+json"),
    "shp": ("shp", "vector", "application/x-shapefile"),
    "csv": ("csv", "table", "text/csv"),
    "json": ("json", "table", "application/json"),
    "tif": ("tif", "raster", "image/tiff"),
    "tiff": ("tif", "raster", "image/tiff"),
    "jp2": ("jp2", "raster", "image/jp2"),
    "pdf": ("pdf", "document", "application/pdf"),
    "png": ("png", "image", "image/png"),
    "zip": ("zip", "archive", "application/zip"),
}


@dataclass
class FileDescription:
    format: str | None
    kind: str | None
    media_type: str | None
    crs: str | None = None
    extent_wgs84: list[float] | None = None
    details: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def describe_url(url: str, declared_format: str | None) -> FileDescription:
    """A URL resource not fetched: its declared format, else its extension."""
    tail = url.split("?", 1)[0].rsplit("/", 1)[-1]
    ext = (declared_format or (tail.rsplit(".", 1)[-1] if "." in tail else "")).lower()
    if ext in FORMATS:
        fmt, kind, media = FORMATS[ext]
        return FileDescription(format=fmt, kind=kind, media_type=media)
    return FileDescription(format=ext or None, kind="other", media_type=None)
