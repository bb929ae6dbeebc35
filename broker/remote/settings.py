"""Settings of remote resources and of the e-mails sent when a sync fails (``BROKER_*`` variables)."""

from __future__ import annotations

import functools
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class RemoteSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", env_file=".env", extra="ignore")

    remote_allow_private: bool = Field(
        False,
        description="Allow fetching from loopback, private, link-local... addresses (never in production: "
        "a manifest URL must not reach the broker's own network).",
    )
    remote_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated `host` or `host:port` exempted from the address check (tests, an "
        "internal mirror). Names are compared as written in the URL, before resolution.",
    )
    remote_max_bytes: int | None = Field(
        None, description="Largest remote file fetched; default BROKER_MAX_UPLOAD_BYTES."
    )
    remote_connect_timeout_seconds: float = Field(10.0, gt=0)
    remote_read_timeout_seconds: float = Field(30.0, gt=0, description="Longest silence while reading.")
    remote_total_timeout_seconds: float = Field(600.0, gt=0, description="Longest whole fetch.")
    remote_max_redirects: int = Field(5, ge=0, le=20)
    remote_sync_interval_seconds: float = Field(
        300.0, gt=0, description="How often beat looks for remote resources due for a sync."
    )
    remote_sync_retry_seconds: float = Field(
        900.0, gt=0, description="First retry delay of a failing sync; doubles, capped at its period."
    )

    smtp_host: str | None = Field(None, description="SMTP server; unset: no e-mail is sent.")
    smtp_port: int = Field(25)
    smtp_user: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = Field("broker@localhost", description="Sender address of the broker's e-mails.")
    smtp_starttls: bool = Field(False, description="Upgrade the connection with STARTTLS (RFC 3207).")
    smtp_ssl: bool = Field(False, description="Implicit TLS (port 465, RFC 8314).")
    smtp_timeout_seconds: float = Field(10.0, gt=0)

    @field_validator("remote_allowed_hosts", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip().lower() for item in value.split(",") if item.strip()]
        return value


@functools.lru_cache(maxsize=1)
def get_remote_settings() -> RemoteSettings:
    return RemoteSettings()
