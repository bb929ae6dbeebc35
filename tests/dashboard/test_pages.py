"""Each page of the dashboard, run by Streamlit's AppTest against a real broker (uvicorn API, Celery worker).

The app reads the API address from session state (``api_url``) and logs in through its own *Connexion*
page, so these tests go through the same code paths as a person does, and every right is the API's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from typing import Any

import httpx
import pytest
from streamlit.testing.v1 import AppTest

from tests.dashboard.conftest import APP, ORG, ORG_NAME, OTHER_ORG, geojson, wait_for

pytestmark = pytest.mark.servers

Stack = Any  # tests.fixtures.servers.Stack


# ------------------------------------------------------------------------------------------ helpers


def new_app(stack: Stack) -> AppTest:
    app = AppTest.from_file(str(APP), default_timeout=90)
    app.session_state["api_url"] = stack.url
    return app


def button(app: AppTest, label: str) -> Any:
    for candidate in app.button:
        if candidate.label == label:
            return candidate
    raise AssertionError(f"no button {label!r}; buttons: {[b.label for b in app.button]}")


def texts(app: AppTest) -> str:
    """Every text the page shows (markdown, captions, alerts, titles, metrics), one per line."""
    parts: list[str] = []
    for kind in (
        "title",
        "header",
        "subheader",
        "markdown",
        "caption",
        "success",
        "info",
        "warning",
        "error",
    ):
        parts += [str(element.value) for element in getattr(app, kind)]
    parts += [f"{m.label}: {m.value}" for m in app.metric]
    # Markdown escapes (``\:``, ``\[``) are not what a person reads.
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def ok(app: AppTest) -> AppTest:
    assert not app.exception, [e.message for e in app.exception]
    return app


def login(app: AppTest, token: str) -> AppTest:
    ok(app.run())
    app.text_input[0].input(token)
    button(app, "Se connecter").click()
    return ok(app.run())


def open_page(app: AppTest, page: str) -> AppTest:
    return ok(app.switch_page(f"views/{page}.py").run())


def frame_rows(app: AppTest, index: int = 0) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = app.dataframe[index].value.to_dict("records")
    return records


def chart_specs(app: AppTest) -> list[dict[str, Any]]:
    """The Vega-Lite specifications of the page's Altair charts.

    Streamlit moves a chart's top-level data out of the spec into Arrow bytes; it is put back as
    ``data.values`` so tests read every chart the same way.
    """
    from streamlit import dataframe_util

    specs = []
    for chart in app.get("vega_lite_chart"):
        spec = json.loads(chart.proto.spec)
        if chart.proto.data.data:
            frame = dataframe_util.convert_arrow_bytes_to_pandas_df(chart.proto.data.data)
            spec["data"] = {"values": frame.to_dict("records")}
        specs.append(spec)
    return specs


def setup_org(stack: Stack, slug: str = ORG, name: str = ORG_NAME) -> None:
    stack.cli("org", "add", slug, "--name", name, check=True)


def publish_api(stack: Stack, token: str, **changes: Any) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "organization": ORG,
        "title": "Pistes cyclables",
        "description": "Réseau cyclable de la métropole.",
        "license": "lov2",
        "access": "open",
        "services": ["download"],
        "portals": ["cc-grand-pic-saint-loup"],
        "resources": [{"file": "pistes.geojson", "title": "Pistes"}],
        **changes,
    }
    parts = [
        ("manifest", (None, json.dumps(manifest), "application/json")),
        ("files", ("pistes.geojson", geojson(), "application/geo+json")),
    ]
    response = stack.client(token).post("/api/v1/publications", files=parts)
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def delivery_state(client: httpx.Client, publication_id: str, target: str) -> str | None:
    body = client.get(f"/api/v1/publications/{publication_id}").json()
    return next((d["state"] for d in body["deliveries"] if d["target"] == target), None)


# ------------------------------------------------------------------------------------------ Connexion


def test_connexion_local_token_board_and_oidc(broker_stack: Callable[..., Stack]) -> None:
    """The three ways in share one broker: a producer's local token, a board member's, an OIDC login."""
    stack = broker_stack()
    setup_org(stack)
    check_local_token(stack)
    check_board_member_reads_only(stack)
    check_oidc_login(stack)


def check_local_token(stack: Stack) -> None:
    app = new_app(stack)
    ok(app.run())
    assert "Jeton local" in texts(app)  # no [auth] secrets: the local token form

    app.text_input[0].input("pas-un-jeton")
    button(app, "Se connecter").click()
    ok(app.run())
    assert any("Connexion refusée" in e.value for e in app.error), texts(app)
    assert "auth_token" not in app.session_state

    login(app, stack.token(ORG, "producer"))
    shown = texts(app)
    assert "Connecté en tant que" in shown
    assert "producteur" in shown and ORG in shown
    # Logging out forgets the token and brings back the form.
    button(app, "Se déconnecter").click()
    ok(app.run())
    assert "auth_token" not in app.session_state
    assert "Jeton local" in texts(app)


def check_board_member_reads_only(stack: Stack) -> None:
    app = login(new_app(stack), stack.token(None, "board"))
    shown = texts(app)
    assert "membre du conseil" in shown and "lecture seule" in shown
    # The producer pages are not even registered for a board member.
    with pytest.raises(ValueError, match="navigation page"):
        app.switch_page("views/publier.py")
    open_page(app, "vue_ensemble")
    assert "Vue d'ensemble" in texts(app)


def check_oidc_login(stack: Stack) -> None:
    """st.login's access token (``expose_tokens = ["access"]``) is what the dashboard calls the API with."""
    auth = {
        "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
        "cookie_secret": "x" * 48,
        "client_id": "broker-dashboard",
        "client_secret": "broker-dashboard-secret",
        "server_metadata_url": "http://127.0.0.1:9/realms/openig/.well-known/openid-configuration",
        "expose_tokens": ["access"],
    }
    app = new_app(stack)
    app.secrets["auth"] = auth
    app.user = {"is_logged_in": False}
    ok(app.run())
    assert any(b.label == "Se connecter avec le SSO d'OPenIG" for b in app.button)

    # After the provider's redirect, st.user carries the access token: the dashboard checks it with /me.
    app = new_app(stack)
    app.secrets["auth"] = auth
    app.user = {
        "is_logged_in": True,
        "email": "chloe@openig.org",
        "tokens": {"access": stack.token(ORG, "staff")},
    }
    ok(app.run())
    assert "Vue d'ensemble" in texts(app)  # logged in: the default page is the overview
    open_page(app, "connexion")
    shown = texts(app)
    assert "Connecté en tant que" in shown and "SSO (OIDC)" in shown and "équipe OPenIG" in shown

    # A token the broker refuses is said, not swallowed.
    app = new_app(stack)
    app.secrets["auth"] = auth
    app.user = {"is_logged_in": True, "tokens": {"access": "eyJhbGciOiJub25lIn0.e30."}}
    ok(app.run())
    assert "Le broker refuse votre connexion SSO" in texts(app)


