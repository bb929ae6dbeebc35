"""Queries of organisations."""

from __future__ import annotations

from sqlmodel import Session, col, select

from broker.organizations.models import Organization


def get(session: Session, organization_id: str) -> Organization | None:
    return session.get(Organization, organization_id)


def get_by_slug(session: Session, slug: str) -> Organization | None:
    return session.exec(select(Organization).where(Organization.slug == slug)).first()


def list_all(session: Session) -> list[Organization]:
    return list(session.exec(select(Organization).order_by(col(Organization.slug))))


def add(session: Session, organization: Organization) -> Organization:
    session.add(organization)
    session.flush()
    return organization
