"""Every query on deliveries and the ledger."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, exists, or_, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from broker.deliveries.models import ACTIVE_STATES, Delivery, DeliveryState, LedgerRecord


def get(session: Session, delivery_id: str) -> Delivery | None:
    return session.get(Delivery, delivery_id)


def add(session: Session, delivery: Delivery) -> Delivery:
    session.add(delivery)
    return delivery


def for_publication(session: Session, publication_id: str) -> list[Delivery]:
    query = (
        select(Delivery)
        .where(Delivery.publication_id == publication_id)
        .order_by(col(Delivery.created_at), col(Delivery.target))
    )
    return list(session.exec(query))


def latest_per_target(session: Session, publication_id: str) -> list[Delivery]:
    """The newest delivery of each target for a publication."""
    newest: dict[str, Delivery] = {}
    for delivery in for_publication(session, publication_id):
        newest[delivery.target] = delivery
    return list(newest.values())


def latest_for_target(session: Session, publication_id: str, target: str) -> Delivery | None:
    query = (
        select(Delivery)
        .where(Delivery.publication_id == publication_id, Delivery.target == target)
        .order_by(col(Delivery.created_at).desc())
    )
    return session.exec(query).first()


def active_for_target(
    session: Session, publication_id: str, target: str, *, exclude_id: str | None = None
) -> list[Delivery]:
    query = select(Delivery).where(
        Delivery.publication_id == publication_id,
        Delivery.target == target,
        col(Delivery.state).in_([s.value for s in ACTIVE_STATES]),
    )
    if exclude_id:
        query = query.where(Delivery.id != exclude_id)
    return list(session.exec(query.order_by(col(Delivery.revision_number), col(Delivery.created_at))))


def claim(session: Session, delivery_id: str, now: datetime, lease_until: datetime) -> bool:
    """Atomically mark a delivery running, unless it is not runnable or another one of the same
    publication and target holds a live lease (never two deliveries to one target at once)."""
    other = aliased(Delivery)
    busy = exists().where(
        col(other.publication_id) == col(Delivery.publication_id),
        col(other.target) == col(Delivery.target),
        col(other.id) != col(Delivery.id),
        col(other.state) == DeliveryState.running.value,
        col(other.lease_until) >= now,
    )
    runnable = or_(
        col(Delivery.state) == DeliveryState.pending.value,
        and_(
            col(Delivery.state) == DeliveryState.retrying.value,
            or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) <= now),
        ),
        and_(col(Delivery.state) == DeliveryState.running.value, col(Delivery.lease_until) < now),
    )
    statement = (
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, runnable, ~busy)
        .values(
            state=DeliveryState.running.value,
            attempts=Delivery.attempts + 1,
            lease_until=lease_until,
            updated_at=now,
            started_at=now,
            next_attempt_at=None,
        )
        .execution_options(synchronize_session=False)
    )
    result = session.exec(statement)
    return bool(result.rowcount == 1)


def extend_lease(session: Session, delivery_id: str, lease_until: datetime, now: datetime) -> None:
    statement = (
        update(Delivery)
        .where(col(Delivery.id) == delivery_id, col(Delivery.state) == DeliveryState.running.value)
        .values(lease_until=lease_until, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    session.exec(statement)


def newer_active_exists(session: Session, delivery: Delivery) -> bool:
    query = select(Delivery.id).where(
        Delivery.publication_id == delivery.publication_id,
        Delivery.target == delivery.target,
        Delivery.id != delivery.id,
        col(Delivery.revision_number) >= delivery.revision_number,
        col(Delivery.created_at) >= delivery.created_at,
        col(Delivery.state).in_([s.value for s in ACTIVE_STATES]),
    )
    return session.exec(query).first() is not None


def next_runnable_for_target(session: Session, publication_id: str, target: str) -> Delivery | None:
    query = (
        select(Delivery)
        .where(
            Delivery.publication_id == publication_id,
            Delivery.target == target,
            col(Delivery.state).in_([DeliveryState.pending.value, DeliveryState.retrying.value]),
        )
        .order_by(col(Delivery.created_at))
    )
    return session.exec(query).first()


def stale(session: Session, now: datetime, pending_before: datetime) -> list[Delivery]:
    """Deliveries whose message may be lost: pending or retrying and not enqueued recently, or running
    with an expired lease."""
    query = select(Delivery).where(
        or_(
            and_(
                col(Delivery.state) == DeliveryState.pending.value,
                or_(col(Delivery.enqueued_at).is_(None), col(Delivery.enqueued_at) < pending_before),
            ),
            and_(
                col(Delivery.state) == DeliveryState.retrying.value,
                or_(col(Delivery.next_attempt_at).is_(None), col(Delivery.next_attempt_at) < now),
                or_(col(Delivery.enqueued_at).is_(None), col(Delivery.enqueued_at) < pending_before),
            ),
            and_(col(Delivery.state) == DeliveryState.running.value, col(Delivery.lease_until) < now),
        )
    )
    return list(session.exec(query.order_by(col(Delivery.created_at)).limit(500)))


def waiting_for_configuration(session: Session, target: str) -> list[Delivery]:
    query = select(Delivery).where(
        Delivery.target == target,
        Delivery.state == DeliveryState.waiting.value,
        Delivery.waiting_reason == "not_configured",
    )
    return list(session.exec(query))


def mark_enqueued(session: Session, delivery_ids: list[str], at: datetime) -> None:
    if not delivery_ids:
        return
    statement = (
        update(Delivery)
        .where(col(Delivery.id).in_(delivery_ids))
        .values(enqueued_at=at)
        .execution_options(synchronize_session=False)
    )
    session.exec(statement)


def search(
    session: Session,
    *,
    state: str | None = None,
    target: str | None = None,
    publication_ids: list[str] | None = None,
    limit: int = 200,
) -> list[Delivery]:
    query = select(Delivery)
    if state:
        query = query.where(Delivery.state == state)
    if target:
        query = query.where(Delivery.target == target)
    if publication_ids is not None:
        query = query.where(col(Delivery.publication_id).in_(publication_ids))
    return list(session.exec(query.order_by(col(Delivery.updated_at).desc()).limit(limit)))


# --------------------------------------------------------------------------------------------- ledger


def ledger(session: Session, publication_id: str, target: str) -> LedgerRecord | None:
    query = select(LedgerRecord).where(
        LedgerRecord.publication_id == publication_id, LedgerRecord.target == target
    )
    return session.exec(query).first()


def ledgers(session: Session, publication_id: str) -> list[LedgerRecord]:
    query = select(LedgerRecord).where(LedgerRecord.publication_id == publication_id)
    return list(session.exec(query.order_by(col(LedgerRecord.target))))


def save_ledger(session: Session, record: LedgerRecord) -> LedgerRecord:
    session.add(record)
    return record


def present_ledgers(session: Session, target: str, publication_ids: list[str] | None) -> list[LedgerRecord]:
    query = select(LedgerRecord).where(LedgerRecord.target == target, LedgerRecord.state == "present")
    if publication_ids is not None:
        query = query.where(col(LedgerRecord.publication_id).in_(publication_ids))
    return list(session.exec(query))
