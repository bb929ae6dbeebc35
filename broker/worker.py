"""The Celery application: JSON only, late acks, one queue per target, tasks addressed by id."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from celery import Celery
from kombu import Queue

from broker.config import get_settings
from broker.targets.service import TARGETS

logger = logging.getLogger(__name__)


def delivery_queue(target: str) -> str:
    """A queue per target, so a slow platform never blocks the others."""
    return f"deliveries.{target}"


QUEUES = ["default", *(delivery_queue(t) for t in TARGETS)]


def create_celery() -> Celery:
    settings = get_settings()
    # intake (Intake issue): the settings of the two periodic intake tasks below
    from broker.remote.settings import get_remote_settings
    from broker.uploads.settings import get_upload_settings

    remote_settings = get_remote_settings()
    upload_settings = get_upload_settings()
    app = Celery(
        "broker",
        include=[
            "broker.deliveries.tasks",
            # intake: remote syncs and upload cleanup (Intake issue)
            "broker.remote.tasks",
            "broker.uploads.tasks",
            # gaps and migration (National gaps and migration issue)
            "broker.gaps.tasks",
            "broker.migration.tasks",
            "broker.stats.tasks",
        ],
    )
    redis_url = settings.effective_redis_url()
    app.conf.update(
        broker_url=redis_url,
        result_backend=None,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        # A message is acknowledged only once its task has finished: a killed worker's task comes back.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_queues=[Queue(name) for name in QUEUES],
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            # Unacked messages come back after this; the sweeper recovers lost ones much sooner.
            "visibility_timeout": 3600,
        },
        worker_hijack_root_logger=False,
        beat_schedule={
            "sweep-deliveries": {
                "task": "deliveries.sweep",
                "schedule": timedelta(seconds=settings.sweep_interval_seconds),
                "options": {"queue": "default", "expires": settings.sweep_interval_seconds * 2},
            },
            # --- intake (Intake issue): remote resources due for a sync, expired uploads ---
            "remote-sync-due": {
                "task": "remote.sync_due",
                "schedule": timedelta(seconds=remote_settings.remote_sync_interval_seconds),
                "options": {"queue": "default", "expires": remote_settings.remote_sync_interval_seconds * 2},
            },
            "uploads-cleanup": {
                "task": "uploads.cleanup",
                "schedule": timedelta(seconds=upload_settings.upload_cleanup_interval_seconds),
                "options": {"queue": "default"},
            },
            # --- end intake ---
            # --- gaps and migration (National gaps and migration issue) ---
            # Each tick moves every migration item one step, from the database: a killed worker loses
            # nothing, and an expired tick is dropped (the next one does its work).
            "advance-migrations": {
                "task": "migration.advance",
                "schedule": timedelta(seconds=3),
                "options": {"queue": "default", "expires": 6},
            },
            "probe-gaps": {
                "task": "gaps.probe",
                "schedule": timedelta(minutes=15),
                "options": {"queue": "default", "expires": 600},
            },
            # Today's row of the migration history, kept current; the full summary rebuild once a day.
            "snapshot-migration-stats": {
                "task": "stats.snapshot",
                "schedule": timedelta(hours=1),
                "options": {"queue": "default", "expires": 1800},
            },
            "rebuild-migration-stats": {
                "task": "stats.rebuild",
                "schedule": timedelta(hours=24),
                "options": {"queue": "default", "expires": 3600},
            },
            # --- end gaps and migration ---
        },
        beat_schedule_filename=str(settings.run_dir / "celerybeat-schedule"),
    )
    return app


celery_app = create_celery()


def send(task: str, args: list[Any], *, queue: str, countdown: float | None = None) -> None:
    """Send a task by name (JSON arguments only)."""
    celery_app.send_task(task, args=args, queue=queue, countdown=countdown)
