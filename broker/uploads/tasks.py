"""Thin Celery tasks of resumable uploads."""

from __future__ import annotations

import logging

from broker.db import session_scope
from broker.uploads import service
from broker.worker import celery_app

logger = logging.getLogger(__name__)


@celery_app.task(name="uploads.cleanup")
def cleanup_uploads() -> int:
    """Delete uploads past their expiry (partial or complete, cited or not: cited bytes are in the store)."""
    with session_scope() as session:
        removed = service.cleanup_expired(session)
    if removed:
        logger.info("removed %d expired uploads", removed)
    return removed
