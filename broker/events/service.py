"""Record what happened: every state change and every authenticated write is an event."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from sqlmodel import Session

from broker.db import iso
from broker.events import repository
from broker.events.models import Event

logger = logging.getLogger(__name__)


class Actor(Protocol):
    """Whoever acts: a :class:`broker.auth.principal.Principal` satisfies it."""

    @property
    def subject(self) -> str: ...

    @property
    def organizations(self) -> tuple[str, ...]: ...

    @property
    def client_id(self) -> str | None: ...


def record(
    session: Session,
    action: str,
    *,
    actor: Actor | None = None,
    publication_id: str | None = None,
    organization_id: str | None = None,
    delivery_id: str | None = None,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
) -> Event:
    """Add one audit event to the session (committed with the change it describes)."""
    event = Event(
        action=action,
        actor_subject=actor.subject if actor else "broker",
        actor_organization=(actor.organizations[0] if actor and actor.organizations else None),
        actor_client=actor.client_id if actor else None,
        publication_id=publication_id,
        organization_id=organization_id,
        delivery_id=delivery_id,
        target=target,
        detail=detail or {},
    )
    return repository.add(session, event)


def to_dict(event: Event, *, redact: bool = False) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso(event.at),
        "action": event.action,
        "actor": {
            "subject": event.actor_subject,
            "organization": event.actor_organization,
            "client": event.actor_client,
        },
        "organization_id": event.organization_id,
        "publication_id": event.publication_id,
        "delivery_id": event.delivery_id,
        "target": event.target,
        "detail": {"redacted": True} if redact else event.detail,
    }
