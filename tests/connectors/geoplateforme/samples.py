"""Realistic inputs for the Géoplateforme tests: files made on the spot, resources and revisions."""

from __future__ import annotations

import hashlib
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from connectors.base import Contact, LedgerEntry, OrganizationRef, PublicationRevision, ResourceFile, Temporal


def _wkb_line(coords: list[tuple[float, float]]) -> bytes:
    return struct.pack("<BII", 1, 2, len(coords)) + b"".join(struct.pack("<dd", x, y) for x, y in coords)


def write_gpkg(
    path: Path,
    *,
    layer: str = "Pistes-Cyclables",
    crs: str = "EPSG:2154",
    features: int = 3,
    ascii_columns: bool = False,
) -> Path:
    """A GeoPackage of cycle paths around Montpellier in Lambert-93, with accented attribute names."""
    from pyogrio.raw import write

    lines = [
        _wkb_line([(770_000 + 500 * i, 6_279_000 + 300 * i), (770_800 + 500 * i, 6_279_900 + 250 * i)])
        for i in range(features)
    ]
    names = ["Avenue de la Mer", "Berges du Lez", "Voie Domitienne", "Route de Lavérune", "Quai de Juvénal"]
    communes = ["Montpellier", "Lattes", "Castelnau-le-Lez", "Juvignac", "Pérols"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    write(
        str(path),
        np.array(lines, dtype=object),
        [
            np.array([names[i % len(names)] for i in range(features)], dtype=object),
            np.array([communes[i % len(communes)] for i in range(features)], dtype=object),
            np.array([0.9 + i for i in range(features)]),
            np.array([2015 + i for i in range(features)], dtype=np.int32),
        ],
        ["denomination", "commune", "longueur_km", "annee"]
        if ascii_columns
        else ["Dénomination", "Commune", "Longueur_km", "Année_mise_en_service"],
        layer=layer,
        driver="GPKG",
        crs=crs,
        geometry_type="LineString",
    )
    return path


def write_geotiff(path: Path, *, crs: str = "EPSG:2154", size: int = 64) -> Path:
    """An RGB orthophoto tile in Lambert-93, 5 m pixels."""
    import rasterio
    from affine import Affine

    data = np.zeros((3, size, size), dtype=np.uint8)
    data[0] = np.linspace(0, 255, size, dtype=np.uint8)[None, :]
    data[1] = np.linspace(0, 255, size, dtype=np.uint8)[:, None]
    data[2] = 128
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=3,
        dtype="uint8",
        crs=crs,
        transform=Affine(5.0, 0.0, 770_000.0, 0.0, -5.0, 6_280_000.0),
    ) as dataset:
        dataset.write(data)
    return path


def write_shapefile_zip(path: Path, *, layer: str = "arrets_bus") -> Path:
    """A zipped Shapefile (Lambert-93)."""
    from pyogrio.raw import write

    folder = path.parent / f"{layer}_shp"
    folder.mkdir(parents=True, exist_ok=True)
    point = struct.pack("<BIdd", 1, 1, 770_500.0, 6_279_500.0)
    write(
        str(folder / f"{layer}.shp"),
        np.array([point], dtype=object),
        [np.array(["Comédie"], dtype=object)],
        ["nom_arret"],
        driver="ESRI Shapefile",
        crs="EPSG:2154",
        geometry_type="Point",
        encoding="UTF-8",
    )
    with zipfile.ZipFile(path, "w") as archive:
        for part in sorted(folder.iterdir()):
            archive.write(part, part.name)
    return path


def resource(
    path: Path, *, name: str | None = None, crs: str | None = "EPSG:2154", **extra: Any
) -> ResourceFile:
    suffix = path.suffix.lower().lstrip(".")
    formats = {"tif": "tif", "gpkg": "gpkg", "zip": "shp", "pdf": "pdf", "csv": "csv", "geojson": "geojson"}
    kinds = {
        "tif": "raster",
        "gpkg": "vector",
        "zip": "vector",
        "pdf": "document",
        "csv": "vector",
        "geojson": "vector",
    }
    values: dict[str, Any] = {
        "name": name or path.name,
        "title": f"Fichier {path.name}",
        "path": path,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "size": path.stat().st_size,
        "format": formats.get(suffix, suffix),
        "kind": kinds.get(suffix, "document"),
        "crs": crs,
        "extent_wgs84": (3.80, 43.55, 3.95, 43.65),
    }
    values.update(extra)
    return ResourceFile(**values)


def revision(
    publication_id: str,
    resources: tuple[ResourceFile, ...],
    *,
    services: tuple[str, ...] = ("wfs",),
    number: int = 1,
    title: str = "Pistes cyclables de la métropole",
    access: str = "open",
    slug: str = "montpellier-mediterranee-metropole",
    **extra: Any,
) -> PublicationRevision:
    values: dict[str, Any] = {
        "publication_id": publication_id,
        "revision": number,
        "organization": OrganizationRef(id="org-mmm", slug=slug, name="Montpellier Méditerranée Métropole"),
        "title": title,
        "description": "Réseau cyclable de la métropole, mis à jour chaque trimestre.",
        "license": "lov2",
        "keywords": ("mobilité", "vélo"),
        "frequency": "quarterly",
        "temporal": Temporal.model_validate({"start": "2024-01-01"}),
        "contact": Contact(name="Service SIG", email="sig@example.fr"),
        "access": access,
        "services": services,
        "resources": resources,
        "public_url": "https://broker.example.org",
    }
    values.update(extra)
    return PublicationRevision(**values)


class Killed(Exception):
    """Stands for a worker killed at a step boundary."""


class Recorder:
    """A checkpoint callback that keeps every ledger, like the broker's database would."""

    def __init__(self, kill_after: str | None = None) -> None:
        self.ledgers: list[LedgerEntry] = []
        self.kill_after = kill_after

    def __call__(self, ledger: LedgerEntry) -> None:
        self.ledgers.append(ledger)
        if self.kill_after and ledger.step and ledger.step.endswith(self.kill_after):
            raise Killed(ledger.step)

    @property
    def steps(self) -> list[str]:
        return [ledger.step or "" for ledger in self.ledgers]

    @property
    def last(self) -> LedgerEntry:
        return self.ledgers[-1]
