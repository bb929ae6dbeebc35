"""Every query of the gap register, and of the publications waiting on a gap."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import String, and_, cast, or_, update
from sqlalchemy import select as sa_select
from sqlmodel import Session, col, select

from broker.classification.overlay import GapState
from broker.gaps.models import CategoriesState, Gap, GapHistory
from broker.organizations.models import Organization
from broker.publications.models import Decision, DecisionNeed, Publication, Revision


def get(session: Session, gap_id: str) -> Gap | None:
    return session.get(Gap, gap_id)


def by_cell(session: Session, need: str, platform: str) -> Gap | None:
    return session.exec(select(Gap).where(col(Gap.need) == need, col(Gap.platform) == platform)).first()


def list_all(session: Session) -> list[Gap]:
    return list(session.exec(select(Gap).order_by(col(Gap.need), col(Gap.platform))))


def with_probe(session: Session) -> list[Gap]:
    query = select(Gap).where(col(Gap.probe).is_not(None), col(Gap.status) == "open")
    return [g for g in session.exec(query.order_by(col(Gap.need))) if g.probe]


def add(session: Session, *objects: object) -> None:
    for obj in objects:
        session.add(obj)
    session.flush()


def states(session: Session) -> tuple[GapState, ...]:
    """The register as the classification overlay reads it."""
    rows = session.execute(
        sa_select(
            col(Gap.need),
            col(Gap.platform),
            col(Gap.status),
            col(Gap.target_date),
            col(Gap.upstream),
            col(Gap.interim),
            col(Gap.mirror),
        ).order_by(col(Gap.need), col(Gap.platform))
    )
    return tuple(
        GapState(
            need=need,
            platform=platform,
            status=status,
            target_date=target_date.isoformat() if target_date else None,
            upstream=upstream,
            interim=interim,
            mirror=bool(mirror),
        )
        for need, platform, status, target_date, upstream, interim, mirror in rows
    )


def history(session: Session, gap_id: str) -> list[GapHistory]:
    query = select(GapHistory).where(col(GapHistory.gap_id) == gap_id).order_by(col(GapHistory.id))
    return list(session.exec(query))


# --------------------------------------------------------------------------------------------- waiting


def _platform_in(platform: str) -> Any:
    # platforms is a JSON list; its text form quotes each id, on SQLite and on PostgreSQL alike.
    return cast(col(DecisionNeed.platforms), String).like(f'%"{platform}"%')


def waiting_publications(
    session: Session, need: str, platform: str, *, limit: int = 500
) -> list[tuple[Publication, str, Decision]]:
    """Publications whose current decision has ``need`` as B on ``platform``, with their organisation's
    slug and that decision (to tell how the need is served meanwhile)."""
    query = (
        select(Publication, col(Organization.slug), Decision)
        .join(
            Revision,
            and_(
                col(Revision.publication_id) == col(Publication.id),
                col(Revision.number) == col(Publication.revision),
            ),
        )
        .join(Decision, col(Decision.revision_id) == col(Revision.id))
        .join(DecisionNeed, col(DecisionNeed.decision_id) == col(Decision.id))
        .join(Organization, col(Organization.id) == col(Publication.organization_id))
        .where(
            col(Publication.state) == "active",
            col(DecisionNeed.need) == need,
            col(DecisionNeed.category) == "B",
            _platform_in(platform),
        )
        .order_by(col(Organization.slug), col(Publication.title))
        .limit(limit)
    )
    return [(p, slug, d) for p, slug, d in session.exec(query)]


def affected_publication_ids(session: Session, need: str, platform: str) -> list[str]:
    """Active publications to migrate when ``need`` becomes A on ``platform``: their current decision has
    it as B on that platform, or as C (served regionally)."""
    query = (
        select(col(Publication.id))
        .join(
            Revision,
            and_(
                col(Revision.publication_id) == col(Publication.id),
                col(Revision.number) == col(Publication.revision),
            ),
        )
        .join(Decision, col(Decision.revision_id) == col(Revision.id))
        .join(DecisionNeed, col(DecisionNeed.decision_id) == col(Decision.id))
        .where(
            col(Publication.state) == "active",
            col(DecisionNeed.need) == need,
            or_(
                col(DecisionNeed.category) == "C",
                and_(col(DecisionNeed.category) == "B", _platform_in(platform)),
            ),
        )
        .distinct()
        .order_by(col(Publication.id))
    )
    return list(session.exec(query))


def current_need(session: Session, publication_id: str, need: str) -> DecisionNeed | None:
    """The row of ``need`` in the publication's current decision, if it has that need."""
    query = (
        select(DecisionNeed)
        .join(Decision, col(Decision.id) == col(DecisionNeed.decision_id))
        .join(Revision, col(Revision.id) == col(Decision.revision_id))
        .join(
            Publication,
            and_(
                col(Publication.id) == col(Revision.publication_id),
                col(Publication.revision) == col(Revision.number),
            ),
        )
        .where(col(Publication.id) == publication_id, col(DecisionNeed.need) == need)
    )
    return session.exec(query).first()


# --------------------------------------------------------------------------------------------- categories


def categories_state(session: Session) -> CategoriesState | None:
    return session.get(CategoriesState, 1, populate_existing=True)


def lock_categories_state(session: Session) -> None:
    """A no-op write on the state row, first thing in the synchronisation: two API processes starting
    together then synchronise one after the other (row lock on PostgreSQL, write lock on SQLite), and the
    second sees what the first did instead of recording the same change twice."""
    statement = (
        update(CategoriesState)
        .where(col(CategoriesState.id) == 1)
        .values(seen_at=CategoriesState.seen_at)
        .execution_options(synchronize_session=False)
    )
    session.exec(statement)


def save(session: Session, objects: Iterable[object]) -> None:
    for obj in objects:
        session.add(obj)
    session.flush()
