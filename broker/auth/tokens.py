"""Locally minted access tokens (``broker token issue``, the embedded default, tests).

They are shaped like Keycloak's access tokens (``realm_access.roles``, ``organisation``, ``groups``
``/organisations/<slug>``, ``preferred_username``, ``email``) so that exactly the same validation and
claims mapping accept them; only the key source differs (the local JWKS instead of an issuer's).
"""

from __future__ import annotations

import logging
import secrets
import time

from joserfc import jwt

from broker.auth.claims import ClaimsMapping
from broker.auth.keys import load_signing_key, signing_algorithm
from broker.auth.settings import BROKER_ROLES
from broker.config import Settings, get_settings

logger = logging.getLogger(__name__)

#: The ``client_id`` (RFC 9068 §2.2) of locally minted tokens.
LOCAL_CLIENT_ID = "broker-cli"
_ORG_ROLES = ("producer", "referent")


def issue_local_token(
    subject: str,
    organization: str | None,
    role: str,
    ttl_seconds: int = 86400,
    *,
    email: str | None = None,
    username: str | None = None,
    settings: Settings | None = None,
) -> str:
    """Mint a JWT access token signed with the local key (created on first use).

    ``role`` is a broker role; ``producer`` and ``referent`` need an ``organization`` (slug). The token is
    valid from now (``nbf`` = ``iat``) for ``ttl_seconds``. Never log the returned token.
    """
    settings = settings or get_settings()
    if not subject:
        raise ValueError("le sujet du jeton est obligatoire")
    if role not in BROKER_ROLES:
        raise ValueError(f"rôle inconnu : {role!r} (attendu : {', '.join(BROKER_ROLES)})")
    if role in _ORG_ROLES and not organization:
        raise ValueError(f"le rôle {role} exige une organisation")
    if ttl_seconds <= 0:
        raise ValueError("la durée de validité doit être positive")

    key = load_signing_key(settings)
    now = int(time.time())
    mapping = ClaimsMapping.keycloak_defaults(settings.token_audience)
    claims: dict[str, object] = {
        "iss": settings.effective_token_issuer,
        "aud": settings.token_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + ttl_seconds,
        "jti": secrets.token_urlsafe(16),
        "typ": "Bearer",  # what Keycloak puts in its access tokens
        "client_id": LOCAL_CLIENT_ID,
        "azp": LOCAL_CLIENT_ID,
        "preferred_username": username or subject,
        "realm_access": {"roles": [role]},
        "groups": [f"{mapping.group_prefix}{organization}"] if organization else [],
    }
    if organization:
        claims["organisation"] = organization
    if email:
        claims["email"] = email
    alg = signing_algorithm(key)
    # RFC 9068 §2.1: JWT access tokens are typed "at+jwt".
    header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
    token = jwt.encode(header, claims, key, algorithms=[alg])
    logger.info(
        "issued a local token for %s (role %s, organisation %s, %d s)",
        subject,
        role,
        organization,
        ttl_seconds,
    )
    return token
