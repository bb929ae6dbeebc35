"""Liveness and readiness probes."""

from __future__ import annotations

import logging

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from broker.config import get_settings
from broker.db import get_engine

logger = logging.getLogger(__name__)

router = APIRouter(tags=["system"])


@router.get("/healthz", summary="The process is up")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The database and the queue are reachable")
def readyz() -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with get_engine().connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:
        logger.warning("readyz: database unreachable: %s", type(exc).__name__)
        checks["database"] = "unreachable"
    try:
        client = redis.Redis.from_url(get_settings().effective_redis_url(), socket_timeout=2)
        client.ping()
        checks["queue"] = "ok"
    except Exception as exc:
        logger.warning("readyz: queue unreachable: %s", type(exc).__name__)
        checks["queue"] = "unreachable"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", **checks}, status_code=200 if ready else 503
    )
