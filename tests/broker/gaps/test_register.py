"""The gap register on a real database: seeded from categories.yaml, following the file's changes, steered by
staff with reasons and history, and laid over every later decision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from broker.db import session_scope
from broker.errors import Conflict, InvalidInput
from broker.events import repository as events_repository
from broker.gaps import repository, service
from broker.gaps.schemas import GapCreate, GapPatch
from tests.broker.gaps.support import STAFF, InProcessBroker, edited_categories, use_categories

B_CELLS = {
    "format_cog/geoplateforme",
    "access_restricted_services/geoplateforme",
    "ogc_api/geoplateforme",
    "extraction/geoplateforme",
}


def cells() -> dict[str, dict[str, Any]]:
    with session_scope() as session:
        return {f"{g['need']}/{g['platform']}": g for g in service.list_view(session)}


def history(ref: str) -> list[dict[str, Any]]:
    with session_scope() as session:
        return list(service.detail_view(session, service.get(session, ref))["history"])


def actions() -> list[str]:
    with session_scope() as session:
        return [e.action for e in events_repository.search(session, limit=1000)]


def test_the_register_is_seeded_from_the_b_cells_once(broker_env: Callable[..., InProcessBroker]) -> None:
    broker_env()
    gaps = cells()
    assert set(gaps) == B_CELLS
    extraction = gaps["extraction/geoplateforme"]
    assert extraction["status"] == "open" and extraction["interim"] == "regional"
    assert extraction["target_date"] == "2028-06-30" and extraction["mirror"] is False
    assert gaps["ogc_api/geoplateforme"]["mirror"] is True
    assert gaps["access_restricted_services/geoplateforme"]["upstream"] == "IGNF/cartes.gouv.fr#790"
    assert extraction["need_title"] == "Extraction et filtrage" and extraction["late"] is False
    (created,) = history("extraction/geoplateforme")
    assert created["change"] == "created" and created["by"] == "categories.yaml"

    with session_scope() as session:
        again = service.sync_with_categories(session)
    assert again == {"created": [], "updated": [], "differences": [], "migrations": []}
    assert cells() == gaps
    assert actions().count("gap.created") == 4 and "categories.changed" not in actions()


def test_a_gap_past_its_date_is_late() -> None:
    from datetime import date

    from broker.gaps.models import Gap

    gap = Gap(need="extraction", platform="geoplateforme", target_date=date(2026, 3, 31), interim="regional")
    seen = service.view(gap, waiting=3, on=date(2026, 4, 10))
    assert seen["late"] is True and seen["days_late"] == 10 and seen["waiting_publications"] == 3
    gap.status = "delivered"
    assert service.view(gap, waiting=0, on=date(2026, 4, 10))["late"] is False


def test_the_register_follows_an_edited_categories_file(
    broker_env: Callable[..., InProcessBroker], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = broker_env()
    # Two publications asking for OGC API Features (B on the Géoplateforme, regional meanwhile).
    first = broker.publish("Bâtiments de Sète", services=["api"], features=[])
    broker.publish("Bâtiments de Frontignan", services=["api"], features=[])

    def edit(data: dict[str, Any]) -> None:
        needs = data["needs"]
        needs["extraction"]["platforms"]["geoplateforme"]["target_date"] = "2029-03-31"  # IGN slipped
        ogc = needs["ogc_api"]["platforms"]["geoplateforme"]  # IGN shipped OGC API Features
        needs["ogc_api"]["platforms"]["geoplateforme"] = {"category": "A", "source": ogc["source"]}
        cog = needs["format_cog"]["platforms"]["geoplateforme"]  # and will never read COG natively
        needs["format_cog"]["platforms"]["geoplateforme"] = {"category": "C", "source": cog["source"]}
        needs["search_map"]["platforms"]["datagouv"] = {  # DINUM agreed to map search
            "category": "B",
            "source": "research/peers.md §11",
            "target_date": "2028-01-31",
            "target_date_set_by": "openig-agreement",
            "interim": "regional",
        }

    use_categories(monkeypatch, edited_categories(tmp_path, edit, "categories-2027.yaml"))
    report = service.sync_at_startup()

    assert report["created"] == ["search_map/datagouv"]
    assert sorted(report["updated"]) == [
        "extraction/geoplateforme",
        "format_cog/geoplateforme",
        "ogc_api/geoplateforme",
    ]
    gaps = cells()
    assert gaps["extraction/geoplateforme"]["target_date"] == "2029-03-31"
    assert gaps["ogc_api/geoplateforme"]["status"] == "delivered"
    assert gaps["format_cog/geoplateforme"]["status"] == "dropped"
    slip = history("extraction/geoplateforme")[-1]
    assert slip == {
        "at": slip["at"],
        "by": "categories.yaml",
        "change": "target_date",
        "from": "2028-06-30",
        "to": "2029-03-31",
        "reason": "date cible modifiée dans categories.yaml",
    }
    assert history("ogc_api/geoplateforme")[-1]["to"] == "delivered"

    with session_scope() as session:
        (changed,) = [e for e in events_repository.search(session) if e.action == "categories.changed"]
        differences = changed.detail["differences"]
        (job,) = [j for j in __import__("broker.migration.repository", fromlist=["x"]).jobs(session)]
        assert job.need == "ogc_api" and job.trigger == "categories.yaml" and job.mirror is True
    assert {
        "need": "ogc_api",
        "platform": "geoplateforme",
        "change": "category",
        "from": "B",
        "to": "A",
    } in differences
    assert {
        "need": "search_map",
        "platform": "datagouv",
        "change": "category",
        "from": "C",
        "to": "B",
    } in differences
    assert len(report["migrations"]) == 1
    with session_scope() as session:
        from broker.migration import service as migration

        detail = migration.detail_view(session, migration.get(session, report["migrations"][0]))
    assert detail["total"] == 2 and {i["state"] for i in detail["items"]} == {"planned"}
    assert first in {i["publication_id"] for i in detail["items"]}

    # Restarting with the same file changes nothing more.
    assert service.sync_at_startup() == {"created": [], "updated": [], "differences": [], "migrations": []}


def test_staff_changes_need_reasons_and_are_recorded(broker_env: Callable[..., InProcessBroker]) -> None:
    broker_env()
    with session_scope() as session:
        gap = service.get(session, "extraction/geoplateforme")
        with pytest.raises(InvalidInput) as refused:
            service.update(session, STAFF, gap, GapPatch(target_date="2029-01-15"))
        assert "reason" in refused.value.fields
        with pytest.raises(InvalidInput):
            service.update(session, STAFF, gap, GapPatch(status="dropped", reason="  "))
        # Upstream and interim changes need no reason, but are recorded all the same.
        service.update(session, STAFF, gap, GapPatch(upstream="IGNF/cartes.gouv.fr#1234"))
        service.update(
            session,
            STAFF,
            gap,
            GapPatch(target_date="2029-01-15", reason="Comité de suivi IGN du 12 mars : report de six mois"),
        )
    entries = history("extraction/geoplateforme")
    assert [e["change"] for e in entries] == ["created", "upstream", "target_date"]
    slip = entries[-1]
    assert slip["by"] == "marie.staff" and slip["from"] == "2028-06-30" and slip["to"] == "2029-01-15"
    assert slip["reason"].startswith("Comité de suivi IGN")
    assert "gap.updated" in actions()
    # The decision of a new publication already says the new date.
    with session_scope() as session:
        states = {(g.need, g.platform): g for g in repository.states(session)}
    assert states[("extraction", "geoplateforme")].target_date == "2029-01-15"


def test_staff_open_a_gap_on_a_cell_of_the_matrix(broker_env: Callable[..., InProcessBroker]) -> None:
    broker = broker_env()
    with session_scope() as session:
        gap = service.create(
            session,
            STAFF,
            GapCreate(
                need="search_map",
                platform="datagouv",
                target_date="2028-01-31",
                interim="regional",
                reason="Convention OPenIG–DINUM signée",
            ),
        )
        with pytest.raises(Conflict):
            service.create(session, STAFF, GapCreate(need="search_map", platform="datagouv"))
        with pytest.raises(InvalidInput):
            service.create(session, STAFF, GapCreate(need="besoin_inconnu", platform="datagouv"))
        with pytest.raises(InvalidInput):  # the regional store cannot serve WMS
            service.create(session, STAFF, GapCreate(need="wms", platform="datagouv", interim="regional"))
        gap_id = gap.id
    publication = broker.view(broker.publish("Cartographie des pistes", features=["search_map"]))
    need = next(n for n in publication["decision"]["needs"] if n["need"] == "search_map")
    assert need["category"] == "B" and need["platforms"] == ["datagouv"]
    assert need["gaps"][0]["target_date"] == "2028-01-31"
    with session_scope() as session:
        detail = service.detail_view(session, service.get(session, gap_id))
    assert detail["waiting_publications"] == 1
    assert detail["publications"][0]["served_by"] == "regional"
    assert detail["history"][0]["reason"] == "Convention OPenIG–DINUM signée"
