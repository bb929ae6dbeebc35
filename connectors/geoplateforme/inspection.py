"""What the connector reads from the producer's files before sending them, and the pre-flight report.

The Géoplateforme takes vector data as GeoPackage, GeoJSON, Shapefile, CSV (and FlatGeobuf since 2026-07),
rasters as GeoTIFF or JPEG2000, anything else as an archive for download (geoplateforme-api.md §4). Its checks
compare the declared SRS with the files' and, since 2026-03, require table names matching ``[a-z_][a-z0-9_]*``
once normalised (lower case, no accents, no hyphens, §2.2). Finding these here saves a round trip.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from connectors.base import PreflightProblem, PublicationRevision, ResourceFile

TARGET = "geoplateforme"
VECTOR_FORMATS = {"gpkg", "geojson", "json", "shp", "csv", "fgb", "flatgeobuf"}
RASTER_FORMATS = {"tif", "tiff", "geotiff", "cog", "jp2", "jpeg2000"}
CHECKED_NOT_INTEGRATED = {"parquet", "geoparquet"}  # §4: GeoParquet is checked but not yet integrated
EXTENSIONS = {
    "gpkg": ".gpkg",
    "geojson": ".geojson",
    "json": ".json",
    "csv": ".csv",
    "fgb": ".fgb",
    "flatgeobuf": ".fgb",
    "tif": ".tif",
    "tiff": ".tif",
    "geotiff": ".tif",
    "cog": ".tif",
    "jp2": ".jp2",
    "jpeg2000": ".jp2",
}
TABLE_NAME_RULE = re.compile(r"[a-z_][a-z0-9_]*")
SRS_FORM = re.compile(r"^(EPSG|IGNF):[A-Za-z0-9_.]+$")
CSV_OPEN_OPTIONS = {
    "GEOM_POSSIBLE_NAMES": "json,geom,the_geom,wkb,wkt",
    "X_POSSIBLE_NAMES": "lon,x,longitude",
    "Y_POSSIBLE_NAMES": "lat,y,latitude",
    "KEEP_GEOM_COLUMNS": "NO",
}
SHAPEFILE_PARTS = {".shp", ".shx", ".dbf", ".prj", ".cpg", ".qix", ".sbn", ".sbx", ".qmd", ".xml"}


def normalise_name(name: str) -> str:
    """Table and column names as the integration writes them (§2.2)."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).lower().replace("-", "_")


def resource_format(resource: ResourceFile) -> str:
    if resource.format:
        return resource.format.lower().lstrip(".")
    suffix = Path(resource.name).suffix.lower().lstrip(".")
    return suffix


def is_shapefile_zip(resource: ResourceFile) -> bool:
    return resource_format(resource) == "shp" and (
        resource.name.lower().endswith(".zip")
        or (resource.path is not None and resource.path.is_file() and zipfile.is_zipfile(resource.path))
    )


def classify(resource: ResourceFile) -> str:
    """``vector``, ``raster``, ``archive`` (hosted, for download) or ``link`` (a URL: nothing to host)."""
    if resource.path is None:
        return "link"
    fmt = resource_format(resource)
    if resource.kind in ("document", "archive", "table") and fmt != "shp":
        return "archive"
    if fmt in VECTOR_FORMATS and resource.kind in (None, "vector"):
        return "vector"
    if fmt in RASTER_FORMATS and resource.kind in (None, "raster"):
        return "raster"
    return "archive"


@dataclass
class Layer:
    name: str
    crs: str | None
    fields: list[str] = field(default_factory=list)
    geometry_type: str | None = None


def vector_layers(resource: ResourceFile) -> list[Layer]:
    """The layers of a vector resource as the platform will see them, read with pyogrio (raises if
    unreadable).

    The broker keeps blobs without extension, while GDAL picks drivers (CSV) and single-layer formats take
    their table name from the file name: the file is read through a link named as it will be uploaded.
    """
    import pyogrio

    assert resource.path is not None
    options = CSV_OPEN_OPTIONS if resource_format(resource) == "csv" else {}
    with tempfile.TemporaryDirectory(prefix="gpf-inspect-") as tmp:
        if is_shapefile_zip(resource):
            source = f"/vsizip/{resource.path}"
        else:
            link = Path(tmp) / remote_name(resource)
            try:
                os.symlink(resource.path.resolve(), link)
            except OSError:
                shutil.copyfile(resource.path, link)
            source = str(link)
        layers = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            for name, geometry in pyogrio.list_layers(source):
                info = pyogrio.read_info(source, layer=str(name), **options)
                layers.append(
                    Layer(
                        name=str(name),
                        crs=info.get("crs"),
                        fields=[str(column) for column in info.get("fields", [])],
                        geometry_type=str(info.get("geometry_type") or geometry or "") or None,
                    )
                )
        return layers


