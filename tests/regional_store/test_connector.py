"""The regional connector against real files and a real SQLite database."""

from __future__ import annotations

import hashlib
import os

import pytest
from sqlmodel import Session

from connectors.base import (
    LedgerEntry,
    PermanentConnectorError,
    ResourceFile,
    Superseded,
)
from connectors.registry import build_connector
from regional_store import connector as connector_module
from regional_store import repository, service
from regional_store.models import RegionalFile, RegionalRecord
from regional_store.schemas import RecordSpec
from tests.regional_store.conftest import PUBLIC_URL, Env, RevisionFactory

GPKG = b"GPKG" + bytes(range(256)) * 40
CSV = "commune;longueur_km\nMontpellier;152,4\nPérols;18,9\n".encode()
PDF = b"%PDF-1.7 notice de la couche pistes cyclables"
OTHER_PUB = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_publish_stores_blobs_and_record(env: Env, make_revision: RevisionFactory) -> None:
    gpkg = env.resource("pistes_cyclables.gpkg", GPKG, title="Pistes (GeoPackage)", format="gpkg")
    csv = env.resource("longueurs.csv", CSV, media_type="text/csv", format="csv")
    revision = make_revision([gpkg, csv])
    regional = env.connector()

    ledger = regional.publish(revision, LedgerEntry())

    assert ledger.state == "present"
    assert ledger.revision == 1
    assert ledger.remote == {
        "record": revision.publication_id,
        "files": {"pistes_cyclables.gpkg": sha(GPKG), "longueurs.csv": sha(CSV)},
    }
    base = f"{PUBLIC_URL}/api/v1/regional/publications/{revision.publication_id}/files"
    assert ledger.urls == [f"{base}/pistes_cyclables.gpkg", f"{base}/longueurs.csv"]
    for data in (GPKG, CSV):
        path = regional.blobs.path(sha(data))
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha(data)
    # Same file system and no copy cap: the blob is a hard link to the intake copy, not a second copy.
    assert os.path.samefile(regional.blobs.path(sha(GPKG)), env.intake.path(sha(GPKG)))

    with Session(env.engine) as session:
        record = repository.get_record(session, revision.publication_id)
        assert record is not None
        assert (record.organization, record.title, record.revision, record.access, record.state) == (
            "montpellier-mediterranee-metropole",
            "Pistes cyclables",
            1,
            "open",
            "present",
        )
        assert record.meta["license"] == "lov2"
        assert record.meta["keywords"] == ["mobilite", "velo"]
        assert record.meta["organization_name"] == "Montpellier Méditerranée Métropole"
        files = repository.list_files(session, revision.publication_id)
        assert [(f.name, f.sha256, f.size, f.format) for f in files] == [
            ("pistes_cyclables.gpkg", sha(GPKG), len(GPKG), "gpkg"),
            ("longueurs.csv", sha(CSV), len(CSV), "csv"),
        ]
        assert files[0].title == "Pistes (GeoPackage)"
        assert files[1].media_type == "text/csv"


def test_publish_twice_gives_the_same_record(env: Env, make_revision: RevisionFactory) -> None:
    revision = make_revision([env.resource("pistes.gpkg", GPKG), env.resource("longueurs.csv", CSV)])
    regional = env.connector()

    first = regional.publish(revision, LedgerEntry())
    second = regional.publish(revision, first)

    assert second == first
    assert env.count(RegionalRecord) == 1
    assert env.count(RegionalFile) == 2
    assert env.blob_count() == 2


