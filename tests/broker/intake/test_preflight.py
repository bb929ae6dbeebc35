"""Per-target pre-flight rules: every problem at once, with stable codes and French messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.intake.detect import FileDescription
from broker.intake.inspect import inspect_file
from broker.intake.preflight import normalise_identifier, preflight, upload_type
from tests.broker.intake import samples


def _codes(problems: list) -> dict[str, str]:
    return {p.code: p.severity for p in problems}


# --------------------------------------------------------------------------------------------- data.gouv.fr


def test_datagouv_refuses_tif_and_suggests_tiff(tmp_path: Path) -> None:
    description = inspect_file(samples.geotiff(tmp_path / "ortho.tif", size=64), "ortho.tif")
    (problem,) = preflight(description, "ortho.tif", "datagouv")
    assert (problem.code, problem.severity, problem.target, problem.resource) == (
        "datagouv_extension_refused",
        "error",
        "datagouv",
        "ortho.tif",
    )
    assert "« .tiff »" in problem.message
    assert preflight(description, "ortho.tiff", "datagouv") == []


def test_datagouv_large_file_goes_in_chunks_as_a_warning(tmp_path: Path) -> None:
    description = inspect_file(samples.pdf(tmp_path / "r.pdf"), "rapport.pdf")
    description.details["size"] = 45_000_000
    (problem,) = preflight(description, "rapport.pdf", "datagouv")
    assert (problem.code, problem.severity) == ("datagouv_chunked_upload", "warning")
    assert "3 morceaux de 20 Mo" in problem.message


def test_datagouv_reports_every_problem_at_once() -> None:
    description = FileDescription(
        format="html", kind="document", media_type="text/html", details={"size": 30_000_000}
    )
    assert _codes(preflight(description, "page.html", "datagouv")) == {
        "datagouv_extension_refused": "error",
        "datagouv_html_refused": "error",
        "datagouv_chunked_upload": "warning",
    }


def test_datagouv_bare_shapefile_is_a_warning(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp")
    description = inspect_file(shp, "communes.shp")
    assert _codes(preflight(description, "communes.shp", "datagouv")) == {
        "datagouv_shapefile_parts": "warning"
    }


# --------------------------------------------------------------------------------------------- Géoplateforme


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("communes", "communes"),
        ("Mes Communes", "mes_communes"),
        ("Été-2021 (provisoire)", "ete_2021_provisoire"),
        ("2024_limites", "_2024_limites"),
        ("_id", "_id"),
        ("€€", None),
        ("東京", None),
    ],
)
def test_identifier_normalisation(raw: str, expected: str | None) -> None:
    assert normalise_identifier(raw) == expected


def test_geoplateforme_gpkg_names_are_normalised_or_refused(tmp_path: Path) -> None:
    gpkg = tmp_path / "x.gpkg"
    rows = [(n, x, y, 1) for n, x, y in samples.MONTPELLIER_L93]
    samples.write_vector(
        gpkg, rows, driver="GPKG", crs="EPSG:2154", layer="Quartiers Montpellier", fields=("Nom", "€")
    )
    description = inspect_file(gpkg, "quartiers.gpkg")
    assert upload_type(description) == "VECTOR"
    problems = preflight(description, "quartiers.gpkg", "geoplateforme")
    assert _codes(problems) == {
        "geoplateforme_table_name_normalised": "warning",
        "geoplateforme_column_name_normalised": "warning",
        "geoplateforme_column_name_invalid": "error",
    }
    messages = " ".join(p.message for p in problems)
    assert "« quartiers_montpellier »" in messages
    assert "« nom »" in messages


def test_geoplateforme_column_collision_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("Nom,nom,lon,lat\na,b,3.1,43.1\n", encoding="utf-8")
    description = inspect_file(path, "arrets.csv")
    codes = _codes(preflight(description, "arrets.csv", "geoplateforme"))
    assert codes["geoplateforme_name_collision"] == "error"


def test_geoplateforme_needs_an_epsg_srs(tmp_path: Path) -> None:
    shp = samples.shapefile(tmp_path / "shp")
    (shp.parent / "communes.prj").unlink()
    description = inspect_file(shp, "communes.shp")
    codes = _codes(preflight(description, "communes.shp", "geoplateforme"))
    assert codes == {"geoplateforme_srs_unknown": "error"}


def test_geoplateforme_mixed_projections_are_refused(tmp_path: Path) -> None:
    gpkg = tmp_path / "mix.gpkg"
    samples.write_vector(gpkg, samples.PLACES, driver="GPKG", crs="EPSG:4326", layer="villes")
    rows = [(n, x, y, 1) for n, x, y in samples.MONTPELLIER_L93]
    samples.write_vector(gpkg, rows, driver="GPKG", crs="EPSG:2154", layer="quartiers", append=True)
    codes = _codes(preflight(inspect_file(gpkg, "mix.gpkg"), "mix.gpkg", "geoplateforme"))
    assert codes == {"geoplateforme_srs_mixed": "error"}


def test_geoplateforme_cog_is_taken_as_geotiff_unconfirmed(tmp_path: Path) -> None:
    source = samples.geotiff(tmp_path / "o.tif")
    description = inspect_file(samples.cog(source, tmp_path / "c.tif"), "ortho.tif")
    assert upload_type(description) == "RASTER"
    (problem,) = preflight(description, "ortho.tif", "geoplateforme")
    assert (problem.code, problem.severity) == ("geoplateforme_cog_as_geotiff", "warning")
    assert "NON CONFIRMÉ" in problem.message


def test_geoplateforme_keeps_other_formats_as_archive(tmp_path: Path) -> None:
    description = inspect_file(samples.zip_texts(tmp_path / "tam.zip", samples.gtfs_files()), "tam.zip")
    assert upload_type(description) == "ARCHIVE"
    assert _codes(preflight(description, "tam.zip", "geoplateforme")) == {
        "geoplateforme_archive_only": "warning"
    }
    table = tmp_path / "budget.csv"
    table.write_text("poste,montant\nvoirie,12\n", encoding="utf-8")
    assert upload_type(inspect_file(table, "budget.csv")) == "ARCHIVE"


def test_geoplateforme_csv_geometry_columns_must_bear_accepted_names(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("nom,lng,latitude\nA,3.1,43.1\n", encoding="utf-8")
    problems = preflight(inspect_file(path, "a.csv"), "a.csv", "geoplateforme")
    assert _codes(problems) == {"geoplateforme_csv_geometry_name": "error"}
    good = tmp_path / "b.csv"
    good.write_text("nom,lon,lat\nA,3.1,43.1\n", encoding="utf-8")
    assert preflight(inspect_file(good, "b.csv"), "b.csv", "geoplateforme") == []


def test_geoplateforme_size_caps(tmp_path: Path) -> None:
    gpkg = samples.write_vector(tmp_path / "v.gpkg", samples.PLACES, driver="GPKG", layer="villes")
    description = inspect_file(gpkg, "villes.gpkg")
    description.details["size"] = 2_100_000_000
    problems = preflight(description, "villes.gpkg", "geoplateforme")
    assert _codes(problems) == {"geoplateforme_too_large": "error"}
    assert "2,1 Go" in problems[0].message


def test_geoplateforme_archive_with_duplicate_names(tmp_path: Path) -> None:
    path = samples.zip_texts(tmp_path / "lot.zip", {"a/notes.txt": "x", "b/notes.txt": "y"})
    codes = _codes(preflight(inspect_file(path, "lot.zip"), "lot.zip", "geoplateforme"))
    assert codes["geoplateforme_archive_duplicate_names"] == "error"


# --------------------------------------------------------------------------------------------- regional


def test_regional_only_blocks_above_its_cap(tmp_path: Path) -> None:
    description = inspect_file(samples.pdf(tmp_path / "r.pdf"), "rapport.pdf")
    description.details["size"] = 3_000
    assert preflight(description, "r.pdf", "regional") == []
    (problem,) = preflight(description, "r.pdf", "regional", max_bytes=1_000)
    assert (problem.code, problem.severity) == ("regional_too_large", "error")


def test_unknown_target() -> None:
    with pytest.raises(ValueError, match="unknown target"):
        preflight(FileDescription(format=None, kind=None, media_type=None), "x", "ftp")