def raster_summary(resource: ResourceFile) -> tuple[str | None, float | None]:
    """(CRS as EPSG:xxxx or WKT, resolution in metres) of a raster resource."""
    import rasterio

    assert resource.path is not None
    with rasterio.open(resource.path) as dataset:
        if dataset.crs is None:
            return None, None
        epsg = dataset.crs.to_epsg()
        resolution = min(abs(dataset.res[0]), abs(dataset.res[1]))
        if dataset.crs.is_geographic:
            resolution *= 111_320.0
        return (f"EPSG:{epsg}" if epsg else dataset.crs.to_wkt()), resolution


def same_crs(found: str, declared: str) -> bool:
    from pyproj import CRS

    found_crs, declared_crs = CRS.from_user_input(found), CRS.from_user_input(declared)
    if found_crs.to_epsg() is not None and declared_crs.to_epsg() is not None:
        return found_crs.to_epsg() == declared_crs.to_epsg()
    return bool(found_crs.equals(declared_crs, ignore_axis_order=True))


def crs_resolves(srs: str) -> bool:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(srs)
    except CRSError:
        return False
    return True


# ----------------------------------------------------------------------------------------------- preflight


def _problem(
    resource: ResourceFile | None, code: str, message: str, severity: str = "error"
) -> PreflightProblem:
    return PreflightProblem(
        target=TARGET,
        resource=resource.name if resource else None,
        severity="warning" if severity == "warning" else "error",
        code=code,
        message=message,
    )


def preflight(
    revision: PublicationRevision,
    *,
    max_upload_bytes: int,
    services_for: dict[str, dict[str, str]],
    default_services: dict[str, tuple[str, ...]],
) -> list[PreflightProblem]:
    problems: list[PreflightProblem] = []
    asked = tuple(revision.services)
    hosted = 0
    for resource in revision.resources:
        kind = classify(resource)
        fmt = resource_format(resource)
        if kind == "link":
            continue
        wanted = asked or default_services.get(kind, ())
        usable = [service for service in wanted if service in services_for.get(kind, {})]
        if fmt in CHECKED_NOT_INTEGRATED:
            problems.append(
                _problem(
                    resource,
                    "format_not_integrated",
                    f"Le format {fmt} de « {resource.name} » est vérifié mais pas encore intégré "
                    "par la Géoplateforme : livrez un GeoPackage.",
                )
            )
            continue
        if not usable:
            if kind == "archive" and asked:
                problems.append(
                    _problem(
                        resource,
                        "format_not_served",
                        f"« {resource.name} » ({fmt or 'format inconnu'}) ne peut être que "
                        "téléchargé sur la Géoplateforme : il n'y sera pas publié sans le service "
                        "download.",
                        "warning",
                    )
                )
            elif asked:
                problems.append(
                    _problem(
                        resource,
                        "service_not_applicable",
                        f"Aucun des services demandés ({', '.join(asked)}) ne s'applique à "
                        f"« {resource.name} » sur la Géoplateforme.",
                        "warning",
                    )
                )
            continue
        hosted += 1
        if resource.path is None or not resource.path.is_file():
            problems.append(
                _problem(
                    resource,
                    "file_missing",
                    f"Le fichier « {resource.name} » est introuvable dans le dépôt du broker.",
                )
            )
            continue
        size = resource.size if resource.size is not None else resource.path.stat().st_size
        if size > max_upload_bytes:
            problems.append(
                _problem(
                    resource,
                    "too_large",
                    f"« {resource.name} » pèse {size / 1024**3:.1f} Go : la Géoplateforme limite "
                    f"une livraison à {max_upload_bytes / 1024**3:.0f} Go. Découpez le fichier.",
                )
            )
        if kind == "archive":
            continue
        if fmt == "cog":
            problems.append(
                _problem(
                    resource,
                    "cog_recomputed",
                    f"« {resource.name} » est un COG : la Géoplateforme le reçoit comme un GeoTIFF "
                    "et en recalcule une pyramide.",
                    "warning",
                )
            )
        if fmt == "shp" and not is_shapefile_zip(resource):
            problems.append(
                _problem(
                    resource,
                    "shapefile_not_zipped",
                    f"Le Shapefile « {resource.name} » doit être livré zippé avec ses fichiers "
                    ".shx, .dbf et .prj.",
                )
            )
            continue
        problems.extend(_srs_problems(resource, kind))
        if kind == "vector":
            problems.extend(_name_problems(resource))
    if hosted == 0 and not any(p.severity == "error" for p in problems) and revision.resources:
        problems.append(
            _problem(
                None,
                "nothing_to_publish",
                "Aucune ressource de cette publication ne sera hébergée sur la Géoplateforme ; "
                "seule sa fiche de métadonnées y sera publiée.",
                "warning",
            )
        )
    return problems


