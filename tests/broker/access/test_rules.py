"""Pure rules of restricted access: who reads with a given list, how entries are checked and merged."""

from __future__ import annotations

import pytest

from broker.access.service import AccessList, clean_users, has_access
from broker.auth.principal import Principal
from broker.errors import InvalidInput
from tests.broker.access.conftest import MONTPELLIER, SETE, TOULOUSE


def person(
    subject: str = "5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0009",
    *,
    email: str | None = None,
    roles: tuple[str, ...] = (),
    organizations: tuple[str, ...] = (),
) -> Principal:
    return Principal(
        subject=subject,
        username=None,
        email=email,
        roles=frozenset(roles),
        organizations=organizations,
        client_id="broker-web",
        service_account=False,
        issuer="https://sso.openig.example/realms/openig",
    )


LIST = AccessList(
    users=("Lea.Dupont@example.fr", "5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0042"), organizations=(TOULOUSE,)
)


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (person(email="lea.dupont@EXAMPLE.fr"), True),  # emails compare without case
        (person("5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0042"), True),  # listed subject
        (person("5F0C2A71-1D0E-4C47-9A7E-0B9A3A1C0042"), False),  # subjects are opaque: exact match only
        (person(roles=("producer",), organizations=(TOULOUSE,)), True),  # member of a listed organisation
        (person(roles=("producer",), organizations=(MONTPELLIER,)), True),  # the producing organisation
        (person(roles=("referent",), organizations=(SETE,)), False),  # a referent elsewhere
        (person(roles=("staff",)), True),
        (person(roles=("board",)), False),  # the board reads dashboards, not restricted data
        (person(email="marc.petit@example.fr"), False),
        (person(), False),
    ],
)
def test_who_reads_a_restricted_publication(who: Principal, expected: bool) -> None:
    assert has_access(who, MONTPELLIER, LIST) is expected


def test_entries_are_trimmed_and_deduplicated_emails_without_case() -> None:
    cleaned = clean_users(
        [" lea.dupont@example.fr", "LEA.DUPONT@example.fr", "agent-42", "agent-42 ", "Agent-42"]
    )
    # Subjects keep their case (two different people), emails do not.
    assert cleaned == ["lea.dupont@example.fr", "agent-42", "Agent-42"]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("", "entrée vide"),
        ("   ", "entrée vide"),
        ("lea dupont@example.fr", "ni espace"),
        ("lea.dupont@", "adresse électronique invalide"),
        ("@example.fr", "adresse électronique invalide"),
        ("lea@localhost", "adresse électronique invalide"),
        ("x" * 321, "trop long"),
        ("agent\t42", "ni espace"),
    ],
)
def test_bad_entries_are_named_by_position(entry: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        clean_users(["agent-42", entry])
    assert list(caught.value.fields) == ["users.1"]
    assert message in caught.value.fields["users.1"][0]


def test_granting_adds_subject_and_email_once() -> None:
    grown = LIST.with_user("5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0077", "marc.petit@example.fr")
    assert grown.users[-2:] == ("5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0077", "marc.petit@example.fr")
    assert grown.organizations == LIST.organizations
    # Already listed (email in another case), or no email at all: nothing changes.
    assert LIST.with_user("5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0042", "LEA.DUPONT@example.fr") == LIST
    assert LIST.with_user("5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0042", None) == LIST


def test_the_manifest_round_trip() -> None:
    manifest = {"restricted_to": {"users": ["a@example.fr"], "organizations": [TOULOUSE]}}
    assert AccessList.from_manifest(manifest).as_manifest() == manifest["restricted_to"]
    assert AccessList.from_manifest({}) == AccessList()


def test_the_same_people_in_another_order_or_case_is_the_same_list() -> None:
    reordered = AccessList(
        users=("5f0c2a71-1d0e-4c47-9a7e-0b9a3a1c0042", "LEA.DUPONT@EXAMPLE.FR"), organizations=(TOULOUSE,)
    )
    assert reordered.same_as(LIST)
    assert not LIST.same_as(AccessList(users=LIST.users, organizations=()))
    # A subject in another case is another person.
    assert not LIST.same_as(
        AccessList(users=("lea.dupont@example.fr", "5F0C2A71-1D0E-4C47-9A7E-0B9A3A1C0042"))
    )
