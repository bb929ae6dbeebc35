"""Every query of migration jobs and items, and the delivery facts a migration step reads."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, update
from sqlmodel import Session, col, select

from broker.deliveries.models import ACTIVE_STATES, Delivery
from broker.migration.models import ACTIVE_ITEM_STATES, JobState, MigrationItem, MigrationJob
from broker.organizations.models import Organization
from broker.publications.models import Publication


def add(session: Session, *objects: object) -> None:
    for obj in objects:
        session.add(obj)
    session.flush()


def add_all(session: Session, objects: list[MigrationItem]) -> None:
    session.add_all(objects)
    session.flush()


def job(session: Session, job_id: str) -> MigrationJob | None:
    return session.get(MigrationJob, job_id)


def item(session: Session, item_id: str) -> MigrationItem | None:
    return session.get(MigrationItem, item_id)


def jobs(session: Session, *, limit: int = 100) -> list[MigrationJob]:
    query = select(MigrationJob).order_by(col(MigrationJob.created_at).desc()).limit(limit)
    return list(session.exec(query))


def jobs_for_gap(session: Session, gap_id: str) -> list[MigrationJob]:
    query = select(MigrationJob).where(MigrationJob.gap_id == gap_id)
    return list(session.exec(query.order_by(col(MigrationJob.created_at).desc())))


def running_for_cell(session: Session, need: str, platform: str) -> MigrationJob | None:
    query = select(MigrationJob).where(
        MigrationJob.need == need,
        MigrationJob.platform == platform,
        MigrationJob.state == JobState.running.value,
    )
    return session.exec(query).first()


def running_jobs(session: Session) -> list[MigrationJob]:
    query = select(MigrationJob).where(MigrationJob.state == JobState.running.value)
    return list(session.exec(query.order_by(col(MigrationJob.created_at))))


def items_with_publications(
    session: Session, job_id: str
) -> list[tuple[MigrationItem, str | None, str | None]]:
    """A job's items with each publication's title and organisation slug."""
    query = (
        select(MigrationItem, Publication.title, Organization.slug)
        .join(Publication, col(Publication.id) == col(MigrationItem.publication_id))
        .join(Organization, col(Organization.id) == col(Publication.organization_id))
        .where(MigrationItem.job_id == job_id)
        .order_by(col(Organization.slug), col(Publication.title))
    )
    return [(i, title, slug) for i, title, slug in session.exec(query)]


def state_counts(session: Session, job_ids: list[str]) -> dict[str, dict[str, int]]:
    """Job id -> item state -> count, plus ``"waiting"`` (active items whose national delivery waits)."""
    if not job_ids:
        return {}
    found: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
    query = (
        select(col(MigrationItem.job_id), col(MigrationItem.state), col(MigrationItem.waiting), func.count())
        .where(col(MigrationItem.job_id).in_(job_ids))
        .group_by(col(MigrationItem.job_id), col(MigrationItem.state), col(MigrationItem.waiting))
    )
    for job_id, state, waiting, count in session.exec(query):
        counts = found[job_id]
        counts[state] = counts.get(state, 0) + int(count)
        if waiting and state in {s.value for s in ACTIVE_ITEM_STATES}:
            counts["waiting"] = counts.get("waiting", 0) + int(count)
    return found


def active_items_left(session: Session, job_id: str) -> int:
    query = select(func.count()).where(
        MigrationItem.job_id == job_id,
        col(MigrationItem.state).in_([s.value for s in ACTIVE_ITEM_STATES]),
    )
    return int(session.exec(query).one())


def due_items(session: Session, *, limit: int) -> list[MigrationItem]:
    """Items with a step left in running jobs, those looked at longest ago first."""
    query = (
        select(MigrationItem)
        .join(MigrationJob, col(MigrationJob.id) == col(MigrationItem.job_id))
        .where(
            MigrationJob.state == JobState.running.value,
            col(MigrationItem.state).in_([s.value for s in ACTIVE_ITEM_STATES]),
        )
        .order_by(col(MigrationItem.checked_at).is_not(None), col(MigrationItem.checked_at))
        .limit(limit)
    )
    return list(session.exec(query))


def claim(session: Session, item_id: str, version: int, now: datetime) -> bool:
    """Take the item for one step: only if nobody moved it since we read it (its version). The update
    also locks the row (PostgreSQL) or the database (SQLite) until this step commits or rolls back."""
    statement = (
        update(MigrationItem)
        .where(col(MigrationItem.id) == item_id, col(MigrationItem.version) == version)
        .values(version=MigrationItem.version + 1, checked_at=now)
        .execution_options(synchronize_session=False)
    )
    result = session.exec(statement)
    return bool(result.rowcount == 1)


# --------------------------------------------------------------------------------------------- deliveries


def latest_delivery(
    session: Session, publication_id: str, target: str, since_revision: int
) -> Delivery | None:
    """The newest delivery to ``target`` of a revision at least ``since_revision``."""
    query = (
        select(Delivery)
        .where(
            Delivery.publication_id == publication_id,
            Delivery.target == target,
            col(Delivery.revision_number) >= since_revision,
        )
        .order_by(col(Delivery.revision_number).desc(), col(Delivery.created_at).desc())
    )
    return session.exec(query).first()


def routed_in_revision(session: Session, publication_id: str, target: str, revision: int) -> bool:
    """Whether that revision delivers (publish or update) to ``target``: the target still serves it."""
    query = select(Delivery.id).where(
        Delivery.publication_id == publication_id,
        Delivery.target == target,
        Delivery.revision_number == revision,
        col(Delivery.action).in_(["publish", "update"]),
        Delivery.state != "cancelled",
    )
    return session.exec(query.limit(1)).first() is not None


def active_deliveries(session: Session, publication_id: str, target: str) -> list[Delivery]:
    query = select(Delivery).where(
        Delivery.publication_id == publication_id,
        Delivery.target == target,
        col(Delivery.state).in_([s.value for s in ACTIVE_STATES]),
    )
    return list(session.exec(query))
