"""Resumable uploads in progress or complete, owned by the caller that created them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column
from sqlmodel import Field, SQLModel

from broker.models_base import created_field, id_field, json_field


class Upload(SQLModel, table=True):
    """One tus upload. Its bytes live in ``<data_dir>/uploads/<id>.part`` until it expires."""

    __tablename__ = "upload"

    id: str = id_field()
    owner_subject: str = Field(index=True, max_length=300)
    owner_issuer: str = Field(max_length=300)
    filename: str | None = Field(default=None, max_length=255)
    # Every Upload-Metadata pair, decoded (tus 1.0 §Upload-Metadata); "filename" is the one the broker uses.
    meta: dict[str, Any] = json_field(dict)
    # BigInteger: uploads go beyond the 2 GiB of a 32-bit integer on PostgreSQL.
    length: int = Field(sa_column=Column(BigInteger, nullable=False))
    offset: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    sha256: str | None = Field(default=None, max_length=64)
    state: str = Field(default="receiving", max_length=20, index=True)  # receiving | complete
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    expires_at: datetime = Field(index=True)
