"""Targets: which connectors exist, which are configured, and the connector for an organisation.

National connectors take deployment settings (URLs, a shared OPenIG account) merged with the organisation's
own identity: its ids on the platform (``Organization.remote``) and its credentials (stored encrypted).
When ``broker up`` runs a national emulator, each organisation is provisioned there on first use, the way
a real organisation is onboarded by hand on the real platform.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import ValidationError
from sqlmodel import Session

from broker.config import Settings, get_settings
from connectors.base import BaseConnector, ConnectorConfigurationError
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


def base_config(name: str, settings: Settings) -> dict[str, Any] | None:
    """The deployment part of a connector's configuration, or None when the target is not configured."""
    if name == "regional":
        return {
            "root": str(settings.regional_dir),
            "database_url": settings.effective_database_url,
            "public_url": settings.public_url.rstrip("/"),
            "intake_root": str(settings.files_dir),
            "copy_rate": settings.regional_copy_rate,
            "hard_link": settings.regional_hard_link,
        }
    if name == "datagouv":
        if not settings.datagouv_url:
            return None
        config: dict[str, Any] = {
            "base_url": settings.datagouv_url,
            "emulator": settings.datagouv_emulator,
            # The emulator serves on loopback, and so do the regional download links it receives.
            "allow_local_urls": settings.datagouv_emulator,
            "withdraw_mode": settings.datagouv_withdraw_mode,
        }
        if settings.datagouv_api_key:
            config["api_key"] = settings.datagouv_api_key.get_secret_value()
        return config
    if name == "geoplateforme":
        if not settings.geoplateforme_api_url:
            return None
        config = {
            "api_url": settings.geoplateforme_api_url,
            "emulator": settings.geoplateforme_emulator,
            "client_id": settings.geoplateforme_client_id or "",
        }
        for key in ("token_url", "csw_url", "datastore_id"):
            value = getattr(settings, f"geoplateforme_{key}")
            if value:
                config[key] = value
        if settings.geoplateforme_client_secret:
            config["client_secret"] = settings.geoplateforme_client_secret.get_secret_value()
        if settings.geoplateforme_emulator:
            config["poll_interval"] = 0.2
            config["max_poll_interval"] = 2.0
            config["deadline_seconds"] = 120.0
        return config
    return None


def is_configured(name: str) -> bool:
    return base_config(name, get_settings()) is not None


def _organization_config(name: str, organization_id: str | None, session: Session | None) -> dict[str, Any]:
    """The organisation's own credentials for ``name`` (decrypted, for the connector only)."""
    if name == "regional" or organization_id is None or session is None:
        return {}
    from broker.organizations import service as organizations

    values = organizations.read_credentials(session, organization_id, name)
    if name == "datagouv":
        return {k: v for k, v in values.items() if k in {"api_key", "organization_id"}}
    return values


@functools.lru_cache(maxsize=64)
def _build(name: str, config_json: str) -> BaseConnector[Any]:
    try:
        return build_connector(name, json.loads(config_json))
    except ValidationError as exc:
        # Name the missing or bad fields, never their values (they may be secrets).
        fields = sorted({".".join(str(p) for p in err["loc"]) or str(err["msg"]) for err in exc.errors()})
        raise ConnectorConfigurationError(
            f"Configuration incomplète pour {TITLES.get(name, name)} : {', '.join(fields)} "
            "(identifiants de l'organisation à enregistrer, ou réglages BROKER_*)."
        ) from None


def get_connector(
    name: str, organization_id: str | None = None, session: Session | None = None
) -> BaseConnector[Any] | None:
    """The connector for ``name`` (with the organisation's credentials when it has some), or None when
    the target is not configured. Raises ConnectorConfigurationError when the configuration is incomplete."""
    config = base_config(name, get_settings())
    if config is None:
        return None
    config = {**config, **_organization_config(name, organization_id, session)}
    return _build(name, json.dumps(config, sort_keys=True, default=str))


def describe_targets() -> list[TargetInfo]:
    settings = get_settings()
    infos = []
    for name in TARGETS:
        config = base_config(name, settings)
        url = None
        if config is not None:
            url = (
                config.get("base_url")
                or config.get("api_url")
                or f"{settings.public_url.rstrip('/')}/regional"
            )
        infos.append(
            TargetInfo(
                name=name,
                title=TITLES[name],
                configured=config is not None,
                emulator=bool(config and config.get("emulator")),
                url=url,
            )
        )
    return infos


def fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------- emulators


def ensure_emulator_identity(session: Session, organization_id: str, target: str) -> None:
    """With a national emulator, give the organisation an account there on first use (idempotent)."""
    settings = get_settings()
    from broker.organizations import repository as organizations_repository
    from broker.organizations import service as organizations

    organization = organizations_repository.get(session, organization_id)
    if organization is None:
        return
    remote = dict(organization.remote or {})
    if target == "datagouv" and settings.datagouv_emulator and settings.datagouv_url:
        if remote.get("datagouv") and organizations_repository.credential(session, organization.id, target):
            return
        root = settings.datagouv_url.rstrip("/").removesuffix("/api/1")
        answer = _post(
            f"{root}/_emulator/provision",
            {"organization": {"slug": organization.slug, "name": organization.name}},
        )
        remote["datagouv"] = answer["organization_id"]
        organizations.set_credentials(
            session,
            organization,
            "datagouv",
            {"api_key": answer["api_key"], "organization_id": answer["organization_id"]},
            actor=None,
        )
    elif target == "geoplateforme" and settings.geoplateforme_emulator and settings.geoplateforme_api_url:
        if remote.get("geoplateforme") and organizations_repository.credential(
            session, organization.id, target
        ):
            return
        root = settings.geoplateforme_api_url.rstrip("/").removesuffix("/api")
        answer = _post(
            f"{root}/_emulator/organisations",
            {"technical_name": organization.slug, "name": organization.name},
        )
        remote["geoplateforme"] = {"datastore": answer["datastore_id"]}
        organizations.set_credentials(
            session,
            organization,
            "geoplateforme",
            {
                "client_id": answer["client_id"],
                "client_secret": answer["client_secret"],
                "datastore_id": answer["datastore_id"],
            },
            actor=None,
        )
    else:
        return
    organization.remote = remote
    organizations_repository.save(session, organization)
    logger.info("provisioned %s on the %s emulator", organization.slug, target)


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    from connectors.base import TransientConnectorError

    try:
        response = httpx.post(url, json=body, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise TransientConnectorError(f"émulateur injoignable ({type(exc).__name__})") from exc
    data: dict[str, Any] = response.json()
    return data
