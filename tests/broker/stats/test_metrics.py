"""Migration metrics on a real database: the GROUP BY answers agree with a plain count of the same rows,
follow every change (refresh of what changed), and the daily snapshots draw the history."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import date
from typing import Any

from broker.db import session_scope
from broker.publications import service as publications
from broker.stats import service as stats
from tests.broker.gaps.support import STAFF, InProcessBroker

KEYS = {
    "publications",
    "national",
    "regional",
    "both",
    "resources",
    "bytes_national",
    "bytes_regional",
    "national_share",
}


def metrics() -> dict[str, Any]:
    with session_scope() as session:
        return stats.migration_stats(session)


def oracle(broker: InProcessBroker, ids: list[str]) -> dict[str, Counter[str]]:
    """The same numbers, the slow way: each publication's view, counted here."""
    counted: dict[str, Counter[str]] = {"category": Counter(), "need": Counter(), "regional_need": Counter()}
    for publication_id in ids:
        view = broker.view(publication_id)
        if view["state"] != "active":
            continue
        counted["category"][view["category"]] += 1
        regional = view["ledger"].get("regional", {}).get("state") == "present"
        for need in view["decision"]["needs"]:
            counted["need"][f"{need['need']}|{need['category']}"] += 1
            counted["regional_need"][f"{need['need']}|{need['category']}"] += regional
    return counted


def test_metrics_agree_with_the_rows_and_follow_changes(broker_env: Callable[..., InProcessBroker]) -> None:
    broker = broker_env()
    ids = [broker.publish(f"Pistes {n}") for n in range(3)]  # B (extraction), served regionally
    ids += [
        broker.publish(f"Sous-portail {n}", portals=["cc-nord-bassin-de-thau"], features=[]) for n in range(2)
    ]
    ids.append(broker.publish("Simple téléchargement", services=["download"], features=[]))  # category A
    broker.run_pending("regional")

    body = metrics()
    assert set(body) >= {
        "generated_at",
        "totals",
        "by_category",
        "by_need",
        "by_platform",
        "by_organization",
        "gaps",
        "deliveries",
        "history",
    }
    totals = body["totals"]
    assert set(totals) == KEYS
    # National targets are not configured here: nothing national yet, five regional copies.
    assert (totals["publications"], totals["national"], totals["regional"], totals["both"]) == (6, 0, 5, 0)
    assert totals["national_share"] == 0.0 and totals["bytes_national"] == 0 and totals["bytes_regional"] > 0
    assert totals["resources"] == 6
    counted = oracle(broker, ids)
    assert {c["category"]: c["publications"] for c in body["by_category"]} == dict(counted["category"])
    assert {f"{n['need']}|{n['category']}": n["publications"] for n in body["by_need"]} == dict(
        counted["need"]
    )
    assert {f"{n['need']}|{n['category']}": n["regional"] for n in body["by_need"]} == dict(
        counted["regional_need"]
    )
    (organization,) = body["by_organization"]
    assert organization["organization"] == "sete-agglopole-mediterranee" and organization["publications"] == 6
    platforms = {p["platform"]: p for p in body["by_platform"]}
    assert platforms["regional"]["publications"] == 5 and platforms["regional"]["national"] is False
    assert platforms["geoplateforme"]["publications"] == 0 and platforms["geoplateforme"]["national"] is True
    assert body["deliveries"]["waiting"] >= 6 and body["deliveries"]["done"] == 5
    assert body["gaps"] == {"open": 4, "late": 0, "delivered": 0, "dropped": 0}
    assert body["history"] == []

    # A withdrawal counts at once: the refresh reads what changed since the last answer.
    with session_scope() as session:
        publications.withdraw(session, STAFF, publications.get(session, ids[0]))
    broker.run_pending("regional")
    after = metrics()
    assert (after["totals"]["publications"], after["totals"]["regional"]) == (5, 4)
    assert {n["need"]: n["publications"] for n in after["by_need"]}["extraction"] == 2


def test_snapshots_draw_one_point_per_day(broker_env: Callable[..., InProcessBroker]) -> None:
    broker = broker_env()
    broker.publish("Pistes")
    broker.run_pending("regional")
    with session_scope() as session:
        stats.snapshot(session, on=date(2026, 3, 1))
        stats.snapshot(session, on=date(2026, 3, 2))
    broker.publish("Pistes bis")
    broker.run_pending("regional")
    with session_scope() as session:
        stats.snapshot(session, on=date(2026, 3, 2))  # same day again: replaces that day's rows
        stats.snapshot(session, on=date(2026, 3, 3), full=True)
    history = metrics()["history"]
    assert [(h["date"], h["publications"], h["regional"]) for h in history] == [
        ("2026-03-01", 1, 1),
        ("2026-03-02", 2, 2),
        ("2026-03-03", 2, 2),
    ]
    assert all(set(h) == {"date", "national_share", "publications", "national", "regional"} for h in history)
    # One row per day and dimension value: writing 2026-03-02 twice left one set of rows for that day.
    per_day = broker.count("migration_snapshot WHERE day = '2026-03-03'")
    assert per_day > 1 and broker.count("migration_snapshot WHERE day = '2026-03-02'") == per_day


def test_rebuild_repairs_the_summary(broker_env: Callable[..., InProcessBroker]) -> None:
    broker = broker_env()
    broker.publish("Pistes")
    broker.run_pending("regional")
    assert metrics()["totals"]["regional"] == 1
    with session_scope() as session:
        from sqlalchemy import text

        # A summary row gone wrong, behind a watermark that hides it from the refresh of what changed.
        session.execute(
            text("UPDATE publication_summary SET regional = 0, refreshed_at = '2100-01-01 00:00:00'")
        )
    assert metrics()["totals"]["regional"] == 0
    assert stats.rebuild() == 1
    assert metrics()["totals"]["regional"] == 1
