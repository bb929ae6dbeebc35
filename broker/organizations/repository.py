"""Queries of organisations."""

from __future__ import annotations

from sqlmodel import Session, col, select

from broker.organizations.models import Organization, OrganizationCredential


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


def credential(session: Session, organization_id: str, target: str) -> OrganizationCredential | None:
    query = select(OrganizationCredential).where(
        OrganizationCredential.organization_id == organization_id, OrganizationCredential.target == target
    )
    return session.exec(query).first()


def credentials(session: Session, organization_id: str) -> list[OrganizationCredential]:
    query = select(OrganizationCredential).where(OrganizationCredential.organization_id == organization_id)
    return list(session.exec(query))


def save_credential(session: Session, record: OrganizationCredential) -> OrganizationCredential:
    session.add(record)
    session.flush()
    return record


def delete_credential(session: Session, record: OrganizationCredential) -> None:
    session.delete(record)
    session.flush()


def save(session: Session, organization: Organization) -> Organization:
    session.add(organization)
    session.flush()
    return organization
