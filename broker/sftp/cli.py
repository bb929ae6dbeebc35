"""`broker sftp`: the SFTP deposit server. The lead registers it in broker/cli.py::

from broker.sftp.cli import sftp as sftp_command
app.command("sftp")(sftp_command)
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer


def sftp(
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on (default BROKER_SFTP_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on (default BROKER_SFTP_PORT, else 2222).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", envvar="BROKER_DATA_DIR", help="Data directory (default ./var)."),
    ] = None,
) -> None:
    """Run the SFTP deposit server: one inbox per organisation, login with a registered public key."""
    from broker.cli import _use
    from broker.config import get_settings
    from broker.sftp.server import serve
    from broker.sftp.settings import get_sftp_settings

    _use(data_dir, service=True)
    settings = get_sftp_settings()
    listen_host = host or settings.sftp_host
    listen_port = port if port is not None else (settings.sftp_port or 2222)
    ready_file = get_settings().run_dir / "sftp.json"

    async def main() -> None:
        task = asyncio.ensure_future(serve(listen_host, listen_port, ready_file=ready_file))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        ready_file.unlink(missing_ok=True)
