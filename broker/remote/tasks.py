"""Thin Celery tasks of remote syncs: beat finds what is due, a worker syncs one row by id."""

from __future__ import annotations

import logging

from broker.db import session_scope
from broker.remote import service
from broker.worker import celery_app, send

logger = logging.getLogger(__name__)


@celery_app.task(name="remote.sync_due")
def sync_due() -> int:
    """Bring the schedule in step with current revisions, then send every due sync to a worker."""
    with session_scope() as session:
        service.reconcile(session)
        ids = service.claim_due(session)
    for sync_id in ids:
        send("remote.sync", [sync_id], queue="default")
    return len(ids)


@celery_app.task(name="remote.sync", acks_late=True)
def sync_resource(sync_id: str) -> str:
    return service.sync_one(sync_id).status