# ------------------------------------------------------------------------------------------ Publier


def test_publish_shows_field_errors_then_previews_and_publishes(broker_stack: Callable[..., Stack]) -> None:
    stack = broker_stack()
    setup_org(stack)
    setup_org(stack, OTHER_ORG, "Toulouse Métropole")
    check_restricted_preview(stack)
    token = stack.token(ORG, "producer")
    app = open_page(login(new_app(stack), token), "publier")

    # 1. An incomplete form: the API's field errors appear under their fields.
    app.text_input(key="pub_title").input("Pi")
    button(app, "Prévisualiser").click()
    ok(app.run())
    shown = texts(app)
    assert "Le manifeste contient" in shown, shown
    assert "au moins 3 caractère(s)" in shown  # title
    assert "au moins 1 élément(s)" in shown  # resources: no file yet
    assert "Confirmer la publication" not in [b.label for b in app.button]

    # 2. A complete form and a file: the preview shows the decision and each target's pre-flight.
    app.text_input(key="pub_title").input("Pistes cyclables")
    app.text_area(key="pub_description").input(
        "Réseau cyclable de la métropole, mis à jour chaque trimestre."
    )
    app.text_input(key="pub_keywords").input("mobilité, vélo")
    app.selectbox(key="pub_frequency").set_value("quarterly")
    app.text_input(key="pub_contact_email").input("sig@example.fr")
    app.multiselect(key="pub_services").set_value(["download", "wfs"])
    app.file_uploader(key="pub_files").set_value(("pistes.geojson", geojson(), "application/geo+json"))
    ok(app.run())
    button(app, "Prévisualiser").click()
    ok(app.run())
    shown = texts(app)
    assert "Le manifeste contient" not in shown
    assert "Catégorie de la publication" in shown
    assert "Formats vecteur" in shown  # a need, by its title from categories.yaml
    assert ":green-badge[A]" in shown
    assert "Cible non configurée" in shown  # data.gouv.fr's pre-flight on this broker
    assert frame_rows(app)[0]["Format"] == "geojson"
    # The plan stored nothing.
    listing = stack.client(token).get("/api/v1/publications", params={"organization": ORG}).json()
    assert listing["total"] == 0

    # 3. Editing after the preview asks for a new preview before confirming.
    app.text_input(key="pub_keywords").input("mobilité, vélo, aménagement")
    ok(app.run())
    assert "Le formulaire a changé depuis l'aperçu" in texts(app)
    assert "Confirmer la publication" not in [b.label for b in app.button]
    button(app, "Prévisualiser").click()
    ok(app.run())

    # 4. Confirm: the API accepts it and the page says where it goes.
    button(app, "Confirmer la publication").click()
    ok(app.run())
    shown = texts(app)
    assert "Publication « Pistes cyclables » acceptée" in shown, shown
    listing = stack.client(token).get("/api/v1/publications", params={"organization": ORG}).json()
    assert listing["total"] == 1
    created = listing["data"][0]
    assert created["title"] == "Pistes cyclables"
    detail = stack.client(token).get(f"/api/v1/publications/{created['id']}").json()
    assert detail["manifest"]["keywords"] == ["mobilité", "vélo", "aménagement"]
    assert detail["manifest"]["frequency"] == "quarterly"
    assert detail["manifest"]["contact"] == {"email": "sig@example.fr"}
    events = stack.client(token).get("/api/v1/events", params={"publication": created["id"]}).json()
    created_event = next(e for e in events if e["action"] == "publication.created")
    assert created_event["detail"]["channel"] == "dashboard"


