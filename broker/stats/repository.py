"""Every query of the migration metrics: refreshing the per-publication summary from the ledger, deliveries,
decision needs and resources of the current revision, and the GROUP BY queries that answer the endpoint."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import String, and_, cast, func, select, text, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col

from broker.deliveries.models import Delivery, LedgerRecord
from broker.gaps.models import Gap
from broker.publications.models import Decision, DecisionNeed, Publication, Resource, Revision
from broker.stats.models import MigrationSnapshot, NeedSetMember, PublicationSummary

CHUNK = 500  # publications per refresh statement (well under SQLite's bound-parameter limit)


# --------------------------------------------------------------------------------------------- refresh


def watermark(session: Session) -> datetime | None:
    """When the last refresh that changed something started (None: never refreshed)."""
    value: datetime | None = session.execute(
        select(func.max(col(PublicationSummary.refreshed_at)))
    ).scalar_one()
    return value


def changed_since(session: Session, since: datetime) -> list[str]:
    """Publications whose row, ledger or deliveries changed at or after ``since`` (indexed columns)."""
    query = union(
        select(col(Publication.id)).where(col(Publication.updated_at) >= since),
        select(col(LedgerRecord.publication_id)).where(col(LedgerRecord.updated_at) >= since),
        select(col(Delivery.publication_id)).where(col(Delivery.updated_at) >= since),
    )
    return [row[0] for row in session.execute(query)]


def all_publication_ids(session: Session) -> list[str]:
    return [row[0] for row in session.execute(select(col(Publication.id)).order_by(col(Publication.id)))]


def publications_of(session: Session, ids: Sequence[str]) -> list[tuple[str, str, str, str, str | None]]:
    """(id, organisation id, category, state, current revision id) of each publication."""
    query = (
        select(
            col(Publication.id),
            col(Publication.organization_id),
            col(Publication.category),
            col(Publication.state),
            col(Revision.id),
        )
        .outerjoin(
            Revision,
            and_(
                col(Revision.publication_id) == col(Publication.id),
                col(Revision.number) == col(Publication.revision),
            ),
        )
        .where(col(Publication.id).in_(ids))
    )
    return [tuple(row) for row in session.execute(query)]


def present_targets(session: Session, ids: Sequence[str]) -> list[tuple[str, str]]:
    query = select(col(LedgerRecord.publication_id), col(LedgerRecord.target)).where(
        col(LedgerRecord.publication_id).in_(ids), col(LedgerRecord.state) == "present"
    )
    return [(p, t) for p, t in session.execute(query)]


def resource_totals(session: Session, revision_ids: Sequence[str]) -> dict[str, tuple[int, int]]:
    query = (
        select(col(Resource.revision_id), func.count(), func.coalesce(func.sum(col(Resource.size)), 0))
        .where(col(Resource.revision_id).in_(revision_ids))
        .group_by(col(Resource.revision_id))
    )
    return {r: (int(n), int(b)) for r, n, b in session.execute(query)}


def decision_needs(session: Session, revision_ids: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(revision id, need, category, platforms as JSON text) of those revisions' decisions."""
    query = (
        select(
            col(Decision.revision_id),
            col(DecisionNeed.need),
            col(DecisionNeed.category),
            cast(col(DecisionNeed.platforms), String),
        )
        .join(DecisionNeed, col(DecisionNeed.decision_id) == col(Decision.id))
        .where(col(Decision.revision_id).in_(revision_ids))
    )
    return [tuple(row) for row in session.execute(query)]


def current_delivery_states(session: Session, ids: Sequence[str]) -> list[tuple[str, str, int]]:
    """(publication id, state, count) of the deliveries of each publication's current revision."""
    query = (
        select(col(Delivery.publication_id), col(Delivery.state), func.count())
        .join(
            Publication,
            and_(
                col(Publication.id) == col(Delivery.publication_id),
                col(Publication.revision) == col(Delivery.revision_number),
            ),
        )
        .where(col(Delivery.publication_id).in_(ids))
        .group_by(col(Delivery.publication_id), col(Delivery.state))
    )
    return [(p, s, int(n)) for p, s, n in session.execute(query)]


