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
