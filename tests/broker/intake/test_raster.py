"""Raster inspection with rasterio and rio-cogeo: COG or plain GeoTIFF, JPEG 2000, broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from broker.intake.inspect import IntakeRefused, inspect_file
from tests.broker.intake import samples

SAMPLES = Path(__file__).parents[2] / "fixtures" / "samples"


def _jp2_driver() -> bool:
    import rasterio

    with rasterio.Env() as env:
        return "JP2OpenJPEG" in env.drivers()


def test_plain_geotiff_is_not_a_cog(tmp_path: Path, blob: Path) -> None:
    shutil.copy(samples.geotiff(tmp_path / "ortho.tif"), blob)
    description = inspect_file(blob, "ortho.tif")
    assert (description.format, description.kind) == ("tif", "raster")
    assert description.media_type == "image/tiff; application=geotiff"
    details = description.details
    assert (details["width"], details["height"], details["bands"]) == (600, 600, 1)
    assert details["dtypes"] == ["uint8"]
    assert details["nodata"] == 0
    assert details["overviews"] == []
    assert details["cog"]["is_cog"] is False
    assert details["cog"]["errors"]
    assert description.crs == "EPSG:2154"
    assert details["extent"] == [765000.0, 6279000.0, 771000.0, 6285000.0]
    west, south, east, north = description.extent_wgs84 or []
    assert 3.8 < west < east < 3.95 and 43.55 < south < north < 43.7
    # PAM is off: no .aux.xml appeared next to the blob.
    assert sorted(p.name for p in blob.parent.iterdir()) == [blob.name]


def test_cog_is_recognised(tmp_path: Path, blob: Path) -> None:
    source = samples.geotiff(tmp_path / "ortho.tif")
    shutil.copy(samples.cog(source, tmp_path / "ortho_cog.tif"), blob)
    description = inspect_file(blob, "ortho.tif")
    assert description.format == "cog"
    assert description.media_type == "image/tiff; application=geotiff; profile=cloud-optimized"
    assert description.details["cog"] == {"is_cog": True, "errors": [], "warnings": []}
    assert description.details["overviews"]


def test_tiff_without_georeferencing_is_described_with_a_warning(tmp_path: Path) -> None:
    path = samples.geotiff(tmp_path / "scan.tif", size=64, crs=None)
    description = inspect_file(path, "scan.tif")
    assert description.crs is None
    assert description.media_type == "image/tiff"
    assert any("n'est pas géoréférencé" in w for w in description.warnings)


def test_world_file_among_received_files_georeferences_a_tiff(tmp_path: Path) -> None:
    path = samples.geotiff(tmp_path / "scan.tif", size=64, crs=None)
    world = tmp_path / "scan.tfw"
    world.write_text("10\n0\n0\n-10\n765005\n6284995\n", encoding="ascii")
    description = inspect_file(path, "scan.tif", siblings={"scan.tif": path, "scan.tfw": world})
    assert description.details["georeferenced"] is True
    assert description.details["sidecars"] == ["tfw"]
    assert description.details["extent"] == [765000.0, 6284360.0, 765640.0, 6285000.0]


def test_truncated_geotiff_is_refused(tmp_path: Path) -> None:
    path = samples.geotiff(tmp_path / "ortho.tif")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "ortho.tif")
    assert caught.value.code == "unreadable"
    assert "« ortho.tif »" in caught.value.reason


def test_jpeg2000(tmp_path: Path, blob: Path) -> None:
    if _jp2_driver():
        source = samples.jpeg2000(tmp_path / "ortho.jp2")
        shutil.copy(source, blob)
        description = inspect_file(blob, "ortho.jp2")
        assert (description.format, description.kind, description.media_type) == (
            "jp2",
            "raster",
            "image/jp2",
        )
        assert description.crs == "EPSG:2154"
        assert description.details["width"] == 128
    else:  # no driver to write or read one: detection by the signature box still works
        with pytest.raises(IntakeRefused) as caught:
            inspect_file(SAMPLES / "tiny.jp2", "ortho.tif")
        assert "en réalité une image JPEG 2000" in caught.value.reason


def test_committed_jpeg2000_sample_is_detected_by_content() -> None:
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(SAMPLES / "tiny.jp2", "ortho.tif")
    assert "« ortho.tif » est en réalité une image JPEG 2000" in caught.value.reason