def check_restricted_preview(stack: Stack) -> None:
    """Restricted access shows its own fields; a producer only publishes for their organisation."""
    app = open_page(login(new_app(stack), stack.token(ORG, "producer")), "publier")
    # The producer only sees their own organisation.
    assert app.selectbox(key="pub_organization").options == [f"{ORG_NAME} ({ORG})"]
    app.radio(key="pub_access").set_value("restricted")
    ok(app.run())
    app.text_area(key="pub_restricted_users").input("alice\nbruno")
    app.multiselect(key="pub_restricted_organizations").set_value([OTHER_ORG])
    app.text_input(key="pub_title").input("Cadastre solaire")
    app.text_area(key="pub_description").input("Potentiel solaire des toitures.")
    app.file_uploader(key="pub_files").set_value(("toits.geojson", geojson("Toit"), "application/geo+json"))
    ok(app.run())
    button(app, "Prévisualiser").click()
    ok(app.run())
    shown = texts(app)
    # Restricted nominative access is served regionally (category C).
    assert ":blue-badge[C]" in shown and "Accès restreint nominatif" in shown


# ------------------------------------------------------------------------------------------ follow-up pages


def test_my_publications_show_status_links_and_audit_trail(broker_stack: Callable[..., Stack]) -> None:
    stack = broker_stack()
    setup_org(stack)
    token = stack.token(ORG, "producer")
    publication = publish_api(stack, token)
    client = stack.client(token)
    wait_for(
        lambda: delivery_state(client, publication["id"], "regional") == "done", what="regional delivery"
    )

    app = open_page(login(new_app(stack), token), "mes_publications")
    rows = frame_rows(app)
    assert [r["Titre"] for r in rows] == ["Pistes cyclables"]
    assert "Publié dans l'entrepôt régional OPenIG" in rows[0]["Statut par cible"]
    shown = texts(app)
    assert "Publié dans l'entrepôt régional OPenIG" in shown
    assert "En attente : cible non configurée" in shown  # data.gouv.fr has no URL on this broker
    assert f"/api/v1/regional/publications/{publication['id']}/files/pistes.geojson" in shown  # its link
    trail = frame_rows(app, 1)
    assert {"Publication créée", "Livraison réussie"} <= {r["Quoi"] for r in trail}

    # Withdrawing asks for a confirmation, then the API withdraws it from every target.
    withdraw = button(app, "Retirer")
    assert withdraw.disabled
    app.checkbox(key=f"withdraw_ok_{publication['id']}").check()
    ok(app.run())
    button(app, "Retirer").click()
    ok(app.run())
    assert client.get(f"/api/v1/publications/{publication['id']}").json()["state"] == "withdrawn"
    assert "Aucune publication pour l'instant." in texts(app)  # withdrawn ones are hidden by default


