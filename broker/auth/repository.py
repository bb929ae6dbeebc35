"""Every query of the auth domain. Functions take a session and never commit (the caller's unit of work
does, see broker.db)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlmodel import Session, select

from broker.auth.models import ServiceAccount

logger = logging.getLogger(__name__)


def get_service_account(session: Session, client_id: str) -> ServiceAccount | None:
    return session.exec(select(ServiceAccount).where(ServiceAccount.client_id == client_id)).first()


def list_service_accounts(session: Session, organization: str | None = None) -> Sequence[ServiceAccount]:
    query = select(ServiceAccount).order_by(ServiceAccount.client_id)
    if organization is not None:
        query = query.where(ServiceAccount.organization == organization)
    return session.exec(query).all()


def add_service_account(session: Session, account: ServiceAccount) -> ServiceAccount:
    session.add(account)
    session.flush()
    return account


def delete_service_account(session: Session, account: ServiceAccount) -> None:
    session.delete(account)
    session.flush()
