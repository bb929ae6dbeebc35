"""Thin Celery tasks: take ids, call the service."""

from __future__ import annotations

import logging

from broker.deliveries import service
from broker.worker import celery_app

logger = logging.getLogger(__name__)


@celery_app.task(name="deliveries.run", acks_late=True)
def run_delivery(delivery_id: str) -> str | None:
    outcome = service.run(delivery_id)
    return outcome.state if outcome else None


@celery_app.task(name="deliveries.sweep")
def sweep_deliveries() -> dict[str, int]:
    return service.sweep()
