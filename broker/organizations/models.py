"""Organisations: the producers, members of OPenIG."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from broker.models_base import created_field, id_field, json_field


class Organization(SQLModel, table=True):
    __tablename__ = "organization"

    id: str = id_field()
    slug: str = Field(index=True, unique=True, max_length=100)
    name: str = Field(max_length=300)
    contact_email: str | None = Field(default=None, max_length=300)
    # Per-target identities of the organisation: data.gouv.fr org id, Géoplateforme datastore…
    remote: dict[str, Any] = json_field(dict)
    created_at: datetime = created_field()
