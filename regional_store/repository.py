"""Every query of the regional store; functions take a session and never commit."""

from __future__ import annotations

from collections.abc import Iterable

from sqlmodel import Session, col, select

from regional_store.models import RegionalFile, RegionalRecord


def get_record(session: Session, publication_id: str) -> RegionalRecord | None:
    return session.get(RegionalRecord, publication_id)


def list_files(session: Session, publication_id: str) -> list[RegionalFile]:
    statement = (
        select(RegionalFile)
        .where(RegionalFile.publication_id == publication_id)
        .order_by(col(RegionalFile.position), col(RegionalFile.name))
    )
    return list(session.exec(statement).all())


def get_file(session: Session, publication_id: str, name: str) -> RegionalFile | None:
    statement = select(RegionalFile).where(
        RegionalFile.publication_id == publication_id, RegionalFile.name == name
    )
    return session.exec(statement).first()


def add(session: Session, row: RegionalRecord | RegionalFile) -> None:
    session.add(row)


def delete_file(session: Session, row: RegionalFile) -> None:
    session.delete(row)


def referenced_digests(session: Session, digests: Iterable[str]) -> set[str]:
    """The digests among ``digests`` that a present record still serves."""
    wanted = sorted(set(digests))
    if not wanted:
        return set()
    statement = (
        select(RegionalFile.sha256)
        .join(RegionalRecord, col(RegionalRecord.publication_id) == col(RegionalFile.publication_id))
        .where(RegionalRecord.state == "present", col(RegionalFile.sha256).in_(wanted))
        .distinct()
    )
    return {digest for digest in session.exec(statement).all() if digest}
