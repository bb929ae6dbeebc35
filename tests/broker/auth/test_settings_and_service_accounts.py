"""Dashboard login secrets, and service-account bindings."""

from __future__ import annotations

import tomllib

import httpx
import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from broker.auth import repository, service
from broker.auth.models import ServiceAccount
from broker.auth.service import principal_from_token
from broker.auth.settings import streamlit_auth_secrets
from broker.auth.validation import TokenValidator
from broker.errors import Conflict, InvalidInput, NotFound
from tests.broker.auth.conftest import MONTPELLIER, TOULOUSE, make_auth_settings
from tests.fixtures.oidc import DASHBOARD_CLIENT, OIDCProvider


def test_streamlit_secrets_point_at_the_same_issuer(oidc_provider: OIDCProvider) -> None:
    settings = make_auth_settings(
        oidc_provider.issuer,
        dashboard_oidc_client_id=DASHBOARD_CLIENT[0],
        dashboard_oidc_client_secret=DASHBOARD_CLIENT[1],
        dashboard_oidc_redirect_uri="http://127.0.0.1:8501/oauth2callback",
        dashboard_cookie_secret='un "secret" \\ de cookie assez long – é',
    )
    text = streamlit_auth_secrets(settings)
    auth = tomllib.loads(text)["auth"]
    assert auth["client_id"] == "broker-dashboard"
    assert auth["client_secret"] == "broker-dashboard-secret"
    assert auth["redirect_uri"] == "http://127.0.0.1:8501/oauth2callback"
    assert auth["cookie_secret"] == 'un "secret" \\ de cookie assez long – é'
    assert auth["expose_tokens"] == ["access"]
    assert auth["server_metadata_url"] == f"{oidc_provider.issuer}/.well-known/openid-configuration"

    # The URL it names answers on the provider, for the issuer the API trusts.
    metadata = httpx.get(auth["server_metadata_url"], timeout=10).json()
    assert metadata["issuer"] == settings.oidc_issuer
    assert "S256" in metadata["code_challenge_methods_supported"]  # Streamlit then uses PKCE


def test_dashboard_client_can_log_in(
    oidc_provider: OIDCProvider, validator: TokenValidator, session: Session
) -> None:
    """The dashboard's client, logging in as st.login does (PKCE, prompt=select_account), gets an access
    token the API accepts for the same person."""
    tokens = oidc_provider.user_tokens(
        "bruno",
        client=DASHBOARD_CLIENT,
        redirect_uri="http://127.0.0.1:8501/oauth2callback",
        scope="openid profile email",
        prompt="select_account",
    )
    assert tokens["id_token"]
    principal = principal_from_token(tokens["access_token"], session, validator)
    assert principal.username == "bruno" and principal.client_id == "broker-dashboard"
    assert principal.roles == frozenset({"referent"})


@pytest.mark.parametrize(
    "overrides",
    [
        {"dashboard_oidc_client_secret": "s", "dashboard_cookie_secret": None},
        {"dashboard_oidc_client_secret": None, "dashboard_cookie_secret": "c"},
    ],
)
def test_streamlit_secrets_need_secrets(overrides: dict[str, str | None]) -> None:
    with pytest.raises(ValueError):
        streamlit_auth_secrets(make_auth_settings("https://sso.openig.example/realms/openig", **overrides))
    with pytest.raises(ValueError):
        streamlit_auth_secrets(
            make_auth_settings(None, dashboard_oidc_client_secret="s", dashboard_cookie_secret="c")
        )


def test_secrets_are_not_in_repr() -> None:
    settings = make_auth_settings(
        None, dashboard_oidc_client_secret="tres-secret", dashboard_cookie_secret="biscuit"
    )
    assert "tres-secret" not in repr(settings) and "biscuit" not in repr(settings)


def test_bind_and_unbind(session: Session) -> None:
    account = service.bind_service_account(session, " harvester-montpellier ", MONTPELLIER, "producer")
    session.commit()
    assert account.client_id == "harvester-montpellier" and account.created_at is not None
    assert repository.get_service_account(session, "harvester-montpellier") == account
    with pytest.raises(Conflict):
        service.bind_service_account(session, "harvester-montpellier", TOULOUSE, "producer")
    service.bind_service_account(session, "sig-toulouse", TOULOUSE, "referent")
    assert [a.client_id for a in service.service_accounts(session)] == [
        "harvester-montpellier",
        "sig-toulouse",
    ]
    assert [a.client_id for a in service.service_accounts(session, TOULOUSE)] == ["sig-toulouse"]
    service.unbind_service_account(session, "sig-toulouse")
    with pytest.raises(NotFound):
        service.unbind_service_account(session, "sig-toulouse")


def test_bind_validates(session: Session) -> None:
    with pytest.raises(InvalidInput) as info:
        service.bind_service_account(session, "", "", "admin")
    assert set(info.value.fields) == {"client_id", "organization", "role"}


def test_client_id_is_unique_in_the_table(session: Session) -> None:
    session.add(ServiceAccount(client_id="dup", organization=MONTPELLIER, role="producer"))
    session.commit()
    session.add(ServiceAccount(client_id="dup", organization=TOULOUSE, role="producer"))
    with pytest.raises(IntegrityError):
        session.commit()
