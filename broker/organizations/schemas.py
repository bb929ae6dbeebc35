"""API shapes of organisations."""

from __future__ import annotations

from pydantic import BaseModel, Field

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,98}[a-z0-9]$"


class OrganizationCreate(BaseModel):
    slug: str = Field(pattern=SLUG_PATTERN, description="Identifiant court, en minuscules et tirets.")
    name: str = Field(min_length=2, max_length=300)
    contact_email: str | None = Field(default=None, max_length=300)


class OrganizationPublic(BaseModel):
    id: str
    slug: str
    name: str
    contact_email: str | None = None


class DatagouvCredentials(BaseModel):
    """data.gouv.fr: an API key of a member of the organisation, and its organisation id there."""

    api_key: str = Field(min_length=8, max_length=500, description="Clé d'API data.gouv.fr (udata_…).")
    organization_id: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{24}$", description="Identifiant de l'organisation sur data.gouv.fr."
    )


class GeoplateformeCredentials(BaseModel):
    """Géoplateforme: a service account (client credentials) or an account (password grant, optional TOTP)."""

    client_id: str = Field(min_length=1, max_length=255)
    client_secret: str | None = Field(default=None, max_length=500)
    username: str | None = Field(default=None, max_length=255)
    password: str | None = Field(default=None, max_length=500)
    totp_secret: str | None = Field(default=None, max_length=200)
    datastore_id: str | None = Field(default=None, max_length=100)


class CredentialStatus(BaseModel):
    target: str
    fields: list[str]
    updated_by: str | None = None
    updated_at: str | None = None
