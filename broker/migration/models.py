"""Migration jobs: moving the publications that waited on a gap (or on a category change) to the national
platform, one item per publication, each advanced one step at a time from what the database says."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel, UniqueConstraint

from broker.models_base import created_field, id_field


class JobState(StrEnum):
    running = "running"
    done = "done"


class ItemState(StrEnum):
    planned = "planned"  # listed; nothing done yet
    reclassified = "reclassified"  # new revision derived with the rules in force; national delivery planned
    national_done = "national_done"  # the national delivery is done and the ledger says present
    retired = "retired"  # the interim regional copy is withdrawn (or no longer serves this need)
    mirrored = "mirrored"  # the regional copy stays, as a mirror
    failed = "failed"  # the national delivery failed: the regional copy keeps serving
    skipped = "skipped"  # nothing to move any more (publication withdrawn meanwhile)


TERMINAL_ITEM_STATES = frozenset({ItemState.retired, ItemState.mirrored, ItemState.failed, ItemState.skipped})
ACTIVE_ITEM_STATES = frozenset({ItemState.planned, ItemState.reclassified, ItemState.national_done})


class MigrationJob(SQLModel, table=True):
    __tablename__ = "migration_job"

    id: str = id_field()
    gap_id: str | None = Field(default=None, foreign_key="gap.id", index=True, max_length=36)
    need: str = Field(max_length=80)
    platform: str = Field(max_length=40)
    trigger: str = Field(max_length=40)  # gap.delivered | categories.yaml | staff
    mirror: bool = False  # keep the regional copy as a mirror once the national copy is verified
    state: str = Field(default=JobState.running, max_length=20, index=True)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_by: str = Field(default="broker", max_length=300)
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
    finished_at: datetime | None = None


class MigrationItem(SQLModel, table=True):
    __tablename__ = "migration_item"
    __table_args__ = (UniqueConstraint("job_id", "publication_id"),)

    id: str = id_field()
    job_id: str = Field(foreign_key="migration_job.id", index=True, max_length=36)
    publication_id: str = Field(foreign_key="publication.id", index=True, max_length=36)
    state: str = Field(default=ItemState.planned, max_length=20, index=True)
    version: int = 0  # optimistic lock: every step moves it, so two workers never do one step twice
    revision: int | None = None  # the revision derived by the migration
    national_delivery_id: str | None = Field(default=None, max_length=36)
    withdraw_delivery_id: str | None = Field(default=None, max_length=36)
    waiting: bool = False  # the national delivery waits (target not configured, or held)
    detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    checked_at: datetime | None = None
    created_at: datetime = created_field()
    updated_at: datetime = created_field()
