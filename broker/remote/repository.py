"""Every query of remote syncs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_
from sqlmodel import Session, col, select

from broker.publications.models import Publication, Resource, Revision
from broker.remote.models import RemoteSync

PERIODS = ("daily", "weekly", "monthly")


def get(session: Session, sync_id: str) -> RemoteSync | None:
    return session.get(RemoteSync, sync_id)


def add(session: Session, row: RemoteSync) -> RemoteSync:
    session.add(row)
    session.flush()
    return row


def delete(session: Session, row: RemoteSync) -> None:
    session.delete(row)
    session.flush()


def for_publication(session: Session, publication_id: str) -> list[RemoteSync]:
    query = select(RemoteSync).where(RemoteSync.publication_id == publication_id)
    return list(session.exec(query.order_by(col(RemoteSync.position))))


def all_rows(session: Session, publication_id: str | None = None) -> list[RemoteSync]:
    query = select(RemoteSync)
    if publication_id is not None:
        query = query.where(RemoteSync.publication_id == publication_id)
    return list(session.exec(query))


def synced_resources(
    session: Session, publication_id: str | None = None
) -> list[tuple[Resource, Revision, Publication]]:
    """URL resources asking for a sync, in the current revision of active publications."""
    query = (
        select(Resource, Revision, Publication)
        .join(Revision, col(Resource.revision_id) == col(Revision.id))
        .join(
            Publication,
            and_(
                col(Publication.id) == col(Revision.publication_id),
                col(Publication.revision) == col(Revision.number),
            ),
        )
        .where(
            Publication.state == "active",
            col(Resource.url).is_not(None),
            col(Resource.sync).in_(PERIODS),
        )
    )
    if publication_id is not None:
        query = query.where(Publication.id == publication_id)
    return [(r, v, p) for r, v, p in session.exec(query)]


def due(session: Session, now: datetime, limit: int) -> list[RemoteSync]:
    query = (
        select(RemoteSync)
        .where(col(RemoteSync.next_due_at) <= now)
        .order_by(col(RemoteSync.next_due_at))
        .limit(limit)
    )
    return list(session.exec(query))


def claim(session: Session, sync_id: str, seen_due: datetime, until: datetime) -> bool:
    """Move one due row's next_due_at to ``until``, unless another beat or request moved it first."""
    from sqlalchemy import update

    result = session.execute(
        update(RemoteSync)
        .where(col(RemoteSync.id) == sync_id, col(RemoteSync.next_due_at) == seen_due)
        .values(next_due_at=until)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]
