"""Auth endpoints: the local issuer's JWKS and discovery document, and ``/me``.

Paths are absolute (no prefix to add when mounting): ``app.include_router(broker.auth.router.router)``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Response

from broker.auth.dependencies import CurrentPrincipal
from broker.auth.keys import local_jwks
from broker.auth.schemas import PrincipalOut
from broker.config import get_settings

logger = logging.getLogger(__name__)

router = APIRouter(tags=["auth"])

JWKS_PATH = "/api/v1/auth/jwks.json"
#: Verifiers may cache the local JWKS this long; the key only changes when an operator replaces it.
JWKS_MAX_AGE_SECONDS = 300


@router.get(JWKS_PATH, summary="Clés publiques des jetons locaux (JWKS)")
def jwks(response: Response) -> dict[str, Any]:
    """The local issuer's public keys (RFC 7517 §5)."""
    response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE_SECONDS}"
    return local_jwks()


def local_discovery_document() -> dict[str, Any]:
    """A minimal OpenID Provider metadata document for the local issuer (OIDC Discovery 1.0 §3, RFC 8414).

    The local issuer has no login or token endpoint: tokens come from ``broker token issue``. Other
    resource servers (or a gateway) can still verify them with the ``jwks_uri`` named here.
    """
    settings = get_settings()
    public_url = settings.public_url.rstrip("/")
    return {
        "issuer": settings.effective_token_issuer,
        "jwks_uri": f"{public_url}{JWKS_PATH}",
        "response_types_supported": [],
        "grant_types_supported": [],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256", "RS256"],
        "token_endpoint_auth_methods_supported": [],
    }


@router.get("/api/v1/auth/.well-known/openid-configuration", summary="Découverte de l'émetteur local")
def discovery() -> dict[str, Any]:
    return local_discovery_document()


# Discovery documents live under their issuer (OIDC Discovery 1.0 §4): answer there too for deployments
# that set BROKER_TOKEN_ISSUER to `<public_url>/local`.
@router.get("/local/.well-known/openid-configuration", include_in_schema=False)
def discovery_under_issuer() -> dict[str, Any]:
    return local_discovery_document()


@router.get("/api/v1/auth/me", summary="L'appelant tel que le broker le voit", response_model=PrincipalOut)
def me(principal: CurrentPrincipal) -> PrincipalOut:
    return PrincipalOut.from_principal(principal)
