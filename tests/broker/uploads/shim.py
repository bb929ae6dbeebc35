"""`python -m tests.broker.uploads.shim ARGS` runs `broker ARGS` with the intake hooks wired in.

Until the lead wires them for real (routers in broker/main.py, the two calls in
broker/publications/router.py ``_read_submission``, the ``sftp`` command in broker/cli.py), the intake
tests drive the broker through this module; each patch below does nothing once the real hook is there,
so the tests then exercise the production wiring unchanged.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

import broker.cli
import broker.main
import broker.publications.router as publications_router
from broker.intake.staging import Staging


def _wire_app() -> None:
    original = broker.main.create_app

    def create_app() -> FastAPI:
        from broker.remote.router import router as remote_router
        from broker.sftp.router import router as sftp_router
        from broker.uploads.router import router as uploads_router

        app = original()
        paths = {getattr(route, "path", None) for route in app.routes}
        for router, probe in (
            (uploads_router, "/api/v1/uploads/{upload_id}"),
            (remote_router, "/api/v1/publications/{publication_id}/syncs"),
            (sftp_router, "/api/v1/organizations/{slug}/sftp-keys"),
        ):
            if probe not in paths:
                app.include_router(router)
        return app

    broker.main.create_app = create_app  # type: ignore[assignment]


def _wire_submission() -> None:
    original = publications_router._read_submission
    source = inspect.getsource(original)
    if "stage_uploads" in source and "fetch_manifest_urls" in source:
        return

    async def read_submission(request: Request, staging: Staging, *args: Any, **kwargs: Any) -> Any:
        from broker.remote.service import fetch_manifest_urls
        from broker.uploads.service import stage_uploads, upload_refs

        raw, channel = await original(request, staging, *args, **kwargs)
        part = None
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            part = (await request.form()).get("uploads")
        refs = upload_refs(raw, part)
        await run_in_threadpool(stage_uploads, staging, refs, request.state.principal)
        await run_in_threadpool(fetch_manifest_urls, staging, raw)
        return raw, channel

    publications_router._read_submission = read_submission  # type: ignore[assignment]


def _wire_cli() -> None:
    from broker.sftp.cli import sftp

    if not any(command.name == "sftp" for command in broker.cli.app.registered_commands):
        broker.cli.app.command("sftp")(sftp)


_wire_app()
_wire_submission()
_wire_cli()

if __name__ == "__main__":
    broker.cli.main()
