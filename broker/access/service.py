"""Restricted nominative access: the access list of a publication, access requests and their decisions,
and the service-account bindings staff manage.

Services take a session and never commit (broker.db). Authorisation is decided here, before anything is
looked at more closely, so that a caller without the right gets 403 whatever state the object is in.
Messages are for people, in French.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from broker.access import repository
from broker.access.models import NOTE_MAX_LENGTH, REASON_MAX_LENGTH, REQUEST_STATUSES, AccessRequest
from broker.access.schemas import AccessListOut, AccessRequestOut
from broker.auth import repository as auth_repository
from broker.auth import service as auth_service
from broker.auth.dependencies import RULES, check_rule
from broker.auth.models import ServiceAccount
from broker.auth.principal import Principal
from broker.db import iso, utcnow
from broker.errors import Conflict, Forbidden, InvalidInput, NotFound
from broker.events import service as events
from broker.events.service import Actor
from broker.organizations import repository as organizations_repository
from broker.organizations.models import Organization
from broker.publications import repository as publications_repository
from broker.publications import service as publications
from broker.publications.models import Publication

logger = logging.getLogger(__name__)

#: The revision reason of every access-list change, as the issue asks (it shows in the audit log).
CHANGE_REASON = "access list changed"
#: Good enough to catch typos (a missing domain, a space); deliverability is not the broker's business.
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
MAX_ENTRY_LENGTH = 320


@dataclass(frozen=True)
class AccessList:
    """Who may read a restricted publication besides its own organisation's members and staff."""

    users: tuple[str, ...] = ()
    organizations: tuple[str, ...] = ()

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> AccessList:
        restricted = manifest.get("restricted_to") or {}
        return cls(
            users=tuple(restricted.get("users") or ()),
            organizations=tuple(restricted.get("organizations") or ()),
        )

    def as_manifest(self) -> dict[str, list[str]]:
        return {"users": list(self.users), "organizations": list(self.organizations)}

    def same_as(self, other: AccessList) -> bool:
        """Whether both lists let the same people read (order, and the case of emails, do not matter)."""
        return {_user_key(u) for u in self.users} == {_user_key(u) for u in other.users} and set(
            self.organizations
        ) == set(other.organizations)

    def with_user(self, *entries: str | None) -> AccessList:
        """The list with ``entries`` added, unless already there (emails without case)."""
        users = list(self.users)
        keys = {_user_key(u) for u in users}
        for entry in entries:
            if entry and _user_key(entry) not in keys:
                users.append(entry)
                keys.add(_user_key(entry))
        return AccessList(tuple(users), self.organizations)


def _user_key(entry: str) -> str:
    # Subjects are opaque ids compared exactly; emails are compared without case, as the regional store
    # does (regional_store.service.can_read).
    return entry.casefold() if "@" in entry else entry


def has_access(principal: Principal, owner: str, access: AccessList) -> bool:
    """Whether ``principal`` reads a restricted publication of organisation ``owner`` with this list.

    The same rules as the regional store's ``can_read``, plus the publication's own organisation, whose
    members always read what they publish.
    """
    if principal.is_staff or principal.belongs_to(owner):
        return True
    if principal.subject in access.users:
        return True
    emails = {u.casefold() for u in access.users if "@" in u}
    if principal.email and principal.email.casefold() in emails:
        return True
    return bool(set(principal.organizations) & set(access.organizations))


# --------------------------------------------------------------------------------------------- lookups


@dataclass(frozen=True)
class Target:
    """A publication with what access decisions need about it."""

    publication: Publication
    organization: Organization
    access: AccessList
    manifest: dict[str, Any]


def target(session: Session, publication_id: str, *, lock: bool = False) -> Target:
    if lock:
        publication = repository.lock_publication(session, publication_id)
    else:
        publication = publications_repository.get(session, publication_id)
    if publication is None:
        raise NotFound(f"Publication inconnue : {publication_id}.")
    organization = organizations_repository.get(session, publication.organization_id)
    revision = publications_repository.revision(session, publication.id, publication.revision)
    if organization is None or revision is None:
        raise NotFound(f"Publication incomplète : {publication_id}.")
    manifest = dict(revision.manifest)
    return Target(publication, organization, AccessList.from_manifest(manifest), manifest)


def _ensure_changeable(found: Target) -> None:
    if found.publication.state == "withdrawn":
        raise Conflict("Cette publication a été retirée ; sa liste d'accès ne change plus.")
    if found.publication.access != "restricted":
        raise Conflict(
            "Cette publication est en accès ouvert : elle n'a pas de liste d'accès. Pour la restreindre, "
            "publiez une révision avec « access: restricted »."
        )


# --------------------------------------------------------------------------------------------- the list