def _srs_problems(resource: ResourceFile, kind: str) -> list[PreflightProblem]:
    if not resource.crs:
        return [
            _problem(
                resource,
                "srs_missing",
                f"Le système de coordonnées de « {resource.name} » est inconnu : la Géoplateforme exige "
                "un SRS déclaré (EPSG:xxxx) pour chaque livraison.",
            )
        ]
    if not SRS_FORM.fullmatch(resource.crs) or not crs_resolves(resource.crs):
        return [
            _problem(
                resource,
                "srs_unknown",
                f"Le SRS « {resource.crs} » de « {resource.name} » n'est pas un code EPSG reconnu.",
            )
        ]
    try:
        if kind == "vector":
            found = {layer.crs for layer in vector_layers(resource) if layer.crs}
        else:
            crs, _ = raster_summary(resource)
            found = {crs} if crs else set()
    except Exception as exc:  # GDAL's message helps the producer
        return [_problem(resource, "unreadable", f"« {resource.name} » n'est pas lisible : {exc}")]
    wrong = sorted(crs for crs in found if not same_crs(crs, resource.crs))
    if wrong:
        return [
            _problem(
                resource,
                "srs_mismatch",
                f"« {resource.name} » est en {', '.join(wrong)} mais déclaré en {resource.crs} : les "
                "vérifications de la Géoplateforme le refuseraient.",
            )
        ]
    return []


def _name_problems(resource: ResourceFile) -> list[PreflightProblem]:
    problems = []
    try:
        layers = vector_layers(resource)
    except Exception:
        return []  # reported by the SRS check
    for layer in layers:
        if resource_format(resource) == "csv" and not layer.geometry_type:
            problems.append(
                _problem(
                    resource,
                    "csv_without_geometry",
                    f"« {resource.name} » n'a pas de colonne géométrique reconnue (json, geom, "
                    "the_geom, wkb, wkt, ou lon/lat, §4) : il sera intégré comme une table "
                    "sans géométrie, publiable en WFS mais pas en WMS.",
                    "warning",
                )
            )
        table = normalise_name(layer.name)
        if not TABLE_NAME_RULE.fullmatch(table):
            problems.append(
                _problem(
                    resource,
                    "bad_table_name",
                    f"La table « {layer.name} » deviendrait « {table} », qui ne respecte pas la "
                    "règle [a-z_][a-z0-9_]* de la Géoplateforme : renommez-la.",
                )
            )
        elif table != layer.name:
            problems.append(
                _problem(
                    resource,
                    "table_renamed",
                    f"La table « {layer.name} » sera publiée sous le nom « {table} ».",
                    "warning",
                )
            )
        renamed = [column for column in layer.fields if normalise_name(column) != column]
        if renamed:
            listed = ", ".join(f"{column} → {normalise_name(column)}" for column in renamed[:5])
            problems.append(
                _problem(
                    resource,
                    "columns_renamed",
                    f"Des colonnes de « {layer.name} » seront renommées : {listed}.",
                    "warning",
                )
            )
        broken = [column for column in layer.fields if not TABLE_NAME_RULE.fullmatch(normalise_name(column))]
        if broken:
            problems.append(
                _problem(
                    resource,
                    "column_names",
                    f"Des colonnes de « {layer.name} » ont des noms que les services OGC "
                    f"supporteront mal : {', '.join(broken[:5])}.",
                    "warning",
                )
            )
    return problems


def remote_name(resource: ResourceFile) -> str:
    """The file name inside the upload: the resource's, with the extension GDAL needs to read it."""
    name = Path(resource.name).name
    extension = EXTENSIONS.get(resource_format(resource))
    if (
        extension
        and not name.lower().endswith(extension)
        and Path(name).suffix.lower() not in (".tiff", ".json")
    ):
        name += extension
    return name
