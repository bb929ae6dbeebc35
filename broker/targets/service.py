"""Targets: which connectors exist, which are configured, and one built connector per target."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from broker.config import Settings, get_settings
from connectors.base import BaseConnector
from connectors.registry import build_connector

logger = logging.getLogger(__name__)

TARGETS = ("datagouv", "geoplateforme", "regional")
"""Every target the broker knows, national first."""

TITLES = {
    "datagouv": "data.gouv.fr",
    "geoplateforme": "Géoplateforme (cartes.gouv.fr)",
    "regional": "Entrepôt régional OPenIG",
}


@dataclass(frozen=True)
class TargetInfo:
    name: str
    title: str
    configured: bool
    emulator: bool
    url: str | None


def connector_config(name: str, settings: Settings) -> dict[str, Any] | None:
    """The connector's configuration from deployment settings, or None when it is not configured."""
    if name == "regional":
        return {
            "root": str(settings.regional_dir),
            "database_url": settings.effective_database_url,
            "public_url": settings.public_url.rstrip("/"),
            "intake_root": str(settings.files_dir),
            "copy_rate": settings.regional_copy_rate,
            "hard_link": settings.regional_hard_link,
        }
    # The national connectors arrive with their own issues; until then their deliveries wait.
    return None


@functools.lru_cache(maxsize=16)
def _connector(name: str, settings_key: int) -> BaseConnector[Any] | None:
    settings = get_settings()
    config = connector_config(name, settings)
    if config is None:
        return None
    return build_connector(name, config)


def get_connector(name: str) -> BaseConnector[Any] | None:
    """The connector for ``name``, or None when that target is not configured."""
    return _connector(name, id(get_settings()))


def is_configured(name: str) -> bool:
    return connector_config(name, get_settings()) is not None


def describe_targets() -> list[TargetInfo]:
    infos = []
    for name in TARGETS:
        connector = get_connector(name)
        infos.append(
            TargetInfo(
                name=name,
                title=TITLES[name],
                configured=connector is not None,
                emulator=bool(connector is not None and getattr(connector.config, "emulator", False)),
                url=connector.base_url() if connector is not None else None,
            )
        )
    return infos
