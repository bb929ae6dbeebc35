"""What every router uses: the authenticated caller, and the access rules of DESIGN §6.

- ``producer`` publishes, revises and withdraws for its own organisation(s) only;
- ``referent`` also manages its organisation (publications, access lists, SFTP keys);
- ``staff`` (OPenIG) does everything;
- ``board`` reads dashboards and statistics only.

Routes take a :data:`CurrentPrincipal` (or :data:`OptionalPrincipal`) and call one rule helper, or name a
rule from :data:`RULES`, before acting::

    @router.post("/api/v1/publications")
    def publish(principal: CurrentPrincipal, ...):
        require_organization_write(principal, manifest.organization)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session

from broker.auth.principal import Principal
from broker.auth.service import principal_from_token
from broker.auth.validation import TokenValidator, get_token_validator
from broker.db import SessionDep
from broker.errors import Forbidden, Unauthorized

logger = logging.getLogger(__name__)

# Declares the scheme in OpenAPI (the "Authorize" button); the header itself is parsed below so that each
# failure gets the RFC 6750 answer it deserves.
bearer_scheme = HTTPBearer(auto_error=False, bearerFormat="JWT", scheme_name="bearer")

ROLE_LABELS: Mapping[str, str] = MappingProxyType(
    {"producer": "producteur", "referent": "référent", "staff": "équipe OPenIG", "board": "bureau"}
)

ValidatorDep = Annotated[TokenValidator, Depends(get_token_validator)]
_BearerDoc = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None when there is no Authorization header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    # RFC 7235 §2.1: the scheme is case-insensitive. RFC 6750 §2.1: one b64token after one space.
    if scheme.lower() != "bearer":
        raise Unauthorized(
            "Seuls les jetons d'accès « Bearer » sont acceptés (en-tête Authorization).",
            error="invalid_request",
        )
    token = token.strip()
    if not token or " " in token:
        raise Unauthorized(
            "L'en-tête Authorization ne contient pas de jeton d'accès.", error="invalid_request"
        )
    return token


def _principal(request: Request, token: str, session: Session, validator: TokenValidator) -> Principal:
    principal = principal_from_token(token, session, validator)
    # For the access log and the audit trail of whatever the route does next.
    request.state.principal = principal
    return principal


def authenticate(
    request: Request, session: SessionDep, validator: ValidatorDep, _doc: _BearerDoc
) -> Principal:
    """FastAPI dependency: the caller, or 401 when there is no (valid) bearer token.

    A plain ``def``: FastAPI runs it in its thread pool, where a JWKS download may block a moment.
    """
    token = bearer_token(request)
    if token is None:
        # RFC 6750 §3.1: no credentials at all gets a bare challenge, without an error code.
        raise Unauthorized(
            "Authentification requise : envoyez un jeton d'accès (Authorization: Bearer).", error=""
        )
    return _principal(request, token, session, validator)


def optional_principal(
    request: Request, session: SessionDep, validator: ValidatorDep, _doc: _BearerDoc
) -> Principal | None:
    """FastAPI dependency: None for an anonymous call, the caller otherwise; a bad token is still a 401
    (a client that sends a broken token must learn it, not silently be treated as anonymous)."""
    token = bearer_token(request)
    if token is None:
        return None
    return _principal(request, token, session, validator)


CurrentPrincipal = Annotated[Principal, Depends(authenticate)]
OptionalPrincipal = Annotated[Principal | None, Depends(optional_principal)]


# -- rules -------------------------------------------------------------------------------------------


def _labels(roles: frozenset[str]) -> str:
    return ", ".join(ROLE_LABELS[r] for r in ROLE_LABELS if r in roles)


@dataclass(frozen=True)
class Rule:
    """One access rule: who may, and whether it is limited to the caller's own organisation.

    ``staff`` is never limited to an organisation.
    """

    name: str
    roles: frozenset[str]
    own_organization: bool
    description: str

    def allows(self, principal: Principal, organization: str | None = None) -> bool:
        if not principal.has_role(*self.roles):
            return False
        if not self.own_organization or principal.is_staff:
            return True
        return organization is not None and principal.belongs_to(organization)

    def check(self, principal: Principal, organization: str | None = None) -> None:
        """Raise :class:`Forbidden` (403) with a French message unless the rule allows the principal."""
        if self.allows(principal, organization):
            return
        logger.info(
            "access denied by rule %s to %s (roles %s, organisations %s) on %s",
            self.name,
            principal.subject,
            sorted(principal.roles),
            principal.organizations,
            organization,
        )
        if not principal.has_role(*self.roles):
            if not principal.roles:
                raise Forbidden(
                    "Votre compte n'a aucun rôle dans le broker "
                    "(producteur, référent, équipe OPenIG ou bureau)."
                )
            raise Forbidden(f"Cette action demande l'un des rôles suivants : {_labels(self.roles)}.")
        raise Forbidden(
            f"Cette action est réservée aux membres de l'organisation « {organization} »."
            if organization
            else "Cette action doit désigner une organisation."
        )


RULES: Mapping[str, Rule] = MappingProxyType(
    {
        "read": Rule(
            "read",
            frozenset({"producer", "referent", "staff", "board"}),
            own_organization=False,
            description="Consulter : publications, décisions, lacunes, statistiques, tableaux de bord.",
        ),
        "write_organization": Rule(
            "write_organization",
            frozenset({"producer", "referent", "staff"}),
            own_organization=True,
            description="Publier, réviser ou retirer une publication de son organisation.",
        ),
        "manage_organization": Rule(
            "manage_organization",
            frozenset({"referent", "staff"}),
            own_organization=True,
            description="Gérer son organisation : publications, listes d'accès, clés SFTP.",
        ),
        "staff": Rule(
            "staff",
            frozenset({"staff"}),
            own_organization=False,
            description="Tout le reste : catégories, lacunes, comptes de service, autres organisations.",
        ),
    }
)


def check_rule(name: str, principal: Principal, organization: str | None = None) -> None:
    """Apply the rule called ``name`` (a KeyError for an unknown name is a programming error)."""
    RULES[name].check(principal, organization)


def require_role(principal: Principal, *roles: str) -> None:
    if not principal.has_role(*roles):
        raise Forbidden(f"Cette action demande l'un des rôles suivants : {_labels(frozenset(roles))}.")


def require_read(principal: Principal) -> None:
    RULES["read"].check(principal)


def require_organization_write(principal: Principal, org_slug: str) -> None:
    RULES["write_organization"].check(principal, org_slug)


def require_organization_manage(principal: Principal, org_slug: str) -> None:
    RULES["manage_organization"].check(principal, org_slug)


def require_staff(principal: Principal) -> None:
    RULES["staff"].check(principal)


def requires(rule_name: str) -> Callable[[Principal], Principal]:
    """A dependency for rules that need no organisation.

    ``Annotated[Principal, Depends(requires("staff"))]`` authenticates, then applies the rule.
    """
    rule = RULES[rule_name]
    if rule.own_organization:
        raise ValueError(f"la règle {rule_name} dépend d'une organisation : appelez-la dans la route")

    def dependency(principal: CurrentPrincipal) -> Principal:
        rule.check(principal)
        return principal

    dependency.__name__ = f"requires_{rule_name}"
    return dependency


StaffPrincipal = Annotated[Principal, Depends(requires("staff"))]
ReaderPrincipal = Annotated[Principal, Depends(requires("read"))]