def _list_out(found: Target, *, changed: bool = False) -> AccessListOut:
    return AccessListOut(
        publication_id=found.publication.id,
        organization=found.organization.slug,
        access="restricted" if found.publication.access == "restricted" else "open",
        revision=found.publication.revision,
        changed=changed,
        users=list(found.access.users),
        organizations=list(found.access.organizations),
    )


def view_access(session: Session, principal: Principal, publication_id: str) -> AccessListOut:
    """The access list: for staff and the organisation's producers and referents (names and emails of
    people are not for every reader of the catalogue)."""
    found = target(session, publication_id)
    check_rule("write_organization", principal, found.organization.slug)
    return _list_out(found)


def clean_users(values: Iterable[str]) -> list[str]:
    """Trimmed, checked and deduplicated user entries (subjects or emails); InvalidInput lists each bad
    entry by its position."""
    cleaned: list[str] = []
    seen: set[str] = set()
    fields: dict[str, list[str]] = {}
    for index, raw in enumerate(values):
        value = raw.strip()
        problem = None
        if not value:
            problem = "entrée vide : un identifiant (sub) ou une adresse électronique est attendu"
        elif len(value) > MAX_ENTRY_LENGTH:
            problem = f"trop long ({MAX_ENTRY_LENGTH} caractères au plus)"
        elif any(c.isspace() or not c.isprintable() for c in value):
            problem = "ne doit contenir ni espace ni caractère de contrôle"
        elif "@" in value and not EMAIL_PATTERN.match(value):
            problem = f"adresse électronique invalide : « {value} »"
        if problem:
            fields.setdefault(f"users.{index}", []).append(problem)
            continue
        if _user_key(value) not in seen:
            seen.add(_user_key(value))
            cleaned.append(value)
    if fields:
        raise InvalidInput("La liste des personnes autorisées est invalide.", fields=fields)
    return cleaned


def clean_organizations(session: Session, values: Iterable[str]) -> list[str]:
    """Trimmed, deduplicated slugs of organisations that exist."""
    entries = [(index, raw.strip()) for index, raw in enumerate(values)]
    known = repository.organizations_by_slug(session, [slug for _, slug in entries if slug])
    cleaned: list[str] = []
    fields: dict[str, list[str]] = {}
    for index, slug in entries:
        if not slug:
            fields.setdefault(f"organizations.{index}", []).append("entrée vide : un identifiant est attendu")
        elif slug not in known:
            fields.setdefault(f"organizations.{index}", []).append(
                f"organisation inconnue : « {slug} » (voir GET /api/v1/organizations)"
            )
        elif slug not in cleaned:
            cleaned.append(slug)
    if fields:
        raise InvalidInput("La liste des organisations autorisées est invalide.", fields=fields)
    return cleaned


def _derive(session: Session, principal: Principal, found: Target, new: AccessList) -> None:
    """The new revision carrying ``new``; its deliveries update the regional record and its ACL."""
    try:
        publications.derive_revision(
            session,
            principal,
            found.publication,
            channel="api",
            changes={"restricted_to": new.as_manifest()},
            reason=CHANGE_REASON,
        )
    except IntegrityError as exc:  # a concurrent revision took the same number
        raise Conflict("La publication vient d'être modifiée par ailleurs ; réessayez.") from exc


def _record_change(
    session: Session, principal: Principal, found: Target, before: AccessList, after: AccessList, **extra: Any
) -> None:
    events.record(
        session,
        "access.changed",
        actor=principal,
        publication_id=found.publication.id,
        organization_id=found.organization.id,
        detail={
            "before": before.as_manifest(),
            "after": after.as_manifest(),
            "revision": found.publication.revision,
            "reason": CHANGE_REASON,
            **extra,
        },
    )


def set_access(
    session: Session, principal: Principal, publication_id: str, users: Sequence[str], orgs: Sequence[str]
) -> AccessListOut:
    """Replace the access list (referent of the organisation, or staff): a new revision, audited.

    The same list again changes nothing and makes no revision (PUT is idempotent).
    """
    found = target(session, publication_id, lock=True)
    check_rule("manage_organization", principal, found.organization.slug)
    _ensure_changeable(found)
    new = AccessList(tuple(clean_users(users)), tuple(clean_organizations(session, orgs)))
    if not new.users and not new.organizations:
        raise InvalidInput(
            "Une donnée en accès restreint doit nommer au moins une personne ou une organisation ; "
            "pour l'ouvrir à tous, publiez une révision avec « access: open ».",
            fields={"users": ["liste vide"], "organizations": ["liste vide"]},
        )
    if new.same_as(found.access):
        return _list_out(found)
    _derive(session, principal, found, new)
    _record_change(session, principal, found, found.access, new)
    logger.info(
        "access list of %s changed by %s (revision %d)",
        found.publication.id,
        principal.subject,
        found.publication.revision,
    )
    return _list_out(Target(found.publication, found.organization, new, found.manifest), changed=True)


