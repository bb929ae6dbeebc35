"""A faithful local emulator of data.gouv.fr's API (udata 17): ``create_app`` for ASGI, ``run`` for uvicorn.

The admin API under ``/_emulator/`` (provisioning, fault injection, read-only switch, request log) is the
emulator's own and not part of data.gouv.fr. This package imports nothing from ``broker`` or ``connectors``.
"""

from emulators.datagouv.app import create_app, run

__all__ = ["create_app", "run"]
