"""In-process fixtures of the access tests: the real app (create_app) on a temporary data directory with a
migrated SQLite database, rows seeded directly, and local tokens minted with the data directory's key.

Nothing here enqueues deliveries (no revision is derived), so no Redis is needed; the flows that derive
revisions run against real servers in test_restricted_e2e.py.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt

from broker.auth.keys import load_signing_key, signing_algorithm
from broker.auth.settings import reset_auth_settings
from broker.auth.tokens import issue_local_token
from broker.auth.validation import reset_token_validator
from broker.config import get_settings, reset_settings
from broker.db import engine_for, migrate, session_scope
from broker.organizations.models import Organization
from broker.publications.models import Publication, Revision

MONTPELLIER = "montpellier-mediterranee-metropole"
TOULOUSE = "toulouse-metropole"
SETE = "sete-agglopole-mediterranee"
PUBLIC_URL = "http://testserver"


def reset_caches() -> None:
    reset_settings()
    reset_auth_settings()
    reset_token_validator()
    engine_for.cache_clear()


@dataclass
class Seeded:
    organizations: dict[str, str]  # slug -> id
    restricted: str  # publication ids
    open: str
    withdrawn: str


def add_publication(
    organization_id: str,
    slug: str,
    title: str,
    *,
    access: str = "restricted",
    users: list[str] | None = None,
    organizations: list[str] | None = None,
    state: str = "active",
) -> str:
    with session_scope() as session:
        publication = Publication(organization_id=organization_id, title=title, access=access, state=state)
        session.add(publication)
        session.flush()
        manifest: dict[str, Any] = {
            "organization": slug,
            "title": title,
            "description": "Canalisations et vannes du réseau, mises à jour chaque semestre.",
            "license": "lov2",
            "access": access,
            "resources": [{"url": "https://example.org/reseau.csv"}],
        }
        if access == "restricted":
            manifest["restricted_to"] = {"users": users or [], "organizations": organizations or []}
        session.add(Revision(publication_id=publication.id, number=1, manifest=manifest))
        return publication.id


@pytest.fixture
def app_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Settings pointed at a fresh data directory (SQLite, migrated); caches reset before and after."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    for name in ("BROKER_DATABASE_URL", "BROKER_OIDC_ISSUER", "BROKER_SECRET_KEY", "BROKER_TOKEN_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BROKER_DATA_DIR", str(data_dir))
    monkeypatch.setenv("BROKER_PUBLIC_URL", PUBLIC_URL)
    reset_caches()
    migrate()
    yield data_dir
    engine = engine_for(get_settings().effective_database_url)
    engine.dispose()
    reset_caches()


@pytest.fixture
def seeded(app_env: Path) -> Seeded:
    orgs: dict[str, str] = {}
    with session_scope() as session:
        for slug, name in (
            (MONTPELLIER, "Montpellier Méditerranée Métropole"),
            (TOULOUSE, "Toulouse Métropole"),
            (SETE, "Sète Agglopôle Méditerranée"),
        ):
            organization = Organization(slug=slug, name=name)
            session.add(organization)
            session.flush()
            orgs[slug] = organization.id
    return Seeded(
        organizations=orgs,
        restricted=add_publication(
            orgs[MONTPELLIER],
            MONTPELLIER,
            "Réseau d'eau potable",
            users=["lea.dupont@example.fr", "agent-42"],
            organizations=[TOULOUSE],
        ),
        open=add_publication(orgs[MONTPELLIER], MONTPELLIER, "Pistes cyclables", access="open"),
        withdrawn=add_publication(
            orgs[MONTPELLIER], MONTPELLIER, "Ancien cadastre", users=["a@example.fr"], state="withdrawn"
        ),
    )


@pytest.fixture
def client(seeded: Seeded) -> Iterator[TestClient]:
    from broker.main import create_app

    with TestClient(create_app(), base_url=PUBLIC_URL) as test_client:
        yield test_client


def token(role: str, org: str | None = None, *, subject: str | None = None, email: str | None = None) -> str:
    """A local token, minted with this data directory's key, as `broker token issue` does."""
    return issue_local_token(subject or f"local-{role}-{org or 'openig'}", org, role, email=email)


def roleless_token(subject: str, email: str | None = None) -> str:
    """A valid token of a person with no broker role (e.g. an SSO account of a partner body): the kind of
    person who asks for access."""
    settings = get_settings()
    key = load_signing_key(settings)
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.effective_token_issuer,
        "aud": settings.token_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "preferred_username": subject,
        "realm_access": {"roles": []},
    }
    if email:
        claims["email"] = email
    alg = signing_algorithm(key)
    return jwt.encode({"alg": alg, "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=[alg])


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)
