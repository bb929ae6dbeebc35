"""The dependencies and routes in a small FastAPI app, over the real OIDC provider and the local issuer."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc.jwk import RSAKey
from sqlalchemy.engine import Engine
from sqlmodel import Session

from broker.auth import service
from broker.auth.dependencies import (
    CurrentPrincipal,
    OptionalPrincipal,
    StaffPrincipal,
    require_organization_manage,
    require_organization_write,
)
from broker.auth.router import router
from broker.auth.tokens import issue_local_token
from broker.auth.validation import TokenValidator, get_token_validator
from broker.config import Settings
from broker.db import get_session
from broker.errors import install_error_handlers
from tests.broker.auth.conftest import MONTPELLIER, TOULOUSE, local_claims, make_auth_settings, sign
from tests.fixtures.oidc import OIDCProvider


def build_app(validator: TokenValidator, engine: Engine) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(router)

    @app.post("/api/v1/organizations/{slug}/publications")
    def publish(slug: str, principal: CurrentPrincipal) -> dict[str, str]:
        require_organization_write(principal, slug)
        return {"published_by": principal.subject, "organization": slug}

    @app.put("/api/v1/organizations/{slug}/access-list")
    def manage(slug: str, principal: CurrentPrincipal) -> dict[str, str]:
        require_organization_manage(principal, slug)
        return {"managed": slug}

    @app.get("/api/v1/gaps-admin")
    def staff_only(principal: StaffPrincipal) -> dict[str, str]:
        return {"staff": principal.subject}

    @app.get("/api/v1/catalogue")
    def catalogue(principal: OptionalPrincipal) -> dict[str, str | None]:
        return {"viewer": principal.subject if principal else None}

    def session_override() -> Iterator[Session]:
        with Session(engine) as session:
            yield session
            session.commit()

    app.dependency_overrides[get_token_validator] = lambda: validator
    app.dependency_overrides[get_session] = session_override
    return app


@pytest.fixture
def client(
    validator: TokenValidator, engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    # The router reads the process settings for the local JWKS and discovery: point them at this test's.
    monkeypatch.setattr("broker.auth.router.get_settings", lambda: settings)
    monkeypatch.setattr("broker.auth.keys.get_settings", lambda: settings)
    with TestClient(build_app(validator, engine)) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_missing_header_is_401_with_challenge(client: TestClient) -> None:
    response = client.get("/api/v1/auth/me")
    assert response.status_code == 401
    # RFC 6750 §3.1: no credentials -> a bare challenge, without error code.
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="broker"'
    body = response.json()
    assert body["error"] == "unauthorized" and "Authentification requise" in body["detail"]


def test_bad_token_is_401_invalid_token(client: TestClient) -> None:
    response = client.get("/api/v1/auth/me", headers=bearer("pas.un.jeton"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="broker", error="invalid_token"'
    assert "pas.un.jeton" not in response.text  # the token never comes back


def test_other_schemes_are_refused(client: TestClient) -> None:
    for header in ("Basic YWxpY2U6YWxpY2UtcHc=", "Bearer", "Bearer a b"):
        response = client.get("/api/v1/auth/me", headers={"Authorization": header})
        assert response.status_code == 401
        assert 'error="invalid_request"' in response.headers["WWW-Authenticate"]


def test_me_with_a_provider_user_token(client: TestClient, oidc_provider: OIDCProvider) -> None:
    response = client.get("/api/v1/auth/me", headers=bearer(oidc_provider.user_token("alice")))
    assert response.status_code == 200, response.text
    me = response.json()
    assert me["username"] == "alice"
    assert me["email"] == "alice@montpellier3m.example.fr"
    assert me["roles"] == ["producer"]
    assert me["organizations"] == [MONTPELLIER]
    assert me["client_id"] == "broker-web"
    assert me["service_account"] is False
    assert me["issuer"] == oidc_provider.issuer


def test_scheme_is_case_insensitive(client: TestClient, settings: Settings) -> None:
    token = issue_local_token("agent", MONTPELLIER, "producer", settings=settings)
    assert client.get("/api/v1/auth/me", headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_service_account_binding(client: TestClient, oidc_provider: OIDCProvider, engine: Engine) -> None:
    with Session(engine) as session:
        service.bind_service_account(session, "broker-backend", TOULOUSE, "referent")
        session.commit()
    token = oidc_provider.client_credentials_token("broker-backend")
    me = client.get("/api/v1/auth/me", headers=bearer(token)).json()
    assert me["service_account"] is True
    assert me["roles"] == ["referent"] and me["organizations"] == [TOULOUSE]
    assert (
        client.put(f"/api/v1/organizations/{TOULOUSE}/access-list", headers=bearer(token)).status_code == 200
    )
    assert (
        client.post(f"/api/v1/organizations/{MONTPELLIER}/publications", headers=bearer(token)).status_code
        == 403
    )


def test_unbound_service_account_gets_403_everywhere(client: TestClient, oidc_provider: OIDCProvider) -> None:
    token = oidc_provider.client_credentials_token("orphan-client")
    for method, path in (
        ("GET", "/api/v1/auth/me"),
        ("GET", "/api/v1/catalogue"),
        ("POST", f"/api/v1/organizations/{MONTPELLIER}/publications"),
        ("GET", "/api/v1/gaps-admin"),
    ):
        response = client.request(method, path, headers=bearer(token))
        assert response.status_code == 403, path
        assert response.json()["error"] == "forbidden"


def test_producer_of_a_writing_b_is_403(client: TestClient, oidc_provider: OIDCProvider) -> None:
    token = oidc_provider.user_token("alice")
    assert (
        client.post(f"/api/v1/organizations/{MONTPELLIER}/publications", headers=bearer(token)).status_code
        == 200
    )
    response = client.post(f"/api/v1/organizations/{TOULOUSE}/publications", headers=bearer(token))
    assert response.status_code == 403
    assert TOULOUSE in response.json()["detail"]
    assert (
        client.put(f"/api/v1/organizations/{MONTPELLIER}/access-list", headers=bearer(token)).status_code
        == 403
    )


def test_board_and_staff(client: TestClient, oidc_provider: OIDCProvider) -> None:
    board = oidc_provider.user_token("denis")
    assert (
        client.post(f"/api/v1/organizations/{MONTPELLIER}/publications", headers=bearer(board)).status_code
        == 403
    )
    assert client.get("/api/v1/gaps-admin", headers=bearer(board)).status_code == 403
    staff = oidc_provider.user_token("chloe")
    assert (
        client.post(f"/api/v1/organizations/{TOULOUSE}/publications", headers=bearer(staff)).status_code
        == 200
    )
    assert client.get("/api/v1/gaps-admin", headers=bearer(staff)).status_code == 200


def test_optional_principal(client: TestClient, settings: Settings) -> None:
    assert client.get("/api/v1/catalogue").json() == {"viewer": None}
    token = issue_local_token("lecteur", None, "board", settings=settings)
    assert client.get("/api/v1/catalogue", headers=bearer(token)).json() == {"viewer": "lecteur"}
    # A broken token is not silently anonymous.
    assert client.get("/api/v1/catalogue", headers=bearer("jeton-casse")).status_code == 401


def test_local_jwks_and_discovery(client: TestClient, settings: Settings) -> None:
    response = client.get("/api/v1/auth/jwks.json")
    assert response.status_code == 200
    assert "max-age" in response.headers["Cache-Control"]
    (key,) = response.json()["keys"]
    assert key["kty"] == "EC" and "d" not in key

    token = issue_local_token("agent", MONTPELLIER, "producer", settings=settings)
    assert key["kid"] in client.get("/api/v1/auth/jwks.json").text
    assert client.get("/api/v1/auth/me", headers=bearer(token)).json()["roles"] == ["producer"]

    for path in ("/api/v1/auth/.well-known/openid-configuration", "/local/.well-known/openid-configuration"):
        document = client.get(path).json()
        assert document["issuer"] == settings.effective_token_issuer
        assert document["jwks_uri"] == "http://127.0.0.1:8000/api/v1/auth/jwks.json"


def test_issuer_down_is_503(settings: Settings, engine: Engine) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}/realms/openig"
    validator = TokenValidator(settings, make_auth_settings(issuer, oidc_http_timeout_seconds=2))

    token = sign({**local_claims(settings), "iss": issuer}, RSAKey.generate_key(2048, auto_kid=True), "RS256")
    try:
        with TestClient(build_app(validator, engine)) as client:
            response = client.get("/api/v1/auth/me", headers=bearer(token))
        assert response.status_code == 503
        assert response.json()["error"] == "unavailable"
    finally:
        validator.close()


def test_openapi_declares_bearer(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
