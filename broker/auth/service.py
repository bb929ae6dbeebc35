"""From a bearer token to a :class:`Principal`, and the service-account bindings.

Services take a session and never commit (broker.db).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlmodel import Session

from broker.auth import repository
from broker.auth.claims import map_claims
from broker.auth.models import ServiceAccount
from broker.auth.principal import Principal
from broker.auth.settings import BROKER_ROLES
from broker.auth.validation import TokenValidator, VerifiedToken
from broker.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized

logger = logging.getLogger(__name__)


def principal_from_verified(verified: VerifiedToken, session: Session) -> Principal:
    """Map the claims of a checked token; a service account takes its roles and organisation from its
    binding, and an unbound one is refused outright (403 on everything)."""
    try:
        mapped = map_claims(verified.claims, verified.mapping)
    except ValueError as exc:
        raise Unauthorized("Le jeton d'accès n'identifie pas son porteur (sub).") from exc
    roles = mapped.roles
    organizations = mapped.organizations
    if mapped.service_account:
        assert mapped.client_id is not None  # a service account is recognised by its client id
        binding = repository.get_service_account(session, mapped.client_id)
        if binding is None:
            logger.warning("service account %s (issuer %s) has no binding", mapped.client_id, verified.issuer)
            raise Forbidden(
                f"Le compte de service « {mapped.client_id} » n'est rattaché à aucune organisation ; "
                "demandez à l'équipe OPenIG de l'enregistrer."
            )
        # The binding overrides whatever the token says: the issuer's realm roles for machine clients
        # are not the broker's business.
        roles = frozenset({binding.role})
        organizations = (binding.organization,)
    return Principal(
        subject=mapped.subject,
        username=mapped.username,
        email=mapped.email,
        roles=roles,
        organizations=organizations,
        client_id=mapped.client_id,
        service_account=mapped.service_account,
        issuer=verified.issuer,
    )


def principal_from_token(token: str, session: Session, validator: TokenValidator) -> Principal:
    """Validate ``token`` and build its principal (401 / 403 / 503 as :mod:`broker.errors`)."""
    return principal_from_verified(validator.validate(token), session)


def bind_service_account(session: Session, client_id: str, organization: str, role: str) -> ServiceAccount:
    """Bind an OIDC client (``client_credentials``) to one organisation and one role."""
    client_id = client_id.strip()
    organization = organization.strip()
    errors: dict[str, list[str]] = {}
    if not client_id:
        errors["client_id"] = ["L'identifiant du client est obligatoire."]
    if not organization:
        errors["organization"] = ["L'organisation est obligatoire."]
    if role not in BROKER_ROLES:
        errors["role"] = [f"Rôle inconnu ; attendu : {', '.join(BROKER_ROLES)}."]
    if errors:
        raise InvalidInput("Le rattachement du compte de service est invalide.", fields=errors)
    if repository.get_service_account(session, client_id) is not None:
        raise Conflict(f"Le compte de service « {client_id} » est déjà rattaché.")
    account = repository.add_service_account(
        session, ServiceAccount(client_id=client_id, organization=organization, role=role)
    )
    logger.info("bound service account %s to %s as %s", client_id, organization, role)
    return account


def unbind_service_account(session: Session, client_id: str) -> None:
    account = repository.get_service_account(session, client_id)
    if account is None:
        raise NotFound(f"Aucun compte de service « {client_id} ».")
    repository.delete_service_account(session, account)
    logger.info("unbound service account %s", client_id)


def service_accounts(session: Session, organization: str | None = None) -> Sequence[ServiceAccount]:
    return repository.list_service_accounts(session, organization)
