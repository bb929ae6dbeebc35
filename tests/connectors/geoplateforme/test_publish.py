"""The connector against the emulator over real HTTP: publish, resume, update, withdraw, drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from connectors.base import LedgerEntry, PermanentConnectorError
from connectors.geoplateforme.metadata import file_identifier
from tests.connectors.geoplateforme.samples import (
    Killed,
    Recorder,
    resource,
    revision,
    write_geotiff,
    write_gpkg,
    write_shapefile_zip,
)

GMD = "{http://www.isotc211.org/2005/gmd}"
GCO = "{http://www.isotc211.org/2005/gco}"


def _live(emulator: Any, org: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = emulator.state(org["datastore_id"])["counts"]
    return counts


def test_geopackage_with_download_wfs_and_wms_ends_published_with_its_record(
    emulator: Any, make_connector: Any, tmp_path: Path, iso19139_schema: etree.XMLSchema
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    gpkg = resource(write_gpkg(tmp_path / "pistes_cyclables.gpkg"))
    rev = revision("pub-vector-1", (gpkg,), services=("download", "wfs", "wms"))
    recorder = Recorder()

    ledger = connector.publish(rev, LedgerEntry(), recorder)

    assert ledger.state == "present" and ledger.revision == 1 and ledger.step == "done"
    offerings = ledger.remote["offerings"]
    assert set(offerings) == {
        "pistes_cyclables.gpkg:DOWNLOAD",
        "pistes_cyclables.gpkg:WFS",
        "pistes_cyclables.gpkg:WMS-VECTOR",
    }
    with emulator.api(org) as api:
        for offering in offerings.values():
            live = api.get(f"/offerings/{offering['id']}").json()
            assert live["status"] == "PUBLISHED", offering
            assert live["open"] is True
            assert offering["urls"] and all(url in ledger.urls for url in offering["urls"])
        # The integration normalised the table name and the accented columns (§2.2).
        stored = api.get(
            f"/stored_data/{ledger.remote['resources']['pistes_cyclables.gpkg']['stored_data']['vector']}"
        ).json()
        assert stored["status"] == "GENERATED"
        (table,) = stored["type_infos"]["relations"]
        assert table["name"] == "pistes_cyclables"
        assert {"denomination", "commune", "annee_mise_en_service"} <= set(table["attributes"])
        # WMS-VECTOR draws the table with the default SLD 1.0.0 style uploaded as a GEOSERVER-STYLE static.
        wms = api.get(
            f"/configurations/{ledger.remote['resources']['pistes_cyclables.gpkg']['configurations']['WMS-VECTOR']['id']}"
        ).json()
        style_id = wms["type_infos"]["used_data"][0]["relations"][0]["style"]
        assert api.get(f"/statics/{style_id}").json()["type"] == "GEOSERVER-STYLE"
        # Every entity carries the broker's ids (§6) and the datasheet name (§3).
        assert wms["tags"]["openig_publication"] == "pub-vector-1"
        assert wms["tags"]["datasheet_name"] == rev.title
        # The record is published on the catalogue endpoint and valid ISO 19139.
        metadata = api.get(f"/metadata/{ledger.remote['metadata']['id']}").json()
        assert metadata["endpoints"] and metadata["open_data"] is True and metadata["type"] == "ISOAP"
        record = etree.fromstring(api.get(f"/metadata/{metadata['_id']}/file").content)
    assert iso19139_schema.validate(record), iso19139_schema.error_log
    assert record.findtext(f"{GMD}fileIdentifier/{GCO}CharacterString") == file_identifier("pub-vector-1")
    linked = {element.text for element in record.iter(f"{GMD}URL")}
    assert {url for offering in offerings.values() for url in offering["urls"]} <= linked
    # The catalogue serves it.
    csw = httpx.get(ledger.remote["metadata"]["csw_url"], trust_env=False, timeout=10)
    assert csw.status_code == 200 and file_identifier("pub-vector-1") in csw.text
    # Each step was checkpointed, in order, with the ids in the ledger.
    steps = recorder.steps
    assert (
        steps.index("vector:pistes_cyclables.gpkg:upload_closed")
        < steps.index("vector:pistes_cyclables.gpkg:processing_created")
        < steps.index("WFS:pistes_cyclables.gpkg:published")
        < steps.index("metadata:published")
    )
    assert _live(emulator, org)["uploads"] == 0  # §2.2: uploads are deleted once integrated


def test_geotiff_ends_as_a_published_wmts(emulator: Any, make_connector: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    tif = resource(write_geotiff(tmp_path / "orthophoto_2024.tif"))
    rev = revision("pub-raster-1", (tif,), services=("wmts", "wms"), title="Orthophotographie 2024")

    ledger = connector.publish(rev, LedgerEntry())

    offerings = ledger.remote["offerings"]
    assert sorted(offering["type"] for offering in offerings.values()) == ["WMS-RASTER", "WMTS-TMS"]
    with emulator.api(org) as api:
        for offering in offerings.values():
            assert api.get(f"/offerings/{offering['id']}").json()["status"] == "PUBLISHED"
        stored_id = ledger.remote["resources"]["orthophoto_2024.tif"]["stored_data"]["raster"]
        pyramid = api.get(f"/stored_data/{stored_id}").json()
        assert pyramid["type"] == "ROK4-PYRAMID-RASTER" and pyramid["type_infos"]["tms"] == "PM"
        # 5 m pixels: the pyramid goes down to PM level 15 (§2.2 raster-pyramid parameters).
        assert pyramid["type_infos"]["levels"][-1] == "15"
    assert any("SERVICE=WMTS" in url for url in ledger.urls)
    assert any("/tms/1.0.0/" in url for url in ledger.urls)
    assert emulator.state(org["datastore_id"])["created"]["stored_data"] == 1  # one pyramid for both


def test_vector_tiles_are_computed_from_the_integrated_data(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    rev = revision("pub-tiles-1", (resource(write_gpkg(tmp_path / "pistes.gpkg")),), services=("wfs", "wmts"))

    ledger = make_connector(org).publish(rev, LedgerEntry())

    stored = ledger.remote["resources"]["pistes.gpkg"]["stored_data"]
    assert set(stored) == {"vector", "tiles"}
    assert ledger.remote["offerings"]["pistes.gpkg:VECTOR-TMS"]["status"] == "PUBLISHED"
    assert any(url.endswith(".pbf") for url in ledger.urls)
    with emulator.api(org) as api:
        pyramid = api.get(f"/stored_data/{stored['tiles']}").json()
    assert pyramid["type"] == "ROK4-PYRAMID-VECTOR"


def test_a_worker_killed_after_closing_the_upload_resumes_at_the_processing(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    rev = revision("pub-resume-1", (resource(write_gpkg(tmp_path / "pistes.gpkg")),), services=("wfs",))
    first = Recorder(kill_after="upload_closed")

    with pytest.raises(Killed):
        connector.publish(rev, LedgerEntry(), first)
    stored = first.last
    assert stored.step == "vector:pistes.gpkg:upload_closed"
    assert stored.remote["resources"]["pistes.gpkg"]["uploads"]["vector"]

    # A fresh worker (new connector, new token) picks the stored ledger up.
    second = Recorder()
    ledger = make_connector(org).publish(rev, stored, second)

    assert ledger.state == "present"
    assert not any(step.endswith("upload_created") or step.endswith("upload_closed") for step in second.steps)
    assert second.steps[0] == "vector:pistes.gpkg:checks_passed"
    assert "vector:pistes.gpkg:processing_created" in second.steps
    state = emulator.state(org["datastore_id"])
    assert state["created"]["uploads"] == 1  # one upload, ever
    assert state["created"]["stored_data"] == 1 and state["created"]["executions"] == 1
    assert state["counts"]["offerings"] == 1


def test_a_wrong_declared_srs_fails_the_checks_with_their_message(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    # The file is in Lambert-93 but declared in WGS84.
    wrong = resource(write_gpkg(tmp_path / "pistes.gpkg"), crs="EPSG:4326")
    rev = revision("pub-srs-1", (wrong,), services=("wfs",))

    with pytest.raises(PermanentConnectorError) as failure:
        connector.publish(rev, LedgerEntry())

    assert (
        "Le SRS du layer Pistes-Cyclables (EPSG:2154) est différent de celui déclaré (EPSG:4326)"
        in failure.value.message
    )
    assert "Vérification vecteur" in failure.value.message
    assert failure.value.fields == {"pistes.gpkg": "checks_failed"}
    assert _live(emulator, org)["uploads"] == 0  # the refused upload is not left behind


def test_a_table_name_breaking_the_rule_fails_the_checks(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    bad = resource(write_gpkg(tmp_path / "pistes.gpkg", layer="2024 pistes"))

    with pytest.raises(PermanentConnectorError, match=r"ne respecte pas l'expression \[a-z_\]\[a-z0-9_\]\*"):
        connector.publish(revision("pub-table-1", (bad,)), LedgerEntry())


def test_update_then_withdraw_leaves_the_datastore_clean(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    v1 = revision(
        "pub-update-1",
        (resource(write_gpkg(tmp_path / "v1" / "pistes.gpkg")),),
        services=("download", "wfs", "wms"),
    )
    first = connector.publish(v1, LedgerEntry())
    stored_id = first.remote["resources"]["pistes.gpkg"]["stored_data"]["vector"]
    wfs_id = first.remote["offerings"]["pistes.gpkg:WFS"]["id"]

    # Revision 2: one more feature, a new title, and the WMS and download are no longer wanted.
    v2 = revision(
        "pub-update-1",
        (resource(write_gpkg(tmp_path / "v2" / "pistes.gpkg", features=5)),),
        services=("wfs",),
        number=2,
        title="Pistes cyclables 2025",
    )
    recorder = Recorder()
    second = connector.update(v2, first, recorder)

    assert second.revision == 2
    # §2.5: the new execution went into the existing stored data, then the offering was resynchronised.
    assert second.remote["resources"]["pistes.gpkg"]["stored_data"]["vector"] == stored_id
    assert second.remote["offerings"]["pistes.gpkg:WFS"]["id"] == wfs_id
    assert set(second.remote["offerings"]) == {"pistes.gpkg:WFS"}
    assert "vector:pistes.gpkg:processing_created" in recorder.steps
    assert "WFS:pistes.gpkg:reconfigured" in recorder.steps
    counts = _live(emulator, org)
    assert counts == {
        **counts,
        "offerings": 1,
        "configurations": 1,
        "statics": 0,
        "stored_data": 1,
        "uploads": 0,
    }
    with emulator.api(org) as api:
        live = api.get(f"/offerings/{wfs_id}").json()
        assert live["status"] == "PUBLISHED"
        configuration = api.get(
            f"/configurations/{second.remote['resources']['pistes.gpkg']['configurations']['WFS']['id']}"
        ).json()
        assert configuration["tags"]["datasheet_name"] == "Pistes cyclables 2025"
        record = api.get(f"/metadata/{second.remote['metadata']['id']}/file").text
        assert "Pistes cyclables 2025" in record
        executions = api.get("/processings/executions", params={"output_stored_data": stored_id}).json()
        assert [item["status"] for item in executions] == ["SUCCESS", "SUCCESS"]

    # A second update with nothing new changes nothing on the platform.
    again = Recorder()
    connector.update(v2, second, again)
    assert not any(
        "processing" in step or "reconfigured" in step or "metadata:updated" in step for step in again.steps
    )

    withdrawn = connector.withdraw(v2, second, Recorder())

    assert withdrawn.state == "withdrawn" and withdrawn.urls == []
    assert all(value == 0 for value in _live(emulator, org).values()), _live(emulator, org)
    assert connector.inspect_remote(v2, withdrawn).exists is False


def test_layer_name_collisions_across_the_platform_take_a_suffix(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    first_org, second_org = emulator.organisation(), emulator.organisation()
    gpkg = resource(write_gpkg(tmp_path / "communes.gpkg", layer="communes"))
    one = make_connector(first_org, layer_prefix="occitanie").publish(
        revision("pub-a", (gpkg,)), LedgerEntry()
    )
    two = make_connector(second_org, layer_prefix="occitanie").publish(
        revision("pub-b", (gpkg,)), LedgerEntry()
    )

    assert one.remote["offerings"]["communes.gpkg:WFS"]["layer_name"] == "occitanie_communes"
    assert two.remote["offerings"]["communes.gpkg:WFS"]["layer_name"] == "occitanie_communes_2"


def test_restricted_data_goes_to_the_private_endpoints(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    rev = revision("pub-private-1", (resource(write_gpkg(tmp_path / "reseau.gpkg")),), access="restricted")

    ledger = connector.publish(rev, LedgerEntry())

    (offering,) = ledger.remote["offerings"].values()
    assert offering["open"] is False
    assert all("/private/" in url for url in offering["urls"])
    with emulator.api(org) as api:
        metadata = api.get(f"/metadata/{ledger.remote['metadata']['id']}").json()
    assert metadata["open_data"] is False


def test_a_zipped_shapefile_is_sent_one_file_per_request(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    shapefile = resource(write_shapefile_zip(tmp_path / "arrets.zip"))
    rev = revision("pub-shp-1", (shapefile,), title="Arrêts de bus")

    ledger = make_connector(org).publish(rev, LedgerEntry())

    with emulator.api(org) as api:
        stored = api.get(
            f"/stored_data/{ledger.remote['resources']['arrets.zip']['stored_data']['vector']}"
        ).json()
    assert [table["name"] for table in stored["type_infos"]["relations"]] == ["arrets_bus"]


def test_a_pdf_is_published_for_download_only(emulator: Any, make_connector: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    pdf = tmp_path / "notice.pdf"
    pdf.write_bytes(b"%PDF-1.4\n% notice du jeu de donnees\n")
    rev = revision("pub-doc-1", (resource(pdf, crs=None),), services=("download", "wfs"))

    ledger = make_connector(org).publish(rev, LedgerEntry())

    assert [offering["type"] for offering in ledger.remote["offerings"].values()] == ["DOWNLOAD"]


def test_inspect_remote_reports_an_offering_deleted_on_the_platform(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    rev = revision("pub-drift-1", (resource(write_gpkg(tmp_path / "pistes.gpkg")),))
    ledger = connector.publish(rev, LedgerEntry())
    assert connector.inspect_remote(rev, ledger).drift == ()

    with emulator.api(org) as api:
        api.delete(f"/offerings/{ledger.remote['offerings']['pistes.gpkg:WFS']['id']}").raise_for_status()
        stored_id = ledger.remote["resources"]["pistes.gpkg"]["stored_data"]["vector"]
    state = connector.inspect_remote(rev, ledger)

    assert state.exists is True
    kinds = {(drift.kind, drift.entity) for drift in state.drift}
    assert ("deleted", "offering:pistes.gpkg:WFS") in kinds or ("stale", "offering:pistes.gpkg:WFS") in kinds
    assert state.remote["stored_data"] == {"pistes.gpkg:vector": "GENERATED"}
    assert stored_id

    # Publishing again repairs it.
    repaired = connector.publish(rev, ledger)
    assert connector.inspect_remote(rev, repaired).drift == ()
