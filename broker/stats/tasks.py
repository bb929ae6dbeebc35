"""Thin Celery tasks of the migration metrics."""

from __future__ import annotations

from typing import Any

from broker.stats import service
from broker.worker import celery_app


@celery_app.task(name="stats.snapshot")
def snapshot() -> dict[str, Any]:
    return service.snapshot_now()


@celery_app.task(name="stats.rebuild")
def rebuild() -> int:
    return service.rebuild()
