"""Tables of the regional store: one record per publication and the files it serves."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column
from sqlmodel import Field, SQLModel, UniqueConstraint


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    # Aware UTC: sqlmodel maps ``datetime`` to UTCDateTime, which refuses naive values.
    return datetime.now(UTC)


class RegionalRecord(SQLModel, table=True):
    """What the regional store holds for one publication (the broker's publication id is the key)."""

    __tablename__ = "regional_record"

    publication_id: str = Field(primary_key=True, max_length=36)
    organization: str = Field(max_length=100, index=True, description="Slug of the producing organisation.")
    title: str = Field(max_length=350)
    revision: int = Field(description="The revision of the publication this record holds.")
    access: str = Field(default="open", max_length=20)  # open | restricted
    restricted_users: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    restricted_organizations: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # ``metadata`` is taken by SQLModel's class attribute, hence the Python name ``meta``.
    meta: dict[str, Any] = Field(default_factory=dict, sa_column=Column("metadata", JSON, nullable=False))
    state: str = Field(default="present", max_length=20, index=True)  # present | withdrawn
    created_at: datetime = Field(default_factory=utcnow, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, nullable=False)


class RegionalFile(SQLModel, table=True):
    """One resource of a record: a stored blob (``sha256``) or a link to the producer's ``url``."""

    __tablename__ = "regional_file"
    __table_args__ = (UniqueConstraint("publication_id", "name"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    publication_id: str = Field(foreign_key="regional_record.publication_id", index=True, max_length=36)
    position: int = 0
    name: str = Field(max_length=255)
    title: str | None = Field(default=None, max_length=350)
    url: str | None = Field(default=None, max_length=2000)
    sha256: str | None = Field(default=None, max_length=64, index=True)
    size: int | None = Field(default=None, sa_type=BigInteger)  # files past 2 GiB
    media_type: str | None = Field(default=None, max_length=200)
    format: str | None = Field(default=None, max_length=40)
