"""Tables of the migration metrics.

- ``publication_summary``: one row per publication, what the metrics read of it (current category and
  needs, where it is present, its current resources and bytes, its current deliveries that ended). Kept up to
  date by the metrics themselves: before answering they refresh the rows of the publications whose
  publication, ledger or delivery rows changed since the last refresh (``broker.stats.service``). Without
  it, 100,000 publications mean a GROUP BY over a million ``decision_need`` rows joined to their current
  revision, seconds on SQLite (bench/stats.py).
- ``need_set_member``: the needs of each distinct set of needs (publications share a few hundred sets at
  most), so that counting per need groups the summary by set, then spreads each set on its needs.
- ``migration_snapshot``: the metrics of each day, so the dashboard draws progress over time.

Flags are integers (0/1), not booleans: they are summed, and PostgreSQL does not sum booleans.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Index
from sqlmodel import Field, SQLModel, UniqueConstraint

from broker.deliveries.models import Delivery, LedgerRecord
from broker.models_base import created_field
from broker.publications.models import Publication


def _big() -> object:
    return Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))


class PublicationSummary(SQLModel, table=True):
    __tablename__ = "publication_summary"
    __table_args__ = (
        # The metrics' GROUP BY reads this index alone, in its order (no table access, no sort).
        Index(
            "ix_publication_summary_metrics",
            "active",
            "organization_id",
            "category",
            "needs_key",
            "on_datagouv",
            "on_geoplateforme",
            "regional",
            "resources",
            "bytes",
            "deliveries_failed",
            "deliveries_done",
        ),
        Index("ix_publication_summary_refreshed_at", "refreshed_at"),
    )

    publication_id: str = Field(primary_key=True, max_length=36)
    organization_id: str = Field(max_length=36)
    category: str = Field(default="A", max_length=1)
    active: int = 1
    on_datagouv: int = 0  # the ledger says present there
    on_geoplateforme: int = 0
    regional: int = 0  # present in the regional store
    resources: int = 0  # of the current revision
    bytes: int = _big()  # type: ignore[assignment]
    needs_key: str = Field(default="", max_length=40)  # sha1 of the current decision's needs
    deliveries_failed: int = 0  # deliveries of the current revision in these end states
    deliveries_done: int = 0
    refreshed_at: datetime = created_field()


class NeedSetMember(SQLModel, table=True):
    __tablename__ = "need_set_member"

    needs_key: str = Field(primary_key=True, max_length=40)
    need: str = Field(primary_key=True, max_length=80)
    category: str = Field(max_length=1)
    platforms: str = Field(default="[]", max_length=200)  # JSON list, as decision_need has it


class MigrationSnapshot(SQLModel, table=True):
    """One row per day and dimension value: ``("total", "")``, ``("category", "B")``,
    ``("need", "wfs|A")``, ``("organization", slug)`` or ``("platform", target)``. Written again during the
    day, so each day keeps its latest numbers."""

    __tablename__ = "migration_snapshot"
    __table_args__ = (UniqueConstraint("day", "dimension", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    day: date = Field(index=True)
    dimension: str = Field(max_length=20)
    key: str = Field(default="", max_length=200)
    publications: int = 0
    national: int = 0
    regional: int = 0
    national_and_regional: int = 0
    resources: int = 0
    bytes_national: int = _big()  # type: ignore[assignment]
    bytes_regional: int = _big()  # type: ignore[assignment]
    created_at: datetime = created_field()


# What changed since the summary's last refresh is found through these indexes on other packages' tables;
# declared here, next to the summary that needs them, so the models and migration 0004 agree.
Index("ix_publication_updated_at", Publication.__table__.c.updated_at)  # type: ignore[attr-defined]
Index("ix_ledger_updated_at", LedgerRecord.__table__.c.updated_at)  # type: ignore[attr-defined]
Index("ix_delivery_updated_at", Delivery.__table__.c.updated_at)  # type: ignore[attr-defined]
