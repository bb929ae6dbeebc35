"""Claims mapping: Keycloak-shaped tokens to broker roles and organisations."""

from __future__ import annotations

from typing import Any

import pytest

from broker.auth.claims import ClaimsMapping, map_claims
from broker.auth.settings import AuthSettings
from tests.broker.auth.conftest import make_auth_settings

KEYCLOAK = ClaimsMapping.from_settings(make_auth_settings("https://sso.openig.example/realms/openig"))
WITH_ROLE_MAP = ClaimsMapping.from_settings(
    make_auth_settings(
        "https://sso.openig.example/realms/openig",
        oidc_role_map={"publisher": "producer", "openig-admin": "staff", "ca": "board"},
    )
)
USER = {"sub": "0b7f6c0e-5d1c-4f0e-8d2a-1c9e7a3b0001", "azp": "broker-web"}


@pytest.mark.parametrize(
    ("claims", "mapping", "roles"),
    [
        (
            {"realm_access": {"roles": ["producer", "default-roles-openig", "offline_access"]}},
            KEYCLOAK,
            {"producer"},
        ),
        ({"resource_access": {"broker-api": {"roles": ["referent"]}}}, KEYCLOAK, {"referent"}),
        # Client roles of another client are not the broker's.
        ({"resource_access": {"account": {"roles": ["staff", "manage-account"]}}}, KEYCLOAK, set()),
        (
            {
                "realm_access": {"roles": ["board"]},
                "resource_access": {"broker-api": {"roles": ["producer"]}},
            },
            KEYCLOAK,
            {"board", "producer"},
        ),
        ({"realm_access": {"roles": ["publisher"]}}, KEYCLOAK, {"producer"}),  # make_auth_settings maps it
        ({"realm_access": {"roles": ["openig-admin", "ca"]}}, WITH_ROLE_MAP, {"staff", "board"}),
        ({"realm_access": {"roles": ["staff"]}}, WITH_ROLE_MAP, {"staff"}),  # broker names map to themselves
        ({"realm_access": {"roles": ["Producer", "admin"]}}, KEYCLOAK, set()),  # case-sensitive, as Keycloak
        ({"realm_access": {"roles": "producer"}}, KEYCLOAK, {"producer"}),
        ({"realm_access": ["producer"]}, KEYCLOAK, set()),  # malformed: ignored, not a crash
        ({}, KEYCLOAK, set()),
    ],
)
def test_roles(claims: dict[str, Any], mapping: ClaimsMapping, roles: set[str]) -> None:
    assert map_claims({**USER, **claims}, mapping).roles == frozenset(roles)


def test_roles_claim_paths_and_client_id_are_configurable() -> None:
    mapping = ClaimsMapping.from_settings(
        make_auth_settings(
            None, oidc_client_id="portail-sig", oidc_roles_claim="resource_access.{client_id}.roles,roles"
        )
    )
    claims = {**USER, "resource_access": {"portail-sig": {"roles": ["referent"]}}, "roles": ["board"]}
    assert map_claims(claims, mapping).roles == frozenset({"referent", "board"})
    # realm roles are no longer read with that configuration
    assert map_claims({**USER, "realm_access": {"roles": ["staff"]}}, mapping).roles == frozenset()


@pytest.mark.parametrize(
    ("claims", "organizations"),
    [
        ({"organisation": "montpellier-mediterranee-metropole"}, ("montpellier-mediterranee-metropole",)),
        ({"organization": "toulouse-metropole"}, ("toulouse-metropole",)),
        ({"organisation": ["sete-agglopole", "region-occitanie"]}, ("sete-agglopole", "region-occitanie")),
        ({"groups": ["/organisations/nimes-metropole"]}, ("nimes-metropole",)),
        ({"groups": ["/organisations/nimes-metropole/editeurs"]}, ("nimes-metropole",)),  # subgroup
        ({"groups": ["organisations/perpignan-mediterranee"]}, ("perpignan-mediterranee",)),  # no full path
        ({"groups": ["/staff-sig", "/organisations-archive/x", "/organisations/"]}, ()),
        (
            {"organisation": "albi", "groups": ["/organisations/albi", "/organisations/castres"]},
            ("albi", "castres"),
        ),
        ({"organisation": "", "groups": "pas-une-liste"}, ()),
        ({}, ()),
    ],
)
def test_organizations(claims: dict[str, Any], organizations: tuple[str, ...]) -> None:
    assert map_claims({**USER, **claims}, KEYCLOAK).organizations == organizations


