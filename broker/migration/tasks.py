"""Thin Celery tasks of migrations: the beat tick that advances every job one step per item."""

from __future__ import annotations

from broker.migration import service
from broker.worker import celery_app


@celery_app.task(name="migration.advance")
def advance_migrations() -> dict[str, int]:
    return service.advance()
