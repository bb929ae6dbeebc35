"""The dashboard's pure parts: French status sentences, the Publier form, API error mapping, statistics
rows, charts and the board report. No server needed (httpx.MockTransport only for the error mapping)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from dashboard import charts, data, forms, labels, report, schema
from dashboard.client import ApiError, BrokerClient, api_url_from_env, error_from_response
from tests.fixtures.servers import REPO_ROOT

# ------------------------------------------------------------------------------------------ statuses

STATUS_CASES = [
    ({"target": "datagouv", "state": "done", "action": "publish"}, "Publié sur data.gouv.fr", "success"),
    (
        {"target": "geoplateforme", "state": "done", "action": "update"},
        "Mis à jour sur la Géoplateforme",
        "success",
    ),
    (
        {"target": "regional", "state": "done", "action": "publish"},
        "Publié dans l'entrepôt régional OPenIG",
        "success",
    ),
    ({"target": "datagouv", "state": "done", "action": "withdraw"}, "Retiré de data.gouv.fr", "info"),
    ({"target": "datagouv", "state": "pending"}, "En file d'attente vers data.gouv.fr", "info"),
    ({"target": "geoplateforme", "state": "running"}, "Livraison en cours vers la Géoplateforme", "info"),
    (
        {"target": "datagouv", "state": "retrying", "attempts": 3, "last_error": "data.gouv.fr répond 503"},
        "Nouvel essai prévu vers data.gouv.fr (essai 3) : data.gouv.fr répond 503",
        "warning",
    ),
    (
        {"target": "datagouv", "state": "waiting", "waiting_reason": "not_configured", "last_error": "x"},
        "En attente : cible non configurée",
        "warning",
    ),
    (
        {
            "target": "geoplateforme",
            "state": "waiting",
            "waiting_reason": "gap",
            "last_error": "En attente d'une évolution nationale : access_restricted_services",
        },
        "En attente d'une évolution nationale : Accès restreint aux services",
        "warning",
    ),
    (
        {
            "target": "datagouv",
            "state": "failed",
            "last_error": "data.gouv.fr refuse la ressource",
            "error_fields": {"license": ["licence inconnue"], "title": "trop court"},
        },
        "Échec : data.gouv.fr refuse la ressource — à corriger : "
        "license : licence inconnue ; title : trop court",
        "error",
    ),
    ({"target": "datagouv", "state": "failed"}, "Échec : erreur sans détail", "error"),
    (
        {"target": "regional", "state": "cancelled"},
        "Annulé (remplacé par une révision plus récente, ou publication retirée)",
        "info",
    ),
]


@pytest.mark.parametrize(("delivery", "text", "tone"), STATUS_CASES)
def test_delivery_status_in_plain_french(delivery: dict[str, Any], text: str, tone: str) -> None:
    titles = {"access_restricted_services": "Accès restreint aux services"}
    assert labels.delivery_status(delivery, titles) == (text, tone)


def test_delivery_line_names_the_target_when_the_sentence_does_not() -> None:
    waiting = {"target": "geoplateforme", "state": "waiting", "waiting_reason": "not_configured"}
    assert labels.delivery_line(waiting)[0] == "Géoplateforme — En attente : cible non configurée"
    done = {"target": "datagouv", "state": "done", "action": "publish"}
    assert labels.delivery_line(done)[0] == "Publié sur data.gouv.fr"


def test_french_formats() -> None:
    assert labels.french_date("2027-03-31") == "31 mars 2027"
    assert labels.french_date(None) == "—"
    assert labels.french_datetime("2026-11-29T04:52:10.6Z") == "29 novembre 2026 à 04:52"
    assert labels.percent(0.4567) == "46\u00a0%"
    assert labels.percent(None) == "—"
    assert labels.french_number(1234567) == "1\u202f234\u202f567"
    assert labels.file_size(870) == "870 o"
    assert labels.file_size(5 * 1024 * 1024) == "5,0 Mo"
    assert labels.label(labels.ROLES, "board") == "membre du conseil"
    assert labels.label(labels.ROLES, "inconnu") == "inconnu"


# ------------------------------------------------------------------------------------------ Publier form


def test_build_manifest_from_the_form() -> None:
    form = forms.PublishForm(
        organization="montpellier-mediterranee-metropole",
        title="  Pistes cyclables ",
        description="Réseau cyclable.",
        license="lov2",
        frequency="quarterly",
        keywords="mobilité, vélo,, mobilité",
        temporal_start=date(2024, 1, 1),
        contact_name="Service SIG",
        contact_email="sig@example.fr",
        access="restricted",
        restricted_users="alice\nbruno\n",
        restricted_organizations=["toulouse-metropole"],
        services=["download", "wfs"],
        portals="cc-grand-pic-saint-loup",
        file_names=["pistes.geojson"],
        urls="https://example.org/compteurs.csv",
        url_sync="weekly",
    )
    assert forms.build_manifest(form) == {
        "organization": "montpellier-mediterranee-metropole",
        "title": "Pistes cyclables",
        "description": "Réseau cyclable.",
        "license": "lov2",
        "frequency": "quarterly",
        "keywords": ["mobilité", "vélo"],
        "temporal": {"start": "2024-01-01"},
        "contact": {"name": "Service SIG", "email": "sig@example.fr"},
        "access": "restricted",
        "restricted_to": {"users": ["alice", "bruno"], "organizations": ["toulouse-metropole"]},
        "services": ["download", "wfs"],
        "portals": ["cc-grand-pic-saint-loup"],
        "resources": [
            {"file": "pistes.geojson", "title": "pistes.geojson"},
            {"url": "https://example.org/compteurs.csv", "sync": "weekly"},
        ],
    }


def test_minimal_form_leaves_optional_parts_out() -> None:
    manifest = forms.build_manifest(forms.PublishForm(organization="org", title="T", license=None))
    assert manifest == {
        "organization": "org",
        "title": "T",
        "description": "",
        "access": "open",
        "resources": [],
    }


def test_field_errors_go_under_their_fields() -> None:
    grouped, orphans = forms.errors_by_field(
        {
            "title": ["au moins 3 caractère(s)"],
            "contact.email": ["adresse invalide"],
            "resources.0.file": ["fichier absent de la requête"],
            "files": ["fichier attendu"],
            "zones.0": ["identifiant de zone invalide"],
        }
    )
    assert grouped == {
        "title": ["au moins 3 caractère(s)"],
        "contact": ["adresse électronique : adresse invalide"],
        "resources": ["n° 1 · fichier : fichier absent de la requête", "fichier attendu"],
    }
    assert orphans == ["zones.0 : identifiant de zone invalide"]


def test_fingerprint_changes_with_manifest_or_file_content() -> None:
    base = forms.fingerprint({"title": "A"}, [("a.geojson", b"1", "application/geo+json")])
    assert base == forms.fingerprint({"title": "A"}, [("a.geojson", b"1", "text/plain")])
    assert base != forms.fingerprint({"title": "B"}, [("a.geojson", b"1", "application/geo+json")])
    assert base != forms.fingerprint({"title": "A"}, [("a.geojson", b"2", "application/geo+json")])


def test_fallback_lists_match_the_manifest_schema_file() -> None:
    """The dashboard's copy of the closed lists equals the broker's schema (it may not import it)."""
    schema_file = REPO_ROOT / "broker" / "publications" / "manifest.schema.json"
    parsed = schema.enums_from_schema(json.loads(schema_file.read_text(encoding="utf-8")))
    assert parsed == schema.FALLBACK
    assert set(schema.FALLBACK["license"]) == set(labels.LICENSES)
    assert set(schema.FALLBACK["frequency"]) == set(labels.FREQUENCIES)
    assert set(schema.FALLBACK["services"]) == set(labels.SERVICES)
    assert schema.enums_from_schema({}) == schema.FALLBACK
    narrowed = schema.enums_from_schema({"properties": {"license": {"enum": ["lov2"]}}})
    assert narrowed["license"] == ["lov2"] and narrowed["frequency"] == schema.FALLBACK["frequency"]


# ------------------------------------------------------------------------------------------ client


def _answer(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


@pytest.mark.parametrize(
    ("status", "body", "message", "unavailable"),
    [
        (401, {"error": "unauthorized", "detail": "Jeton expiré."}, "Votre session n'est plus valide", False),
        (403, {"error": "forbidden", "detail": "Réservé à l'équipe."}, "Vous n'avez pas les droits", False),
        (404, {"error": "not_found", "detail": "Not Found"}, "bientôt disponible", True),
        (404, {"error": "not_found", "detail": "Publication inconnue : x."}, "Publication inconnue", False),
        (405, {"error": "method_not_allowed", "detail": "Method Not Allowed"}, "bientôt disponible", True),
        (413, {"error": "too_large", "detail": "Fichier trop gros."}, "Fichier trop gros", False),
        (500, {"error": "internal_error", "detail": "Erreur interne."}, "Erreur du broker (HTTP 500)", False),
        (503, {"error": "unavailable"}, "momentanément indisponible", False),
    ],
)
def test_errors_become_french_messages(status: int, body: Any, message: str, unavailable: bool) -> None:
    error = error_from_response(_answer(status, body))
    assert message in error.message
    assert error.status == status
    assert error.unavailable is unavailable


def test_422_keeps_field_errors() -> None:
    body = {
        "error": "invalid",
        "detail": "Le manifeste contient 2 erreur(s).",
        "fields": {"title": ["trop court"]},
    }
    error = error_from_response(_answer(422, body))
    assert error.fields == {"title": ["trop court"]}
    assert error.message == "Le manifeste contient 2 erreur(s)."


def test_client_sends_token_channel_and_multipart() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"decision": {}})

    client = BrokerClient("http://broker.test/", "jeton", transport=httpx.MockTransport(handler))
    client.plan({"title": "Pistes"}, [("pistes.geojson", b"{}", "application/geo+json")])
    request = seen[0]
    assert request.url == "http://broker.test/api/v1/plan"
    assert request.headers["Authorization"] == "Bearer jeton"
    assert request.headers["X-Broker-Channel"] == "dashboard"
    body = request.read().decode()
    assert 'name="manifest"' in body and '"title": "Pistes"' in body
    assert 'name="files"; filename="pistes.geojson"' in body


def test_unreachable_broker_is_said_in_french() -> None:
    from broker.embedded import free_port

    client = BrokerClient(f"http://127.0.0.1:{free_port()}", "jeton", timeout=2)
    with pytest.raises(ApiError) as raised:
        client.me()
    assert "Impossible de joindre le broker" in raised.value.message
    assert raised.value.code == "unreachable"


def test_api_url_from_env() -> None:
    assert api_url_from_env({"BROKER_API_URL": "http://a:1/"}) == "http://a:1"
    assert api_url_from_env({"BROKER_PUBLIC_URL": "https://broker.openig.org"}) == "https://broker.openig.org"
    assert api_url_from_env({}) == "http://127.0.0.1:8000"


# ------------------------------------------------------------------------------------------ data


NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_monthly_summary_counts_the_last_30_days() -> None:
    events = [
        {"at": "2026-11-28T10:00:00Z", "action": "publication.created", "publication_id": "p1"},
        {"at": "2026-11-27T10:00:00Z", "action": "publication.created", "publication_id": "p2"},
        {"at": "2026-11-27T10:05:00Z", "action": "delivery.failed", "publication_id": "p2"},
        {"at": "2026-11-20T10:05:00Z", "action": "delivery.running", "publication_id": "p2"},
        {"at": "2026-09-01T10:00:00Z", "action": "publication.created", "publication_id": "p0"},
    ]
    summary = data.monthly_summary(events, now=NOW)
    assert summary["sentences"] == ["2 publications créées", "1 livraison en échec"]
    assert summary["events"] == 4
    assert summary["publications_touched"] == 2


def test_latest_per_target_keeps_the_newest() -> None:
    deliveries = [
        {"id": "3", "publication_id": "p", "target": "datagouv", "state": "failed"},
        {"id": "2", "publication_id": "p", "target": "regional", "state": "done"},
        {"id": "1", "publication_id": "p", "target": "datagouv", "state": "cancelled"},
    ]
    assert [d["id"] for d in data.latest_per_target(deliveries)] == ["3", "2"]


GAPS = [
    {
        "id": "g1",
        "need": "access_restricted_services",
        "need_title": "Accès restreint nominatif aux services (WMS, WFS, WMTS)",
        "platform": "geoplateforme",
        "platform_title": "Géoplateforme (cartes.gouv.fr)",
        "target_date": "2027-03-31",
        "status": "open",
        "interim": "hold",
        "upstream": "IGNF/cartes.gouv.fr#790",
        "late": True,
        "days_late": 12,
        "waiting_publications": 3,
        "looks_delivered": False,
        "history": [
            {"at": "2026-10-01T09:00:00Z", "change": "created", "from": None, "to": "open"},
            {
                "at": "2026-11-02T09:00:00Z",
                "change": "target_date",
                "from": "2026-12-31",
                "to": "2027-03-31",
                "reason": "Report annoncé par l'IGN",
            },
        ],
    },
    {
        "id": "g2",
        "need": "api_features",
        "platform": "geoplateforme",
        "target_date": None,
        "status": "delivered",
    },
]


def test_gap_rows_counts_and_timeline() -> None:
    rows = data.gap_rows(GAPS)
    assert rows[0]["Plateforme"] == "Géoplateforme (cartes.gouv.fr)"
    assert rows[0]["Date cible"] == date(2027, 3, 31)
    assert rows[0]["Jours de retard"] == 12
    assert rows[0]["Suivi amont"] == "https://github.com/IGNF/cartes.gouv.fr/issues/790"
    assert rows[0]["Politique d'attente"] == "livraison nationale suspendue en attendant"
    assert rows[1]["Statut"] == "livré" and rows[1]["Date cible"] is None
    assert data.gap_counts(GAPS) == {"open": 1, "late": 1, "delivered": 1, "dropped": 0}
    points, slips = data.gap_timeline_rows(GAPS)
    assert [p["date"] for p in points] == ["2027-03-31"]
    assert slips == [
        {
            "gap": "Accès restreint nominatif aux services (WMS, WFS, WMTS) — Géoplateforme",
            "de": "2026-12-31",
            "à": "2027-03-31",
            "le": "2 novembre 2026",
            "motif": "Report annoncé par l'IGN",
            "jours": 90,
        }
    ]


def test_migration_rows() -> None:
    jobs = [
        {
            "need": "access_restricted_services",
            "platform": "geoplateforme",
            "state": "running",
            "total": 3,
            "done": 1,
            "failed": 0,
            "waiting": 2,
            "created_at": "2026-11-02T09:00:00Z",
            "created_by": "chloe",
        }
    ]
    assert data.migration_rows(jobs, need_titles={"access_restricted_services": "Accès restreint"}) == [
        {
            "Besoin": "Accès restreint",
            "Plateforme": "Géoplateforme",
            "État": "en cours",
            "Publications": 3,
            "Migrées": 1,
            "En échec": 0,
            "En attente": 2,
            "Lancée le": "2 novembre 2026 à 09:00",
            "Par": "chloe",
        }
    ]


def test_upstream_links() -> None:
    assert data.upstream_url("https://example.org/x") == "https://example.org/x"
    assert (
        data.upstream_url("etalab/data.gouv.fr#1234") == "https://github.com/etalab/data.gouv.fr/issues/1234"
    )
    assert data.upstream_url("convention 2026") is None
    assert data.upstream_url(None) is None


def test_statistics_rows() -> None:
    by_org = data.breakdown_rows(
        [
            {
                "organization": "montpellier",
                "organization_name": "Montpellier",
                "publications": 4,
                "national": 3,
                "regional": 2,
                "both": 1,
                "national_share": 0.75,
            }
        ],
        ["organization_name", "organization"],
    )
    assert by_org == [
        {
            "libellé": "Montpellier",
            "publications": 4,
            "national": 3,
            "regional": 2,
            "both": 1,
            "national_share": 0.75,
        }
    ]
    assert data.exclusive_parts(by_org[0], ["national", "regional", "both"]) == {
        "national": 2,
        "regional": 1,
        "both": 1,
    }
    table = data.stat_table([{**by_org[0], "bytes_national": 2048}])
    assert table[0]["Nom"] == "Montpellier" and table[0]["Part nationale"] == "75\u00a0%"
    assert table[0]["Volume national"] == "2,0 Ko"
    assert data.national_share({"national_share": 0.5}) == 0.5
    assert data.national_share({"national": 1, "publications": 4}) == 0.25
    assert data.national_share({}) is None
    history = data.history_rows([{"date": "2026-11-01", "national_share": 0.25}, {"date": "bad"}])
    assert history == [
        {"date": "2026-11-01", "série": "nationale", "part": 0.25},
        {"date": "2026-11-01", "série": "régionale seulement", "part": 0.75},
    ]


CATALOGUE: dict[str, Any] = {
    "platforms": {"datagouv": {"title": "data.gouv.fr"}, "geoplateforme": {"title": "Géoplateforme"}},
    "groups": {"formats": "Formats des ressources"},
    "need_order": ["format_vector", "format_cog"],
    "needs": {
        "format_cog": {
            "title": "Raster COG",
            "group": "formats",
            "platforms": {
                "datagouv": {"category": "C", "source": "research/peers.md §11"},
                "geoplateforme": {"category": "B", "target_date": "2027-06-30", "interim": "degrade"},
            },
        },
        "format_vector": {
            "title": "Formats vecteur",
            "group": "formats",
            "platforms": {"datagouv": {"category": "A"}, "geoplateforme": {"category": "A"}},
        },
    },
}


def test_categories_matrix_and_planned_gaps() -> None:
    rows, titles = data.categories_matrix(CATALOGUE)
    assert titles == ["data.gouv.fr", "Géoplateforme"]
    assert [(r["Besoin"], r["data.gouv.fr"], r["Géoplateforme"]) for r in rows] == [
        ("Formats vecteur", "A", "A"),
        ("Raster COG", "C", "B"),
    ]
    assert rows[1]["data.gouv.fr · source"] == "research/peers.md §11"
    assert data.category_counts(rows, titles) == [
        {"Plateforme": "data.gouv.fr", "A": 1, "B": 0, "C": 1},
        {"Plateforme": "Géoplateforme", "A": 1, "B": 1, "C": 0},
    ]
    planned = data.planned_gaps(CATALOGUE)
    assert planned == [
        {
            "need": "format_cog",
            "need_title": "Raster COG",
            "platform": "geoplateforme",
            "target_date": "2027-06-30",
            "status": "open",
            "interim": "degrade",
            "upstream": None,
        }
    ]


# ------------------------------------------------------------------------------------------ charts, report


def _report() -> report.ReportData:
    return report.ReportData(
        generated_at=NOW,
        broker_url="http://127.0.0.1:8000",
        publications_total=4,
        by_category={"A": 2, "C": 2},
        national_share=0.5,
        stats_available=True,
        history=data.history_rows(
            [{"date": "2026-10-01", "national_share": 0.25}, {"date": "2026-11-01", "national_share": 0.5}]
        ),
        by_organization=[
            {"libellé": "Montpellier <Métropole>", "publications": 4, "national": 2, "regional": 2}
        ],
        by_need=[{"libellé": "Formats vecteur", "publications": 4}],
        gaps=data.gap_rows(GAPS),
        deliveries={"done": 5, "failed": 1},
        monthly=data.monthly_summary(
            [{"at": "2026-11-28T10:00:00Z", "action": "publication.created"}], now=NOW
        ),
        category_counts=[{"Plateforme": "data.gouv.fr", "A": 10, "B": 0, "C": 5}],
    )


def test_every_chart_compiles_to_svg() -> None:
    """Each chart is valid Vega-Lite: vl-convert renders it (French months on the time axes)."""
    pytest.importorskip("vl_convert", reason="vl-convert-python renders the report's charts")
    points, slips = data.gap_timeline_rows(GAPS)
    built = [
        charts.share_over_time(_report().history, width=500),
        charts.breakdown(
            [{"libellé": "Montpellier", "national": 3, "regional": 2, "both": 1}], "Orgs", width=500
        ),
        charts.breakdown([{"libellé": "datagouv", "publications": 3}], "Plateformes", width=500),
        charts.gaps_timeline(points, slips, "2026-11-29", width=500),
        charts.category_counts_chart([{"Plateforme": "data.gouv.fr", "A": 3, "B": 1, "C": 2}], width=500),
    ]
    for chart in built:
        svg = report.chart_svg(chart)
        assert svg is not None and svg.startswith("<svg")
    assert "nov." in (report.chart_svg(built[0]) or "") or "oct." in (report.chart_svg(built[0]) or "")


def test_board_report_html_is_printable_and_escaped() -> None:
    page = report.build_html(_report())
    assert page.startswith("<!DOCTYPE html>") and '<html lang="fr">' in page
    assert "@media print" in page and "@page" in page and "window.print()" in page
    assert page.count("<svg") >= 3  # share over time, organisations, categories
    assert "<Métropole>" not in page and "&lt;Métropole&gt;" in page  # names are text, never markup
    assert "50\u00a0%" in page
    assert "31 mars 2027" in page and 'class="late"' in page
    assert "1 publication créée" in page
    assert "https://cdn" not in page  # SVG inline: the page prints offline


def test_board_report_without_statistics_says_so() -> None:
    page = report.build_html(report.ReportData(publications_total=0))
    assert "pas encore disponible" in page
    assert "Registre des écarts pas encore disponible" in page


def test_csv_opens_in_french_spreadsheets() -> None:
    payload = report.csv_bytes([{"Titre": "Pistes; cyclables", "Part": 0.5, "Retard": True, "Vide": None}])
    assert payload.startswith(b"\xef\xbb\xbf")
    text = payload.decode("utf-8-sig").splitlines()
    assert text[0] == "Titre;Part;Retard;Vide"
    assert text[1] == '"Pistes; cyclables";0,500;oui;'
