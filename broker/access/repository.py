"""Every query of the access domain. Functions take a session and never commit (the caller's unit of work
does, see broker.db)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import ColumnElement
from sqlmodel import Session, col, or_, select

from broker.access.models import AccessRequest
from broker.organizations.models import Organization
from broker.publications.models import Publication
from regional_store import repository as regional_repository
from regional_store.models import RegionalFile, RegionalRecord


def add(session: Session, request: AccessRequest) -> AccessRequest:
    session.add(request)
    # Flush now so the unique "one pending request" index speaks inside the caller's try block.
    session.flush()
    return request


def get(session: Session, request_id: str, *, for_update: bool = False) -> AccessRequest | None:
    query = select(AccessRequest).where(AccessRequest.id == request_id)
    if for_update:
        # Two referents deciding the same request at once: the second waits, then sees it decided.
        query = query.with_for_update()
    return session.exec(query).first()


def lock_publication(session: Session, publication_id: str) -> Publication | None:
    """The publication, locked until commit (PostgreSQL; SQLite serialises writers anyway), so that two
    access-list changes never derive the same revision number."""
    query = select(Publication).where(Publication.id == publication_id).with_for_update()
    return session.exec(query).first()


def pending(session: Session, publication_id: str, subject: str) -> AccessRequest | None:
    query = select(AccessRequest).where(
        AccessRequest.publication_id == publication_id,
        AccessRequest.subject == subject,
        AccessRequest.status == "pending",
    )
    return session.exec(query).first()


def latest(session: Session, publication_id: str, subject: str) -> AccessRequest | None:
    """The person's most recent request on this publication, whatever its status."""
    query = (
        select(AccessRequest)
        .where(AccessRequest.publication_id == publication_id, AccessRequest.subject == subject)
        .order_by(col(AccessRequest.created_at).desc(), col(AccessRequest.id).desc())
    )
    return session.exec(query).first()


def search(
    session: Session,
    *,
    publication_id: str | None = None,
    status: str | None = None,
    organization_ids: Sequence[str] | None = None,
    subject: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> list[AccessRequest]:
    """Requests, newest first.

    ``organization_ids`` and ``subject`` are visibility filters combined with OR: a referent sees the
    requests on their organisations' publications *and* the ones they made themselves. Both None: no
    filter (staff).
    """
    query = select(AccessRequest)
    if publication_id is not None:
        query = query.where(AccessRequest.publication_id == publication_id)
    if status is not None:
        query = query.where(AccessRequest.status == status)
    visible: list[ColumnElement[bool]] = []
    if organization_ids is not None:
        owned = select(Publication.id).where(col(Publication.organization_id).in_(list(organization_ids)))
        visible.append(col(AccessRequest.publication_id).in_(owned))
    if subject is not None:
        visible.append(col(AccessRequest.subject) == subject)
    if visible:
        query = query.where(or_(*visible))
    query = query.order_by(col(AccessRequest.created_at).desc(), col(AccessRequest.id).desc())
    return list(session.exec(query.offset(offset).limit(limit)))


def organizations_by_slug(session: Session, slugs: Iterable[str]) -> dict[str, Organization]:
    wanted = sorted(set(slugs))
    if not wanted:
        return {}
    rows = session.exec(select(Organization).where(col(Organization.slug).in_(wanted)))
    return {row.slug: row for row in rows}


def organization_ids(session: Session, slugs: Iterable[str]) -> list[str]:
    return [row.id for row in organizations_by_slug(session, slugs).values()]


def publications_by_id(session: Session, ids: Iterable[str]) -> dict[str, Publication]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.exec(select(Publication).where(col(Publication.id).in_(wanted)))
    return {row.id: row for row in rows}


def organizations_by_id(session: Session, ids: Iterable[str]) -> dict[str, Organization]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    rows = session.exec(select(Organization).where(col(Organization.id).in_(wanted)))
    return {row.id: row for row in rows}


def regional_record(session: Session, publication_id: str) -> RegionalRecord | None:
    """The regional store's record: what it serves right now, and to whom (its ACL)."""
    return regional_repository.get_record(session, publication_id)


def regional_files(session: Session, publication_id: str) -> list[RegionalFile]:
    return regional_repository.list_files(session, publication_id)
