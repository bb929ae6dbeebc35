"""Tables of the access domain."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from broker.models_base import created_field, id_field

#: Where a request stands; only ``pending`` ones can be decided or cancelled.
REQUEST_STATUSES: tuple[str, ...] = ("pending", "granted", "refused", "cancelled")
REASON_MAX_LENGTH = 1000
NOTE_MAX_LENGTH = 1000


class AccessRequest(SQLModel, table=True):
    """Someone asks to be added to a restricted publication's access list.

    ``subject`` is the requester's token ``sub``; ``email`` and ``username`` are copied from the token at
    request time so that the referent knows who asks, and so that a grant can list the email too (the
    regional store accepts either).
    """

    __tablename__ = "access_request"
    __table_args__ = (
        # One pending request per person and publication, enforced by the database too: two clicks on
        # "Demander l'accès" in two tabs must not make two requests. Partial indexes exist on both
        # SQLite (3.8+) and PostgreSQL.
        Index(
            "uq_access_request_pending",
            "publication_id",
            "subject",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: str = id_field()
    publication_id: str = Field(foreign_key="publication.id", index=True, max_length=36)
    subject: str = Field(index=True, max_length=300)
    email: str | None = Field(default=None, max_length=320)
    username: str | None = Field(default=None, max_length=300)
    reason: str = Field(max_length=REASON_MAX_LENGTH)
    status: str = Field(default="pending", index=True, max_length=20)
    decided_by: str | None = Field(default=None, max_length=300)
    decision_note: str | None = Field(default=None, max_length=NOTE_MAX_LENGTH)
    created_at: datetime = created_field()
    decided_at: datetime | None = Field(default=None)
