"""CSV: encoding, delimiter, header, rows, coordinate and geometry columns."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.intake.inspect import inspect_file


def test_latin1_csv_with_semicolons_and_lon_lat(tmp_path: Path, blob: Path) -> None:
    source = tmp_path / "villes.csv"
    source.write_bytes(
        "nom;lon;lat;population\nBéziers;3,2150;43,3442;77000\nLodève;3,3197;43,7317;7500\nSète;3,6976;43,4028;44000\n".encode(
            "latin-1"
        )
    )
    shutil.copy(source, blob)
    description = inspect_file(blob, "villes.csv")
    assert (description.format, description.kind, description.media_type) == ("csv", "table", "text/csv")
    details = description.details
    assert details["encoding"] == "latin-1"
    assert details["encoding_guessed"] is True
    assert details["delimiter"] == ";"
    assert details["header"] == ["nom", "lon", "lat", "population"]
    assert details["row_count"] == 3
    assert details["geometry_columns"] == {"kind": "xy", "columns": ["lon", "lat"]}
    assert details["decimal_separator"] == ","
    assert description.crs == "EPSG:4326"
    assert description.extent_wgs84 == [3.215, 43.3442, 3.6976, 43.7317]
    assert any("deviné : latin-1" in w for w in description.warnings)
    assert any("supposée EPSG:4326" in w for w in description.warnings)


def test_cp1252_is_told_from_latin1_by_its_typographic_quote(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes("nom,commentaire\nSète,l’étang de Thau\n".encode("cp1252"))
    assert inspect_file(path, "a.csv").details["encoding"] == "cp1252"


def test_utf8_bom_csv_with_wkt_column(tmp_path: Path) -> None:
    path = tmp_path / "pistes.csv"
    path.write_text(
        'id,wkt\n1,"LINESTRING (3.87 43.60, 3.88 43.61)"\n2,"POINT (3.90 43.62)"\n', encoding="utf-8-sig"
    )
    description = inspect_file(path, "pistes.csv")
    assert description.details["encoding"] == "utf-8-sig"
    assert description.details["header"] == ["id", "wkt"]
    assert description.details["geometry_columns"] == {"kind": "wkt", "columns": ["wkt"]}
    assert description.extent_wgs84 == [3.87, 43.6, 3.9, 43.62]


def test_lambert93_coordinates_are_recognised_as_such(tmp_path: Path) -> None:
    path = tmp_path / "arbres.csv"
    path.write_text("id,x,y\n1,770600,6279400\n2,772900,6282600\n", encoding="utf-8")
    description = inspect_file(path, "arbres.csv")
    assert description.crs == "EPSG:2154"
    west, south, east, north = description.extent_wgs84 or []
    assert 3.8 < west < east < 3.95 and 43.55 < south < north < 43.7


def test_ragged_rows_and_missing_coordinates_are_reported(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("nom,lon,lat\nA,3.1,43.1\nB,3.2\nC,,\n", encoding="utf-8")
    description = inspect_file(path, "a.csv")
    assert description.details["ragged_rows"] == 1
    assert any("n'ont pas 3 colonnes" in w for w in description.warnings)
    assert any("coordonnées vides ou illisibles" in w for w in description.warnings)


def test_table_without_geometry_has_no_geometry_columns(tmp_path: Path) -> None:
    path = tmp_path / "budget.csv"
    path.write_text("poste\tmontant\nvoirie\t12\n", encoding="utf-8")
    description = inspect_file(path, "budget.csv")
    assert description.details["delimiter"] == "\t"
    assert "geometry_columns" not in description.details
    assert description.crs is None


@pytest.mark.parametrize("name", ["notes.txt", "LISEZMOI"])
def test_prose_is_text_not_csv(tmp_path: Path, name: str) -> None:
    path = tmp_path / "x"
    path.write_text("Ce jeu de données décrit les pistes cyclables\n", encoding="utf-8")
    description = inspect_file(path, name)
    assert (description.format, description.kind) == ("txt", "document")


def test_prose_with_commas_is_not_mistaken_for_a_table(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text(
        "Ce jeu de données, produit par la métropole, décrit les pistes.\n"
        "Il est mis à jour chaque trimestre.\nContact : service SIG, Montpellier.\n",
        encoding="utf-8",
    )
    assert inspect_file(path, "LISEZMOI.txt").format == "txt"
