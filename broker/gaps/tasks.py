"""Thin Celery tasks of the gap register."""

from __future__ import annotations

from broker.gaps import probes
from broker.worker import celery_app


@celery_app.task(name="gaps.probe")
def probe_gaps() -> dict[str, int]:
    return probes.run_all()
