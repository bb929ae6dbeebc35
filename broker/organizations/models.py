"""Organisations: the producers, members of OPenIG."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel, UniqueConstraint

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


class OrganizationCredential(SQLModel, table=True):
    """An organisation's credentials for one national target, encrypted at rest (never returned)."""

    __tablename__ = "organization_credential"
    __table_args__ = (UniqueConstraint("organization_id", "target"),)

    id: str = id_field()
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=36)
    target: str = Field(max_length=40)
    secret: str = Field(sa_column=Column(Text, nullable=False))
    fields: list[str] = json_field(list)  # names of the fields set, to show without the values
    updated_by: str | None = Field(default=None, max_length=300)
    updated_at: datetime = created_field()
