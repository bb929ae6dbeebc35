"""Detection by content: the bytes decide, and a name that lies is refused with a reason naming the file."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from broker.errors import InvalidInput
from broker.intake.inspect import IntakeRefused, inspect_file
from tests.broker.intake import samples


def test_a_pdf_named_geojson_is_refused_saying_what_it_really_is(tmp_path: Path) -> None:
    path = samples.pdf(tmp_path / "routes.geojson")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "routes.geojson")
    refused = caught.value
    assert "« routes.geojson » est en réalité un PDF" in refused.reason
    assert refused.code == "type_mismatch"
    # The API renders it as a 422 with the file name as the field key.
    assert isinstance(refused, InvalidInput)
    assert refused.status_code == 422
    assert refused.fields == {"routes.geojson": [refused.reason]}
    assert refused.to_body()["error"] == "type_mismatch"


def test_pdf_is_a_document(tmp_path: Path, blob: Path) -> None:
    shutil.copy(samples.pdf(tmp_path / "x.pdf"), blob)
    description = inspect_file(blob, "rapport annuel.pdf")
    assert (description.format, description.kind, description.media_type) == (
        "pdf",
        "document",
        "application/pdf",
    )
    assert description.details["pdf_version"] == "1.4"
    assert description.details["size"] == blob.stat().st_size
    assert description.warnings == []


def test_png_dimensions_come_from_ihdr(tmp_path: Path) -> None:
    description = inspect_file(samples.png(tmp_path / "logo.png", 7, 5), "logo.png")
    assert (description.format, description.kind) == ("png", "image")
    assert description.details["width"] == 7
    assert description.details["height"] == 5


def test_broken_json_is_refused_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "arrets.json"
    path.write_text('{"arrets": [{"nom": "Comédie"},\n {"nom": }]}', encoding="utf-8")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "arrets.json")
    assert caught.value.code == "json_malformed"
    assert "« arrets.json » n'est pas un JSON valide : ligne 2" in caught.value.reason


def test_json_in_latin1_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "arrets.json"
    path.write_bytes('{"nom": "Comédie"}'.encode("latin-1"))
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "arrets.json")
    assert caught.value.code == "json_not_utf8"
    assert "UTF-8" in caught.value.reason


def test_plain_json_is_a_table(tmp_path: Path) -> None:
    path = tmp_path / "compteurs.json"
    path.write_text('[{"id": 1, "passages": 120}, {"id": 2, "passages": 98}]', encoding="utf-8")
    description = inspect_file(path, "compteurs.json")
    assert (description.format, description.kind) == ("json", "table")
    assert description.details["items"] == 2


def test_json_that_is_not_geojson_cannot_be_named_geojson(tmp_path: Path) -> None:
    path = tmp_path / "x.geojson"
    path.write_text('{"features": []}', encoding="utf-8")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "quartiers.geojson")
    assert "est en réalité un document JSON, pas un GeoJSON" in caught.value.reason


def test_an_html_error_page_saved_as_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text("<!DOCTYPE html><html><body>502 Bad Gateway</body></html>", encoding="utf-8")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "export.csv")
    assert "« export.csv » est en réalité une page HTML, pas un fichier CSV" in caught.value.reason


def test_unknown_bytes_named_gpkg_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.gpkg"
    path.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "communes.gpkg")
    assert caught.value.reason == "« communes.gpkg » n'est pas un GeoPackage : son contenu n'est pas reconnu."


def test_a_plain_sqlite_database_is_not_a_geopackage(tmp_path: Path) -> None:
    path = tmp_path / "x.gpkg"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE communes (nom TEXT)")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "communes.gpkg")
    assert "base SQLite (pas un GeoPackage)" in caught.value.reason


def test_empty_and_missing_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "vide.csv"
    empty.touch()
    with pytest.raises(IntakeRefused, match=r"« vide\.csv » est vide"):
        inspect_file(empty, "vide.csv")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(tmp_path / "absent", "absent.csv")
    assert caught.value.code == "unreadable"


def test_unknown_extension_with_unknown_content_is_kept_as_other(tmp_path: Path) -> None:
    path = tmp_path / "x.dwg"
    path.write_bytes(b"AC1032" + bytes(200))
    description = inspect_file(path, "plan.dwg")
    assert (description.format, description.kind) == ("dwg", "other")


def test_content_wins_over_a_missing_extension(tmp_path: Path) -> None:
    description = inspect_file(samples.pdf(tmp_path / "x"), "notice")
    assert description.format == "pdf"