# --------------------------------------------------------------------------------------------- requests


def _clean_text(value: str | None, field: str, limit: int, *, required: bool) -> str | None:
    text = (value or "").strip()
    if not text:
        if required:
            raise InvalidInput(
                "Expliquez en quelques mots pourquoi vous avez besoin de ces données.",
                fields={field: ["champ obligatoire"]},
            )
        return None
    if len(text) > limit:
        raise InvalidInput(
            f"Le texte dépasse {limit} caractères.", fields={field: [f"{limit} caractères au plus"]}
        )
    return text


def create_request(session: Session, principal: Principal, publication_id: str, reason: str) -> AccessRequest:
    """Ask to be added to a restricted publication's list (any authenticated person).

    Refused (409) when the person already reads the data, or already has a pending request.
    """
    found = target(session, publication_id)
    if found.publication.state == "withdrawn":
        raise NotFound(f"Publication inconnue ou retirée : {publication_id}.")
    if found.publication.access != "restricted":
        raise Conflict(
            "Cette publication est en accès ouvert : ses fichiers se téléchargent sans demande.",
            code="open_access",
        )
    text = _clean_text(reason, "reason", REASON_MAX_LENGTH, required=True)
    assert text is not None
    if has_access(principal, found.organization.slug, found.access):
        raise Conflict("Vous avez déjà accès à ces données.", code="already_granted")
    if repository.pending(session, publication_id, principal.subject) is not None:
        raise Conflict("Vous avez déjà une demande en attente pour ces données.", code="already_pending")
    request = AccessRequest(
        publication_id=publication_id,
        subject=principal.subject,
        email=principal.email,
        username=principal.username,
        reason=text,
    )
    try:
        repository.add(session, request)
    except IntegrityError as exc:  # the same person, twice at once: the partial unique index decides
        raise Conflict(
            "Vous avez déjà une demande en attente pour ces données.", code="already_pending"
        ) from exc
    events.record(
        session,
        "access_request.created",
        actor=principal,
        publication_id=publication_id,
        organization_id=found.organization.id,
        # Not the reason: free text about a person stays in the request, out of the audit log that every
        # reader of the broker sees.
        detail={"request_id": request.id, "requester": principal.subject},
    )
    return request


def _can_manage(principal: Principal, organization: Organization) -> bool:
    return RULES["manage_organization"].allows(principal, organization.slug)


def requests_for_publication(
    session: Session, principal: Principal, publication_id: str, status: str | None = None
) -> list[AccessRequestOut]:
    """All requests for the organisation's referents and staff; a person's own otherwise."""
    found = target(session, publication_id)
    subject = None if _can_manage(principal, found.organization) else principal.subject
    rows = repository.search(session, publication_id=publication_id, status=status, subject=subject)
    return to_out(session, rows)


def list_requests(
    session: Session, principal: Principal, status: str | None = None, limit: int = 200, offset: int = 0
) -> list[AccessRequestOut]:
    """Staff see every request; referents their organisations' (and their own); others their own."""
    if status is not None and status not in REQUEST_STATUSES:
        raise InvalidInput("Statut inconnu.", fields={"status": [f"attendu : {', '.join(REQUEST_STATUSES)}"]})
    if principal.is_staff:
        rows = repository.search(session, status=status, limit=limit, offset=offset)
    elif principal.has_role("referent") and principal.organizations:
        rows = repository.search(
            session,
            status=status,
            organization_ids=repository.organization_ids(session, principal.organizations),
            subject=principal.subject,
            limit=limit,
            offset=offset,
        )
    else:
        rows = repository.search(
            session, status=status, subject=principal.subject, limit=limit, offset=offset
        )
    return to_out(session, rows)


def _decidable(session: Session, principal: Principal, request_id: str) -> tuple[AccessRequest, Target]:
    request = repository.get(session, request_id, for_update=True)
    if request is None:
        raise NotFound(f"Demande d'accès inconnue : {request_id}.")
    found = target(session, request.publication_id, lock=True)
    check_rule("manage_organization", principal, found.organization.slug)
    if request.status != "pending":
        raise Conflict(f"Cette demande a déjà été traitée (statut : {request.status}).")
    return request, found


def _decide(request: AccessRequest, principal: Principal, status: str, note: str | None) -> None:
    request.status = status
    request.decided_by = principal.subject
    request.decision_note = note
    request.decided_at = utcnow()


