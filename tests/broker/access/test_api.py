"""The access API in process (real app, SQLite, local tokens): everything that is decided before a revision
is derived. Flows that derive revisions and reach the regional store run in test_restricted_e2e.py."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from broker.access.models import AccessRequest
from broker.db import session_scope
from broker.events.models import Event
from tests.broker.access.conftest import (
    MONTPELLIER,
    SETE,
    TOULOUSE,
    Seeded,
    bearer,
    roleless_token,
    token,
)


def events(action: str) -> list[Event]:
    from sqlmodel import select

    with session_scope() as session:
        return list(session.exec(select(Event).where(Event.action == action)))


def ask(client: TestClient, publication_id: str, who: str, reason: str = "Étude d'impact du PLUi") -> Any:
    return client.post(
        f"/api/v1/publications/{publication_id}/access-requests", json={"reason": reason}, headers=bearer(who)
    )


# --------------------------------------------------------------------------------------------- the list


def test_the_list_is_shown_to_staff_and_the_organisation_only(client: TestClient, seeded: Seeded) -> None:
    path = f"/api/v1/publications/{seeded.restricted}/access"
    expected = {"users": ["lea.dupont@example.fr", "agent-42"], "organizations": [TOULOUSE]}
    for who in (token("staff"), token("referent", MONTPELLIER), token("producer", MONTPELLIER)):
        response = client.get(path, headers=bearer(who))
        assert response.status_code == 200, response.text
        body = response.json()
        assert {"users": body["users"], "organizations": body["organizations"]} == expected
        assert (
            body["organization"] == MONTPELLIER and body["access"] == "restricted" and body["revision"] == 1
        )
    # Names and emails of people are not for every reader of the broker.
    for who in (token("producer", TOULOUSE), token("referent", SETE), token("board"), roleless_token("x")):
        assert client.get(path, headers=bearer(who)).status_code == 403
    assert client.get(path).status_code == 401
    unknown = client.get("/api/v1/publications/0000/access", headers=bearer(token("staff")))
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


def test_a_list_change_is_checked_field_by_field(client: TestClient, seeded: Seeded) -> None:
    referent = bearer(token("referent", MONTPELLIER))
    path = f"/api/v1/publications/{seeded.restricted}/access"
    response = client.put(
        path,
        json={
            "users": ["lea.dupont@example.fr", "", "marc@"],
            "organizations": [TOULOUSE, "inconnue-metropole"],
        },
        headers=referent,
    )
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid"
    assert set(body["fields"]) == {"users.1", "users.2"}  # users are checked first, all of them
    response = client.put(
        path, json={"users": ["lea.dupont@example.fr"], "organizations": ["inconnue"]}, headers=referent
    )
    assert response.status_code == 422
    assert "organisation inconnue" in response.json()["fields"]["organizations.0"][0]
    response = client.put(path, json={"users": [], "organizations": []}, headers=referent)
    assert response.status_code == 422 and "au moins une personne" in response.json()["detail"]
    response = client.put(path, json={"users": ["a@example.fr"], "groups": []}, headers=referent)
    assert response.status_code == 422  # unknown keys are refused, not ignored


def test_the_same_list_again_changes_nothing(client: TestClient, seeded: Seeded) -> None:
    response = client.put(
        f"/api/v1/publications/{seeded.restricted}/access",
        # Same entries, other spacing and email case: the same list.
        json={"users": [" LEA.DUPONT@example.fr", "agent-42"], "organizations": [TOULOUSE, TOULOUSE]},
        headers=bearer(token("staff")),
    )
    assert response.status_code == 200, response.text
    assert response.json()["changed"] is False and response.json()["revision"] == 1
    assert events("access.changed") == []


def test_only_referents_and_staff_change_the_list(client: TestClient, seeded: Seeded) -> None:
    path = f"/api/v1/publications/{seeded.restricted}/access"
    body = {"users": ["marc.petit@example.fr"], "organizations": []}
    for who in (
        token("producer", MONTPELLIER),
        token("referent", TOULOUSE),
        token("board"),
        roleless_token("x"),
    ):
        response = client.put(path, json=body, headers=bearer(who))
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"
    assert client.put(path, json=body).status_code == 401


def test_open_and_withdrawn_publications_have_no_list_to_change(client: TestClient, seeded: Seeded) -> None:
    body = {"users": ["marc.petit@example.fr"], "organizations": []}
    staff = bearer(token("staff"))
    response = client.put(f"/api/v1/publications/{seeded.open}/access", json=body, headers=staff)
    assert response.status_code == 409 and "accès ouvert" in response.json()["detail"]
    response = client.put(f"/api/v1/publications/{seeded.withdrawn}/access", json=body, headers=staff)
    assert response.status_code == 409 and "retirée" in response.json()["detail"]


# --------------------------------------------------------------------------------------------- requests


def test_anyone_authenticated_may_ask_once(client: TestClient, seeded: Seeded) -> None:
    marc = roleless_token("marc-sub", "marc.petit@example.fr")
    response = ask(client, seeded.restricted, marc)
    assert response.status_code == 201, response.text
    created = response.json()
    assert response.headers["Location"] == f"/api/v1/access-requests/{created['id']}"
    assert created["status"] == "pending" and created["subject"] == "marc-sub"
    assert created["email"] == "marc.petit@example.fr" and created["organization"] == MONTPELLIER
    assert created["publication_title"] == "Réseau d'eau potable"

    again = ask(client, seeded.restricted, marc, "Autre motif")
    assert again.status_code == 409 and again.json()["error"] == "already_pending"
    with session_scope() as session:
        from sqlmodel import select

        assert len(list(session.exec(select(AccessRequest)))) == 1

    (event,) = events("access_request.created")
    assert event.actor_subject == "marc-sub" and event.detail["request_id"] == created["id"]
    assert "Étude" not in str(event.detail), "the free-text reason stays out of the audit log"


def test_people_who_already_read_are_told_so(client: TestClient, seeded: Seeded) -> None:
    for who in (
        roleless_token("lea-sub", "Lea.Dupont@example.fr"),  # listed by email
        roleless_token("agent-42"),  # listed by subject
        token("producer", TOULOUSE),  # listed organisation
        token("producer", MONTPELLIER),  # the producing organisation
        token("staff"),
    ):
        response = ask(client, seeded.restricted, who)
        assert response.status_code == 409, response.text
        assert response.json()["error"] == "already_granted"


def test_requests_on_open_withdrawn_or_unknown_publications(client: TestClient, seeded: Seeded) -> None:
    marc = roleless_token("marc-sub")
    response = ask(client, seeded.open, marc)
    assert response.status_code == 409 and response.json()["error"] == "open_access"
    assert ask(client, seeded.withdrawn, marc).status_code == 404
    assert ask(client, "8d1c8c59-0000-0000-0000-000000000000", marc).status_code == 404
    assert ask(client, seeded.restricted, "").status_code == 401


def test_the_reason_is_required_and_bounded(client: TestClient, seeded: Seeded) -> None:
    marc = roleless_token("marc-sub")
    for reason in ("", "   \n "):
        response = ask(client, seeded.restricted, marc, reason)
        assert response.status_code == 422, response.text
        assert "reason" in response.json()["fields"]
    response = ask(client, seeded.restricted, marc, "x" * 1001)
    assert response.status_code == 422
    assert ask(client, seeded.restricted, marc, "é" * 1000).status_code == 201  # characters, not bytes


def test_who_sees_which_requests(client: TestClient, seeded: Seeded) -> None:
    marc = roleless_token("marc-sub", "marc.petit@example.fr")
    nina = token("producer", SETE, subject="nina-sub")
    marc_id = ask(client, seeded.restricted, marc).json()["id"]
    nina_id = ask(client, seeded.restricted, nina).json()["id"]

    def ids(path: str, who: str, **params: str) -> list[str]:
        response = client.get(path, headers=bearer(who), params=params)
        assert response.status_code == 200, response.text
        return [r["id"] for r in response.json()]

    on_publication = f"/api/v1/publications/{seeded.restricted}/access-requests"
    assert sorted(ids(on_publication, token("referent", MONTPELLIER))) == sorted([marc_id, nina_id])
    assert sorted(ids(on_publication, token("staff"))) == sorted([marc_id, nina_id])
    assert ids(on_publication, marc) == [marc_id]
    assert ids(on_publication, nina) == [nina_id]
    # A producer of the organisation does not decide, so sees only their own (none).
    assert ids(on_publication, token("producer", MONTPELLIER)) == []

    assert sorted(ids("/api/v1/access-requests", token("staff"))) == sorted([marc_id, nina_id])
    assert sorted(ids("/api/v1/access-requests", token("referent", MONTPELLIER))) == sorted(
        [marc_id, nina_id]
    )
    assert ids("/api/v1/access-requests", token("referent", TOULOUSE)) == []
    assert ids("/api/v1/access-requests", nina) == [nina_id]
    assert ids("/api/v1/access-requests", marc, status="pending") == [marc_id]
    assert ids("/api/v1/access-requests", marc, status="refused") == []
    bad = client.get("/api/v1/access-requests", params={"status": "lost"}, headers=bearer(marc))
    assert bad.status_code == 422
    assert client.get("/api/v1/access-requests").status_code == 401


def test_a_referent_refuses_with_a_note_and_the_person_may_ask_again(
    client: TestClient, seeded: Seeded
) -> None:
    marc = roleless_token("marc-sub", "marc.petit@example.fr")
    request_id = ask(client, seeded.restricted, marc).json()["id"]
    note = {"note": "Données réservées aux services des communes membres."}
    for who in (token("producer", MONTPELLIER), token("referent", TOULOUSE), token("board"), marc):
        assert (
            client.post(
                f"/api/v1/access-requests/{request_id}/refuse", json=note, headers=bearer(who)
            ).status_code
            == 403
        )

    referent = token("referent", MONTPELLIER, subject="ref-montpellier")
    response = client.post(
        f"/api/v1/access-requests/{request_id}/refuse", json=note, headers=bearer(referent)
    )
    assert response.status_code == 200, response.text
    decided = response.json()
    assert decided["status"] == "refused" and decided["decided_by"] == "ref-montpellier"
    assert decided["decision_note"] == note["note"] and decided["decided_at"]

    (event,) = events("access_request.refused")
    assert event.actor_subject == "ref-montpellier"
    assert event.detail == {
        "request_id": request_id,
        "requester": "marc-sub",
        "decided_by": "ref-montpellier",
        "note": note["note"],
    }
    again = client.post(f"/api/v1/access-requests/{request_id}/grant", headers=bearer(referent))
    assert again.status_code == 409 and "déjà été traitée" in again.json()["detail"]
    # Refused is final for that request, not for the person.
    assert (
        ask(client, seeded.restricted, marc, "Précision : étude pour la commune de Lattes").status_code == 201
    )


def test_only_the_requester_or_staff_cancel(client: TestClient, seeded: Seeded) -> None:
    marc = roleless_token("marc-sub")
    request_id = ask(client, seeded.restricted, marc).json()["id"]
    path = f"/api/v1/access-requests/{request_id}/cancel"
    for who in (
        roleless_token("someone-else"),
        token("referent", MONTPELLIER),
        token("producer", MONTPELLIER),
    ):
        assert client.post(path, headers=bearer(who)).status_code == 403
    response = client.post(path, headers=bearer(marc))
    assert response.status_code == 200 and response.json()["status"] == "cancelled"
    assert client.post(path, headers=bearer(marc)).status_code == 409
    assert [e.detail["request_id"] for e in events("access_request.cancelled")] == [request_id]
    assert client.post("/api/v1/access-requests/nope/cancel", headers=bearer(marc)).status_code == 404


def test_decisions_are_too_long_or_on_unknown_requests(client: TestClient, seeded: Seeded) -> None:
    request_id = ask(client, seeded.restricted, roleless_token("marc-sub")).json()["id"]
    referent = bearer(token("referent", MONTPELLIER))
    response = client.post(
        f"/api/v1/access-requests/{request_id}/refuse", json={"note": "x" * 1001}, headers=referent
    )
    assert response.status_code == 422
    assert client.post("/api/v1/access-requests/unknown/grant", headers=referent).status_code == 404
