"""gap register, migration jobs, migration snapshots

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 12:00:00.000000

Hand-written. Also the per-publication summary behind ``GET /api/v1/stats/migration`` with the index its
GROUP BY reads, and ``updated_at`` indexes on publication, ledger and delivery that find what changed since
the summary's last refresh (bench/stats.py).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _string(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _datetime() -> sqlmodel.sql.sqltypes.UTCDateTime:
    return sqlmodel.sql.sqltypes.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "gap",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("need", _string(80), nullable=False),
        sa.Column("platform", _string(40), nullable=False),
        sa.Column("status", _string(20), nullable=False),
        sa.Column("target_date", sa.Date(), nullable=True),
        sa.Column("interim", _string(20), nullable=False),
        sa.Column("mirror", sa.Boolean(), nullable=False),
        sa.Column("upstream", _string(300), nullable=True),
        sa.Column("probe", sa.JSON(), nullable=True),
        sa.Column("looks_delivered", sa.Boolean(), nullable=True),
        sa.Column("probe_checked_at", _datetime(), nullable=True),
        sa.Column("probe_detail", sa.Text(), nullable=True),
        sa.Column("source", _string(40), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("updated_at", _datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("need", "platform"),
    )
    with op.batch_alter_table("gap", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gap_need"), ["need"], unique=False)
        batch_op.create_index(batch_op.f("ix_gap_status"), ["status"], unique=False)

    op.create_table(
        "gap_history",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("gap_id", _string(36), nullable=False),
        sa.Column("at", _datetime(), nullable=False),
        sa.Column("by", _string(300), nullable=False),
        sa.Column("change", _string(20), nullable=False),
        sa.Column("from_value", sa.JSON(), nullable=True),
        sa.Column("to_value", sa.JSON(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["gap_id"], ["gap.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gap_history", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_gap_history_gap_id"), ["gap_id"], unique=False)

    op.create_table(
        "categories_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", _string(64), nullable=False),
        sa.Column("matrix", sa.JSON(), nullable=False),
        sa.Column("seen_at", _datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )

    op.create_table(
        "migration_job",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("gap_id", _string(36), nullable=True),
        sa.Column("need", _string(80), nullable=False),
        sa.Column("platform", _string(40), nullable=False),
        sa.Column("trigger", _string(40), nullable=False),
        sa.Column("mirror", sa.Boolean(), nullable=False),
        sa.Column("state", _string(20), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", _string(300), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("updated_at", _datetime(), nullable=False),
        sa.Column("finished_at", _datetime(), nullable=True),
        sa.ForeignKeyConstraint(["gap_id"], ["gap.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("migration_job", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_migration_job_gap_id"), ["gap_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_migration_job_state"), ["state"], unique=False)

    op.create_table(
        "migration_item",
        sa.Column("id", _string(36), nullable=False),
        sa.Column("job_id", _string(36), nullable=False),
        sa.Column("publication_id", _string(36), nullable=False),
        sa.Column("state", _string(20), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("national_delivery_id", _string(36), nullable=True),
        sa.Column("withdraw_delivery_id", _string(36), nullable=True),
        sa.Column("waiting", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("checked_at", _datetime(), nullable=True),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("updated_at", _datetime(), nullable=False),
        sa.ForeignKeyConstraint(["job_id"], ["migration_job.id"]),
        sa.ForeignKeyConstraint(["publication_id"], ["publication.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("job_id", "publication_id"),
    )
    with op.batch_alter_table("migration_item", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_migration_item_job_id"), ["job_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_migration_item_publication_id"), ["publication_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_migration_item_state"), ["state"], unique=False)

    op.create_table(
        "migration_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("dimension", _string(20), nullable=False),
        sa.Column("key", _string(200), nullable=False),
        sa.Column("publications", sa.Integer(), nullable=False),
        sa.Column("national", sa.Integer(), nullable=False),
        sa.Column("regional", sa.Integer(), nullable=False),
        sa.Column("national_and_regional", sa.Integer(), nullable=False),
        sa.Column("resources", sa.Integer(), nullable=False),
        sa.Column("bytes_national", sa.BigInteger(), nullable=False),
        sa.Column("bytes_regional", sa.BigInteger(), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("day", "dimension", "key"),
    )
    with op.batch_alter_table("migration_snapshot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_migration_snapshot_day"), ["day"], unique=False)

    op.create_table(
        "publication_summary",
        sa.Column("publication_id", _string(36), nullable=False),
        sa.Column("organization_id", _string(36), nullable=False),
        sa.Column("category", _string(1), nullable=False),
        sa.Column("active", sa.Integer(), nullable=False),
        sa.Column("on_datagouv", sa.Integer(), nullable=False),
        sa.Column("on_geoplateforme", sa.Integer(), nullable=False),
        sa.Column("regional", sa.Integer(), nullable=False),
        sa.Column("resources", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("needs_key", _string(40), nullable=False),
        sa.Column("deliveries_failed", sa.Integer(), nullable=False),
        sa.Column("deliveries_done", sa.Integer(), nullable=False),
        sa.Column("refreshed_at", _datetime(), nullable=False),
        sa.PrimaryKeyConstraint("publication_id"),
    )
    with op.batch_alter_table("publication_summary", schema=None) as batch_op:
        # The metrics' GROUP BY reads this index alone, in its order (no table access, no sort).
        batch_op.create_index(
            "ix_publication_summary_metrics",
            [
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
            ],
            unique=False,
        )
        batch_op.create_index("ix_publication_summary_refreshed_at", ["refreshed_at"], unique=False)

    op.create_table(
        "need_set_member",
        sa.Column("needs_key", _string(40), nullable=False),
        sa.Column("need", _string(80), nullable=False),
        sa.Column("category", _string(1), nullable=False),
        sa.Column("platforms", _string(200), nullable=False),
        sa.PrimaryKeyConstraint("needs_key", "need"),
    )

    # What changed since the last refresh of the summary: found by these three indexes.
    with op.batch_alter_table("publication", schema=None) as batch_op:
        batch_op.create_index("ix_publication_updated_at", ["updated_at"], unique=False)
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_updated_at", ["updated_at"], unique=False)
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.create_index("ix_delivery_updated_at", ["updated_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_delivery_updated_at")
    with op.batch_alter_table("ledger", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_updated_at")
    with op.batch_alter_table("publication", schema=None) as batch_op:
        batch_op.drop_index("ix_publication_updated_at")
    op.drop_table("need_set_member")
    with op.batch_alter_table("publication_summary", schema=None) as batch_op:
        batch_op.drop_index("ix_publication_summary_refreshed_at")
        batch_op.drop_index("ix_publication_summary_metrics")
    op.drop_table("publication_summary")
    with op.batch_alter_table("migration_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_migration_snapshot_day"))
    op.drop_table("migration_snapshot")
    with op.batch_alter_table("migration_item", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_migration_item_state"))
        batch_op.drop_index(batch_op.f("ix_migration_item_publication_id"))
        batch_op.drop_index(batch_op.f("ix_migration_item_job_id"))
    op.drop_table("migration_item")
    with op.batch_alter_table("migration_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_migration_job_state"))
        batch_op.drop_index(batch_op.f("ix_migration_job_gap_id"))
    op.drop_table("migration_job")
    op.drop_table("categories_state")
    with op.batch_alter_table("gap_history", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gap_history_gap_id"))
    op.drop_table("gap_history")
    with op.batch_alter_table("gap", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_gap_status"))
        batch_op.drop_index(batch_op.f("ix_gap_need"))
    op.drop_table("gap")
