"""Registry of connectors: short name -> dotted path. Unknown names fail loudly."""

from __future__ import annotations

import importlib
from typing import Any

from connectors.base import BaseConnector, UnknownConnectorError

CONNECTORS: dict[str, str] = {
    "regional": "regional_store.connector:RegionalConnector",
    "datagouv": "connectors.datagouv:DatagouvConnector",
    "geoplateforme": "connectors.geoplateforme:GeoplateformeConnector",
}
"""Known targets. A dotted path ``package.module:Class`` is accepted wherever a name is."""


def connector_class(name: str) -> type[BaseConnector[Any]]:
    path = CONNECTORS.get(name, name)
    if ":" not in path:
        raise UnknownConnectorError(f"unknown connector {name!r}; known: {', '.join(sorted(CONNECTORS))}")
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, class_name)
    except (ImportError, AttributeError) as exc:
        raise UnknownConnectorError(f"connector {name!r} cannot be loaded from {path!r}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, BaseConnector)):
        raise UnknownConnectorError(f"{path!r} is not a connector")
    return cls


def build_connector(name: str, config: dict[str, Any]) -> BaseConnector[Any]:
    """Validate ``config`` against the connector's own model and build it."""
    cls = connector_class(name)
    return cls(cls.config_model.model_validate(config))