def test_overview_publications_and_retry(broker_stack: Callable[..., Stack]) -> None:
    from broker.embedded import free_port

    # data.gouv.fr "configured" on a closed port, one attempt: its delivery fails, so staff can retry it.
    stack = broker_stack(
        env={
            "BROKER_DATAGOUV_URL": f"http://127.0.0.1:{free_port()}/api/1",
            "BROKER_DATAGOUV_API_KEY": "cle-de-test",
            "BROKER_MAX_ATTEMPTS": "1",
        }
    )
    setup_org(stack)
    staff = stack.token(ORG, "staff")
    publication = publish_api(stack, staff)
    client = stack.client(staff)
    wait_for(lambda: delivery_state(client, publication["id"], "datagouv") == "failed", what="a failure")

    app = open_page(login(new_app(stack), staff), "vue_ensemble")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Publications actives"] == "1"
    assert metrics["Livraisons en échec"] == "1"
    shown = texts(app)
    assert "1 publication créée" in shown and "1 livraison en échec" in shown
    assert "bientôt disponible" not in shown  # statistics and gaps are served by this broker

    open_page(app, "publications")
    shown = texts(app)
    assert "Échec :" in shown
    rows = frame_rows(app)
    assert {r["Cible"] for r in rows} >= {"data.gouv.fr", "Entrepôt régional OPenIG"}
    # Filters go to the API: only failed deliveries.
    app.selectbox(key="flt_state").set_value("failed")
    ok(app.run())
    assert [r["État"] for r in frame_rows(app)] == ["en échec"]
    button(app, "Relancer").click()
    ok(app.run())
    events = client.get("/api/v1/events", params={"publication": publication["id"]}).json()
    assert any(e["action"] == "delivery.retry_requested" for e in events)

    # A board member sees the same failures but no retry button.
    board = login(new_app(stack), stack.token(None, "board"))
    open_page(board, "publications")
    assert "Échec :" in texts(board)
    assert "Relancer" not in [b.label for b in board.button]
    assert "réservé à l'équipe OPenIG" in texts(board)


