"""The page's SSO login: authorization code + PKCE through a real OIDC provider (npm oidc-provider with
Keycloak's paths), Authlib's Starlette client on our side, the access token then checked by the API's own
validation path and kept in the page cookie."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import parse_qs, urljoin, urlparse

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.broker.access.conftest import PUBLIC_URL, Seeded, bearer, csrf_of, reset_caches
from tests.fixtures.oidc import USERS, OIDCProvider, start_oidc_provider, stop_process

CALLBACK = f"{PUBLIC_URL}/acces/callback"


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    """Our own provider: the session one does not know the page's callback address."""
    process, started = start_oidc_provider(
        tmp_path_factory.mktemp("oidc-pages"), extra_env={"EXTRA_REDIRECT_URIS": CALLBACK}
    )
    try:
        yield started
    finally:
        stop_process(process)


@pytest.fixture
def sso_client(
    provider: OIDCProvider, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    monkeypatch.setenv("BROKER_OIDC_ISSUER", provider.issuer)
    monkeypatch.setenv("BROKER_OIDC_ROLE_MAP", '{"publisher": "producer"}')
    monkeypatch.setenv("BROKER_DASHBOARD_OIDC_CLIENT_ID", "broker-dashboard")
    monkeypatch.setenv("BROKER_DASHBOARD_OIDC_CLIENT_SECRET", "broker-dashboard-secret")
    reset_caches()
    from broker.main import create_app

    with TestClient(create_app(), base_url=PUBLIC_URL) as client:
        yield client


def sign_in_at_provider(authorize_url: str, username: str) -> str:
    """What the browser does at the SSO: follow redirects, fill the login form; returns the callback URL."""
    with httpx.Client(timeout=10) as browser:
        response = browser.get(authorize_url)
        for _ in range(12):
            if response.status_code in (302, 303):
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(CALLBACK):
                    return location
                response = browser.get(location)
            elif response.status_code == 200 and "<form" in response.text:
                action = response.text.split('action="', 1)[1].split('"', 1)[0]
                response = browser.post(
                    urljoin(str(response.url), action),
                    data={"username": username, "password": USERS[username]},
                )
            else:
                raise AssertionError(f"login stopped at {response.status_code}: {response.text[:300]}")
    raise AssertionError("the provider never sent the browser back")


def test_sso_login_then_a_request(sso_client: TestClient, seeded: Seeded, provider: OIDCProvider) -> None:
    page = sso_client.get(f"/acces/{seeded.restricted}")
    assert page.status_code == 200
    # With SSO, no token to paste: a login link.
    assert 'action="/acces/token"' not in page.text
    assert f'href="/acces/login?publication={seeded.restricted}"' in page.text

    response = sso_client.get(
        "/acces/login", params={"publication": seeded.restricted}, follow_redirects=False
    )
    assert response.status_code == 302
    authorize = urlparse(response.headers["location"])
    query = parse_qs(authorize.query)
    assert response.headers["location"].startswith(provider.metadata["authorization_endpoint"])
    assert query["client_id"] == ["broker-dashboard"] and query["redirect_uri"] == [CALLBACK]
    assert query["code_challenge_method"] == ["S256"] and query["code_challenge"][0]  # PKCE
    assert query["state"][0] and query["nonce"][0]
    assert "code_verifier" not in response.headers["location"]

    callback = sign_in_at_provider(response.headers["location"], "denis")
    response = sso_client.get(callback, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/acces/{seeded.restricted}"

    html = sso_client.get(f"/acces/{seeded.restricted}").text
    assert "Connecté·e en tant que <strong>denis</strong>" in html and "denis@openig.example.org" in html
    response = sso_client.post(
        f"/acces/{seeded.restricted}/request",
        data={"csrf": csrf_of(html), "reason": "Tableau de bord du bureau : couverture du réseau."},
        follow_redirects=True,
    )
    assert "est en attente" in response.text

    # The request carries the SSO identity; the API agrees with what the page did.
    from broker.access import repository
    from broker.db import session_scope

    with session_scope() as session:
        (request,) = repository.search(session, publication_id=seeded.restricted)
    assert (
        request.subject == "5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0004"
        and request.email == "denis@openig.example.org"
    )
    staff_token = provider.user_token("chloe")
    listed = sso_client.get("/api/v1/access-requests", headers=bearer(staff_token)).json()
    assert [r["username"] for r in listed] == ["denis"]


def test_a_forged_callback_is_refused(sso_client: TestClient, seeded: Seeded) -> None:
    sso_client.get(f"/acces/{seeded.restricted}")
    response = sso_client.get("/acces/callback", params={"code": "stolen", "state": "forged"})
    assert response.status_code == 400
    assert "La connexion n&#39;a pas abouti" in response.text
    response = sso_client.get("/acces/callback", params={"error": "access_denied", "state": "x"})
    assert response.status_code == 400


def test_no_token_pasting_when_sso_is_configured(sso_client: TestClient, seeded: Seeded) -> None:
    html = sso_client.get(f"/acces/{seeded.restricted}").text
    assert "<form" not in html  # an anonymous visitor only gets the SSO link
    response = sso_client.post(
        "/acces/token", data={"csrf": "x", "token": "x", "publication": seeded.restricted}
    )
    assert response.status_code == 404
