"""Settings of the SFTP deposit server (``BROKER_*`` environment variables)."""

from __future__ import annotations

import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SftpSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", env_file=".env", extra="ignore")

    sftp_host: str = Field("127.0.0.1", description="Address `broker sftp` listens on.")
    sftp_port: int | None = Field(
        None, description="Port of `broker sftp` (default 2222; under `broker up`, a free port)."
    )
    sftp_scan_seconds: float = Field(1.0, gt=0, description="How often the inboxes are looked at.")
    sftp_settle_seconds: float = Field(
        5.0,
        ge=0,
        description="A file not written through this server (copied by other means) counts as complete "
        "once its size and date have not changed for this long.",
    )
    sftp_wait_seconds: float = Field(
        3600.0, gt=0, description="A manifest whose files are still missing after this long is rejected."
    )
    sftp_manifest_max_bytes: int = Field(1024 * 1024, description="Larger files are never manifests.")


@functools.lru_cache(maxsize=1)
def get_sftp_settings() -> SftpSettings:
    return SftpSettings()