def test_gaps_register_timeline_and_staff_slip(broker_stack: Callable[..., Stack]) -> None:
    stack = broker_stack()
    setup_org(stack)
    staff = stack.token(ORG, "staff")
    client = stack.client(staff)
    # A restricted publication waits on the Géoplateforme's restricted services (a B need, interim: hold).
    publish_api(stack, staff, access="restricted", restricted_to={"users": ["alice"]}, services=["wms"])
    gaps = client.get("/api/v1/gaps").json()
    gap = next(
        g for g in gaps if g["need"] == "access_restricted_services" and g["platform"] == "geoplateforme"
    )

    app = open_page(login(new_app(stack), staff), "ecarts")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Ouverts"] == str(sum(g["status"] == "open" for g in gaps))
    rows = {r["Besoin"]: r for r in frame_rows(app)}
    row = rows["Accès restreint nominatif aux services (WMS, WFS, WMTS)"]
    assert row["Publications en attente"] == 1
    assert row["Suivi amont"] == "https://github.com/IGNF/cartes.gouv.fr/issues/790"
    timeline = next(s for s in chart_specs(app) if "écarts" in str(s.get("title")))
    assert {p["gap"] for p in timeline["layer"][1]["data"]["values"]} >= {
        "Accès restreint nominatif aux services (WMS, WFS, WMTS) — Géoplateforme (cartes.gouv.fr)"
    }

    # Staff slip the target date, with the reason the history keeps.
    app.selectbox(key="gap_edit_id").set_value(gap["id"])
    ok(app.run())
    old_date = date.fromisoformat(gap["target_date"])
    new_date = old_date.replace(year=old_date.year + 1)
    app.date_input[0].set_value(new_date)
    button(app, "Enregistrer").click()
    ok(app.run())
    assert "indiquez pourquoi" in texts(app)  # no reason: nothing sent
    assert client.get(f"/api/v1/gaps/{gap['id']}").json()["target_date"] == gap["target_date"]
    app.date_input[0].set_value(new_date)
    app.text_area[0].input("Report annoncé par l'IGN au comité de suivi.")
    button(app, "Enregistrer").click()
    ok(app.run())
    detail = client.get(f"/api/v1/gaps/{gap['id']}").json()
    assert detail["target_date"] == new_date.isoformat()
    slip = next(h for h in detail["history"] if h["change"] == "target_date")
    assert slip["reason"] == "Report annoncé par l'IGN au comité de suivi."
    slips = frame_rows(app, 1)  # the page's "Glissements enregistrés" table
    assert slips[0]["de"] == gap["target_date"] and slips[0]["à"] == new_date.isoformat()
    timeline = next(s for s in chart_specs(app) if "écarts" in str(s.get("title")))
    assert [s["motif"] for s in timeline["layer"][0]["data"]["values"]] == [slip["reason"]]

    # Board members see the register, not the form.
    board = open_page(login(new_app(stack), stack.token(None, "board")), "ecarts")
    assert "Modifier un écart" not in texts(board)
    assert len(frame_rows(board)) == len(gaps)


def test_migration_categories_and_report_pages(broker_stack: Callable[..., Stack]) -> None:
    stack = broker_stack()
    setup_org(stack)
    staff = stack.token(ORG, "staff")
    publish_api(stack, staff)  # its white-label portal keeps it regional: category C
    stack.client(staff).post("/api/v1/stats/migration/snapshot").raise_for_status()
    app = login(new_app(stack), staff)

    open_page(app, "migration")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Publications"] == "1"
    assert metrics["Catégorie C"] == "1"
    assert "Progression dans le temps" in texts(app)
    assert "Pas encore d'historique" not in texts(app)
    share = next(s for s in chart_specs(app) if "Part des publications" in str(s.get("title")))
    assert {v["série"] for v in share["data"]["values"]} == {"nationale", "régionale seulement"}
    assert "Par organisation" in texts(app)

    open_page(app, "categories")
    matrix = frame_rows(app)
    catalogue = stack.client(staff).get("/api/v1/categories").json()
    assert len(matrix) == len(catalogue["need_order"])
    vector = next(r for r in matrix if r["Besoin"] == "Formats vecteur (SHP, GeoJSON, GPKG)")
    assert vector["data.gouv.fr"] == "A"
    assert "Source" in texts(app)  # the detail of the first need lists its sources

    open_page(app, "rapport")
    download_labels = [b.label for b in app.get("download_button")]
    assert "Télécharger le rapport (HTML imprimable)" in download_labels
    assert {"Publications (CSV)", "Écarts nationaux (CSV)", "Progression de la migration (CSV)"} <= set(
        download_labels
    )
    assert "Publications actives: 1" in texts(app)
    assert "bientôt disponible" not in texts(app)
