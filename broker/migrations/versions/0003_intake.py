"""intake: resumable uploads, remote syncs, SFTP keys and drops

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 10:00:00

Hand-written (the tables of broker/uploads, broker/remote and broker/sftp models).
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def _when() -> sqlmodel.sql.sqltypes.UTCDateTime:
    return sqlmodel.sql.sqltypes.UTCDateTime()


def upgrade() -> None:
    op.create_table(
        "upload",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("owner_subject", _text(300), nullable=False),
        sa.Column("owner_issuer", _text(300), nullable=False),
        sa.Column("filename", _text(255), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("offset", sa.BigInteger(), nullable=False),
        sa.Column("sha256", _text(64), nullable=True),
        sa.Column("state", _text(20), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.Column("expires_at", _when(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_upload_owner_subject"), ["owner_subject"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_upload_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "remote_sync",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("publication_id", _text(36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("resource_name", _text(255), nullable=False),
        sa.Column("url", _text(2000), nullable=False),
        sa.Column("sync", _text(20), nullable=False),
        sa.Column("etag", _text(300), nullable=True),
        sa.Column("last_modified", _text(100), nullable=True),
        sa.Column("sha256", _text(64), nullable=True),
        sa.Column("last_checked_at", _when(), nullable=True),
        sa.Column("last_changed_at", _when(), nullable=True),
        sa.Column("next_due_at", _when(), nullable=False),
        sa.Column("last_error", _text(2000), nullable=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.ForeignKeyConstraint(["publication_id"], ["publication.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("publication_id", "position"),
    )
    with op.batch_alter_table("remote_sync", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_remote_sync_publication_id"), ["publication_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_remote_sync_next_due_at"), ["next_due_at"], unique=False)

    op.create_table(
        "sftp_key",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("organization_id", _text(36), nullable=False),
        sa.Column("label", _text(200), nullable=False),
        sa.Column("algorithm", _text(60), nullable=False),
        sa.Column("public_key", _text(16000), nullable=False),
        sa.Column("fingerprint", _text(100), nullable=False),
        sa.Column("created_by", _text(300), nullable=True),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("last_used_at", _when(), nullable=True),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("organization_id", "fingerprint"),
    )
    with op.batch_alter_table("sftp_key", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sftp_key_organization_id"), ["organization_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_sftp_key_fingerprint"), ["fingerprint"], unique=False)

    op.create_table(
        "sftp_drop",
        sa.Column("id", _text(36), nullable=False),
        sa.Column("organization_id", _text(36), nullable=False),
        sa.Column("manifest", _text(255), nullable=False),
        sa.Column("status", _text(20), nullable=False),
        sa.Column("publication_id", _text(36), nullable=True),
        sa.Column("revision", sa.Integer(), nullable=True),
        sa.Column("folder", _text(300), nullable=True),
        sa.Column("key_fingerprint", _text(100), nullable=True),
        sa.Column("key_label", _text(200), nullable=True),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.ForeignKeyConstraint(["organization_id"], ["organization.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sftp_drop", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sftp_drop_organization_id"), ["organization_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sftp_drop", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sftp_drop_organization_id"))
    op.drop_table("sftp_drop")
    with op.batch_alter_table("sftp_key", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sftp_key_fingerprint"))
        batch_op.drop_index(batch_op.f("ix_sftp_key_organization_id"))
    op.drop_table("sftp_key")
    with op.batch_alter_table("remote_sync", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_remote_sync_next_due_at"))
        batch_op.drop_index(batch_op.f("ix_remote_sync_publication_id"))
    op.drop_table("remote_sync")
    with op.batch_alter_table("upload", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_upload_expires_at"))
        batch_op.drop_index(batch_op.f("ix_upload_state"))
        batch_op.drop_index(batch_op.f("ix_upload_owner_subject"))
    op.drop_table("upload")
