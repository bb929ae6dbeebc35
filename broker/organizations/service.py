"""Organisations: registration and lookup."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlmodel import Session

from broker import secrets
from broker.db import iso, utcnow
from broker.errors import Conflict, InvalidInput, NotFound
from broker.events import service as events
from broker.events.service import Actor
from broker.organizations import repository
from broker.organizations.models import Organization, OrganizationCredential
from broker.organizations.schemas import (
    SLUG_PATTERN,
    CredentialStatus,
    DatagouvCredentials,
    GeoplateformeCredentials,
    OrganizationPublic,
)


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


CREDENTIAL_MODELS: dict[str, type[BaseModel]] = {
    "datagouv": DatagouvCredentials,
    "geoplateforme": GeoplateformeCredentials,
}


def set_credentials(
    session: Session, organization: Organization, target: str, values: dict[str, Any], *, actor: Actor | None
) -> OrganizationCredential:
    """Store (encrypted) an organisation's credentials for a national target; audited without values."""
    model = CREDENTIAL_MODELS.get(target)
    if model is None:
        raise NotFound(f"Cible sans identifiants : « {target} » (datagouv ou geoplateforme).")
    try:
        parsed = model.model_validate(values)
    except ValidationError as exc:
        fields: dict[str, list[str]] = {}
        for err in exc.errors():
            fields.setdefault(".".join(str(p) for p in err["loc"]), []).append(str(err["msg"]))
        raise InvalidInput("Identifiants invalides.", fields=fields) from exc
    data = parsed.model_dump(exclude_none=True)
    record = repository.credential(session, organization.id, target) or OrganizationCredential(
        organization_id=organization.id, target=target, secret=""
    )
    record.secret = secrets.encrypt(data)
    record.fields = sorted(data)
    record.updated_by = actor.subject if actor else "broker"
    record.updated_at = utcnow()
    repository.save_credential(session, record)
    events.record(
        session,
        "organization.credentials_set",
        actor=actor,
        organization_id=organization.id,
        target=target,
        detail={"fields": sorted(data)},
    )
    return record


def remove_credentials(
    session: Session, organization: Organization, target: str, *, actor: Actor | None
) -> None:
    record = repository.credential(session, organization.id, target)
    if record is None:
        raise NotFound(f"Aucun identifiant enregistré pour « {target} ».")
    repository.delete_credential(session, record)
    events.record(
        session,
        "organization.credentials_removed",
        actor=actor,
        organization_id=organization.id,
        target=target,
    )


def read_credentials(session: Session, organization_id: str, target: str) -> dict[str, Any]:
    """Decrypted credentials, for building a connector only (never for answers or logs)."""
    record = repository.credential(session, organization_id, target)
    return secrets.decrypt(record.secret) if record else {}


def credential_status(record: OrganizationCredential) -> CredentialStatus:
    return CredentialStatus(
        target=record.target,
        fields=list(record.fields or []),
        updated_by=record.updated_by,
        updated_at=iso(record.updated_at),
    )
