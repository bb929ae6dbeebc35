"""Queries of the audit log."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from broker.events.models import Event


def add(session: Session, event: Event) -> Event:
    session.add(event)
    return event


def search(
    session: Session,
    *,
    publication_id: str | None = None,
    organization_id: str | None = None,
    organization_ids: Sequence[str] | None = None,
    limit: int = 200,
    before_id: int | None = None,
) -> list[Event]:
    query = select(Event)
    if publication_id:
        query = query.where(Event.publication_id == publication_id)
    if organization_id:
        query = query.where(Event.organization_id == organization_id)
    if organization_ids is not None:
        query = query.where(col(Event.organization_id).in_(list(organization_ids)))
    if before_id:
        query = query.where(col(Event.id) < before_id)
    query = query.order_by(col(Event.id).desc()).limit(limit)
    return list(session.exec(query))
