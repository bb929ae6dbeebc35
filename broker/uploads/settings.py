"""Settings of resumable uploads (``BROKER_*`` environment variables, like :mod:`broker.config`).

The largest accepted upload is :attr:`broker.config.Settings.max_upload_bytes` (BROKER_MAX_UPLOAD_BYTES).
"""

from __future__ import annotations

import functools

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class UploadSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BROKER_", env_file=".env", extra="ignore")

    upload_expiry_seconds: int = Field(
        24 * 3600,
        ge=60,
        description="An upload nobody touched for this long (partial or complete) is deleted.",
    )
    upload_cleanup_interval_seconds: float = Field(
        3600.0, gt=0, description="How often beat removes expired uploads."
    )


@functools.lru_cache(maxsize=1)
def get_upload_settings() -> UploadSettings:
    return UploadSettings()
