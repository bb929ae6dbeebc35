"""The audit log: who did what, when, on which publication and target."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from broker.models_base import created_field, json_field


class Event(SQLModel, table=True):
    __tablename__ = "event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = created_field()
    action: str = Field(max_length=80, index=True)
    actor_subject: str | None = Field(default=None, max_length=300)
    actor_organization: str | None = Field(default=None, max_length=100)
    actor_client: str | None = Field(default=None, max_length=200)
    organization_id: str | None = Field(default=None, max_length=36, index=True)
    publication_id: str | None = Field(default=None, max_length=36, index=True)
    delivery_id: str | None = Field(default=None, max_length=36)
    target: str | None = Field(default=None, max_length=40)
    detail: dict[str, Any] = json_field(dict)
