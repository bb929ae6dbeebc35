"""Real sample files, generated with GDAL (pyogrio), rasterio and rio-cogeo, or byte by byte when the
format is simple enough (PDF, PNG, ZIP, CSV). Nothing here is mocked: inspection reads what it would
read in production."""

from __future__ import annotations

import json
import stat
import struct
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine

# Occitanie places, with the accents that get garbled (peers.md §10, complaint 9).
PLACES: list[tuple[str, float, float, int]] = [
    ("Béziers", 3.2150, 43.3442, 77_000),
    ("Lodève", 3.3197, 43.7317, 7_500),
    ("Sète", 3.6976, 43.4028, 44_000),
]
# Lambert-93 (EPSG:2154) points around Montpellier.
MONTPELLIER_L93: list[tuple[str, float, float]] = [
    ("Montpellier – Écusson", 770_600.0, 6_279_400.0),
    ("Castelnau-le-Lez", 772_900.0, 6_282_600.0),
    ("Lattes", 771_700.0, 6_274_800.0),
]

# 10 m pixels whose top-left corner is at (765 000, 6 285 000) in Lambert-93.
L93_TRANSFORM = Affine(10, 0, 765_000, 0, -10, 6_285_000)


def wkb_point(x: float, y: float) -> bytes:
    return struct.pack("<BIdd", 1, 1, x, y)


def write_vector(
    path: Path,
    rows: list[tuple[str, float, float, int]],
    *,
    driver: str,
    crs: str = "EPSG:4326",
    layer: str | None = None,
    encoding: str | None = None,
    fields: tuple[str, str] = ("nom", "population"),
    append: bool = False,
) -> Path:
    from pyogrio import raw

    geometry = np.array([wkb_point(x, y) for _, x, y, _ in rows], dtype=object)
    names = np.array([r[0] for r in rows], dtype=object)
    population = np.array([r[3] for r in rows], dtype="int32")
    kwargs: dict[str, Any] = {}
    if layer:
        kwargs["layer"] = layer
    if encoding:
        kwargs["encoding"] = encoding
    if append:
        kwargs["append"] = True
    raw.write(
        str(path),
        geometry,
        [names, population],
        list(fields),
        geometry_type="Point",
        crs=crs,
        driver=driver,
        **kwargs,
    )
    return path


def shapefile(
    folder: Path, stem: str = "communes", *, encoding: str | None = None, cpg: str | None = "keep"
) -> Path:
    """A point shapefile of PLACES. ``encoding`` is the DBF code page; ``cpg`` replaces the .cpg text
    written by GDAL, or removes it when None."""
    folder.mkdir(parents=True, exist_ok=True)
    shp = write_vector(folder / f"{stem}.shp", PLACES, driver="ESRI Shapefile", encoding=encoding)
    cpg_path = folder / f"{stem}.cpg"
    if cpg is None:
        cpg_path.unlink(missing_ok=True)
    elif cpg != "keep":
        cpg_path.write_text(cpg, encoding="ascii")
    return shp


def zip_folder(folder: Path, target: Path, *, skip: tuple[str, ...] = (), prefix: str = "") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(folder.iterdir()):
            if file.suffix.lower().lstrip(".") in skip:
                continue
            zf.write(file, prefix + file.name)
    return target


def geojson_l93(path: Path) -> Path:
    """A GeoJSON in Lambert-93 with the legacy (GeoJSON 2008) ``crs`` member."""
    document = {
        "type": "FeatureCollection",
        "name": "quartiers",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::2154"}},
        "features": [
            {
                "type": "Feature",
                "properties": {"nom": name},
                "geometry": {"type": "Point", "coordinates": [x, y]},
            }
            for name, x, y in MONTPELLIER_L93
        ],
    }
    path.write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")
    return path


def geotiff(path: Path, *, size: int = 600, tiled: bool = False, crs: str | None = "EPSG:2154") -> Path:
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    data = (np.arange(size * size, dtype="uint32").reshape(size, size) % 251).astype("uint8")
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "nodata": 0,
        "tiled": tiled,
    }
    if crs:
        profile["crs"] = crs
        profile["transform"] = L93_TRANSFORM
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(data, 1)
    return path


def cog(source: Path, target: Path) -> Path:
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    cog_translate(str(source), str(target), cog_profiles.get("deflate"), quiet=True)
    return target


def jpeg2000(path: Path) -> Path:
    import rasterio

    data = (np.arange(128 * 128, dtype="uint32").reshape(128, 128) % 200).astype("uint8")
    with rasterio.open(
        path,
        "w",
        driver="JP2OpenJPEG",
        width=128,
        height=128,
        count=1,
        dtype="uint8",
        crs="EPSG:2154",
        transform=L93_TRANSFORM,
    ) as dataset:
        dataset.write(data, 1)
    return path


def pdf(path: Path) -> Path:
    path.write_bytes(
        b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
        b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
        b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 595 842]>>endobj\n"
        b"trailer<</Root 1 0 R>>\n%%EOF\n"
    )
    return path


def png(path: Path, width: int = 3, height: int = 2) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80\x40\x20" * width for _ in range(height))
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def gtfs_files(**overrides: str | None) -> dict[str, str]:
    files: dict[str, str | None] = {
        "agency.txt": "agency_id,agency_name,agency_url,agency_timezone\n"
        "TAM,Transports de l'agglomération de Montpellier,https://www.tam-voyages.com,Europe/Paris\n",
        "stops.txt": "stop_id,stop_name,stop_lat,stop_lon\n"
        "S1,Comédie,43.6085,3.8800\nS2,Odysseum,43.6040,3.9200\nS3,Mosson,43.6160,3.8190\n",
        "routes.txt": "route_id,agency_id,route_short_name,route_type\nL1,TAM,1,0\n",
        "trips.txt": "route_id,service_id,trip_id\nL1,SEM,T1\nL1,SEM,T2\n",
        "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
        "T1,08:00:00,08:00:00,S3,1\nT1,08:20:00,08:20:00,S1,2\nT1,08:35:00,08:35:00,S2,3\n"
        "T2,09:00:00,09:00:00,S2,1\nT2,09:15:00,09:15:00,S1,2\n",
        "calendar.txt": "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,"
        "start_date,end_date\n"
        "SEM,1,1,1,1,1,0,0,20260101,20991231\n",
    }
    files.update(overrides)
    return {name: text for name, text in files.items() if text is not None}


def zip_texts(target: Path, files: dict[str, str], *, folder: str = "") -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, text in files.items():
            zf.writestr(folder + name, text.encode("utf-8"))
    return target


def zip_bomb(target: Path, megabytes: int = 64) -> Path:
    """Zeros streamed through the compressor: the uncompressed bytes never touch the disk."""
    zeros = bytes(1024 * 1024)
    with (
        zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf,
        zf.open("donnees.csv", "w", force_zip64=True) as member,
    ):
        for _ in range(megabytes):
            member.write(zeros)
    return target


def zip_with_entry(target: Path, info: zipfile.ZipInfo, data: bytes) -> Path:
    with zipfile.ZipFile(target, "w") as zf:
        zf.writestr(info, data)
    return target


def symlink_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # Unix: mode bits live in the high 16 bits of external_attr
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info