def _insert(session: Session) -> Any:
    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def upsert_summaries(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or replace summary rows (ON CONFLICT: two refreshes at once never collide)."""
    if not rows:
        return
    insert = _insert(session)
    statement = insert(PublicationSummary.__table__)  # type: ignore[attr-defined]
    columns = [c for c in rows[0] if c != "publication_id"]
    statement = statement.on_conflict_do_update(
        index_elements=["publication_id"], set_={c: statement.excluded[c] for c in columns}
    )
    session.execute(statement, rows)


def known_need_sets(session: Session, keys: Iterable[str]) -> set[str]:
    wanted = list(set(keys))
    if not wanted:
        return set()
    query = select(col(NeedSetMember.needs_key)).where(col(NeedSetMember.needs_key).in_(wanted)).distinct()
    return {row[0] for row in session.execute(query)}


def add_need_set_members(session: Session, members: list[dict[str, Any]]) -> None:
    if not members:
        return
    insert = _insert(session)
    statement = insert(NeedSetMember.__table__).on_conflict_do_nothing()  # type: ignore[attr-defined]
    session.execute(statement, members)


# --------------------------------------------------------------------------------------------- metrics

# One pass over the summary, read from its index in order: grouped by (active, organisation, category, set of
# needs, where present), a few thousand groups at most, materialised once (a CTE used several times); then
# each dimension rolls those groups up. National means present on data.gouv.fr or the Géoplateforme.
_METRICS = text(
    """
    WITH g AS (
        SELECT active AS a, organization_id AS org, category AS cat, needs_key AS k,
               on_datagouv AS dg, on_geoplateforme AS gp, regional AS rg,
               count(*) AS n, sum(resources) AS res, sum(bytes) AS b,
               sum(deliveries_failed) AS f, sum(deliveries_done) AS d
        FROM publication_summary
        GROUP BY active, organization_id, category, needs_key, on_datagouv, on_geoplateforme, regional
    ),
    h AS (
        SELECT org, cat, k, n, res,
               CASE WHEN dg + gp > 0 THEN n ELSE 0 END AS nat,
               CASE WHEN rg = 1 THEN n ELSE 0 END AS reg,
               CASE WHEN dg + gp > 0 AND rg = 1 THEN n ELSE 0 END AS bth,
               CASE WHEN dg + gp > 0 THEN b ELSE 0 END AS bn,
               CASE WHEN rg = 1 THEN b ELSE 0 END AS br
        FROM g WHERE a = 1
    )
    SELECT 'total' AS dimension, '' AS key, '' AS extra,
           sum(n), sum(nat), sum(reg), sum(bth), sum(res), sum(bn), sum(br) FROM h
    UNION ALL
    SELECT 'category', cat, '', sum(n), sum(nat), sum(reg), sum(bth), sum(res), sum(bn), sum(br)
    FROM h GROUP BY cat
    UNION ALL
    SELECT 'organization', org, '', sum(n), sum(nat), sum(reg), sum(bth), sum(res), sum(bn), sum(br)
    FROM h GROUP BY org
    UNION ALL
    SELECT 'need', m.need, m.category, sum(n), sum(nat), sum(reg), sum(bth), sum(res), sum(bn), sum(br)
    FROM h JOIN need_set_member m ON m.needs_key = h.k
    GROUP BY m.need, m.category
    UNION ALL
    SELECT 'platform', 'datagouv', '', sum(n * dg), sum(res * dg), sum(b * dg), 0, 0, 0, 0 FROM g WHERE a = 1
    UNION ALL
    SELECT 'platform', 'geoplateforme', '', sum(n * gp), sum(res * gp), sum(b * gp), 0, 0, 0, 0
    FROM g WHERE a = 1
    UNION ALL
    SELECT 'platform', 'regional', '', sum(n * rg), sum(res * rg), sum(b * rg), 0, 0, 0, 0 FROM g WHERE a = 1
    UNION ALL
    SELECT 'deliveries', '', '', sum(f), sum(d), 0, 0, 0, 0, 0 FROM g
    """
)

# Gaps waiting: (need, platforms) of category-B needs of active publications, with how many publications.
_WAITING = text(
    """
    WITH g AS (
        SELECT needs_key AS k, count(*) AS n FROM publication_summary WHERE active = 1 GROUP BY needs_key
    )
    SELECT m.need, m.platforms, sum(g.n)
    FROM g JOIN need_set_member m ON m.needs_key = g.k
    WHERE m.category = 'B'
    GROUP BY m.need, m.platforms
    """
)


def metric_rows(session: Session) -> list[tuple[Any, ...]]:
    """(dimension, key, extra, seven numbers) rows of :data:`_METRICS`."""
    return [tuple(row) for row in session.execute(_METRICS)]


def active_delivery_states(session: Session) -> dict[str, int]:
    """Deliveries in a non-final state, by state, live (a superseded delivery is cancelled, so every one of
    these belongs to a current revision); few rows, read through the state index."""
    query = (
        select(col(Delivery.state), func.count())
        .where(col(Delivery.state).in_(["pending", "running", "retrying", "waiting"]))
        .group_by(col(Delivery.state))
    )
    return {state: int(n) for state, n in session.execute(query)}


def waiting_rows(session: Session) -> list[tuple[str, str, int]]:
    return [(need, platforms, int(n or 0)) for need, platforms, n in session.execute(_WAITING)]


def organization_names(session: Session, ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    from broker.organizations.models import Organization

    wanted = list(set(ids))
    if not wanted:
        return {}
    query = select(col(Organization.id), col(Organization.slug), col(Organization.name)).where(
        col(Organization.id).in_(wanted)
    )
    return {i: (slug, name) for i, slug, name in session.execute(query)}


def gap_counts(session: Session, today: date) -> dict[str, int]:
    query = select(col(Gap.status), func.count()).group_by(col(Gap.status))
    counts = {status: int(n) for status, n in session.execute(query)}
    late = session.execute(
        select(func.count()).where(col(Gap.status) == "open", col(Gap.target_date) < today)
    ).scalar_one()
    return {
        "open": counts.get("open", 0),
        "late": int(late),
        "delivered": counts.get("delivered", 0),
        "dropped": counts.get("dropped", 0),
    }


# --------------------------------------------------------------------------------------------- snapshots


def upsert_snapshots(session: Session, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    insert = _insert(session)
    statement = insert(MigrationSnapshot.__table__)  # type: ignore[attr-defined]
    columns = [c for c in rows[0] if c not in ("day", "dimension", "key")]
    statement = statement.on_conflict_do_update(
        index_elements=["day", "dimension", "key"], set_={c: statement.excluded[c] for c in columns}
    )
    session.execute(statement, rows)


def total_history(session: Session, *, limit: int = 3660) -> list[MigrationSnapshot]:
    query = (
        select(MigrationSnapshot)
        .where(col(MigrationSnapshot.dimension) == "total")
        .order_by(col(MigrationSnapshot.day).desc())
        .limit(limit)
    )
    return list(reversed(session.scalars(query).all()))
