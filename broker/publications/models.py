"""Publications, their revisions, resources and the decision taken for each revision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel, UniqueConstraint

from broker.models_base import created_field, id_field, json_field


class Publication(SQLModel, table=True):
    __tablename__ = "publication"

    id: str = id_field()
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=36)
    title: str = Field(max_length=350)
    access: str = Field(default="open", max_length=20)
    revision: int = Field(default=1, description="Number of the current revision.")
    category: str = Field(default="A", max_length=1, index=True)
    state: str = Field(default="active", max_length=20, index=True)  # active | withdrawn
    created_by: str | None = Field(default=None, max_length=300)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class Revision(SQLModel, table=True):
    __tablename__ = "revision"
    __table_args__ = (UniqueConstraint("publication_id", "number"),)

    id: str = id_field()
    publication_id: str = Field(foreign_key="publication.id", index=True, max_length=36)
    number: int
    manifest: dict[str, Any] = json_field(dict)
    channel: str = Field(default="api", max_length=20)  # api | cli | sftp | harvest | dashboard
    created_by: str | None = Field(default=None, max_length=300)
    created_at: datetime = created_field()


class Resource(SQLModel, table=True):
    __tablename__ = "resource"

    id: str = id_field()
    revision_id: str = Field(foreign_key="revision.id", index=True, max_length=36)
    position: int = 0
    name: str = Field(max_length=255)
    title: str | None = Field(default=None, max_length=350)
    url: str | None = Field(default=None, max_length=2000)
    sync: str | None = Field(default=None, max_length=20)
    sha256: str | None = Field(default=None, max_length=64, index=True)
    size: int | None = Field(default=None, sa_type=BigInteger)  # files past 2 GiB
    media_type: str | None = Field(default=None, max_length=200)
    format: str | None = Field(default=None, max_length=40)
    kind: str | None = Field(default=None, max_length=40)
    crs: str | None = Field(default=None, max_length=60)
    extent_wgs84: list[float] | None = json_field()
    inspection: dict[str, Any] = json_field(dict)


class Decision(SQLModel, table=True):
    __tablename__ = "decision"

    id: str = id_field()
    revision_id: str = Field(foreign_key="revision.id", unique=True, max_length=36)
    category: str = Field(max_length=1)
    rules_digest: str = Field(max_length=64)
    needs: list[dict[str, Any]] = json_field(list)
    created_at: datetime = created_field()


class DecisionNeed(SQLModel, table=True):
    """One row per need of a decision, so statistics group by need in the database."""

    __tablename__ = "decision_need"

    id: int | None = Field(default=None, primary_key=True)
    decision_id: str = Field(foreign_key="decision.id", index=True, max_length=36)
    publication_id: str = Field(foreign_key="publication.id", index=True, max_length=36)
    need: str = Field(max_length=80, index=True)
    category: str = Field(max_length=1)
    platforms: list[str] = json_field(list)
    rule: str = Field(max_length=120)
