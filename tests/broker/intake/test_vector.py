"""Vector inspection with GDAL: layers, counts, fields, CRS, extents, and the accents of shapefiles."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.intake.inspect import IntakeRefused, inspect_file
from tests.broker.intake import samples


def _names(description_details: dict) -> list[str]:
    return [row["nom"] for layer in description_details["layers"] for row in layer["sample"]]


def test_geopackage_layers_fields_crs_and_extents(tmp_path: Path, blob: Path) -> None:
    gpkg = tmp_path / "communes.gpkg"
    rows = [(n, x, y, 1) for n, x, y in samples.MONTPELLIER_L93]
    samples.write_vector(gpkg, rows, driver="GPKG", crs="EPSG:2154", layer="communes")
    shutil.copy(gpkg, blob)  # inspected where the store keeps it: no extension, a hash for a name
    description = inspect_file(blob, "communes.gpkg")
    assert (description.format, description.kind) == ("gpkg", "vector")
    assert description.media_type == "application/geopackage+sqlite3"
    assert description.crs == "EPSG:2154"
    (layer,) = description.details["layers"]
    assert layer["name"] == "communes"
    assert layer["features"] == 3
    assert layer["geometry_type"] == "Point"
    assert layer["fields"] == [{"name": "nom", "type": "String"}, {"name": "population", "type": "Integer"}]
    assert layer["extent"] == [770600.0, 6274800.0, 772900.0, 6282600.0]
    west, south, east, north = description.extent_wgs84 or []
    assert 3.85 < west < east < 3.92 and 43.55 < south < north < 43.65
    assert description.warnings == []
    # GDAL opened it read-only and immutable: nothing was written next to the blob.
    assert sorted(p.name for p in blob.parent.iterdir()) == [blob.name]


def test_geopackage_with_layers_in_two_projections_says_so(tmp_path: Path) -> None:
    gpkg = tmp_path / "mix.gpkg"
    samples.write_vector(gpkg, samples.PLACES, driver="GPKG", crs="EPSG:4326", layer="villes")
    rows = [(n, x, y, 1) for n, x, y in samples.MONTPELLIER_L93]
    samples.write_vector(gpkg, rows, driver="GPKG", crs="EPSG:2154", layer="quartiers", append=True)
    description = inspect_file(gpkg, "mix.gpkg")
    assert [layer["crs"] for layer in description.details["layers"]] == ["EPSG:4326", "EPSG:2154"]
    assert any("projections différentes" in w for w in description.warnings)
    assert description.details["feature_count"] == 6


def test_geojson_in_lambert93_with_legacy_crs_member(tmp_path: Path, blob: Path) -> None:
    shutil.copy(samples.geojson_l93(tmp_path / "q.geojson"), blob)
    description = inspect_file(blob, "quartiers.geojson")
    assert (description.format, description.kind) == ("geojson", "vector")
    assert description.crs == "EPSG:2154"
    assert description.details["legacy_crs"] == "urn:ogc:def:crs:EPSG::2154"
    assert "RFC 7946" in description.warnings[0] and "WGS84" in description.warnings[0]
    west, south, east, north = description.extent_wgs84 or []
    assert 3.8 < west < east < 3.95
    assert 43.5 < south < north < 43.7
    assert _names(description.details)[0] == "Montpellier – Écusson"
    assert description.details["layers"][0]["name"] == "quartiers"


def test_plain_wgs84_geojson_has_no_warning(tmp_path: Path) -> None:
    path = tmp_path / "villes.geojson"
    samples.write_vector(path, samples.PLACES, driver="GeoJSON")
    description = inspect_file(path, "villes.geojson")
    assert description.crs == "EPSG:4326"
    assert description.extent_wgs84 == [3.215, 43.3442, 3.6976, 43.7317]
    assert description.warnings == []


def test_geojson_with_projected_coordinates_and_no_crs_is_flagged(tmp_path: Path) -> None:
    path = tmp_path / "q.geojson"
    path.write_text(
        '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, '
        '"geometry": {"type": "Point", "coordinates": [770600, 6279400]}}]}',
        encoding="utf-8",
    )
    description = inspect_file(path, "q.geojson")
    assert description.extent_wgs84 is None
    assert any("projection déclarée (EPSG:4326) est sans doute fausse" in w for w in description.warnings)


@pytest.mark.parametrize("cpg", ["1252", "ISO-8859-1"])
def test_latin1_shapefile_with_cpg_reads_accents_right(tmp_path: Path, cpg: str) -> None:
    shp = samples.shapefile(tmp_path / "shp", encoding="ISO-8859-1", cpg=cpg)
    zipped = samples.zip_folder(shp.parent, tmp_path / "communes.zip")
    description = inspect_file(zipped, "communes.zip")
    assert (description.format, description.kind) == ("shp", "vector")
    assert description.media_type == "application/zip"
    assert description.details["container"] == "zip"
    assert _names(description.details) == ["Béziers", "Lodève", "Sète"]
    assert description.details["layers"][0]["encoding_source"] == "cpg"
    assert not any("deviné" in w for w in description.warnings)
    assert description.crs == "EPSG:4326"


def test_latin1_shapefile_without_cpg_is_guessed_right(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp", encoding="ISO-8859-1", cpg=None)
    zipped = samples.zip_folder(shp.parent, tmp_path / "communes.zip")
    description = inspect_file(zipped, "communes.zip")
    assert _names(description.details) == ["Béziers", "Lodève", "Sète"]
    assert description.details["encoding"] == "ISO-8859-1"
    assert any("deviné : ISO-8859-1" in w for w in description.warnings)


def test_utf8_shapefile_without_cpg_is_not_garbled(tmp_path: Path) -> None:
    # Without a .cpg, GDAL alone reads the DBF as ISO-8859-1 and shows "BÃ©ziers".
    shp = samples.shapefile(tmp_path / "shp", cpg=None)
    zipped = samples.zip_folder(shp.parent, tmp_path / "communes.zip")
    description = inspect_file(zipped, "communes.zip")
    assert _names(description.details) == ["Béziers", "Lodève", "Sète"]
    assert description.details["encoding"] == "UTF-8"
    assert any("deviné : UTF-8" in w for w in description.warnings)


def test_a_cpg_that_lies_is_overruled_by_the_bytes(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp", encoding="ISO-8859-1", cpg="UTF-8")
    zipped = samples.zip_folder(shp.parent, tmp_path / "communes.zip")
    description = inspect_file(zipped, "communes.zip")
    assert _names(description.details) == ["Béziers", "Lodève", "Sète"]
    assert any("annonce UTF-8 mais" in w for w in description.warnings)


def test_zipped_shapefile_without_shx_is_refused(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp")
    zipped = samples.zip_folder(shp.parent, tmp_path / "communes.zip", skip=("shx",))
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(zipped, "communes.zip")
    assert caught.value.code == "shapefile_incomplete"
    assert "« communes.shp » est incomplet : il manque .shx" in caught.value.reason
    assert caught.value.fields == {"communes.zip": [caught.value.reason]}


def test_zipped_shapefile_without_prj_is_a_warning(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp")
    zipped = samples.zip_folder(shp.parent, tmp_path / "communes.zip", skip=("prj",))
    description = inspect_file(zipped, "communes.zip")
    assert description.crs is None
    assert any("n'a pas de fichier .prj" in w for w in description.warnings)


def test_a_truncated_shapefile_is_refused(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp")
    data = shp.read_bytes()
    shp.write_bytes(data[: len(data) - 10])
    zipped = samples.zip_folder(shp.parent, tmp_path / "communes.zip")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(zipped, "communes.zip")
    assert caught.value.code == "shapefile_corrupt"
    assert "« communes.shp » est corrompu : .shp tronqué" in caught.value.reason


def test_bare_shp_finds_its_parts_among_the_received_files(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp", encoding="ISO-8859-1", cpg="1252")
    # Staged files live under hashes: the parts are found by their received names.
    store = tmp_path / "store"
    store.mkdir()
    received = {}
    for index, part in enumerate(sorted(shp.parent.iterdir())):
        blob = store / f"blob{index}"
        shutil.copy(part, blob)
        received[part.name] = blob
    description = inspect_file(received["communes.shp"], "communes.shp", siblings=received)
    assert _names(description.details) == ["Béziers", "Lodève", "Sète"]
    assert description.details["parts"] == ["cpg", "dbf", "prj", "shp", "shx"]
    assert any("fichier par fichier" in w for w in description.warnings)
    without_dbf = {k: v for k, v in received.items() if not k.endswith(".dbf")}
    with pytest.raises(IntakeRefused, match=r"il manque \.dbf"):
        inspect_file(received["communes.shp"], "communes.shp", siblings=without_dbf)


def test_bare_shp_next_to_its_parts_on_disk(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp")
    description = inspect_file(shp, "communes.shp")
    assert description.details["layers"][0]["features"] == 3
    shx = inspect_file(shp.with_suffix(".shx"), "communes.shx")
    assert (shx.format, shx.kind) == ("shx", "other")


def test_zipped_geopackage(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    gpkg = samples.write_vector(
        tmp_path / "src" / "villes.gpkg", samples.PLACES, driver="GPKG", layer="villes"
    )
    zipped = samples.zip_folder(gpkg.parent, tmp_path / "villes.zip")
    description = inspect_file(zipped, "villes.zip")
    assert (description.format, description.kind, description.media_type) == (
        "gpkg",
        "vector",
        "application/zip",
    )
    assert description.details["member"] == "villes.gpkg"
    assert description.details["layers"][0]["features"] == 3


def test_flatgeobuf(tmp_path: Path, blob: Path) -> None:
    shutil.copy(samples.write_vector(tmp_path / "v.fgb", samples.PLACES, driver="FlatGeobuf"), blob)
    description = inspect_file(blob, "villes.fgb")
    assert (description.format, description.kind) == ("fgb", "vector")
    assert description.details["layers"][0]["name"] == "villes"
    assert sorted(_names(description.details)) == ["Béziers", "Lodève", "Sète"]  # Hilbert-sorted
