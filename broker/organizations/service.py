"""Organisations: registration and lookup."""

from __future__ import annotations

import re

from sqlmodel import Session

from broker.errors import Conflict, InvalidInput, NotFound
from broker.events import service as events
from broker.events.service import Actor
from broker.organizations import repository
from broker.organizations.models import Organization
from broker.organizations.schemas import SLUG_PATTERN, OrganizationPublic


def create(
    session: Session, slug: str, name: str, *, contact_email: str | None = None, actor: Actor | None = None
) -> Organization:
    if not re.match(SLUG_PATTERN, slug):
        raise InvalidInput(
            "Identifiant d'organisation invalide.",
            fields={"slug": ["minuscules, chiffres et tirets ; 3 à 100 caractères"]},
        )
    if repository.get_by_slug(session, slug):
        raise Conflict(f"L'organisation « {slug} » existe déjà.")
    organization = repository.add(session, Organization(slug=slug, name=name, contact_email=contact_email))
    events.record(
        session,
        "organization.created",
        actor=actor,
        organization_id=organization.id,
        detail={"slug": slug, "name": name},
    )
    return organization


def get_by_slug(session: Session, slug: str) -> Organization:
    organization = repository.get_by_slug(session, slug)
    if organization is None:
        raise NotFound(
            f"Organisation inconnue : « {slug} ». Demandez à OPenIG de l'enregistrer.",
            fields={"organization": ["organisation inconnue"]},
        )
    return organization


def to_public(organization: Organization) -> OrganizationPublic:
    return OrganizationPublic(
        id=organization.id,
        slug=organization.slug,
        name=organization.name,
        contact_email=organization.contact_email,
    )
