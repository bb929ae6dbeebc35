"""Migration metrics: how much is served nationally vs regionally, per category, need, platform and
organisation; the gaps; the deliveries; and the daily history.

Everything is counted by the database. The per-publication facts (current category and needs, where it is
present, current resources and bytes, current deliveries) live in ``publication_summary``, refreshed before
each answer for the publications whose rows changed since the last refresh: the ``updated_at`` of
publication, ledger and delivery rows (indexed), read with a margin so that a transaction committed late is
not missed. Then a handful of GROUP BY queries answer. A full rebuild runs daily (``stats.rebuild``) and
whenever the summary is empty.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlmodel import Session

from broker.classification import service as classification
from broker.db import iso, session_scope, utcnow
from broker.stats import repository

logger = logging.getLogger(__name__)

MARGIN = timedelta(minutes=2)
"""Changes this much older than the last refresh are read again: a transaction may commit after a refresh
that started later than its ``updated_at``."""

NATIONAL = ("datagouv", "geoplateforme")
DELIVERY_STATES = ("pending", "running", "retrying", "waiting", "failed", "done")


def today() -> date:
    return datetime.now(UTC).date()


# --------------------------------------------------------------------------------------------- summary


def needs_key(needs: Sequence[tuple[str, str, str]]) -> str:
    """The key of a set of (need, category, platforms): equal sets, equal keys."""
    signature = "\n".join(f"{n}|{c}|{p}" for n, c, p in sorted(needs))
    return hashlib.sha1(signature.encode("utf-8")).hexdigest()


def refresh(session: Session, *, full: bool = False) -> int:
    """Bring ``publication_summary`` up to date; how many publications were (re)computed."""
    started = utcnow()
    since = None if full else repository.watermark(session)
    ids = (
        repository.all_publication_ids(session)
        if since is None
        else repository.changed_since(session, since - MARGIN)
    )
    for start in range(0, len(ids), repository.CHUNK):
        _refresh_chunk(session, ids[start : start + repository.CHUNK], started)
    return len(ids)


def _refresh_chunk(session: Session, ids: Sequence[str], at: datetime) -> None:
    publications = repository.publications_of(session, ids)
    revision_ids = [r for *_, r in publications if r]
    present: dict[str, set[str]] = defaultdict(set)
    for publication_id, target in repository.present_targets(session, ids):
        present[publication_id].add(target)
    resources = repository.resource_totals(session, revision_ids)
    needs: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for of_revision, need, category, platforms in repository.decision_needs(session, revision_ids):
        needs[of_revision].append((need, category, platforms or "[]"))
    deliveries: dict[str, dict[str, int]] = defaultdict(dict)
    for publication_id, state, count in repository.current_delivery_states(session, ids):
        deliveries[publication_id][state] = count
    rows, sets = [], {}
    for publication_id, organization_id, category, state, revision_id in publications:
        places = present[publication_id]
        count, size = resources.get(revision_id or "", (0, 0))
        its_needs = needs.get(revision_id or "", [])
        key = needs_key(its_needs)
        sets[key] = its_needs
        states = deliveries[publication_id]
        rows.append(
            {
                "publication_id": publication_id,
                "organization_id": organization_id,
                "category": category,
                "active": int(state == "active"),
                "on_datagouv": int("datagouv" in places),
                "on_geoplateforme": int("geoplateforme" in places),
                "regional": int("regional" in places),
                "resources": count,
                "bytes": size,
                "needs_key": key,
                "deliveries_failed": states.get("failed", 0),
                "deliveries_done": states.get("done", 0),
                "refreshed_at": at,
            }
        )
    known = repository.known_need_sets(session, sets)
    members = [
        {"needs_key": key, "need": need, "category": category, "platforms": platforms}
        for key, its_needs in sets.items()
        if key not in known
        for need, category, platforms in its_needs
    ]
    repository.add_need_set_members(session, members)
    repository.upsert_summaries(session, rows)


# --------------------------------------------------------------------------------------------- metrics


def _share(national: int, publications: int) -> float:
    return round(national / publications, 4) if publications else 0.0


def _counts(row: Sequence[Any]) -> dict[str, Any]:
    publications, national, regional, both, resources, bytes_national, bytes_regional = (
        int(v or 0) for v in row
    )
    return {
        "publications": publications,
        "national": national,
        "regional": regional,
        "both": both,
        "resources": resources,
        "bytes_national": bytes_national,
        "bytes_regional": bytes_regional,
        "national_share": _share(national, publications),
    }


def migration_stats(
    session: Session, *, refresh_first: bool = True, on: date | None = None
) -> dict[str, Any]:
    """``GET /api/v1/stats/migration``: ``{"generated_at", "totals", "by_category", "by_need",
    "by_platform", "by_organization", "gaps", "deliveries", "history"}``."""
    if refresh_first:
        refresh(session)
        session.flush()
    rules = classification.current_rules()
    totals: dict[str, Any] = _counts((0,) * 7)
    by_category, by_need, by_organization, by_platform = [], [], [], []
    deliveries = dict.fromkeys(DELIVERY_STATES, 0)
    for dimension, key, extra, *numbers in repository.metric_rows(session):
        if dimension == "platform":
            publications, resources, size = (int(v or 0) for v in numbers[:3])
            by_platform.append(
                {
                    "platform": key,
                    "national": key in NATIONAL,
                    "publications": publications,
                    "resources": resources,
                    "bytes": size,
                }
            )
            continue
        if dimension == "deliveries":
            deliveries["failed"], deliveries["done"] = (int(v or 0) for v in numbers[:2])
            continue
        counts = _counts(numbers)
        if dimension == "total":
            totals = counts
        elif dimension == "category":
            by_category.append({"category": key, **counts})
        elif dimension == "organization":
            by_organization.append({"organization_id": key, **counts})
        else:
            need = rules.needs.get(key)
            by_need.append(
                {"need": key, "need_title": need.title if need else key, "category": extra, **counts}
            )
    deliveries.update(repository.active_delivery_states(session))
    names = repository.organization_names(session, [o["organization_id"] for o in by_organization])
    for item in by_organization:
        slug, name = names.get(item["organization_id"], (None, None))
        item["organization"], item["organization_name"] = slug, name
    by_category.sort(key=lambda c: c["category"])
    by_need.sort(key=lambda n: (rules.need_index.get(n["need"], 10_000), n["category"]))
    by_organization.sort(key=lambda o: (-o["publications"], o["organization"] or ""))
    return {
        "generated_at": iso(utcnow()),
        "totals": totals,
        "by_category": by_category,
        "by_need": by_need,
        "by_platform": by_platform,
        "by_organization": by_organization,
        "gaps": repository.gap_counts(session, on or today()),
        "deliveries": deliveries,
        "history": history(session),
    }


def waiting_by_cell(session: Session) -> dict[tuple[str, str], int]:
    """(need, platform) -> active publications whose current decision has that need as B on that platform
    (what the gap register shows as ``waiting_publications``)."""
    refresh(session)
    session.flush()
    counts: dict[tuple[str, str], int] = {}
    for need, platforms, count in repository.waiting_rows(session):
        for platform in json.loads(platforms or "[]"):
            counts[(need, platform)] = counts.get((need, platform), 0) + count
    return counts


def history(session: Session) -> list[dict[str, Any]]:
    return [
        {
            "date": snapshot.day.isoformat(),
            "national_share": _share(snapshot.national, snapshot.publications),
            "publications": snapshot.publications,
            "national": snapshot.national,
            "regional": snapshot.regional,
        }
        for snapshot in repository.total_history(session)
    ]


# --------------------------------------------------------------------------------------------- snapshots


def snapshot(session: Session, *, on: date | None = None, full: bool = False) -> dict[str, Any]:
    """Write the day's rows of ``migration_snapshot`` (replacing that day's earlier ones); the metrics.

    ``full`` recomputes the whole summary first, in this transaction (tests, small deployments).
    """
    day = on or today()
    refresh(session, full=full)
    session.flush()
    stats = migration_stats(session, refresh_first=False, on=day)
    now = utcnow()

    def row(dimension: str, key: str, counts: dict[str, Any]) -> dict[str, Any]:
        return {
            "day": day,
            "dimension": dimension,
            "key": key,
            "publications": counts["publications"],
            "national": counts["national"],
            "regional": counts["regional"],
            "national_and_regional": counts["both"],
            "resources": counts["resources"],
            "bytes_national": counts["bytes_national"],
            "bytes_regional": counts["bytes_regional"],
            "created_at": now,
        }

    rows = [row("total", "", stats["totals"])]
    rows += [row("category", c["category"], c) for c in stats["by_category"]]
    rows += [row("need", f"{n['need']}|{n['category']}", n) for n in stats["by_need"]]
    rows += [
        row("organization", o["organization"] or o["organization_id"], o) for o in stats["by_organization"]
    ]
    repository.upsert_snapshots(session, rows)
    session.flush()
    stats["history"] = history(session)
    return stats


def snapshot_now() -> dict[str, Any]:
    """The periodic beat task: today's rows, from a summary refreshed for what changed."""
    with session_scope() as session:
        stats = snapshot(session, full=False)
    logger.info(
        "migration snapshot: %d publications, national share %.1f%%",
        stats["totals"]["publications"],
        100 * stats["totals"]["national_share"],
    )
    return {"publications": stats["totals"]["publications"], "national": stats["totals"]["national"]}


def rebuild() -> int:
    """Recompute every publication's summary row, one transaction per chunk (the daily beat task).

    A refresh reads only what changed since the last one; this repairs anything it could have missed (a
    transaction that committed later than the margin). Committing per chunk keeps SQLite's write lock short.
    """
    with session_scope() as session:
        ids = repository.all_publication_ids(session)
    started = utcnow()
    for start in range(0, len(ids), repository.CHUNK):
        with session_scope() as session:
            _refresh_chunk(session, ids[start : start + repository.CHUNK], started)
    return len(ids)
