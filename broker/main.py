"""The FastAPI application: routers, the one error renderer, and start-up checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from broker import __version__
from broker.access.pages import router as access_pages_router
from broker.access.router import router as access_router
from broker.auth.dependencies import optional_principal
from broker.auth.router import router as auth_router
from broker.classification import service as classification
from broker.config import get_settings
from broker.db import get_session
from broker.deliveries.router import router as deliveries_router
from broker.errors import install_error_handlers
from broker.events.router import router as events_router
from broker.gaps.router import router as gaps_router
from broker.metadata.router import router as metadata_router
from broker.migration.router import router as migration_router
from broker.organizations.router import router as organizations_router
from broker.publications.router import router as publications_router
from broker.remote.router import router as remote_router
from broker.sftp.router import router as sftp_router
from broker.stats.router import router as stats_router
from broker.system.router import router as system_router
from broker.targets.router import router as targets_router
from broker.uploads.router import router as uploads_router
from regional_store.router import build_router as build_regional_router

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    # Refuse to start on an invalid categories.yaml rather than misroute publications.
    rules = classification.current_rules()
    logger.info("broker %s ready; categories digest %s", __version__, rules.digest[:12])
    yield


def _regional_root() -> Path:
    return get_settings().regional_dir


def create_app() -> FastAPI:
    app = FastAPI(
        title="OPenIG publication broker",
        version=__version__,
        description=(
            "Publish once; the broker classifies each need (A: national platform, B: national after "
            "agreed development, C: regional) and delivers to data.gouv.fr, the Géoplateforme and the "
            "regional store."
        ),
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(system_router)
    app.include_router(auth_router)
    app.include_router(organizations_router)
    app.include_router(publications_router)
    app.include_router(uploads_router)
    app.include_router(remote_router)
    app.include_router(sftp_router)
    app.include_router(deliveries_router)
    app.include_router(events_router)
    app.include_router(metadata_router)
    app.include_router(targets_router)
    app.include_router(gaps_router)
    app.include_router(migration_router)
    app.include_router(stats_router)
    app.include_router(access_router)
    app.include_router(access_pages_router)
    app.include_router(
        build_regional_router(
            get_session,
            optional_principal,
            _regional_root,
            public_url=lambda: get_settings().public_url.rstrip("/"),
        )
    )
    return app
