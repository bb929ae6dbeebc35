"""GTFS feeds: required files and referential integrity."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.intake.inspect import IntakeRefused, inspect_file
from tests.broker.intake import samples


def test_valid_feed(tmp_path: Path) -> None:
    path = samples.zip_texts(tmp_path / "tam.zip", samples.gtfs_files())
    description = inspect_file(path, "tam.zip")
    assert (description.format, description.kind, description.media_type) == (
        "gtfs",
        "gtfs",
        "application/zip",
    )
    assert description.crs == "EPSG:4326"
    assert description.extent_wgs84 == [3.819, 43.604, 3.92, 43.616]
    assert description.details["rows"]["stop_times.txt"] == 5
    assert description.details["agencies"] == ["Transports de l'agglomération de Montpellier"]
    assert description.details["validity"] == {"start": "2026-01-01", "end": "2099-12-31"}
    assert description.warnings == []


def test_broken_references_are_refused_with_examples(tmp_path: Path) -> None:
    files = samples.gtfs_files(
        **{
            "stop_times.txt": "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
            "T1,08:00:00,08:00:00,S1,1\nT9,08:20:00,08:20:00,S1,2\nT1,08:35:00,08:35:00,S404,3\n",
            "trips.txt": "route_id,service_id,trip_id\nL1,SEM,T1\nL7,SEM,T2\n",
        }
    )
    path = samples.zip_texts(tmp_path / "tam.zip", files)
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "tam.zip")
    refused = caught.value
    assert refused.code == "gtfs_broken_references"
    assert "3 référence(s) cassée(s)" in refused.reason
    assert "trips.txt ligne 3 : route_id « L7 » absent de routes.txt" in refused.reason
    assert "stop_times.txt ligne 3 : trip_id « T9 » absent de trips.txt" in refused.reason
    assert "stop_times.txt ligne 4 : stop_id « S404 » absent de stops.txt" in refused.reason
    assert refused.details["stop_times.txt.trip_id"]["count"] == 1
    assert list(refused.fields) == ["tam.zip"]


def test_missing_required_files_are_named(tmp_path: Path) -> None:
    path = samples.zip_texts(
        tmp_path / "tam.zip", samples.gtfs_files(**{"trips.txt": None, "calendar.txt": None})
    )
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "tam.zip")
    assert caught.value.code == "gtfs_missing_files"
    assert "il manque trips.txt, calendar.txt ou calendar_dates.txt" in caught.value.reason


def test_feed_zipped_with_its_folder_is_refused(tmp_path: Path) -> None:
    path = samples.zip_texts(tmp_path / "tam.zip", samples.gtfs_files(), folder="gtfs_tam/")
    with pytest.raises(IntakeRefused) as caught:
        inspect_file(path, "tam.zip")
    assert caught.value.code == "gtfs_not_at_root"
    assert "« gtfs_tam »" in caught.value.reason


def test_expired_feed_is_a_warning(tmp_path: Path) -> None:
    calendar = "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
    calendar += "SEM,1,1,1,1,1,0,0,20200101,20201231\n"
    path = samples.zip_texts(tmp_path / "tam.zip", samples.gtfs_files(**{"calendar.txt": calendar}))
    description = inspect_file(path, "tam.zip")
    assert any("a expiré" in w and "31/12/2020" in w for w in description.warnings)