def grant(session: Session, principal: Principal, request_id: str, note: str | None = None) -> AccessRequest:
    """Add the requester (subject and email) to the list through a new revision; audited."""
    request, found = _decidable(session, principal, request_id)
    _ensure_changeable(found)
    text = _clean_text(note, "note", NOTE_MAX_LENGTH, required=False)
    new = found.access.with_user(request.subject, request.email)
    revision = None
    if not new.same_as(found.access):
        _derive(session, principal, found, new)
        revision = found.publication.revision
        _record_change(session, principal, found, found.access, new, request_id=request.id)
    _decide(request, principal, "granted", text)
    session.add(request)
    events.record(
        session,
        "access_request.granted",
        actor=principal,
        publication_id=found.publication.id,
        organization_id=found.organization.id,
        detail={
            "request_id": request.id,
            "requester": request.subject,
            "decided_by": principal.subject,
            "note": text,
            "revision": revision,
        },
    )
    return request


def refuse(session: Session, principal: Principal, request_id: str, note: str | None = None) -> AccessRequest:
    request, found = _decidable(session, principal, request_id)
    text = _clean_text(note, "note", NOTE_MAX_LENGTH, required=False)
    _decide(request, principal, "refused", text)
    session.add(request)
    events.record(
        session,
        "access_request.refused",
        actor=principal,
        publication_id=found.publication.id,
        organization_id=found.organization.id,
        detail={
            "request_id": request.id,
            "requester": request.subject,
            "decided_by": principal.subject,
            "note": text,
        },
    )
    return request


def cancel(session: Session, principal: Principal, request_id: str) -> AccessRequest:
    """The requester withdraws their own pending request (staff may too, on their behalf)."""
    request = repository.get(session, request_id, for_update=True)
    if request is None:
        raise NotFound(f"Demande d'accès inconnue : {request_id}.")
    if request.subject != principal.subject and not principal.is_staff:
        raise Forbidden("Seule la personne qui a fait la demande peut l'annuler.")
    if request.status != "pending":
        raise Conflict(f"Cette demande a déjà été traitée (statut : {request.status}).")
    found = target(session, request.publication_id)
    _decide(request, principal, "cancelled", None)
    session.add(request)
    events.record(
        session,
        "access_request.cancelled",
        actor=principal,
        publication_id=found.publication.id,
        organization_id=found.organization.id,
        detail={"request_id": request.id, "requester": request.subject, "decided_by": principal.subject},
    )
    return request


def to_out(session: Session, rows: Sequence[AccessRequest]) -> list[AccessRequestOut]:
    by_id = repository.publications_by_id(session, [r.publication_id for r in rows])
    orgs = repository.organizations_by_id(session, [p.organization_id for p in by_id.values()])
    out = []
    for row in rows:
        publication = by_id.get(row.publication_id)
        organization = orgs.get(publication.organization_id) if publication else None
        out.append(
            AccessRequestOut(
                id=row.id,
                publication_id=row.publication_id,
                publication_title=publication.title if publication else None,
                organization=organization.slug if organization else None,
                subject=row.subject,
                email=row.email,
                username=row.username,
                reason=row.reason,
                status=row.status,  # always one of REQUEST_STATUSES
                decided_by=row.decided_by,
                decision_note=row.decision_note,
                created_at=iso(row.created_at) or "",
                decided_at=iso(row.decided_at),
            )
        )
    return out


def latest_request(session: Session, publication_id: str, subject: str) -> AccessRequest | None:
    return repository.latest(session, publication_id, subject)


def get_request(session: Session, request_id: str) -> AccessRequest:
    request = repository.get(session, request_id)
    if request is None:
        raise NotFound(f"Demande d'accès inconnue : {request_id}.")
    return request


# ------------------------------------------------------------------------------------------ service accounts


def bind_service_account(
    session: Session, actor: Actor, client_id: str, organization: str, role: str
) -> ServiceAccount:
    """Bind an OIDC client to a registered organisation and one role; audited."""
    found = organizations_repository.get_by_slug(session, organization.strip())
    if found is None:
        # A bad value in the request body, not a missing resource: 422 with the field, not 404.
        raise InvalidInput(
            f"Organisation inconnue : « {organization} ». Enregistrez-la d'abord (broker org add).",
            fields={"organization": ["organisation inconnue"]},
        )
    account = auth_service.bind_service_account(session, client_id, found.slug, role)
    events.record(
        session,
        "service_account.bound",
        actor=actor,
        organization_id=found.id,
        detail={"client_id": account.client_id, "organization": found.slug, "role": account.role},
    )
    return account


def unbind_service_account(session: Session, actor: Actor, client_id: str) -> None:
    account = auth_repository.get_service_account(session, client_id)
    auth_service.unbind_service_account(session, client_id)  # NotFound when there is none
    assert account is not None
    found = organizations_repository.get_by_slug(session, account.organization)
    events.record(
        session,
        "service_account.unbound",
        actor=actor,
        organization_id=found.id if found else None,
        detail={"client_id": client_id, "organization": account.organization, "role": account.role},
    )


def service_accounts(session: Session, organization: str | None = None) -> Sequence[ServiceAccount]:
    return auth_service.service_accounts(session, organization)
