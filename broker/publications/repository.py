"""Every query on publications, revisions, resources and decisions."""

from __future__ import annotations

from sqlmodel import Session, col, func, select

from broker.publications.models import Decision, DecisionNeed, Publication, Resource, Revision


def get(session: Session, publication_id: str) -> Publication | None:
    return session.get(Publication, publication_id)


def add(session: Session, *objects: object) -> None:
    for obj in objects:
        session.add(obj)
    session.flush()


def revision(session: Session, publication_id: str, number: int) -> Revision | None:
    query = select(Revision).where(Revision.publication_id == publication_id, Revision.number == number)
    return session.exec(query).first()


def revision_by_id(session: Session, revision_id: str) -> Revision | None:
    return session.get(Revision, revision_id)


def revisions(session: Session, publication_id: str) -> list[Revision]:
    query = select(Revision).where(Revision.publication_id == publication_id)
    return list(session.exec(query.order_by(col(Revision.number))))


def resources(session: Session, revision_id: str) -> list[Resource]:
    query = select(Resource).where(Resource.revision_id == revision_id).order_by(col(Resource.position))
    return list(session.exec(query))


def decision(session: Session, revision_id: str) -> Decision | None:
    return session.exec(select(Decision).where(Decision.revision_id == revision_id)).first()


def sha256_referenced(session: Session, sha256: str) -> bool:
    return session.exec(select(Resource.id).where(Resource.sha256 == sha256).limit(1)).first() is not None


def search(
    session: Session,
    *,
    organization_ids: list[str] | None = None,
    state: str | None = None,
    category: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[list[Publication], int]:
    query = select(Publication)
    count = select(func.count()).select_from(Publication)
    if organization_ids is not None:
        query = query.where(col(Publication.organization_id).in_(organization_ids))
        count = count.where(col(Publication.organization_id).in_(organization_ids))
    if state:
        query = query.where(Publication.state == state)
        count = count.where(Publication.state == state)
    if category:
        query = query.where(Publication.category == category)
        count = count.where(Publication.category == category)
    rows = list(session.exec(query.order_by(col(Publication.updated_at).desc()).offset(offset).limit(limit)))
    total = session.exec(count).one()
    return rows, int(total)


def decision_needs(session: Session, decision_id: str) -> list[DecisionNeed]:
    return list(session.exec(select(DecisionNeed).where(DecisionNeed.decision_id == decision_id)))
