"""The gap register: one row per category-B need on one national platform, its history, and the last
``categories.yaml`` matrix the broker has seen (to tell what changed in the file between two starts)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Column, Text
from sqlmodel import Field, SQLModel, UniqueConstraint

from broker.models_base import created_field, id_field, json_field


class Gap(SQLModel, table=True):
    __tablename__ = "gap"
    __table_args__ = (UniqueConstraint("need", "platform"),)

    id: str = id_field()
    need: str = Field(max_length=80, index=True)
    platform: str = Field(max_length=40)
    status: str = Field(default="open", max_length=20, index=True)  # open | delivered | dropped
    target_date: date | None = None
    interim: str = Field(default="hold", max_length=20)  # regional | hold | degrade
    mirror: bool = False
    upstream: str | None = Field(default=None, max_length=300)
    probe: dict[str, Any] | None = json_field()
    looks_delivered: bool | None = None  # None: no probe, or never run
    probe_checked_at: datetime | None = None
    probe_detail: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    source: str = Field(default="categories.yaml", max_length=40)  # categories.yaml | staff
    created_at: datetime = created_field()
    updated_at: datetime = created_field()


class GapHistory(SQLModel, table=True):
    """Every change of a gap: who, when, what (``change``), from what to what, and why."""

    __tablename__ = "gap_history"

    id: int | None = Field(default=None, primary_key=True)
    gap_id: str = Field(foreign_key="gap.id", index=True, max_length=36)
    at: datetime = created_field()
    by: str = Field(max_length=300)
    change: str = Field(max_length=20)  # created | target_date | status | upstream | interim | probe | mirror
    from_value: Any = json_field()
    to_value: Any = json_field()
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class CategoriesState(SQLModel, table=True):
    """The matrix of ``categories.yaml`` as last seen at start-up (a single row, id 1)."""

    __tablename__ = "categories_state"

    id: int = Field(default=1, primary_key=True)
    digest: str = Field(max_length=64)
    matrix: dict[str, Any] = json_field(dict)
    seen_at: datetime = created_field()