def test_interrupted_publish_resumes_without_duplicates(env: Env, make_revision: RevisionFactory) -> None:
    revision = make_revision(
        [env.resource("a.gpkg", GPKG), env.resource("b.csv", CSV), env.resource("notice.pdf", PDF)]
    )
    regional = env.connector()
    saved: list[LedgerEntry] = []

    def stop_after_first(entry: LedgerEntry) -> None:
        saved.append(entry)
        raise Superseded("killed worker")

    with pytest.raises(Superseded):
        regional.publish(revision, LedgerEntry(), stop_after_first)

    assert [entry.step for entry in saved] == ["file:a.gpkg"]
    assert saved[0].remote["files"] == {"a.gpkg": sha(GPKG)}
    assert saved[0].state == "absent"
    assert env.blob_count() == 1
    assert env.count(RegionalRecord) == 0

    steps: list[str | None] = []
    ledger = regional.publish(revision, saved[-1], lambda entry: steps.append(entry.step))

    assert steps == ["file:a.gpkg", "file:b.csv", "file:notice.pdf"]
    assert ledger.state == "present"
    assert ledger.remote["files"] == {"a.gpkg": sha(GPKG), "b.csv": sha(CSV), "notice.pdf": sha(PDF)}
    assert env.blob_count() == 3
    assert env.count(RegionalRecord) == 1
    assert env.count(RegionalFile) == 3


def test_checkpoints_grow_the_file_list(env: Env, make_revision: RevisionFactory) -> None:
    revision = make_revision([env.resource("a.gpkg", GPKG), env.resource("b.csv", CSV)])
    seen: list[dict[str, str]] = []

    env.connector().publish(revision, LedgerEntry(), lambda entry: seen.append(dict(entry.remote["files"])))

    assert seen == [{"a.gpkg": sha(GPKG)}, {"a.gpkg": sha(GPKG), "b.csv": sha(CSV)}]


def test_update_replaces_files_and_collects_unreferenced_blobs(
    env: Env, make_revision: RevisionFactory
) -> None:
    regional = env.connector()
    first = make_revision([env.resource("pistes.gpkg", GPKG), env.resource("longueurs.csv", CSV)])
    ledger = regional.publish(first, LedgerEntry())
    # Another publication serves the same CSV bytes under another name.
    other = make_revision([env.resource("autre.csv", CSV)], publication_id=OTHER_PUB, title="Compteurs")
    regional.publish(other, LedgerEntry())
    new_gpkg = GPKG + b"-revision-2"

    second = make_revision([env.resource("pistes.gpkg", new_gpkg)], revision=2, title="Pistes cyclables 2025")
    updated = regional.update(second, ledger)

    assert updated.revision == 2
    assert updated.remote["files"] == {"pistes.gpkg": sha(new_gpkg)}
    with Session(env.engine) as session:
        record = repository.get_record(session, first.publication_id)
        assert record is not None
        assert (record.revision, record.title) == (2, "Pistes cyclables 2025")
        files = repository.list_files(session, first.publication_id)
        assert [(f.name, f.sha256) for f in files] == [("pistes.gpkg", sha(new_gpkg))]
    assert not regional.blobs.exists(sha(GPKG)), "the old GeoPackage is referenced by nobody"
    assert regional.blobs.exists(sha(CSV)), "the CSV is still served by the other publication"
    assert regional.blobs.exists(sha(new_gpkg))
    # The intake store is the broker's: collecting regional blobs never touches it.
    assert env.intake.exists(sha(GPKG))


