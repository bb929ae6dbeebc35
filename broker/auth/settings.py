"""Settings of identity and access: the OIDC issuer (Keycloak), how its claims map to broker roles and
organisations, and the dashboard's login client.

Read from ``BROKER_*`` environment variables (and ``.env``), like :mod:`broker.config`. The local token
settings (issuer, audience of locally minted tokens, key directory) stay in :class:`broker.config.Settings`.
There is deliberately no setting that turns authentication off (DESIGN §6).
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

logger = logging.getLogger(__name__)

#: The broker's own roles (DESIGN §6). Everything else found in a token is ignored.
BROKER_ROLES: tuple[str, ...] = ("producer", "referent", "staff", "board")

#: Asymmetric algorithms only: "none" and HMAC (HS*) can never be allowed, since an HMAC "verified" with a
#: public key is the classic key-confusion forgery (RFC 8725 §2.1 and §3.1).
SAFE_ALGORITHMS: frozenset[str] = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)


class AuthSettings(BaseSettings):
    """OIDC resource-server and dashboard-login settings (env prefix ``BROKER_``)."""

    model_config = SettingsConfigDict(env_prefix="BROKER_", env_file=".env", extra="ignore")

    oidc_issuer: str | None = Field(
        None,
        description="Issuer URL of the OIDC provider, e.g. https://sso.openig.org/realms/openig. "
        "Unset: only tokens minted locally (`broker token issue`) are accepted.",
    )
    oidc_audience: str = Field("broker-api", description="`aud` value every OIDC access token must carry.")
    oidc_client_id: str = Field(
        "broker-api",
        description="Keycloak client whose client roles count (resource_access.<client>.roles).",
    )
    oidc_allowed_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256", "ES256", "PS256"],
        description="JWS algorithms accepted on access tokens (asymmetric only).",
    )
    oidc_clock_skew_seconds: int = Field(
        30, ge=0, le=300, description="Leeway on exp / nbf / iat for clocks that disagree a little."
    )
    oidc_jwks_cache_seconds: int = Field(
        600, ge=1, description="How long a JWKS is kept when the issuer sends no Cache-Control max-age."
    )
    oidc_jwks_min_refresh_seconds: int = Field(
        30,
        ge=0,
        description="At most one JWKS refetch per issuer within this window when a token names an "
        "unknown key (a forged `kid` must not turn the broker into a request amplifier).",
    )
    oidc_http_timeout_seconds: float = Field(5.0, gt=0, description="Timeout of discovery / JWKS requests.")
    oidc_roles_claim: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["realm_access.roles", "resource_access.{client_id}.roles"],
        description="Dotted paths to role lists in the access token; `{client_id}` is replaced by "
        "BROKER_OIDC_CLIENT_ID.",
    )
    oidc_role_map: dict[str, str] = Field(
        default_factory=dict,
        description='Provider role name -> broker role, e.g. {"publisher": "producer"}. Broker role names '
        "(producer, referent, staff, board) always map to themselves.",
    )
    oidc_organization_claim: str = Field(
        "organisation",
        description="Claim holding the organisation slug (a string or a list); the other spelling "
        "(organisation/organization) is accepted too.",
    )
    oidc_group_prefix: str = Field(
        "/organisations/",
        description="Group paths `<prefix><slug>` in the `groups` claim name the user's organisations.",
    )
    oidc_groups_claim: str = Field("groups", description="Claim holding the group paths.")

    # Dashboard login (Streamlit st.login, authorization code flow with the same issuer).
    dashboard_oidc_client_id: str = Field("broker-dashboard", description="The dashboard's OIDC client.")
    dashboard_oidc_client_secret: SecretStr | None = Field(None, description="Its client secret.")
    dashboard_oidc_redirect_uri: str = Field(
        "http://localhost:8501/oauth2callback", description="Streamlit's callback URL (path /oauth2callback)."
    )
    dashboard_cookie_secret: SecretStr | None = Field(
        None, description="Secret signing Streamlit's identity cookie (random, at least 32 characters)."
    )

    @field_validator("oidc_issuer")
    @classmethod
    def _strip_issuer(cls, value: str | None) -> str | None:
        # The issuer is compared as an exact string (RFC 7519 §4.1.1); a trailing slash typed in the env
        # would never match Keycloak's `iss`.
        if value is None or not value.strip():
            return None
        return value.strip().rstrip("/")

    @field_validator("oidc_allowed_algorithms", "oidc_roles_claim", mode="before")
    @classmethod
    def _list_from_env(cls, value: Any) -> Any:
        # Accept `RS256,ES256` as well as a JSON list in the environment.
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @field_validator("oidc_allowed_algorithms")
    @classmethod
    def _only_asymmetric(cls, value: list[str]) -> list[str]:
        unsafe = [alg for alg in value if alg not in SAFE_ALGORITHMS]
        if unsafe:
            raise ValueError(f"algorithmes refusés (asymétriques seulement) : {', '.join(unsafe)}")
        if not value:
            raise ValueError("au moins un algorithme de signature est nécessaire")
        return value

    @field_validator("oidc_role_map")
    @classmethod
    def _known_targets(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted({target for target in value.values() if target not in BROKER_ROLES})
        if unknown:
            raise ValueError(f"rôles inconnus du broker : {', '.join(unknown)} (attendus : {BROKER_ROLES})")
        return value

    @property
    def discovery_url(self) -> str | None:
        """OIDC Discovery 1.0 §4: the configuration lives under the issuer."""
        if not self.oidc_issuer:
            return None
        return f"{self.oidc_issuer}/.well-known/openid-configuration"

    def roles_claim_paths(self) -> list[str]:
        return [path.replace("{client_id}", self.oidc_client_id) for path in self.oidc_roles_claim]


@functools.lru_cache(maxsize=1)
def get_auth_settings() -> AuthSettings:
    return AuthSettings()


def reset_auth_settings() -> None:
    """Forget cached settings (tests, and the CLI after it changed the environment)."""
    get_auth_settings.cache_clear()


def _toml_string(value: str) -> str:
    # A JSON string without ASCII escaping is a valid TOML basic string: both escape `"`, `\` and
    # control characters the same way, and TOML accepts any other Unicode character as is.
    return json.dumps(value, ensure_ascii=False)


def streamlit_auth_secrets(settings: AuthSettings | None = None) -> str:
    """The ``[auth]`` section of the dashboard's ``.streamlit/secrets.toml`` for ``st.login()``.

    Streamlit runs the authorization-code flow (with PKCE when the issuer advertises S256) against the same
    issuer the API trusts, and exposes the access token so the dashboard can call the broker with it.
    """
    settings = settings or get_auth_settings()
    if not settings.discovery_url:
        raise ValueError("BROKER_OIDC_ISSUER doit être défini pour la connexion au tableau de bord.")
    if settings.dashboard_oidc_client_secret is None or settings.dashboard_cookie_secret is None:
        raise ValueError(
            "BROKER_DASHBOARD_OIDC_CLIENT_SECRET et BROKER_DASHBOARD_COOKIE_SECRET doivent être définis."
        )
    lines = [
        "[auth]",
        f"redirect_uri = {_toml_string(settings.dashboard_oidc_redirect_uri)}",
        f"cookie_secret = {_toml_string(settings.dashboard_cookie_secret.get_secret_value())}",
        f"client_id = {_toml_string(settings.dashboard_oidc_client_id)}",
        f"client_secret = {_toml_string(settings.dashboard_oidc_client_secret.get_secret_value())}",
        f"server_metadata_url = {_toml_string(settings.discovery_url)}",
        # The dashboard reads the broker over HTTP with the user's own access token (st.user.tokens).
        'expose_tokens = ["access"]',
        "",
        "[auth.client_kwargs]",
        'scope = "openid profile email"',
        "",
    ]
    return "\n".join(lines)