def test_custom_organization_claim_and_group_prefix() -> None:
    mapping = ClaimsMapping.from_settings(
        make_auth_settings(None, oidc_organization_claim="org_slug", oidc_group_prefix="/membres/")
    )
    claims = {
        **USER,
        "org_slug": "carcassonne-agglo",
        "organisation": "ignored",
        "groups": ["/membres/rodez"],
    }
    assert map_claims(claims, mapping).organizations == ("carcassonne-agglo", "rodez")


@pytest.mark.parametrize(
    ("claims", "service_account", "client_id"),
    [
        # Keycloak: the service-account user has a UUID sub, and its username names the client.
        (
            {
                "sub": "7a1e0c44-0f5e-4b39-9a43-5b2c1d0e9f10",
                "azp": "harvester-montpellier",
                "client_id": "harvester-montpellier",
                "preferred_username": "service-account-harvester-montpellier",
            },
            True,
            "harvester-montpellier",
        ),
        # Keycloak lowercases the username of a client whose id has capitals.
        (
            {"sub": "u-1", "azp": "SIG-Albi", "preferred_username": "service-account-sig-albi"},
            True,
            "SIG-Albi",
        ),
        # Older Keycloak: clientId claim.
        (
            {"sub": "u-2", "clientId": "old-client", "preferred_username": "service-account-old-client"},
            True,
            "old-client",
        ),
        # oidc-provider / RFC 9068 §2.2: sub is the client id.
        ({"sub": "broker-backend", "client_id": "broker-backend"}, True, "broker-backend"),
        # A person logged in through a client: not a service account.
        ({"sub": "u-3", "azp": "broker-web", "preferred_username": "alice"}, False, "broker-web"),
        # A username that names ANOTHER client does not make a service account.
        (
            {"sub": "u-4", "azp": "broker-web", "preferred_username": "service-account-harvester"},
            False,
            "broker-web",
        ),
        ({"sub": "u-5"}, False, None),
    ],
)
def test_service_account_detection(
    claims: dict[str, Any], service_account: bool, client_id: str | None
) -> None:
    mapped = map_claims(claims, KEYCLOAK)
    assert mapped.service_account is service_account
    assert mapped.client_id == client_id


def test_identity_fields() -> None:
    mapped = map_claims({**USER, "preferred_username": "alice", "email": "alice@example.fr"}, KEYCLOAK)
    assert (mapped.subject, mapped.username, mapped.email) == (USER["sub"], "alice", "alice@example.fr")
    assert map_claims({**USER, "preferred_username": 42, "email": ""}, KEYCLOAK).username is None
    with pytest.raises(ValueError):
        map_claims({"preferred_username": "sans-sujet"}, KEYCLOAK)


def test_role_map_refuses_unknown_broker_roles() -> None:
    with pytest.raises(ValueError):
        make_auth_settings(None, oidc_role_map={"publisher": "admin"})


def test_role_map_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKER_OIDC_ROLE_MAP", '{"publisher":"producer"}')
    monkeypatch.setenv("BROKER_OIDC_ROLES_CLAIM", '["realm_access.roles"]')
    monkeypatch.setenv("BROKER_OIDC_ALLOWED_ALGORITHMS", "RS256,PS256")
    settings = AuthSettings(_env_file=None)
    assert settings.oidc_role_map == {"publisher": "producer"}
    assert settings.oidc_roles_claim == ["realm_access.roles"]
    assert settings.oidc_allowed_algorithms == ["RS256", "PS256"]
