"""SFTP public keys registered by referents, and the drops the SFTP server processed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel, UniqueConstraint

from broker.models_base import created_field, id_field, json_field


class SftpKey(SQLModel, table=True):
    """A public key allowed to log in as the organisation (SFTP user name = organisation slug)."""

    __tablename__ = "sftp_key"
    __table_args__ = (UniqueConstraint("organization_id", "fingerprint"),)

    id: str = id_field()
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=36)
    label: str = Field(max_length=200)
    algorithm: str = Field(max_length=60)
    public_key: str = Field(max_length=16000)  # OpenSSH one-line form, comment dropped
    fingerprint: str = Field(index=True, max_length=100)  # SHA256:base64, as ssh-keygen -l shows it
    created_by: str | None = Field(default=None, max_length=300)
    created_at: datetime = created_field()
    last_used_at: datetime | None = None


class SftpDrop(SQLModel, table=True):
    """One manifest processed from an inbox, with its outcome and the report written back."""

    __tablename__ = "sftp_drop"

    id: str = id_field()
    organization_id: str = Field(foreign_key="organization.id", index=True, max_length=36)
    manifest: str = Field(max_length=255)
    status: str = Field(max_length=20)  # accepted | rejected
    publication_id: str | None = Field(default=None, max_length=36)
    revision: int | None = None
    folder: str | None = Field(default=None, max_length=300)  # where the inputs went, inside the inbox
    key_fingerprint: str | None = Field(default=None, max_length=100)
    key_label: str | None = Field(default=None, max_length=200)
    report: dict[str, Any] = json_field(dict)
    created_at: datetime = created_field()
