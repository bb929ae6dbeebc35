"""Every query of SFTP keys and drops."""

from __future__ import annotations

from sqlmodel import Session, col, select

from broker.sftp.models import SftpDrop, SftpKey


def add(session: Session, *objects: object) -> None:
    for obj in objects:
        session.add(obj)
    session.flush()


def keys(session: Session, organization_id: str) -> list[SftpKey]:
    query = select(SftpKey).where(SftpKey.organization_id == organization_id)
    return list(session.exec(query.order_by(col(SftpKey.created_at))))


def key(session: Session, key_id: str) -> SftpKey | None:
    return session.get(SftpKey, key_id)


def key_by_fingerprint(session: Session, organization_id: str, fingerprint: str) -> SftpKey | None:
    query = select(SftpKey).where(
        SftpKey.organization_id == organization_id, SftpKey.fingerprint == fingerprint
    )
    return session.exec(query).first()


def delete(session: Session, obj: object) -> None:
    session.delete(obj)
    session.flush()


def drops(session: Session, organization_id: str, limit: int = 50) -> list[SftpDrop]:
    query = (
        select(SftpDrop)
        .where(SftpDrop.organization_id == organization_id)
        .order_by(col(SftpDrop.created_at).desc())
        .limit(limit)
    )
    return list(session.exec(query))
