"""Access rules (DESIGN §6): who may read, write and manage which organisation."""

from __future__ import annotations

import itertools

import pytest

from broker.auth.dependencies import (
    RULES,
    check_rule,
    require_organization_manage,
    require_organization_write,
    require_read,
    require_role,
    require_staff,
)
from broker.auth.principal import Principal
from broker.errors import Forbidden

MTP = "montpellier-mediterranee-metropole"
TLS = "toulouse-metropole"


def principal(*roles: str, organizations: tuple[str, ...] = (), service_account: bool = False) -> Principal:
    return Principal(
        subject=f"sujet-{'-'.join(roles) or 'aucun'}",
        username="agent",
        email=None,
        roles=frozenset(roles),
        organizations=organizations,
        client_id="broker-web",
        service_account=service_account,
        issuer="https://sso.openig.example/realms/openig",
    )


PRODUCER_MTP = principal("producer", organizations=(MTP,))
REFERENT_TLS = principal("referent", organizations=(TLS,))
STAFF = principal("staff")
BOARD = principal("board")
NOBODY = principal(organizations=(MTP,))


def test_principal_helpers() -> None:
    assert PRODUCER_MTP.has_role("producer", "staff")
    assert not PRODUCER_MTP.has_role("referent")
    assert PRODUCER_MTP.belongs_to(MTP) and not PRODUCER_MTP.belongs_to(TLS)
    assert STAFF.is_staff and not BOARD.is_staff
    with pytest.raises(AttributeError):
        PRODUCER_MTP.subject = "autre"  # type: ignore[misc]


def test_producer_of_a_writes_b_is_forbidden() -> None:
    require_organization_write(PRODUCER_MTP, MTP)
    with pytest.raises(Forbidden) as info:
        require_organization_write(PRODUCER_MTP, TLS)
    assert info.value.status_code == 403
    assert f"« {TLS} »" in info.value.detail


def test_board_cannot_write() -> None:
    require_read(BOARD)
    for org in (MTP, TLS):
        with pytest.raises(Forbidden) as info:
            require_organization_write(BOARD, org)
        assert "rôles" in info.value.detail
    with pytest.raises(Forbidden):
        require_organization_manage(BOARD, MTP)
    with pytest.raises(Forbidden):
        require_staff(BOARD)


def test_producer_cannot_manage_even_its_own_organisation() -> None:
    with pytest.raises(Forbidden):
        require_organization_manage(PRODUCER_MTP, MTP)


def test_referent_manages_its_own_organisation_only() -> None:
    require_organization_manage(REFERENT_TLS, TLS)
    require_organization_write(REFERENT_TLS, TLS)
    with pytest.raises(Forbidden):
        require_organization_manage(REFERENT_TLS, MTP)


def test_staff_does_everything() -> None:
    for org in (MTP, TLS, "organisation-inconnue"):
        require_organization_write(STAFF, org)
        require_organization_manage(STAFF, org)
    require_staff(STAFF)
    require_read(STAFF)


def test_no_role_no_access() -> None:
    with pytest.raises(Forbidden) as info:
        require_read(NOBODY)
    assert "aucun rôle" in info.value.detail
    with pytest.raises(Forbidden):
        require_organization_write(NOBODY, MTP)  # belonging is not enough without a role


def test_require_role() -> None:
    require_role(BOARD, "board", "staff")
    with pytest.raises(Forbidden) as info:
        require_role(PRODUCER_MTP, "board", "staff")
    assert "bureau" in info.value.detail and "équipe OPenIG" in info.value.detail


def test_rules_table_names_every_helper() -> None:
    assert set(RULES) == {"read", "write_organization", "manage_organization", "staff"}
    assert all(rule.description for rule in RULES.values())
    with pytest.raises(KeyError):
        check_rule("publier-partout", STAFF)


# The matrix as DESIGN §6 states it, written independently of RULES: (role, own organisation?) -> allowed.
EXPECTED = {
    "read": {
        "producer": (True, True),
        "referent": (True, True),
        "staff": (True, True),
        "board": (True, True),
    },
    "write_organization": {
        "producer": (True, False),
        "referent": (True, False),
        "staff": (True, True),
        "board": (False, False),
    },
    "manage_organization": {
        "producer": (False, False),
        "referent": (True, False),
        "staff": (True, True),
        "board": (False, False),
    },
    "staff": {
        "producer": (False, False),
        "referent": (False, False),
        "staff": (True, True),
        "board": (False, False),
    },
}


@pytest.mark.parametrize(
    ("rule_name", "role", "own"),
    list(itertools.product(sorted(EXPECTED), ["producer", "referent", "staff", "board"], [True, False])),
)
def test_rule_matrix(rule_name: str, role: str, own: bool) -> None:
    who = principal(role, organizations=(MTP,))
    target = MTP if own else TLS
    allowed = EXPECTED[rule_name][role][0 if own else 1]
    assert RULES[rule_name].allows(who, target) is allowed
    if allowed:
        check_rule(rule_name, who, target)
    else:
        with pytest.raises(Forbidden):
            check_rule(rule_name, who, target)


def test_service_account_follows_the_same_rules() -> None:
    robot = principal("producer", organizations=(MTP,), service_account=True)
    require_organization_write(robot, MTP)
    with pytest.raises(Forbidden):
        require_organization_write(robot, TLS)
