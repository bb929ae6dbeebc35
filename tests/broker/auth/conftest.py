"""Shared helpers of the auth tests: isolated settings, validators, a SQLite database, token crafting."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy.engine import Engine
from sqlmodel import Session, SQLModel, create_engine

from broker.auth.keys import load_signing_key
from broker.auth.models import ServiceAccount
from broker.auth.settings import AuthSettings
from broker.auth.validation import TokenValidator
from broker.config import Settings
from tests.fixtures.oidc import OIDCProvider

PUBLIC_URL = "http://127.0.0.1:8000"
MONTPELLIER = "montpellier-mediterranee-metropole"
TOULOUSE = "toulouse-metropole"


def make_settings(data_dir: Path) -> Settings:
    return Settings(_env_file=None, data_dir=data_dir, public_url=PUBLIC_URL)


def make_auth_settings(issuer: str | None = None, **overrides: Any) -> AuthSettings:
    values: dict[str, Any] = {
        "oidc_issuer": issuer,
        "oidc_role_map": {"publisher": "producer"},
        "oidc_jwks_min_refresh_seconds": 30,
    }
    values.update(overrides)
    return AuthSettings(_env_file=None, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def auth_settings(oidc_provider: OIDCProvider) -> AuthSettings:
    return make_auth_settings(oidc_provider.issuer)


class FakeClock:
    """A monotonic clock the test moves by hand (rate-limit and cache windows without sleeping)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def validator(settings: Settings, auth_settings: AuthSettings, clock: FakeClock) -> Iterator[TokenValidator]:
    """A fresh validator (own JWKS cache) trusting the local issuer and the test OIDC provider."""
    instance = TokenValidator(settings, auth_settings, clock=clock)
    yield instance
    instance.close()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    db_engine = create_engine(f"sqlite:///{tmp_path / 'auth.db'}")
    SQLModel.metadata.create_all(db_engine, tables=[ServiceAccount.__table__])  # type: ignore[attr-defined]
    yield db_engine
    db_engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as db_session:
        yield db_session


def b64url(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unverified_claims(token: str) -> dict[str, Any]:
    segment = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))))


def local_claims(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Claims of a valid local token (Keycloak-shaped), with overrides (None removes a claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.effective_token_issuer,
        "aud": settings.token_audience,
        "sub": "agent-sig-42",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
        "preferred_username": "agent.sig",
        "realm_access": {"roles": ["producer"]},
        "organisation": MONTPELLIER,
    }
    for name, value in overrides.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def sign(claims: dict[str, Any], key: ECKey | RSAKey, alg: str, **header: Any) -> str:
    return jwt.encode({"alg": alg, "kid": key.kid, **header}, claims, key, algorithms=[alg])


def sign_local(settings: Settings, **overrides: Any) -> str:
    """A token signed by the local key (so only its claims can make it fail)."""
    key = load_signing_key(settings)
    return sign(local_claims(settings, **overrides), key, "ES256", typ="at+jwt")
