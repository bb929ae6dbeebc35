"""Every query on uploads."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from broker.uploads.models import Upload


def get(session: Session, upload_id: str) -> Upload | None:
    return session.get(Upload, upload_id)


def add(session: Session, upload: Upload) -> Upload:
    session.add(upload)
    session.flush()
    return upload


def delete(session: Session, upload: Upload) -> None:
    session.delete(upload)
    session.flush()


def expired(session: Session, now: datetime, limit: int = 500) -> list[Upload]:
    query = select(Upload).where(col(Upload.expires_at) < now).order_by(col(Upload.expires_at)).limit(limit)
    return list(session.exec(query))
