"""Configuration of the Géoplateforme connector (one per organisation's datastore)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from connectors.base import ConnectorConfig

PRODUCTION_API = "https://data.geopf.fr/api"
PRODUCTION_TOKEN_URL = "https://sso.geopf.fr/realms/geoplateforme/protocol/openid-connect/token"
PRODUCTION_CSW = "https://data.geopf.fr/csw"
CATALOGUE_PAGE = "https://cartes.gouv.fr/catalogue"


class GeoplateformeConfig(ConnectorConfig):
    """Where the Entrepôt API and its SSO are, who we are, and how long we wait (geoplateforme-api.md §1)."""

    api_url: str = Field(PRODUCTION_API, description="Root of the Entrepôt API, ending in /api.")
    token_url: str = Field(
        PRODUCTION_TOKEN_URL, description="Keycloak token endpoint of the Géoplateforme SSO."
    )
    client_id: str = Field(
        description="Keycloak client: a service account, or gpf-warehouse for the password grant."
    )
    client_secret: SecretStr | None = Field(
        None, description="Secret of the client (client_credentials grant)."
    )
    username: str | None = Field(None, description="Account for the password grant (used when set).")
    password: SecretStr | None = None
    totp_secret: SecretStr | None = Field(
        None, description="Base32 TOTP secret of an account with 2FA: the RFC 6238 code is sent as `totp`."
    )
    datastore_id: str | None = Field(
        None,
        description="Datastore to publish into; discovered from /users/me when the account has only one.",
    )
    emulator: bool = Field(False, description="True when api_url is the local emulator (shown by /targets).")
    poll_interval: float = Field(2.0, gt=0, description="First wait between two status polls, in seconds.")
    max_poll_interval: float = Field(30.0, gt=0, description="Polls back off up to this interval.")
    deadline_seconds: float = Field(
        3600.0,
        gt=0,
        description="Overall time one delivery may wait; past it the broker retries later and resumes.",
    )
    timeout: float = Field(60.0, gt=0, description="HTTP timeout of one request, in seconds.")
    request_retries: int = Field(
        2, ge=0, description="Quick retries of a failed GET before giving up for now."
    )
    csw_url: str = Field(PRODUCTION_CSW, description="CSW catalogue where published records are served.")
    catalogue_url: str = Field(
        CATALOGUE_PAGE, description="cartes.gouv.fr catalogue: {catalogue}/dataset/{id}."
    )
    layer_prefix: str | None = Field(
        None, description="Prefix of layer names; the organisation's slug by default."
    )
    max_upload_bytes: int = Field(
        2 * 1024**3, gt=0, description="Largest upload accepted (cartes.gouv.fr's 2 GB cap, §4)."
    )
    raster_tms: str = Field("PM", description="Tile matrix set of raster pyramids (§4: PM is offered).")

    @model_validator(mode="after")
    def _credentials(self) -> GeoplateformeConfig:
        if self.username:
            if self.password is None:
                raise ValueError("password is required with username (password grant)")
        elif self.client_secret is None:
            raise ValueError("client_secret is required for the client_credentials grant (or set username)")
        return self
