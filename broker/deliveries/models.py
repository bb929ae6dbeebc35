"""Deliveries (bring revision R to target T) and the ledger of remote identities."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlmodel import Field, SQLModel, UniqueConstraint

from broker.models_base import created_field, id_field, json_field


class DeliveryState(StrEnum):
    pending = "pending"
    running = "running"
    retrying = "retrying"
    waiting = "waiting"
    done = "done"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL_STATES = frozenset({DeliveryState.done, DeliveryState.failed, DeliveryState.cancelled})
ACTIVE_STATES = frozenset(
    {DeliveryState.pending, DeliveryState.running, DeliveryState.retrying, DeliveryState.waiting}
)


class DeliveryAction(StrEnum):
    publish = "publish"
    update = "update"
    withdraw = "withdraw"


class Delivery(SQLModel, table=True):
    __tablename__ = "delivery"

    id: str = id_field()
    publication_id: str = Field(foreign_key="publication.id", index=True, max_length=36)
    revision_id: str = Field(foreign_key="revision.id", index=True, max_length=36)
    revision_number: int
    target: str = Field(max_length=40, index=True)
    action: str = Field(max_length=20)
    state: str = Field(default=DeliveryState.pending, max_length=20, index=True)
    attempts: int = 0
    next_attempt_at: datetime | None = None
    enqueued_at: datetime | None = None
    lease_until: datetime | None = None
    waiting_reason: str | None = Field(default=None, max_length=40)
    last_error: str | None = None
    error_fields: dict[str, Any] = json_field(dict)
    remote: dict[str, Any] = json_field(dict)
    urls: list[str] = json_field(list)
    needs: list[str] = json_field(list)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    started_at: datetime | None = None
    finished_at: datetime | None = None


class LedgerRecord(SQLModel, table=True):
    """A publication's identity on one target, kept across revisions."""

    __tablename__ = "ledger"
    __table_args__ = (UniqueConstraint("publication_id", "target"),)

    id: str = id_field()
    publication_id: str = Field(foreign_key="publication.id", index=True, max_length=36)
    target: str = Field(max_length=40)
    state: str = Field(default="absent", max_length=20)
    revision: int | None = None
    step: str | None = Field(default=None, max_length=2000)  # connectors' step names may carry URLs
    remote: dict[str, Any] = json_field(dict)
    urls: list[str] = json_field(list)
    updated_at: datetime = created_field()
