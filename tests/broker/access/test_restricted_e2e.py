"""Restricted downloads end to end, with real servers (API under uvicorn, a Celery worker on a real Redis,
SQLite): who downloads what; an access-list change and a granted request reach the regional store through
derived revisions; and the French page, over real HTTP with cookies."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.broker.test_spine_e2e import geojson, manifest, post, regional_state, wait_for

pytestmark = pytest.mark.servers

MONTPELLIER = "montpellier-mediterranee-metropole"
TOULOUSE = "toulouse-metropole"
SETE = "sete-agglopole-mediterranee"
TITLE = "Réseau d'eau potable"
ORGANIZATIONS = {
    MONTPELLIER: "Montpellier Méditerranée Métropole",
    TOULOUSE: "Toulouse Métropole",
    SETE: "Sète Agglopôle Méditerranée",
}


def start(broker_stack: Any) -> Any:
    stack = broker_stack()
    for slug, name in ORGANIZATIONS.items():
        stack.cli("org", "add", slug, "--name", name, check=True)
    return stack


def issue(stack: Any, role: str, org: str | None = None, **claims: str) -> str:
    """`broker token issue`, with --subject / --email when given."""
    args = ["token", "issue", "--role", role, *(["--org", org] if org else [])]
    for name, value in claims.items():
        args += [f"--{name}", value]
    return str(stack.cli(*args, check=True).stdout.strip())


def as_(stack: Any, token: str | None) -> httpx.Client:
    client: httpx.Client = stack.client(token)
    return client


def publish_restricted(stack: Any, users: list[str], organizations: list[str]) -> tuple[str, str, bytes]:
    """A restricted GeoJSON publication of Montpellier, delivered to the regional store: (id, url, bytes)."""
    producer = as_(stack, issue(stack, "producer", MONTPELLIER))
    data = geojson("Canalisation", features=4)
    body = manifest(
        ["reseau.geojson"],
        title=TITLE,
        description="Canalisations et vannes du réseau d'eau potable.",
        access="restricted",
        restricted_to={"users": users, "organizations": organizations},
        portals=[],
    )
    response = post(producer, "/api/v1/publications", body, {"reseau.geojson": data})
    assert response.status_code == 202, response.text
    publication_id = response.json()["id"]
    body = wait_for(producer, publication_id, regional_state("done", revision=1))
    url = body["resources"][0]["download_url"]
    assert url, body["resources"]
    return publication_id, url, data


def status(stack: Any, token: str | None, url: str) -> int:
    return as_(stack, token).get(url).status_code


def test_restricted_downloads_follow_the_access_list(broker_stack: Any) -> None:
    stack = start(broker_stack)
    publication_id, url, data = publish_restricted(stack, ["lea.dupont@example.fr", "agent-42"], [TOULOUSE])

    lea = issue(stack, "producer", SETE, email="Lea.Dupont@example.fr", subject="lea-sub")
    agent = issue(stack, "board", subject="agent-42")
    nina = issue(stack, "producer", SETE, subject="nina-sub", email="nina.roux@sete.example.fr")
    toulouse = issue(stack, "producer", TOULOUSE)
    staff = issue(stack, "staff", subject="chloe")

    response = as_(stack, lea).get(url)
    assert response.status_code == 200 and response.content == data  # listed by email (any case)
    assert response.headers["cache-control"] == "private, no-cache"
    assert status(stack, agent, url) == 200  # listed by subject
    assert status(stack, toulouse, url) == 200  # member of a listed organisation
    assert status(stack, staff, url) == 200
    assert status(stack, nina, url) == 403  # unlisted
    anonymous = as_(stack, None).get(url)
    assert anonymous.status_code == 401 and "WWW-Authenticate" in anonymous.headers

    # The referent replaces the list: Toulouse and agent-42 out, Marc in.
    referent = as_(stack, issue(stack, "referent", MONTPELLIER, subject="ref-montpellier"))
    response = referent.put(
        f"/api/v1/publications/{publication_id}/access",
        json={"users": ["lea.dupont@example.fr", "marc.petit@example.fr"], "organizations": []},
    )
    assert response.status_code == 202, response.text
    assert response.json()["changed"] is True and response.json()["revision"] == 2
    marc = issue(stack, "board", subject="marc-sub", email="marc.petit@example.fr")
    wait_for(referent, publication_id, regional_state("done", revision=2))
    assert status(stack, toulouse, url) == 403
    assert status(stack, agent, url) == 403
    assert status(stack, marc, url) == 200
    assert status(stack, lea, url) == 200
    assert as_(stack, marc).get(url).content == data, "the files were kept across the derived revision"

    events = referent.get("/api/v1/events", params={"publication": publication_id}).json()
    (changed,) = [e for e in events if e["action"] == "access.changed"]
    assert changed["actor"]["subject"] == "ref-montpellier"
    assert changed["detail"]["before"] == {
        "users": ["lea.dupont@example.fr", "agent-42"],
        "organizations": [TOULOUSE],
    }
    assert changed["detail"]["after"] == {
        "users": ["lea.dupont@example.fr", "marc.petit@example.fr"],
        "organizations": [],
    }
    revised = [e for e in events if e["action"] == "publication.revised"]
    assert [e["detail"]["reason"] for e in revised] == ["access list changed"]

    # Nina asks; the referent grants with a note; once the delivery is done, Nina downloads.
    response = as_(stack, nina).post(
        f"/api/v1/publications/{publication_id}/access-requests",
        json={"reason": "Modélisation des pertes du réseau pour l'agglomération de Sète."},
    )
    assert response.status_code == 201, response.text
    request_id = response.json()["id"]
    pending = referent.get("/api/v1/access-requests", params={"status": "pending"}).json()
    assert [r["id"] for r in pending] == [request_id]
    response = referent.post(
        f"/api/v1/access-requests/{request_id}/grant", json={"note": "Accordé pour l'étude 2026."}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "granted" and response.json()["decided_by"] == "ref-montpellier"
    wait_for(referent, publication_id, regional_state("done", revision=3))
    assert status(stack, nina, url) == 200

    listed = referent.get(f"/api/v1/publications/{publication_id}/access").json()
    assert listed["users"] == [
        "lea.dupont@example.fr",
        "marc.petit@example.fr",
        "nina-sub",
        "nina.roux@sete.example.fr",
    ]
    events = as_(stack, staff).get("/api/v1/events", params={"publication": publication_id}).json()
    (granted,) = [e for e in events if e["action"] == "access_request.granted"]
    assert granted["actor"]["subject"] == "ref-montpellier"
    assert granted["detail"]["decided_by"] == "ref-montpellier" and granted["detail"]["revision"] == 3
    assert granted["detail"]["note"] == "Accordé pour l'étude 2026."
    assert len([e for e in events if e["action"] == "access.changed"]) == 2


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def test_the_french_page_over_http(broker_stack: Any) -> None:
    stack = start(broker_stack)
    publication_id, url, data = publish_restricted(stack, ["lea.dupont@example.fr"], [])
    page_url = f"/acces/{publication_id}"

    # A browser: cookies kept between requests, redirects followed, no Authorization header.
    browser = as_(stack, None)
    browser.follow_redirects = True
    response = browser.get(page_url)
    assert response.status_code == 200
    html = response.text
    assert 'lang="fr"' in html
    assert "Réseau d&#39;eau potable" in html and "Montpellier Méditerranée Métropole" in html
    assert "Accès restreint et nominatif" in html

    # Log in by pasting a local token (no SSO in the embedded default), then ask.
    nina = issue(stack, "producer", SETE, subject="nina-sub", email="nina.roux@sete.example.fr")
    response = browser.post(
        "/acces/token", data={"csrf": form_token(html), "token": nina, "publication": publication_id}
    )
    assert response.status_code == 200 and str(response.url).endswith(page_url)  # after the 303
    assert "Connecté·e en tant que <strong>nina-sub</strong>" in response.text
    response = browser.post(
        f"{page_url}/request",
        data={"csrf": form_token(response.text), "reason": "Étude des pertes du réseau."},
    )
    assert response.status_code == 200 and "est en attente" in response.text

    referent = as_(stack, issue(stack, "referent", MONTPELLIER))
    (request,) = referent.get(f"/api/v1/publications/{publication_id}/access-requests").json()
    assert request["subject"] == "nina-sub" and request["reason"] == "Étude des pertes du réseau."
    assert referent.post(f"/api/v1/access-requests/{request['id']}/grant").status_code == 200
    wait_for(referent, publication_id, regional_state("done", revision=2))

    html = browser.get(page_url).text
    assert "a été acceptée" in html and "Vous avez accès à cette donnée." in html
    assert url in html
    # The link works with the person's own token (the page never hands the token out).
    assert as_(stack, nina).get(url).content == data
    assert nina not in html

    # A form from elsewhere (no CSRF token of this session) is refused.
    assert browser.post("/acces/logout", data={"publication": publication_id}).status_code == 400
    response = browser.post("/acces/logout", data={"csrf": form_token(html), "publication": publication_id})
    assert "Vous êtes déconnecté·e" in response.text


def test_the_producing_organisation_reads_its_restricted_files(broker_stack: Any) -> None:
    """Members of the publication's own organisation always read what it publishes, listed or not
    (regional_store.service.can_read must say so too)."""
    stack = start(broker_stack)
    _, url, data = publish_restricted(stack, [], [TOULOUSE])
    for role in ("producer", "referent"):
        response = as_(stack, issue(stack, role, MONTPELLIER)).get(url)
        assert response.status_code == 200, f"{role} of the producing organisation: {response.text}"
        assert response.content == data
    assert status(stack, issue(stack, "producer", SETE), url) == 403
