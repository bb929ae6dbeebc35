"""The data.gouv.fr connector against the emulator over real HTTP (uvicorn on loopback)."""

from __future__ import annotations

import concurrent.futures
import hashlib
import random
from pathlib import Path

import pytest

from connectors.base import (
    ConnectorConfigurationError,
    LedgerEntry,
    PermanentConnectorError,
    TransientConnectorError,
)
from connectors.datagouv.mapping import PUBLICATION_KEY, RESOURCE_KEY, SERVICE_KEY
from tests.connectors.datagouv.conftest import (
    ConnectorFactory,
    EmulatorAdmin,
    Org,
    RevisionFactory,
    api_call,
    api_get,
    deliver,
    file_resource,
)

pytestmark = pytest.mark.servers

GPKG = b"GPKG fake geopackage content " * 50
CSV = b"id;nom;longueur_m\n1;Avenue de Lodeve;1200\n2;Rue du Faubourg;850\n"
PDF = b"%PDF-1.4 notice de la couche\n"


def _ours(datasets: list[dict], publication_id: str) -> list[dict]:
    return [d for d in datasets if d["extras"].get(PUBLICATION_KEY) == publication_id]


def test_publish_creates_dataset_with_extras_private_tags_and_resources(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """It should create one dataset under the organization, mark it, and upload files with their metadata."""
    revision = make_revision(
        files={"pistes_cyclables.gpkg": GPKG, "Compteurs Vélo.csv": CSV},
        links={"arrets.geojson": "https://data.example.org/arrets.geojson"},
        keywords=("Mobilité", "Vélo", "PLU", "ab", "Œuvres d'art"),
    )
    since = emulator.last_request_number()
    ledger, attempts = deliver(connector().publish, revision)

    assert attempts == 1
    assert ledger.state == "present" and ledger.revision == 1 and ledger.step == "done"
    dataset = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")
    assert dataset["organization"]["id"] == organization.id
    assert dataset["extras"][PUBLICATION_KEY] == "pub-1"
    assert dataset["private"] is False
    assert dataset["tags"] == ["mobilite", "velo", "plu", "oeuvres-d-art"]  # "ab" is too short for udata
    assert dataset["license"] == "lov2" and dataset["frequency"] == "quarterly"
    assert dataset["spatial"]["zones"] == ["fr:commune:34172"]
    assert dataset["temporal_coverage"]["start"].startswith("2024-01-01")
    assert dataset["contact_points"][0]["email"] == "sig@example.fr"
    assert ledger.urls[0] == dataset["page"]

    titles = [r["title"] for r in dataset["resources"]]
    assert titles == ["Fichier pistes_cyclables.gpkg", "Fichier Compteurs Vélo.csv", "Lien arrets.geojson"]
    gpkg, csv, link = dataset["resources"]
    assert gpkg["filetype"] == "file" and gpkg["format"] == "gpkg" and gpkg["type"] == "main"
    assert gpkg["checksum"] == {"type": "sha1", "value": hashlib.sha1(GPKG).hexdigest()}
    assert gpkg["extras"][RESOURCE_KEY] == {
        "name": "pistes_cyclables.gpkg",
        "sha256": hashlib.sha256(GPKG).hexdigest(),
    }
    assert csv["url"].endswith("/compteurs-velo.csv")  # the stored name is slugified by data.gouv.fr
    assert link["filetype"] == "remote" and link["url"] == "https://data.example.org/arrets.geojson"
    assert set(ledger.remote["resources"]) == {
        "pistes_cyclables.gpkg",
        "Compteurs Vélo.csv",
        "arrets.geojson",
    }

    # Each upload was followed by a metadata PUT (uploads overwrite titles, research §3).
    log = emulator.requests(since)
    dataset_writes = [
        e for e in log if e["method"] in ("POST", "PUT") and e["path"].startswith("/api/1/datasets/")
    ]
    dataset_writes = [e for e in dataset_writes if e.get("body_keys") and "title" in e["body_keys"]]
    assert dataset_writes and all("private" in e["body_keys"] for e in dataset_writes)
    uploads = [e for e in log if e["method"] == "POST" and e["path"].endswith("/upload/")]
    puts = [
        e for e in log if e["method"] == "PUT" and "/resources/" in e["path"] and e["path"].count("/") > 6
    ]
    assert len(uploads) == 2 and len(puts) == 2


def test_publish_twice_is_idempotent(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """It should find the dataset again (even with an empty ledger) and upload nothing twice."""
    revision = make_revision(files={"pistes.gpkg": GPKG})
    first, _ = deliver(connector().publish, revision)
    since = emulator.last_request_number()
    second, _ = deliver(connector().publish, revision, LedgerEntry())  # a lost ledger
    assert second.remote["dataset"] == first.remote["dataset"]
    assert second.remote["resources"] == first.remote["resources"]
    # Nothing created or uploaded again (the contact point POST is udata's get-or-create: 200, no new point).
    assert [e["status"] for e in emulator.requests(since) if e["method"] == "POST"] == [200]
    assert len(_ours(emulator.datasets(organization.id), "pub-1")) == 1


def test_update_replaces_only_the_changed_file(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """It should PUT the new title, replace one file in place and leave the other untouched."""
    dg = connector()
    first, _ = deliver(dg.publish, make_revision(files={"pistes.gpkg": GPKG, "notice.pdf": PDF}))
    before = api_get(emulator, organization, f"datasets/{first.remote['dataset']}/")
    by_name = {r["extras"][RESOURCE_KEY]["name"]: r for r in before["resources"]}

    hashed: list[str] = []
    digest = dg._digest
    dg._digest = lambda resource: (hashed.append(resource.name), digest(resource))[1]  # type: ignore[method-assign]
    changed = GPKG + b"nouveaux troncons"
    revision = make_revision(
        revision=2, title="Pistes cyclables 2025", files={"pistes.gpkg": changed, "notice.pdf": PDF}
    )
    since = emulator.last_request_number()
    second, _ = deliver(dg.update, revision, first)
    after = api_get(emulator, organization, f"datasets/{second.remote['dataset']}/")

    assert after["id"] == before["id"] and after["title"] == "Pistes cyclables 2025"
    assert second.revision == 2
    now = {r["extras"][RESOURCE_KEY]["name"]: r for r in after["resources"]}
    assert now["pistes.gpkg"]["id"] == by_name["pistes.gpkg"]["id"]  # replaced in place
    assert now["pistes.gpkg"]["checksum"]["value"] == hashlib.sha1(changed).hexdigest()
    assert now["pistes.gpkg"]["title"] == "Fichier pistes.gpkg"  # metadata re-sent after the upload
    assert now["notice.pdf"] == by_name["notice.pdf"] | {"last_modified": now["notice.pdf"]["last_modified"]}
    uploads = [e["path"] for e in emulator.requests(since) if e["method"] == "POST" and "upload" in e["path"]]
    assert uploads == [f"/api/1/datasets/{after['id']}/resources/{by_name['pistes.gpkg']['id']}/upload/"]
    assert hashed == ["pistes.gpkg"]  # the ledger proved notice.pdf unchanged without reading it
    puts = [
        e
        for e in emulator.requests(since)
        if e["method"] == "PUT" and e["path"] == f"/api/1/datasets/{after['id']}/"
    ]
    assert len(puts) == 1 and {"private", "title", "tags"} <= set(puts[0]["body_keys"])
    assert "extras" not in puts[0]["body_keys"] and "organization" not in puts[0]["body_keys"]


def test_update_deletes_resources_dropped_from_the_revision(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """It should delete its own resources no longer listed, and leave hand-added ones alone."""
    dg = connector()
    first, _ = deliver(dg.publish, make_revision(files={"pistes.gpkg": GPKG, "notice.pdf": PDF}))
    dataset_id = first.remote["dataset"]
    hand_added = api_call(
        emulator,
        organization,
        "POST",
        f"datasets/{dataset_id}/resources/",
        json={
            "title": "Ajout manuel",
            "url": "https://example.org/a.csv",
            "filetype": "remote",
            "type": "other",
        },
    )
    assert hand_added.status_code == 201
    second, _ = deliver(dg.update, make_revision(revision=2, files={"pistes.gpkg": GPKG}), first)
    titles = sorted(
        r["title"] for r in api_get(emulator, organization, f"datasets/{dataset_id}/")["resources"]
    )
    assert titles == ["Ajout manuel", "Fichier pistes.gpkg"]
    assert set(second.remote["resources"]) == {"pistes.gpkg"}


def test_withdraw_deletes_then_publish_restores(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """It should soft-delete on withdraw, and restore the same dataset on a later publish."""
    dg = connector()
    revision = make_revision(files={"pistes.gpkg": GPKG})
    published, _ = deliver(dg.publish, revision)
    withdrawn, _ = deliver(dg.withdraw, revision, published)
    assert withdrawn.state == "withdrawn" and withdrawn.urls == []
    dataset = api_get(emulator, organization, f"datasets/{published.remote['dataset']}/")
    assert dataset["deleted"] is not None
    anonymous = api_call(emulator, Org(id="", slug="", api_key=""), "GET", f"datasets/{dataset['id']}/")
    assert anonymous.status_code == 410 and anonymous.json() == {"message": "Dataset has been deleted"}

    again, _ = deliver(dg.withdraw, revision, withdrawn)  # idempotent
    assert again.state == "withdrawn"

    restored, _ = deliver(dg.publish, make_revision(revision=2, files={"pistes.gpkg": GPKG}), LedgerEntry())
    assert restored.remote["dataset"] == dataset["id"]
    assert api_get(emulator, organization, f"datasets/{dataset['id']}/")["deleted"] is None
    assert len(_ours(emulator.datasets(organization.id), "pub-1")) == 1


def test_withdraw_archive_mode(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    dg = connector(withdraw_mode="archive")
    revision = make_revision()
    published, _ = deliver(dg.publish, revision)
    withdrawn, _ = deliver(dg.withdraw, revision, published)
    dataset = api_get(emulator, organization, f"datasets/{published.remote['dataset']}/")
    assert withdrawn.remote["withdrawn"] == "archive"
    assert dataset["archived"] is not None and dataset["deleted"] is None
    state = dg.inspect_remote(revision, withdrawn)
    assert state.drift == ()


def test_restricted_publication_sends_metadata_only(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """It should send no file, set access_type restricted and the access-request URL; no licence."""
    revision = make_revision(
        files={"parcelles.gpkg": GPKG},
        access="restricted",
        restricted_users=("alice@example.fr",),
        access_request_url="https://broker.example.org/publications/pub-1/access-requests",
    )
    since = emulator.last_request_number()
    dg = connector()
    assert {p.code for p in dg.preflight(revision)} >= {"restricted_metadata_only"}
    ledger, _ = deliver(dg.publish, revision)
    dataset = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")
    assert dataset["access_type"] == "restricted"
    assert dataset["authorization_request_url"] == revision.access_request_url
    assert dataset["license"] == "notspecified"  # forced to null by data.gouv.fr when not open
    assert dataset["resources"] == []
    assert not [e for e in emulator.requests(since) if "upload" in e["path"]]


def test_bad_tag_and_unknown_zone_surface_field_messages(
    connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """A 400 should become a PermanentConnectorError with udata's field message in .fields."""
    dg = connector()
    with pytest.raises(PermanentConnectorError) as unknown_zone:
        dg.publish(make_revision(spatial_zones=("fr:commune:99999",)), LedgerEntry())
    assert unknown_zone.value.fields == {"spatial.zones": "Unknown geoid(s): fr:commune:99999"}
    assert "zones géographiques" in unknown_zone.value.message

    # A tag that slugifies to nothing useful is filtered by the mapping; an over-long one is cut at 96.
    revision = make_revision(keywords=("x" * 120, "ok"))
    ledger, _ = deliver(dg.publish, revision)
    assert ledger.state == "present"

    with pytest.raises(PermanentConnectorError) as bad_frequency:
        dg.publish(make_revision("pub-2", frequency="tous-les-jours-ou-presque"), LedgerEntry())
    # An unknown frequency is caught by the pre-flight check, before anything is sent.
    assert set(bad_frequency.value.fields) == {"frequency_unknown"}
    assert "Fréquence « tous-les-jours-ou-presque » inconnue" in bad_frequency.value.message


def test_server_side_frequency_error_is_mapped_to_field(
    connector: ConnectorFactory, make_revision: RevisionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server's plain-message 400 for a frequency should still land under fields['frequency']."""
    from connectors.datagouv import mapping

    monkeypatch.setattr(mapping, "FREQUENCIES", mapping.FREQUENCIES | {"everyFullMoon"})
    with pytest.raises(PermanentConnectorError) as info:
        connector().publish(make_revision(frequency="everyFullMoon"), LedgerEntry())
    assert info.value.fields == {"frequency": "'everyFullMoon' is not a valid UpdateFrequency"}


def test_key_not_member_of_organization_is_a_configuration_error(
    emulator: EmulatorAdmin, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    stranger = emulator.provision("orga-etrangere")
    with pytest.raises(ConnectorConfigurationError) as info:
        connector(api_key=stranger["api_key"]).publish(make_revision(), LedgerEntry())
    assert info.value.fields["organization"] == "Permission denied for this organization"
    assert stranger["api_key"] not in info.value.message


def test_invalid_key_is_a_configuration_error(
    connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    secret = "udata_not-a-real-token"
    with pytest.raises(ConnectorConfigurationError) as info:
        connector(api_key=secret).publish(make_revision(), LedgerEntry())
    assert "Invalid API token" in info.value.message and secret not in info.value.message


def test_read_only_mode_is_transient(
    emulator: EmulatorAdmin, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    emulator.read_only(True)
    with pytest.raises(TransientConnectorError) as info:
        connector().publish(make_revision(contact=None), LedgerEntry())
    assert "lecture seule" in info.value.message
    emulator.read_only(False)
    ledger, _ = deliver(connector().publish, make_revision(contact=None))
    assert ledger.state == "present"


def test_429_carries_retry_after(
    emulator: EmulatorAdmin, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    emulator.faults(throttle_next=1, retry_after=7)
    with pytest.raises(TransientConnectorError) as info:
        connector().publish(make_revision(), LedgerEntry())
    assert info.value.retry_after == 7


def test_timeout_after_create_never_duplicates(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """A create committed server-side whose answer is lost must not produce a second dataset."""
    emulator.faults(
        timeout_after_create_next=1, timeout_mode="delay", timeout_delay=1.5, match_path="/datasets/$"
    )
    ledger, _ = deliver(connector(timeout=0.5).publish, make_revision(files={"pistes.gpkg": GPKG}))
    assert len(_ours(emulator.datasets(organization.id), "pub-1")) == 1
    assert ledger.state == "present"

    # The same with a connection dropped half-way through an upload's answer: the orphan file is adopted.
    emulator.faults(timeout_after_create_next=1, timeout_mode="drop", match_path="/upload/$")
    ledger2, attempts = deliver(connector().publish, make_revision("pub-2", files={"pistes.gpkg": GPKG}))
    assert attempts == 2
    dataset = api_get(emulator, organization, f"datasets/{ledger2.remote['dataset']}/")
    assert (
        len(dataset["resources"]) == 1
        and dataset["resources"][0]["extras"][RESOURCE_KEY]["name"] == "pistes.gpkg"
    )


def test_two_hundred_publications_under_faults(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """200 publications with 30 % injected 500s and 5 % lost creates give exactly 200 datasets."""
    revisions = [
        make_revision(
            f"pub-{i:03d}", title=f"Jeu de données {i}", files={f"donnees-{i}.csv": CSV + str(i).encode()}
        )
        for i in range(200)
    ]
    emulator.faults(
        error_rate=0.3,
        timeout_after_create_rate=0.05,
        timeout_mode="mixed",
        timeout_delay=1.2,
        seed=20260214,
    )
    dg = connector(timeout=1.0, page_size=100)

    def run(revision):  # type: ignore[no-untyped-def]
        random.seed(revision.publication_id)
        return deliver(dg.publish, revision, attempts=200, backoff=0.005)

    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, revisions))
    emulator.clear_faults()

    assert all(ledger.state == "present" for ledger, _ in results)
    assert sum(attempts for _, attempts in results) > 200  # the faults did bite
    datasets = emulator.datasets(organization.id)
    assert len(datasets) == 200
    assert sorted(d["extras"][PUBLICATION_KEY] for d in datasets) == sorted(
        r.publication_id for r in revisions
    )
    assert all(len(d["resources"]) == 1 for d in datasets)
    lost = [e for e in emulator.requests() if (e.get("fault") or "").startswith("create committed")]
    assert lost  # some creates were committed and their answer lost


def test_reconcile_repairs_a_resource_deleted_behind_the_broker(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    dg = connector()
    revision = make_revision(files={"pistes.gpkg": GPKG, "notice.pdf": PDF})
    ledger, _ = deliver(dg.publish, revision)
    dataset_id = ledger.remote["dataset"]
    assert dg.inspect_remote(revision, ledger).drift == ()

    notice_id = ledger.remote["resources"]["notice.pdf"]["id"]
    assert (
        api_call(
            emulator, organization, "DELETE", f"datasets/{dataset_id}/resources/{notice_id}/"
        ).status_code
        == 204
    )
    edited = api_call(
        emulator, organization, "PUT", f"datasets/{dataset_id}/", json={"title": "Titre modifié à la main"}
    )
    assert edited.status_code == 200

    state, unchanged = dg.reconcile(revision, ledger, repair=False)
    kinds = {(d.kind, d.entity) for d in state.drift}
    assert ("missing", "resource:notice.pdf") in kinds and ("stale", "dataset.title") in kinds
    assert unchanged == ledger

    _, repaired = dg.reconcile(revision, ledger, repair=True)
    dataset = api_get(emulator, organization, f"datasets/{dataset_id}/")
    assert dataset["title"] == revision.title
    assert sorted(r["extras"][RESOURCE_KEY]["name"] for r in dataset["resources"]) == [
        "notice.pdf",
        "pistes.gpkg",
    ]
    assert repaired.remote["resources"]["notice.pdf"]["id"] != notice_id
    assert dg.inspect_remote(revision, repaired).drift == ()


def test_inspect_reports_deleted_dataset_and_foreign_resources(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    dg = connector()
    revision = make_revision(files={"pistes.gpkg": GPKG})
    ledger, _ = deliver(dg.publish, revision)
    dataset_id = ledger.remote["dataset"]
    api_call(
        emulator,
        organization,
        "POST",
        f"datasets/{dataset_id}/resources/",
        json={"title": "Ajout manuel", "url": "https://example.org/x.csv", "filetype": "remote"},
    )
    assert [(d.kind, d.entity) for d in dg.inspect_remote(revision, ledger).drift] == [
        ("extra", "resource:Ajout manuel")
    ]
    api_call(emulator, organization, "DELETE", f"datasets/{dataset_id}/")
    state = dg.inspect_remote(revision, ledger)
    assert not state.exists and [d.kind for d in state.drift] == ["deleted"]
    emulator.purge()
    state = dg.inspect_remote(revision, ledger)
    assert not state.exists and [d.kind for d in state.drift] == ["missing"]
    recreated, _ = deliver(dg.publish, revision, ledger)  # purged: a new dataset
    assert recreated.remote["dataset"] != dataset_id


def test_chunked_upload_resumes_after_a_failed_part(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """A 21 MB file in 4 MB parts: part 3 (the 4th) fails once; the retry resumes with the same uuid there."""
    content = random.Random(5).randbytes(21_000_000)
    revision = make_revision(files={"orthophoto.tif".replace(".tif", ".tiff"): content})
    dg = connector(chunk_size=4_000_000)
    assert {p.code for p in dg.preflight(revision)} >= {"chunked_upload"}
    emulator.faults(fail_next=1, match_method="POST", match_path="/upload/$", skip=3)
    since = emulator.last_request_number()

    checkpoints: list[LedgerEntry] = []
    with pytest.raises(TransientConnectorError):
        dg.publish(revision, LedgerEntry(), checkpoints.append)
    state = checkpoints[-1].remote["uploads"]["orthophoto.tiff"]
    assert state["parts_done"] == 3 and state["suspect"] == 3 and state["total_parts"] == 6

    ledger = dg.publish(revision, checkpoints[-1], checkpoints.append)
    log = emulator.requests(since)
    parts = [e["upload"] for e in log if e.get("upload") and e["upload"]["part"]]
    assert {p["uuid"] for p in parts} == {state["uuid"]}
    assert [p["partindex"] for p in parts] == [0, 1, 2, 3, 4, 5]  # each part stored once, none sent again
    assert [e["status"] for e in log if e["fault"]] == [500]  # the injected failure (never reached the app)
    dataset = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")
    (resource,) = dataset["resources"]
    assert resource["checksum"]["value"] == hashlib.sha1(content).hexdigest()
    assert resource["filesize"] == len(content) and resource["title"] == "Fichier orthophoto.tiff"
    assert "uploads" not in ledger.remote


def test_chunked_upload_starts_over_when_a_suspect_part_fails_again(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    """A part stored whose answer was lost answers 500 when sent again (FileExists): a new uuid is used."""
    content = random.Random(6).randbytes(9_000)
    revision = make_revision(files={"grille.csv": content})
    dg = connector(chunk_size=4_000)
    emulator.faults(lose_answer_next=1, timeout_mode="drop", match_path="/upload/$", skip=1)
    since = emulator.last_request_number()
    ledger, attempts = deliver(dg.publish, revision)

    assert attempts == 3  # lost answer of part 1; part 1 again -> FileExists 500; then a fresh upload
    parts = [e["upload"] for e in emulator.requests(since) if e.get("upload") and e["upload"]["part"]]
    first, second = dict.fromkeys(p["uuid"] for p in parts)
    assert [p["partindex"] for p in parts if p["uuid"] == first] == [0, 1, 1]
    assert [p["partindex"] for p in parts if p["uuid"] == second] == [0, 1, 2]
    dataset = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")
    (resource,) = dataset["resources"]
    assert resource["checksum"]["value"] == hashlib.sha1(content).hexdigest()


def test_service_links_are_idempotent(
    emulator: EmulatorAdmin, organization: Org, connector: ConnectorFactory, make_revision: RevisionFactory
) -> None:
    dg = connector()
    revision = make_revision(files={"pistes.gpkg": GPKG})
    ledger, _ = deliver(dg.publish, revision)
    wfs = "https://data.geopf.fr/wfs/ows?SERVICE=WFS&typeNames=montpellier:pistes"
    wms = "https://data.geopf.fr/wms-r/wms?SERVICE=WMS&LAYERS=montpellier:pistes"
    links = [("Service WFS", wfs, "WFS"), ("Service WMS", wms, "WMS")]
    with_links = dg.set_service_links(revision, ledger, links)
    again = dg.set_service_links(revision, with_links, links)
    assert again.remote["services"] == with_links.remote["services"]
    dataset = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")
    services = [r for r in dataset["resources"] if SERVICE_KEY in r["extras"]]
    assert sorted((r["format"], r["type"]) for r in services) == [("wfs", "api"), ("wms", "api")]

    fewer = dg.set_service_links(revision, again, [("Service WFS (v2)", wfs, "wfs")])
    dataset = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")
    services = [r for r in dataset["resources"] if SERVICE_KEY in r["extras"]]
    assert [r["title"] for r in services] == ["Service WFS (v2)"] and list(fewer.remote["services"]) == [wfs]
    # A later update keeps the service links (they are not file resources).
    updated, _ = deliver(dg.update, make_revision(revision=2, files={"pistes.gpkg": GPKG}), fewer)
    dataset = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")
    assert len(dataset["resources"]) == 2 and updated.remote["services"] == {wfs: services[0]["id"]}


def test_unhosted_extension_is_linked_to_the_regional_download_url(
    emulator: EmulatorAdmin,
    organization: Org,
    connector: ConnectorFactory,
    make_revision: RevisionFactory,
    tmp_path: Path,
) -> None:
    """A format data.gouv.fr does not host (here .parquet) is linked to the broker's download URL instead."""
    path = tmp_path / "trafic.parquet"
    path.write_bytes(b"PAR1 fake parquet")
    resource = file_resource(path, download_url=f"{emulator.root}/regional/pub-1/trafic.parquet")
    revision = make_revision(resources=(resource,))
    dg = connector()
    codes = {p.code: p.severity for p in dg.preflight(revision)}
    assert codes["linked_not_hosted"] == "warning"
    ledger, _ = deliver(dg.publish, revision)
    (res,) = api_get(emulator, organization, f"datasets/{ledger.remote['dataset']}/")["resources"]
    assert res["filetype"] == "remote" and res["url"] == resource.download_url

    strict = connector(allow_local_urls=False)
    assert {p.code for p in strict.preflight(revision) if p.severity == "error"} == {"url_refused"}
    with pytest.raises(PermanentConnectorError):
        strict.publish(revision, LedgerEntry())
