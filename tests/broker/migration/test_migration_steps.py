"""Migration steps on a real database, driven here one tick at a time: dry run, reclassification with the
withdrawal deferred, verification of the national copy, retirement of the regional copy, failures."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.db import session_scope
from broker.deliveries import repository as deliveries_repository
from broker.events import repository as events_repository
from broker.gaps import service as gaps
from broker.gaps.schemas import GapPatch
from broker.migration import service as migration
from broker.stats import service as stats
from tests.broker.gaps.support import STAFF, InProcessBroker, advance_until, settle

GAP = "extraction/geoplateforme"


def deliver(reason: str = "Extraction à la demande livrée par l'IGN (version 3.2 de l'Entrepôt)") -> str:
    with session_scope() as session:
        gap = gaps.update(session, STAFF, gaps.get(session, GAP), GapPatch(status="delivered", reason=reason))
        (job,) = migration.jobs_for_gap(session, gap.id)
        return job.id


def job(job_id: str) -> dict[str, Any]:
    with session_scope() as session:
        return migration.detail_view(session, migration.get(session, job_id))


def ledger(publication_id: str) -> dict[str, str]:
    with session_scope() as session:
        return {r.target: r.state for r in deliveries_repository.ledgers(session, publication_id)}


def deliveries_of(publication_id: str) -> list[tuple[int, str, str, str]]:
    with session_scope() as session:
        return [
            (d.revision_number, d.target, d.action, d.state)
            for d in deliveries_repository.for_publication(session, publication_id)
        ]


def test_a_dry_run_acts_on_nothing(broker_env: Callable[..., InProcessBroker]) -> None:
    broker = broker_env()
    ids = [broker.publish(f"Pistes {town}") for town in ("de Sète", "de Frontignan", "de Balaruc")]
    broker.run_pending("regional")
    tables = ("revision", "decision", "delivery", "event", "migration_job", "migration_item", "gap_history")
    before = {t: broker.count(t) for t in tables}

    with session_scope() as session:
        preview = migration.preview(session, gap_id=gaps.get(session, GAP).id)
    assert {t: broker.count(t) for t in tables} == before
    assert preview["dry_run"] is True and preview["gap_status"] == "open"
    assert preview["total"] == 3 and preview["would_move"] == 3 and preview["mirror"] is False
    assert preview["target_configured"] is False
    for item in preview["publications"]:
        assert item["id"] in ids and item["organization"] == "sete-agglopole-mediterranee"
        assert (item["category_of_need"], item["new_category_of_need"]) == ("B", "A")
        assert item["served_by"] == "regional" and item["regional"] == "retire"
        assert item["national"] == {"target": "geoplateforme", "action": "publish", "held_by": []}
        assert any("retirée une fois la livraison nationale vérifiée" in a for a in item["actions"])
    with session_scope() as session:
        assert gaps.get(session, GAP).status == "open"


def test_reclassified_then_waiting_then_failed_keeps_the_regional_copy(
    broker_env: Callable[..., InProcessBroker],
) -> None:
    broker = broker_env()
    ids = [broker.publish(f"Pistes {n}") for n in range(3)]
    broker.run_pending("regional")
    assert all(ledger(i) == {"regional": "present"} for i in ids)
    job_id = deliver()
    assert ("migration.advance", []) in broker.sent  # started at once, beat drives the rest
    assert job(job_id)["by_state"]["planned"] == 3

    migration.advance()
    detail = job(job_id)
    assert detail["by_state"]["reclassified"] == 3, detail["items"]
    for publication_id in ids:
        view = broker.view(publication_id)
        assert view["revision"] == 2 and view["manifest"]["features"] == ["extraction"]
        extraction = next(n for n in view["decision"]["needs"] if n["need"] == "extraction")
        assert extraction["category"] == "A" and extraction["platforms"] == ["geoplateforme"]
        # The withdrawal is deferred: revision 2 plans no withdrawal, the regional copy still serves.
        revision_2 = [d for d in deliveries_of(publication_id) if d[0] == 2]
        assert ("regional", "withdraw") not in {(t, a) for _, t, a, _ in revision_2}
        assert (2, "geoplateforme", "publish", "waiting") in revision_2
        assert ledger(publication_id) == {"regional": "present"}
    with session_scope() as session:
        revised = [
            e for e in events_repository.search(session, limit=500) if e.action == "publication.revised"
        ]
    assert {e.detail["channel"] for e in revised} == {"migration"}
    assert {e.detail["reason"] for e in revised} == {"gap extraction/geoplateforme delivered"}

    migration.advance()
    detail = job(job_id)
    assert detail["waiting"] == 3 and detail["state"] == "running"
    assert all("en attente" in i["detail"] for i in detail["items"])

    # The Géoplateforme gets configured, without the organisation's credentials: its deliveries fail.
    import os

    from broker.config import reset_settings

    os.environ["BROKER_GEOPLATEFORME_API_URL"] = "http://127.0.0.1:9/api"
    reset_settings()
    try:
        from broker.deliveries import service as deliveries

        deliveries.sweep()  # wakes the deliveries that waited for a configured target
        settle(broker)
        migration.advance()
    finally:
        del os.environ["BROKER_GEOPLATEFORME_API_URL"]
        reset_settings()
    detail = job(job_id)
    assert detail["failed"] == 3 and detail["state"] == "done", detail["items"]
    for item in detail["items"]:
        assert item["state"] == "failed"
        assert item["error"].startswith("Livraison vers geoplateforme échouée")
        assert item["detail"] == "la copie régionale continue de servir"
    for publication_id in ids:
        assert ledger(publication_id) == {"regional": "present"}
        assert not [d for d in deliveries_of(publication_id) if d[2] == "withdraw"]
    with session_scope() as session:
        actions = [e.action for e in events_repository.search(session, limit=1000)]
    assert actions.count("migration.failed") == 3 and "migration.finished" in actions


def test_delivered_gap_moves_publications_to_the_geoplateforme_emulator(
    broker_env: Callable[..., InProcessBroker], national_emulators: Any
) -> None:
    broker = broker_env(env={**national_emulators.env, "BROKER_RETRY_BASE_SECONDS": "0.2"})
    ids = [broker.publish(f"Pistes {n}") for n in range(4)]
    # One publication keeps a regional reason of its own (a white-label sub-portal, category C).
    kept = broker.publish("Pistes du sous-portail", portals=["cc-nord-bassin-de-thau"])
    settle(broker)
    for publication_id in [*ids, kept]:
        assert ledger(publication_id) == {
            "datagouv": "present",
            "geoplateforme": "present",
            "regional": "present",
        }

    with session_scope() as session:
        before = stats.migration_stats(session)
    assert before["totals"]["publications"] == 5 and before["totals"]["both"] == 5
    extraction_before = next(n for n in before["by_need"] if n["need"] == "extraction")
    assert extraction_before["category"] == "B" and extraction_before["regional"] == 5
    with session_scope() as session:
        waiting = {g["need"]: g for g in gaps.list_view(session)}["extraction"]["waiting_publications"]
    assert waiting == 5

    job_id = deliver()

    def finished() -> bool:
        return job(job_id)["state"] == "done"

    advance_until(finished, broker)
    detail = job(job_id)
    assert detail["done"] == 5 and detail["failed"] == 0, detail["items"]
    states = {i["publication_id"]: i for i in detail["items"]}
    for publication_id in ids:
        assert states[publication_id]["state"] == "retired"
        assert states[publication_id]["detail"] == "copie régionale retirée"
        assert ledger(publication_id) == {
            "datagouv": "present",
            "geoplateforme": "present",
            "regional": "withdrawn",
        }
        withdrawals = [d for d in deliveries_of(publication_id) if d[2] == "withdraw"]
        assert withdrawals == [(2, "regional", "withdraw", "done")]
    assert states[kept]["state"] == "retired" and "autres besoins" in states[kept]["detail"]
    assert ledger(kept)["regional"] == "present"

    with session_scope() as session:
        after = stats.migration_stats(session)
        register = {g["need"]: g for g in gaps.list_view(session)}
    assert after["totals"]["publications"] == 5
    assert (
        after["totals"]["regional"] == 1 and after["totals"]["both"] == 1 and after["totals"]["national"] == 5
    )
    extraction_after = [n for n in after["by_need"] if n["need"] == "extraction"]
    assert extraction_after[0]["category"] == "A" and extraction_after[0]["regional"] == 1
    assert after["gaps"]["delivered"] == 1 and after["gaps"]["open"] == 3
    assert register["extraction"]["waiting_publications"] == 0
