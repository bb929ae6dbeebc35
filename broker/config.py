"""Deployment settings, read from ``BROKER_*`` environment variables and an optional ``.env`` file."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

logger = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Every knob of a deployment. Domain rules live in ``categories.yaml``, not here."""

    model_config = SettingsConfigDict(env_prefix="BROKER_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./var"), description="Where the database, files, keys and logs live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default is SQLite under the data directory."
    )
    redis_url: str | None = Field(
        None,
        description="Celery broker and result URL. Unset: the embedded Redis started by `broker up` "
        "(its address is read from the data directory).",
    )
    categories: Path | None = Field(
        None, description="categories.yaml to use; default ./categories.yaml, else the shipped copy."
    )
    public_url: str = Field(
        "http://127.0.0.1:8000", description="Address the world uses to reach the broker."
    )
    log_level: str = Field("INFO", description="Python logging level.")

    # Deliveries
    delivery_lease_seconds: int = Field(
        120, description="A running delivery whose worker is silent this long is taken over."
    )
    retry_base_seconds: float = Field(5.0, description="First retry delay; doubles at each attempt.")
    retry_max_seconds: float = Field(900.0, description="Upper bound of a retry delay.")
    max_attempts: int = Field(12, description="Attempts before a transient failure becomes `failed`.")
    sweep_interval_seconds: float = Field(30.0, description="How often beat runs the delivery sweeper.")
    pending_timeout_seconds: float = Field(
        60.0, description="A delivery pending this long after its enqueue is enqueued again."
    )
    regional_copy_rate: int | None = Field(
        None, description="Optional cap, in bytes per second, on copies into the regional store."
    )
    regional_hard_link: bool = Field(
        True,
        description="Hard-link files into the regional store when on the same file system "
        "(false: always keep an independent copy).",
    )

    # Intake
    max_upload_bytes: int = Field(5 * 1024**3, description="Largest accepted file (413 beyond).")

    # Local tokens (the OIDC settings live in broker.auth.settings)
    token_issuer: str | None = Field(
        None, description="Issuer of locally minted tokens; default `urn:openig-broker:local`."
    )
    token_audience: str = Field("broker-api", description="Audience expected in every access token.")
    secret_key: SecretStr | None = Field(
        None,
        description="Key that encrypts stored credentials; default generated in the data directory.",
    )

    # data.gouv.fr (connector: connectors/datagouv). Unset URL: `broker up` runs the local emulator.
    datagouv_url: str | None = Field(
        None, description="data.gouv.fr API root ending in /api/1 (production or demo)."
    )
    datagouv_api_key: SecretStr | None = Field(
        None, description="Shared OPenIG key; per-organisation keys are set through the API."
    )
    datagouv_emulator: bool = Field(False, description="The URL is the local emulator (set by broker up).")
    datagouv_withdraw_mode: str = Field("delete", description="delete or archive on withdrawal.")

    # Géoplateforme (connector: connectors/geoplateforme). Unset URL: `broker up` runs the local emulator.
    geoplateforme_api_url: str | None = Field(None, description="Entrepôt API root ending in /api.")
    geoplateforme_token_url: str | None = Field(None, description="Keycloak token endpoint of the SSO.")
    geoplateforme_csw_url: str | None = Field(None, description="CSW catalogue of published records.")
    geoplateforme_client_id: str | None = Field(None, description="Shared OPenIG service account.")
    geoplateforme_client_secret: SecretStr | None = Field(None, description="Its secret.")
    geoplateforme_datastore_id: str | None = Field(None, description="Shared datastore, if any.")
    geoplateforme_emulator: bool = Field(
        False, description="The URL is the local emulator (set by broker up)."
    )
    emulator_step_seconds: float = Field(
        0.5, description="How fast the Géoplateforme emulator advances its asynchronous statuses."
    )
    emulators: bool = Field(
        True, description="`broker up` runs the national emulators for targets without credentials."
    )

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'broker.db'}"

    @property
    def effective_token_issuer(self) -> str:
        # Not derived from the public URL: operator commands mint tokens without knowing which address
        # `broker up` or the API was given, and the key in the data directory is what proves them.
        return self.token_issuer or "urn:openig-broker:local"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def regional_dir(self) -> Path:
        return self.data_dir / "regional"

    @property
    def run_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    def effective_redis_url(self) -> str:
        """The Redis URL: explicit, else the one `broker up` wrote for its embedded server."""
        if self.redis_url:
            return self.redis_url
        recorded = self.run_dir / "redis.url"
        if recorded.exists():
            return recorded.read_text().strip()
        # Nothing running yet: a URL that fails fast and clearly rather than a silent default.
        return "redis://127.0.0.1:6379/0"


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


def reset_settings() -> None:
    """Forget cached settings (the CLI sets BROKER_DATA_DIR from its options before the first read)."""
    get_settings.cache_clear()
