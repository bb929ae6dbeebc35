"""What the emulated checks and processings really do with the delivered files.

The Géoplateforme runs automatic checks when an upload is closed (geoplateforme-api.md §2.1, step 5-6)
and normalises table names on integration (§2.2). These functions read the files with pyogrio / rasterio /
pyproj so that bad input fails here as it fails on the platform:

- "Vérification standard": MD5 signatures given in the upload's ``.md5`` files (§2.1 step 3) and, for
  archives, no two files sharing a name anywhere in the tree (§4, "Archive");
- "Vérification vecteur": the declared SRS equals each layer's ("Le SRS du layer … est différent de celui
  déclaré", §4), table names match ``[a-z_][a-z0-9_]*`` after normalisation (§2.2, 2026-03 change note);
- "Vérification raster": each image opens and carries the declared SRS (§4, raster formats).

The exact wording of the platform's logs is UNCONFIRMED beyond the SRS sentence quoted in the research.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

VECTOR_EXTENSIONS = {".gpkg", ".geojson", ".json", ".shp", ".csv", ".fgb", ".zip"}
RASTER_EXTENSIONS = {".tif", ".tiff", ".geotiff", ".jp2"}
TABLE_NAME_RULE = re.compile(r"[a-z_][a-z0-9_]*")
# CSV geometry columns the platform recognises (§4, vector formats).
CSV_OPEN_OPTIONS = {
    "GEOM_POSSIBLE_NAMES": "json,geom,the_geom,wkb,wkt",
    "X_POSSIBLE_NAMES": "lon,x,longitude",
    "Y_POSSIBLE_NAMES": "lat,y,latitude",
    "KEEP_GEOM_COLUMNS": "NO",
}


def log_line(level: str, message: str) -> str:
    return f"{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%S')} {level} {message}"


def normalise_name(name: str) -> str:
    """Table and column names as the integration writes them: lower case, no accents, no hyphens (§2.2)."""
    decomposed = unicodedata.normalize("NFKD", name)
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return stripped.lower().replace("-", "_")


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class CheckResult:
    passed: bool = True
    logs: list[str] = field(default_factory=list)

    def info(self, message: str) -> None:
        self.logs.append(log_line("INFO", message))

    def warning(self, message: str) -> None:
        self.logs.append(log_line("WARNING", message))

    def error(self, message: str) -> None:
        self.passed = False
        self.logs.append(log_line("ERROR", message))


def data_files(root: Path) -> list[Path]:
    """Every file under ``root/data`` (the upload's data directory), sorted."""
    base = root / "data"
    if not base.is_dir():
        return []
    return sorted(path for path in base.rglob("*") if path.is_file())


def _is_vector(path: Path) -> bool:
    return path.suffix.lower() in VECTOR_EXTENSIONS


def _is_raster(path: Path) -> bool:
    return path.suffix.lower() in RASTER_EXTENSIONS


def _ogr_path(path: Path) -> str:
    return f"/vsizip/{path}" if path.suffix.lower() == ".zip" else str(path)


def same_crs(found: str, declared: str) -> bool:
    from pyproj import CRS

    found_crs = CRS.from_user_input(found)
    declared_crs = CRS.from_user_input(declared)
    found_code, declared_code = found_crs.to_epsg(), declared_crs.to_epsg()
    if found_code is not None and declared_code is not None:
        return found_code == declared_code
    return bool(found_crs.equals(declared_crs, ignore_axis_order=True))


def crs_resolves(srs: str) -> bool:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    try:
        CRS.from_user_input(srs)
    except CRSError:
        return False
    return True


# ------------------------------------------------------------------------------------------------ checks


def check_standard(root: Path, upload_type: str) -> CheckResult:
    """ "Vérification standard": files present, MD5 signatures, archive names unique."""
    result = CheckResult()
    files = data_files(root)
    if not files:
        result.error("Aucun fichier de données n'a été livré dans le répertoire data/.")
        return result
    result.info(f"{len(files)} fichier(s) livré(s).")
    for md5_file in sorted(root.glob("*.md5")):
        for number, raw in enumerate(md5_file.read_text(errors="replace").splitlines(), start=1):
            line = raw.strip()
            if not line:
                continue
            match = re.fullmatch(r"([0-9a-fA-F]{32})  (.+)", raw.rstrip("\r\n"))
            if match is None:
                result.error(
                    f"Ligne {number} du fichier {md5_file.name} illisible : « <md5>  <chemin> » attendu."
                )
                continue
            expected, relative = match.group(1).lower(), match.group(2)
            target = (root / relative).resolve()
            if not target.is_relative_to(root.resolve()) or not target.is_file():
                result.error(f"Le fichier {relative} cité dans {md5_file.name} n'a pas été livré.")
            elif md5_of(target) != expected:
                result.error(f"La signature MD5 du fichier {relative} est différente de celle fournie.")
            else:
                result.info(f"Signature MD5 du fichier {relative} conforme.")
    if upload_type == "ARCHIVE":
        seen: dict[str, Path] = {}
        for path in files:
            if path.name in seen:
                result.error(
                    f"Les fichiers {seen[path.name].relative_to(root)} et {path.relative_to(root)} "
                    "portent le même nom : une archive est stockée à plat."
                )
            seen[path.name] = path
    return result


def vector_layers(path: Path) -> list[dict[str, Any]]:
    """pyogrio's description of every layer of a vector file (name, crs, fields, geometry, bounds)."""
    import pyogrio

    source = _ogr_path(path)
    options = CSV_OPEN_OPTIONS if path.suffix.lower() == ".csv" else {}
    layers = []
    for name, _geometry in pyogrio.list_layers(source):
        info = pyogrio.read_info(source, layer=str(name), force_total_bounds=True, **options)
        info["layer_name"] = str(name)
        layers.append(info)
    return layers


def check_vector(root: Path, declared_srs: str) -> CheckResult:
    """ "Vérification vecteur": readable layers, the declared SRS, table names after normalisation."""
    result = CheckResult()
    files = [path for path in data_files(root) if _is_vector(path)]
    if not files:
        result.error("Aucun fichier vecteur reconnu (GeoPackage, GeoJSON, Shapefile, CSV, FlatGeobuf).")
        return result
    for path in files:
        relative = path.relative_to(root)
        try:
            layers = vector_layers(path)
        except Exception as exc:  # GDAL's own message is what the producer needs
            result.error(f"Le fichier {relative} n'est pas lisible : {exc}")
            continue
        if not layers:
            result.error(f"Le fichier {relative} ne contient aucune couche.")
        for info in layers:
            layer = info["layer_name"]
            crs = info.get("crs")
            if crs and not same_crs(crs, declared_srs):
                result.error(
                    f"Le SRS du layer {layer} ({crs}) est différent de celui déclaré ({declared_srs})."
                )
            elif not crs:
                result.warning(
                    f"Le layer {layer} n'a pas de SRS : celui déclaré ({declared_srs}) est retenu."
                )
            table = normalise_name(layer)
            if not TABLE_NAME_RULE.fullmatch(table):
                result.error(
                    f"Le nom de table « {layer} » (normalisé en « {table} ») ne respecte pas l'expression "
                    "[a-z_][a-z0-9_]*."
                )
            elif table != layer:
                result.warning(f"La table « {layer} » sera intégrée sous le nom « {table} ».")
            for column in info.get("fields", []):
                normalised = normalise_name(str(column))
                if normalised != column:
                    result.warning(f"La colonne « {column} » de {layer} sera renommée « {normalised} ».")
            result.info(f"Layer {layer} : {info.get('features', 0)} objet(s), {info.get('geometry_type')}.")
    return result


def check_raster(root: Path, declared_srs: str) -> CheckResult:
    """ "Vérification raster": every image opens and carries the declared SRS."""
    import rasterio

    result = CheckResult()
    files = [path for path in data_files(root) if _is_raster(path)]
    if not files:
        result.error("Aucune image reconnue (GeoTIFF, TIFF avec TFW, JPEG2000).")
        return result
    for path in files:
        relative = path.relative_to(root)
        try:
            with rasterio.open(path) as dataset:
                crs = dataset.crs
                if crs is None:
                    result.error(f"L'image {relative} n'a pas de SRS.")
                elif not same_crs(crs.to_wkt(), declared_srs):
                    found = crs.to_string()
                    result.error(
                        f"Le SRS de l'image {relative} ({found}) est différent de celui déclaré "
                        f"({declared_srs})."
                    )
                else:
                    result.info(
                        f"Image {relative} : {dataset.width}x{dataset.height}, {dataset.count} canal(aux)."
                    )
        except Exception as exc:
            result.error(f"L'image {relative} n'est pas lisible : {exc}")
    return result


# ------------------------------------------------------------------------------------------------ processings


def _to_wgs84(bounds: tuple[float, float, float, float], srs: str) -> tuple[float, float, float, float]:
    from pyproj import Transformer

    transformer = Transformer.from_crs(srs, "EPSG:4326", always_xy=True)
    west, south, east, north = transformer.transform_bounds(*bounds)
    return west, south, east, north


def _polygon(bounds: tuple[float, float, float, float]) -> dict[str, Any]:
    west, south, east, north = bounds
    ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
    return {"type": "Polygon", "coordinates": [ring]}


def _union(boxes: list[tuple[float, float, float, float]]) -> tuple[float, float, float, float] | None:
    finite = [box for box in boxes if all(math.isfinite(value) for value in box)]
    if not finite:
        return None
    return (
        min(box[0] for box in finite),
        min(box[1] for box in finite),
        max(box[2] for box in finite),
        max(box[3] for box in finite),
    )


_PG_TYPES = {
    "OFTString": "character varying",
    "OFTInteger": "integer",
    "OFTInteger64": "bigint",
    "OFTReal": "double precision",
    "OFTDate": "date",
    "OFTDateTime": "timestamp with time zone",
    "OFTTime": "time",
    "OFTBinary": "bytea",
}


def integrate_vector(root: Path, srs: str) -> dict[str, Any]:
    """ "Intégration de données vecteur livrées en base": the VECTOR-DB stored data's relations and extent."""
    relations: list[dict[str, Any]] = []
    boxes = []
    for path in (path for path in data_files(root) if _is_vector(path)):
        for info in vector_layers(path):
            attributes = {
                normalise_name(str(name)): _PG_TYPES.get(ogr_type, "character varying")
                for name, ogr_type in zip(info.get("fields", []), info.get("ogr_types", []), strict=False)
            }
            geometry = str(info.get("geometry_type") or "Unknown")
            if geometry != "Unknown":
                attributes["geom"] = f"geometry({geometry.replace(' ', '').upper()}, {srs.split(':')[-1]})"
            relations.append(
                {
                    "name": normalise_name(info["layer_name"]),
                    "type": "TABLE",
                    "attributes": attributes,
                    "primary_key": ["fid"],
                }
            )
            if info.get("total_bounds") is not None:
                boxes.append(_to_wgs84(tuple(info["total_bounds"]), info.get("crs") or srs))
    extent = _union(boxes)
    return {"relations": relations, "extent": _polygon(extent) if extent else None}


def raster_extent(root: Path) -> tuple[tuple[float, float, float, float] | None, float | None]:
    """The images' WGS84 extent and finest resolution (in their own unit)."""
    import rasterio

    boxes = []
    resolutions = []
    for path in (path for path in data_files(root) if _is_raster(path)):
        with rasterio.open(path) as dataset:
            boxes.append(_to_wgs84(tuple(dataset.bounds), dataset.crs.to_string()))
            resolutions.append(min(abs(dataset.res[0]), abs(dataset.res[1])))
    return _union(boxes), (min(resolutions) if resolutions else None)


def extent_polygon(bounds: tuple[float, float, float, float] | None) -> dict[str, Any] | None:
    return _polygon(bounds) if bounds else None
