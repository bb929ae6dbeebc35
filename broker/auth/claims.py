"""From validated token claims to broker roles and organisations.

The defaults follow what Keycloak puts in an access token:

- realm roles in ``realm_access.roles`` and client roles in ``resource_access.<client>.roles`` (the
  "roles" client scope's mappers);
- group membership in ``groups`` as full paths such as ``/organisations/toulouse-metropole`` (the
  "Group Membership" mapper with "Full group path" on);
- a user attribute mapped to a claim, here ``organisation`` (``organization`` is accepted too);
- ``preferred_username`` and ``email`` for display; a service account's username is
  ``service-account-<client id>`` (Keycloak lowercases it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.auth.settings import BROKER_ROLES, AuthSettings

logger = logging.getLogger(__name__)

SERVICE_ACCOUNT_PREFIX = "service-account-"
_ORGANIZATION_SPELLINGS = ("organisation", "organization")


def _identity_roles() -> dict[str, str]:
    return {role: role for role in BROKER_ROLES}


@dataclass(frozen=True)
class ClaimsMapping:
    """Where roles and organisations are read from, and how role names translate."""

    role_paths: tuple[str, ...] = ("realm_access.roles", "resource_access.broker-api.roles")
    role_map: Mapping[str, str] = field(default_factory=_identity_roles)
    organization_claims: tuple[str, ...] = _ORGANIZATION_SPELLINGS
    groups_claim: str = "groups"
    group_prefix: str = "/organisations/"

    @classmethod
    def keycloak_defaults(cls, client_id: str = "broker-api") -> ClaimsMapping:
        """The shape of locally minted tokens, whatever the OIDC settings say."""
        return cls(role_paths=("realm_access.roles", f"resource_access.{client_id}.roles"))

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> ClaimsMapping:
        role_map = _identity_roles()
        role_map.update(settings.oidc_role_map)
        configured = settings.oidc_organization_claim
        # Accept both spellings when the configured claim is one of them (British in OPenIG's realm,
        # American in the broker's API); a custom claim name is used alone.
        if configured in _ORGANIZATION_SPELLINGS:
            organization_claims = (configured, *(c for c in _ORGANIZATION_SPELLINGS if c != configured))
        else:
            organization_claims = (configured,)
        return cls(
            role_paths=tuple(settings.roles_claim_paths()),
            role_map=role_map,
            organization_claims=organization_claims,
            groups_claim=settings.oidc_groups_claim,
            group_prefix=settings.oidc_group_prefix,
        )


@dataclass(frozen=True)
class MappedClaims:
    """What the claims say about the caller, before any service-account binding is applied."""

    subject: str
    username: str | None
    email: str | None
    roles: frozenset[str]
    organizations: tuple[str, ...]
    client_id: str | None
    service_account: bool


def claim_at(claims: Mapping[str, Any], path: str) -> Any:
    """The value at a dotted path (``resource_access.broker-api.roles``), or None."""
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value] if value.strip() else []
    if isinstance(value, list | tuple):
        return [item for item in value if isinstance(item, str) and item.strip()]
    return []


def _dedupe(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def map_roles(claims: Mapping[str, Any], mapping: ClaimsMapping) -> frozenset[str]:
    found: set[str] = set()
    for path in mapping.role_paths:
        for name in _strings(claim_at(claims, path)):
            role = mapping.role_map.get(name)
            if role is not None:
                found.add(role)
    return frozenset(found)


def map_organizations(claims: Mapping[str, Any], mapping: ClaimsMapping) -> tuple[str, ...]:
    slugs: list[str] = []
    for name in mapping.organization_claims:
        slugs.extend(slug.strip() for slug in _strings(claims.get(name)))
    prefixes = [mapping.group_prefix]
    if mapping.group_prefix.startswith("/"):
        # Keycloak's group mapper without "Full group path" drops the leading slash.
        prefixes.append(mapping.group_prefix[1:])
    for group in _strings(claims.get(mapping.groups_claim)):
        for prefix in prefixes:
            if prefix and group.startswith(prefix):
                # A subgroup (/organisations/<slug>/editeurs) still names the organisation.
                slug = group[len(prefix) :].split("/", 1)[0].strip()
                if slug:
                    slugs.append(slug)
                break
    return _dedupe(slugs)


def client_of(claims: Mapping[str, Any]) -> str | None:
    """The OAuth client the token was issued to: RFC 9068 ``client_id``, else OIDC ``azp``, else the
    ``clientId`` claim of older Keycloak service-account tokens."""
    for name in ("client_id", "azp", "clientId"):
        value = claims.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def is_service_account(claims: Mapping[str, Any], client_id: str | None) -> bool:
    """A token obtained with ``client_credentials``: no resource owner is involved.

    Keycloak names the client's service-account user ``service-account-<client id>`` (lowercased); RFC 9068
    §2.2 says such a token's ``sub`` identifies the client, which is what oidc-provider does. Only a name
    that matches the token's own client counts, so a person cannot become a service account by username.
    """
    if not client_id:
        return False
    username = claims.get("preferred_username")
    if isinstance(username, str) and username.lower() == f"{SERVICE_ACCOUNT_PREFIX}{client_id}".lower():
        return True
    return claims.get("sub") == client_id


def map_claims(claims: Mapping[str, Any], mapping: ClaimsMapping) -> MappedClaims:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise ValueError("token without a subject")
    username = claims.get("preferred_username")
    email = claims.get("email")
    if claims.get("email_verified") is False:
        # An address the issuer has not verified must not unlock data listed by email (restricted access).
        email = None
    client_id = client_of(claims)
    return MappedClaims(
        subject=subject,
        username=username if isinstance(username, str) and username else None,
        email=email if isinstance(email, str) and email else None,
        roles=map_roles(claims, mapping),
        organizations=map_organizations(claims, mapping),
        client_id=client_id,
        service_account=is_service_account(claims, client_id),
    )
