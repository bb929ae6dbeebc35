"""Remote resources kept in sync: one row per URL resource of a publication's current revision."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel, UniqueConstraint

from broker.models_base import created_field, id_field


class RemoteSync(SQLModel, table=True):
    __tablename__ = "remote_sync"
    __table_args__ = (UniqueConstraint("publication_id", "position"),)

    id: str = id_field()
    publication_id: str = Field(foreign_key="publication.id", index=True, max_length=36)
    position: int = Field(description="Index of the resource in the manifest (remote_key(position)).")
    resource_name: str = Field(max_length=255)
    url: str = Field(max_length=2000)
    sync: str = Field(max_length=20)  # daily | weekly | monthly
    etag: str | None = Field(default=None, max_length=300)
    last_modified: str | None = Field(default=None, max_length=100)
    sha256: str | None = Field(default=None, max_length=64)
    last_checked_at: datetime | None = None
    last_changed_at: datetime | None = None
    next_due_at: datetime = Field(index=True)
    last_error: str | None = Field(default=None, max_length=2000)
    failures: int = 0
    created_at: datetime = created_field()
