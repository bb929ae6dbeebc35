"""The French access-request page, in process: rendering, the token-paste login, the request form, CSRF,
the session cookie, and what each visitor sees."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from broker.access.pages import COOKIE_NAME, PageSession, _serializer, session_secret
from broker.db import session_scope
from regional_store.models import RegionalFile, RegionalRecord
from tests.broker.access.conftest import (
    MONTPELLIER,
    TOULOUSE,
    Seeded,
    add_publication,
    bearer,
    csrf_of,
    roleless_token,
    token,
)


def page(client: TestClient, publication_id: str) -> str:
    response = client.get(f"/acces/{publication_id}")
    assert response.status_code == 200, response.text
    return response.text


def log_in(client: TestClient, publication_id: str, access_token: str) -> str:
    html = page(client, publication_id)
    response = client.post(
        "/acces/token",
        data={"csrf": csrf_of(html), "token": access_token, "publication": publication_id},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/acces/{publication_id}"
    return page(client, publication_id)


def seed_regional(publication_id: str, users: list[str], organizations: list[str]) -> None:
    with session_scope() as session:
        session.add(
            RegionalRecord(
                publication_id=publication_id,
                organization=MONTPELLIER,
                title="Réseau d'eau potable",
                revision=1,
                access="restricted",
                restricted_users=users,
                restricted_organizations=organizations,
            )
        )
        session.flush()
        session.add(
            RegionalFile(
                publication_id=publication_id,
                name="réseau eau.geojson",
                sha256="ab" * 32,
                size=123_456,
                format="GeoJSON",
                title="Réseau (GeoJSON)",
            )
        )


def test_an_anonymous_visitor_sees_the_dataset_and_how_to_log_in(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/acces/{seeded.restricted}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<html lang="fr">' in html
    assert "<h1>Réseau d&#39;eau potable</h1>" in html
    assert "Montpellier Méditerranée Métropole" in html
    assert "Canalisations et vannes du réseau" in html
    assert "Accès restreint et nominatif" in html
    # No SSO configured (embedded default): the token-paste form, with a label tied to its input.
    assert 'action="/acces/token"' in html and '<label for="token">' in html and 'id="token"' in html
    assert "<script" not in html
    # Headers: nothing cached by proxies, no framing, no script, forms only to ourselves.
    assert response.headers["cache-control"] == "no-store"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert "form-action 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/acces" in cookie
    assert "Secure" not in cookie  # http in tests; https public URLs get Secure


@pytest.mark.parametrize("which", ["unknown", "not-a-uuid", "withdrawn"])
def test_unknown_or_withdrawn_publications_get_a_french_404(
    client: TestClient, seeded: Seeded, which: str
) -> None:
    publication_id = {
        "unknown": "6c1f5d0e-8f1b-4a5e-9d43-3f1de2b0a001",
        "not-a-uuid": "login-please",
        "withdrawn": seeded.withdrawn,
    }[which]
    response = client.get(f"/acces/{publication_id}")
    assert response.status_code == 404
    assert '<html lang="fr">' in response.text and "Donnée introuvable" in response.text
    assert "Ancien cadastre" not in response.text


def test_an_open_publication_needs_no_request(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/acces/{seeded.open}")
    assert response.status_code == 404
    assert "Pistes cyclables" in response.text
    assert "aucune demande d'accès n'est nécessaire" in response.text


def test_titles_and_descriptions_are_escaped(client: TestClient, seeded: Seeded) -> None:
    publication_id = add_publication(
        seeded.organizations[MONTPELLIER], MONTPELLIER, "<script>alert(1)</script>", users=["a@example.fr"]
    )
    html = page(client, publication_id)
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_a_token_login_then_a_request_then_a_cancellation(client: TestClient, seeded: Seeded) -> None:
    marc = roleless_token("marc-sub", "marc.petit@example.fr")
    html = log_in(client, seeded.restricted, marc)
    assert "Connecté·e en tant que <strong>marc-sub</strong>" in html
    assert "Vous êtes connecté·e en tant que marc-sub." in html  # the one-shot message
    assert 'action="/acces/token"' not in html
    assert f'action="/acces/{seeded.restricted}/request"' in html and '<label for="reason">' in html
    assert "Vous êtes connecté·e" not in page(client, seeded.restricted), "the message shows once"

    # An empty reason: the form comes back with the error, tied to the field.
    response = client.post(
        f"/acces/{seeded.restricted}/request",
        data={"csrf": csrf_of(html), "reason": "  "},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert 'role="alert"' in response.text and 'aria-invalid="true"' in response.text
    assert "Expliquez en quelques mots" in response.text

    reason = "Étude du schéma directeur d'alimentation en eau potable de Lattes."
    response = client.post(
        f"/acces/{seeded.restricted}/request",
        data={"csrf": csrf_of(response.text), "reason": reason},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    html = page(client, seeded.restricted)
    assert "est en attente" in html and "Votre demande est enregistrée" in html
    assert "Étude du schéma directeur d&#39;alimentation" in html
    listed = client.get("/api/v1/access-requests", headers=bearer(marc)).json()
    assert [(r["status"], r["reason"]) for r in listed] == [("pending", reason)]

    # Twice: the page says so rather than failing.
    response = client.post(
        f"/acces/{seeded.restricted}/request",
        data={"csrf": csrf_of(html), "reason": reason},
        follow_redirects=True,
    )
    assert "déjà une demande en attente" in response.text

    response = client.post(
        f"/acces/{seeded.restricted}/cancel",
        data={"csrf": csrf_of(response.text), "request_id": listed[0]["id"]},
        follow_redirects=True,
    )
    assert "Votre demande est annulée" in response.text
    assert "Demander l'accès</button>" in response.text


def test_a_refusal_shows_with_its_note(client: TestClient, seeded: Seeded) -> None:
    marc = roleless_token("marc-sub")
    request_id = client.post(
        f"/api/v1/publications/{seeded.restricted}/access-requests",
        json={"reason": "Curiosité"},
        headers=bearer(marc),
    ).json()["id"]
    client.post(
        f"/api/v1/access-requests/{request_id}/refuse",
        json={"note": "Réservé aux services techniques des communes."},
        headers=bearer(token("referent", MONTPELLIER)),
    )
    html = log_in(client, seeded.restricted, marc)
    assert "a été refusée" in html and "Réservé aux services techniques des communes." in html
    assert "Demander l'accès</button>" in html  # one may ask again


def test_a_listed_person_gets_the_file_links_once_the_store_follows(
    client: TestClient, seeded: Seeded
) -> None:
    lea = roleless_token("lea-sub", "lea.dupont@example.fr")
    html = log_in(client, seeded.restricted, lea)
    # Listed in the manifest, but the regional store holds no record yet.
    assert "Votre accès est accordé." in html and "Télécharger les fichiers" not in html
    seed_regional(seeded.restricted, ["lea.dupont@example.fr"], [TOULOUSE])
    html = page(client, seeded.restricted)
    assert "Vous avez accès à cette donnée." in html
    assert f"/api/v1/regional/publications/{seeded.restricted}/files/r%C3%A9seau%20eau.geojson" in html
    assert "120,6 Ko" in html and "Demander l'accès</button>" not in html


def test_csrf_is_checked_on_every_form(client: TestClient, seeded: Seeded) -> None:
    html = page(client, seeded.restricted)
    good = csrf_of(html)
    for path, data in (
        ("/acces/token", {"token": roleless_token("x"), "publication": seeded.restricted}),
        (f"/acces/{seeded.restricted}/request", {"reason": "Étude"}),
        (f"/acces/{seeded.restricted}/cancel", {"request_id": "x"}),
        ("/acces/logout", {"publication": seeded.restricted}),
    ):
        for csrf in ("", good[:-2] + "xx"):
            response = client.post(path, data={**data, "csrf": csrf}, follow_redirects=False)
            assert response.status_code == 400, (path, response.text)
            assert "Ce formulaire a expiré" in response.text
    # The right token, but from a visitor with no cookie at all (a forged cross-site form).
    fresh = TestClient(client.app, base_url=str(client.base_url))
    response = fresh.post(
        "/acces/token",
        data={"csrf": good, "token": roleless_token("x"), "publication": seeded.restricted},
        follow_redirects=False,
    )
    assert response.status_code == 400


def test_a_bad_pasted_token_is_refused_with_the_reason(client: TestClient, seeded: Seeded) -> None:
    html = page(client, seeded.restricted)
    response = client.post(
        "/acces/token",
        data={"csrf": csrf_of(html), "token": "pas.un.jeton", "publication": seeded.restricted},
    )
    assert response.status_code == 400
    assert "Ce jeton n&#39;est pas accepté" in response.text and 'aria-invalid="true"' in response.text
    assert "pas.un.jeton" not in response.text, "a token is never echoed"
    # "Bearer <token>" pasted whole works too.
    response = client.post(
        "/acces/token",
        data={
            "csrf": csrf_of(response.text),
            "token": f"Bearer {roleless_token('x')}",
            "publication": seeded.restricted,
        },
        follow_redirects=False,
    )
    assert response.status_code == 303


def test_logout_and_tampered_or_stale_cookies(client: TestClient, seeded: Seeded) -> None:
    html = log_in(client, seeded.restricted, roleless_token("marc-sub"))
    response = client.post(
        "/acces/logout", data={"csrf": csrf_of(html), "publication": seeded.restricted}, follow_redirects=True
    )
    assert "Vous êtes déconnecté·e" in response.text and 'action="/acces/token"' in response.text

    # A cookie signed with another key is ignored: a fresh, anonymous session.
    client.cookies.set(COOKIE_NAME, "eyJ0b2tlbiI6ImZvcmdlZCJ9.forged.signature", path="/acces")
    html = page(client, seeded.restricted)
    assert 'action="/acces/token"' in html

    # A correctly signed cookie whose token no longer validates: logged out, with a message.
    stale = PageSession({"csrf": "c", "token": "eyJhbGciOiJFUzI1NiJ9.e30.c2ln"})
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, stale.encoded(), path="/acces")
    response = client.get(f"/acces/{seeded.restricted}")
    assert response.status_code == 200 and "Votre session a expiré" in response.text
    morsel = SimpleCookie(response.headers["set-cookie"])[COOKIE_NAME]
    assert "token" not in _serializer(session_secret()).loads(morsel.value)


def test_without_sso_the_login_link_leads_back_to_the_page(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/acces/login", params={"publication": seeded.restricted}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/acces/{seeded.restricted}"
    # Never a redirect to anything but a publication page of ours.
    response = client.get(
        "/acces/login", params={"publication": "https://evil.example"}, follow_redirects=False
    )
    assert response.status_code == 404
    assert client.get("/acces/callback", follow_redirects=False).status_code == 404