def test_withdraw_marks_the_record_and_keeps_shared_blobs(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    revision = make_revision([env.resource("pistes.gpkg", GPKG), env.resource("longueurs.csv", CSV)])
    ledger = regional.publish(revision, LedgerEntry())
    regional.publish(make_revision([env.resource("autre.csv", CSV)], publication_id=OTHER_PUB), LedgerEntry())
    steps: list[str | None] = []

    withdrawn = regional.withdraw(revision, ledger, lambda entry: steps.append(entry.step))
    again = regional.withdraw(revision, withdrawn)

    assert withdrawn.state == "withdrawn"
    assert withdrawn.urls == []
    assert again == withdrawn
    assert steps == ["record:withdrawn"]
    with Session(env.engine) as session:
        record = repository.get_record(session, revision.publication_id)
        assert record is not None
        assert record.state == "withdrawn"
    assert not regional.blobs.exists(sha(GPKG))
    assert regional.blobs.exists(sha(CSV))


def test_republish_after_withdraw_serves_again(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    revision = make_revision([env.resource("pistes.gpkg", GPKG)])
    withdrawn = regional.withdraw(revision, regional.publish(revision, LedgerEntry()))

    ledger = regional.publish(make_revision(revision.resources, revision=2), withdrawn)

    assert ledger.state == "present"
    assert regional.blobs.exists(sha(GPKG))
    assert regional.inspect_remote(revision, ledger).drift == ()


def test_withdraw_of_unknown_publication_is_a_no_op(env: Env, make_revision: RevisionFactory) -> None:
    ledger = env.connector().withdraw(make_revision([]), LedgerEntry())

    assert ledger.state == "withdrawn"
    assert env.count(RegionalRecord) == 0


def test_inspect_remote_sees_a_file_deleted_behind_its_back(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    revision = make_revision([env.resource("pistes.gpkg", GPKG), env.resource("longueurs.csv", CSV)])
    ledger = regional.publish(revision, LedgerEntry())
    assert regional.inspect_remote(revision, ledger).drift == ()

    regional.blobs.path(sha(CSV)).unlink()
    state = regional.inspect_remote(revision, ledger)

    assert state.exists
    assert [(d.kind, d.entity) for d in state.drift] == [("deleted", "file:longueurs.csv")]
    # The next delivery repairs it from the intake store.
    repaired = regional.publish(revision, ledger)
    assert regional.inspect_remote(revision, repaired).drift == ()


def test_inspect_remote_compares_ledger_and_record(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    revision = make_revision([env.resource("pistes.gpkg", GPKG), env.resource("longueurs.csv", CSV)])
    ledger = regional.publish(revision, LedgerEntry())
    drifted = ledger.model_copy(
        update={
            "revision": 3,
            "remote": {
                "record": revision.publication_id,
                "files": {"pistes.gpkg": sha(b"autre contenu"), "absent.pdf": sha(PDF)},
            },
        }
    )

    state = regional.inspect_remote(revision, drifted)

    assert sorted((d.kind, d.entity) for d in state.drift) == [
        ("changed", "file:pistes.gpkg"),
        ("extra", "file:longueurs.csv"),
        ("missing", "file:absent.pdf"),
        ("stale", "record"),
    ]
    assert state.remote["files"] == {"pistes.gpkg": sha(GPKG), "longueurs.csv": sha(CSV)}


def test_inspect_remote_after_withdraw(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    revision = make_revision([env.resource("pistes.gpkg", GPKG)])
    ledger = regional.publish(revision, LedgerEntry())
    withdrawn = regional.withdraw(revision, ledger)

    assert regional.inspect_remote(revision, withdrawn).drift == ()
    assert regional.inspect_remote(revision, withdrawn).exists is False
    # A ledger that still believes the record served is told otherwise.
    assert [(d.kind, d.entity) for d in regional.inspect_remote(revision, ledger).drift] == [
        ("deleted", "record")
    ]


def test_inspect_remote_without_record(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    revision = make_revision([])

    assert regional.inspect_remote(revision, LedgerEntry()).exists is False
    lost = regional.inspect_remote(revision, LedgerEntry(state="present", revision=1))
    assert [(d.kind, d.entity) for d in lost.drift] == [("missing", "record")]


def test_url_resources_are_recorded_as_links(env: Env, make_revision: RevisionFactory) -> None:
    link = ResourceFile(name="compteurs.csv", url="https://example.org/compteurs.csv", format="csv")
    revision = make_revision([env.resource("pistes.gpkg", GPKG), link])
    regional = env.connector()

    ledger = regional.publish(revision, LedgerEntry())

    assert ledger.remote["files"] == {"pistes.gpkg": sha(GPKG)}
    assert len(ledger.urls) == 1
    assert env.blob_count() == 1
    with Session(env.engine) as session:
        row = repository.get_file(session, revision.publication_id, "compteurs.csv")
        assert row is not None
        assert (row.url, row.sha256) == ("https://example.org/compteurs.csv", None)


def test_copy_rate_throttles_copies(
    env: Env, make_revision: RevisionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    pauses: list[float] = []
    monkeypatch.setattr(connector_module, "_sleep", pauses.append)
    data = os.urandom(16 * 1024)
    revision = make_revision([env.resource("dalle.tif", data)])
    regional = env.connector(copy_rate=4096, hard_link=False)

    regional.publish(revision, LedgerEntry())

    assert pauses, "a capped copy must pause"
    assert sum(pauses) > 1, "16 KiB at 4 KiB/s asks for seconds of pauses"
    stored = regional.blobs.path(sha(data))
    assert stored.read_bytes() == data
    assert not os.path.samefile(stored, env.intake.path(sha(data))), "a copy, not a link"


def test_copy_detects_a_corrupt_intake_file(env: Env, make_revision: RevisionFactory) -> None:
    resource = env.resource("pistes.gpkg", GPKG)
    assert resource.path is not None
    resource.path.chmod(0o644)
    resource.path.write_bytes(b"tronque")
    regional = env.connector(hard_link=False)

    with pytest.raises(PermanentConnectorError) as caught:
        regional.publish(make_revision([resource]), LedgerEntry())

    assert caught.value.fields == {"pistes.gpkg": "checksum_mismatch"}
    assert env.blob_count() == 0
    assert not any((regional.blobs.root / "tmp").iterdir())


def test_missing_intake_file_is_a_preflight_problem_and_a_permanent_error(
    env: Env, make_revision: RevisionFactory
) -> None:
    resource = env.resource("pistes.gpkg", GPKG)
    assert resource.path is not None
    resource.path.unlink()
    link = ResourceFile(name="compteurs.csv", url="https://example.org/compteurs.csv")
    revision = make_revision([resource, link])
    regional = env.connector()

    problems = regional.preflight(revision)

    assert [(p.code, p.resource, p.severity) for p in problems] == [("file_missing", "pistes.gpkg", "error")]
    assert "introuvable" in problems[0].message
    with pytest.raises(PermanentConnectorError):
        regional.publish(revision, LedgerEntry())
    assert regional.preflight(make_revision([env.resource("ok.csv", CSV), link])) == []


def test_an_older_revision_never_overwrites_a_newer_one(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    resources = [env.resource("pistes.gpkg", GPKG)]
    regional.publish(make_revision(resources, revision=3), LedgerEntry())

    with pytest.raises(Superseded):
        regional.update(make_revision(resources, revision=2), LedgerEntry())

    with Session(env.engine) as session:
        record = repository.get_record(session, make_revision(resources).publication_id)
        assert record is not None
        assert record.revision == 3


def test_sweep_removes_orphan_blobs_only(env: Env, make_revision: RevisionFactory) -> None:
    regional = env.connector()
    regional.publish(make_revision([env.resource("pistes.gpkg", GPKG)]), LedgerEntry())
    orphan = env.resource("orphelin.csv", CSV)
    assert orphan.sha256 is not None
    regional.blobs.link_from(env.intake, orphan.sha256)

    assert regional.sweep_orphans() == [sha(CSV)]
    assert regional.blobs.exists(sha(GPKG))


def test_registry_builds_the_regional_connector(env: Env) -> None:
    built = build_connector("regional", env.config().model_dump())

    assert built.name == "regional"
    assert built.title == "Entrepôt régional OPenIG"
    assert built.base_url() == f"{PUBLIC_URL}/regional"


def test_blob_collected_during_publish_is_restored(
    env: Env, make_revision: RevisionFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    regional = env.connector()
    revision = make_revision([env.resource("pistes.gpkg", GPKG)])
    upsert = service.upsert_record

    def collector_runs_first(session: Session, spec: RecordSpec) -> set[str]:
        # Another worker's garbage collection saw the blob unreferenced just before our commit.
        regional.blobs.delete(sha(GPKG))
        return upsert(session, spec)

    monkeypatch.setattr(service, "upsert_record", collector_runs_first)

    ledger = regional.publish(revision, LedgerEntry())

    assert regional.blobs.exists(sha(GPKG))
    assert regional.inspect_remote(revision, ledger).drift == ()
