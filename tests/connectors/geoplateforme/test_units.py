"""Pure logic: TOTP, error mapping, configuration, planning, pre-flight."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from connectors.base import (
    ConnectorConfigurationError,
    PermanentConnectorError,
    RemoteGoneError,
    TransientConnectorError,
)
from connectors.geoplateforme import GeoplateformeConfig, GeoplateformeConnector, totp
from connectors.geoplateforme.client import EntrepotClient
from connectors.geoplateforme.errors import Conflict, NotFound
from connectors.geoplateforme.workflow import plan_revision, pm_level
from connectors.registry import build_connector
from tests.connectors.geoplateforme.samples import resource, revision, write_geotiff, write_gpkg

RFC_SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"  # base32 of "12345678901234567890" (RFC 6238, appendix B)


@pytest.mark.parametrize(
    ("at", "code"),
    [(59, "94287082"), (1111111109, "07081804"), (1234567890, "89005924"), (2000000000, "69279037")],
)
def test_totp_matches_rfc_6238(at: int, code: str) -> None:
    assert totp(RFC_SECRET, at, digits=8) == code
    assert totp(RFC_SECRET, at) == code[-6:]


def _config(**values: Any) -> GeoplateformeConfig:
    base: dict[str, Any] = {
        "api_url": "https://gpf.test/api",
        "token_url": "https://sso.test/token",
        "client_id": "svc",
        "client_secret": "s3cr3t",
        "datastore_id": "ds-1",
        "request_retries": 0,
    }
    base.update(values)
    return GeoplateformeConfig(**base)


def test_configuration_requires_a_grant() -> None:
    with pytest.raises(ValidationError, match="client_secret is required"):
        GeoplateformeConfig(client_id="svc")
    with pytest.raises(ValidationError, match="password is required"):
        GeoplateformeConfig(client_id="gpf-warehouse", username="agent")
    config = GeoplateformeConfig(
        client_id="gpf-warehouse", username="agent", password="p", totp_secret="JBSWY3DP"
    )
    assert config.api_url == "https://data.geopf.fr/api"
    assert "p'" not in repr(config) and "JBSWY3DP" not in repr(config)


def test_the_registry_name_builds_the_connector() -> None:
    from connectors import registry

    registry.CONNECTORS.setdefault("geoplateforme", "connectors.geoplateforme:GeoplateformeConnector")
    connector = build_connector("geoplateforme", {"client_id": "svc", "client_secret": "x"})
    assert isinstance(connector, GeoplateformeConnector)
    assert connector.base_url() == "https://data.geopf.fr/api"
    assert connector.title == "Géoplateforme (cartes.gouv.fr)"


def _client(handler: Any) -> EntrepotClient:
    def route(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t", "expires_in": 300})
        response: httpx.Response = handler(request)
        return response

    return EntrepotClient(_config(), transport=httpx.MockTransport(route), sleep=lambda _: None)


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "text"),
    [
        (
            400,
            {"error": "Bad Request", "error_description": ["Le SRS EPSG:1 n'est pas reconnu."]},
            {},
            PermanentConnectorError,
            "Le SRS EPSG:1 n'est pas reconnu.",
        ),
        (
            422,
            {"error_description": ["La fiche est mal formée.", "Ligne 3."]},
            {},
            PermanentConnectorError,
            "La fiche est mal formée. ; Ligne 3.",
        ),
        (404, {"error_description": ["La livraison x n'existe pas."]}, {}, NotFound, "n'existe pas"),
        (409, {"error_description": "Le nom de couche est déjà utilisé."}, {}, Conflict, "déjà utilisé"),
        (403, {"message": "Droits insuffisants"}, {}, ConnectorConfigurationError, "Droits insuffisants"),
        (429, {}, {"Retry-After": "12"}, TransientConnectorError, "HTTP 429"),
        (503, "Service Unavailable", {}, TransientConnectorError, "HTTP 503"),
        (423, {"error_description": ["Verrouillé"]}, {}, TransientConnectorError, "Verrouillé"),
    ],
)
def test_answers_map_to_connector_errors(
    status: int, body: Any, headers: dict[str, str], error: type[Exception], text: str
) -> None:
    content = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    client = _client(lambda request: httpx.Response(status, content=content, headers=headers))

    with pytest.raises(error) as failure:
        client.get("/datastores/ds-1/uploads/x", action="la lecture de la livraison")

    assert text in str(failure.value)
    assert "s3cr3t" not in str(failure.value)
    if status == 429:
        assert isinstance(failure.value, TransientConnectorError) and failure.value.retry_after == 12.0
    if status == 404:
        assert isinstance(failure.value, RemoteGoneError)


def test_timeouts_are_transient() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("too slow", request=request)

    with pytest.raises(TransientConnectorError, match="délai dépassé"):
        _client(slow).get("/users/me", action="la lecture du compte")


def test_a_401_refreshes_the_token_once() -> None:
    answers = iter([httpx.Response(401), httpx.Response(200, json={"ok": True})])
    client = _client(lambda request: next(answers))
    assert client.get("/users/me", action="x") == {"ok": True}
    assert client.tokens.fetched == 2

    refused = _client(lambda request: httpx.Response(401, json={"error_description": ["Jeton invalide"]}))
    with pytest.raises(ConnectorConfigurationError):
        refused.get("/users/me", action="x")
    assert refused.tokens.fetched == 2


def test_pages_follow_content_range() -> None:
    items = [{"_id": str(index)} for index in range(120)]

    def page(request: httpx.Request) -> httpx.Response:
        number, limit = int(request.url.params["page"]), int(request.url.params["limit"])
        chunk = items[(number - 1) * limit : number * limit]
        first = (number - 1) * limit
        return httpx.Response(
            200, json=chunk, headers={"Content-Range": f"{first}-{first + len(chunk) - 1}/120"}
        )

    assert _client(page).list("/datastores/ds-1/uploads", action="x") == items


def test_datastore_is_discovered_from_users_me() -> None:
    me = {
        "communities_member": [
            {
                "rights": ["UPLOAD", "PROCESSING", "BROADCAST"],
                "community": {"technical_name": "mmm", "datastore": "ds-42"},
            }
        ]
    }
    client = EntrepotClient(
        _config(datastore_id=None),
        transport=httpx.MockTransport(
            lambda request: (
                httpx.Response(200, json={"access_token": "t"})
                if request.url.path == "/token"
                else httpx.Response(200, json=me)
            )
        ),
    )
    assert client.datastore == "ds-42"

    two = {"communities_member": me["communities_member"] * 2}
    ambiguous = EntrepotClient(
        _config(datastore_id=None),
        transport=httpx.MockTransport(
            lambda request: (
                httpx.Response(200, json={"access_token": "t"})
                if request.url.path == "/token"
                else httpx.Response(200, json=two)
            )
        ),
    )
    with pytest.raises(ConnectorConfigurationError, match="datastore_id"):
        ambiguous.datastore  # noqa: B018


@pytest.mark.parametrize(("resolution", "level"), [(0.2, 20), (5.0, 15), (10.0, 14), (50.0, 12), (None, 18)])
def test_pyramid_bottom_level_follows_the_resolution(resolution: float | None, level: int) -> None:
    assert pm_level(resolution) == level


def test_planning_maps_services_to_configurations(tmp_path: Path) -> None:
    gpkg = resource(write_gpkg(tmp_path / "a.gpkg"))
    tif = resource(write_geotiff(tmp_path / "b.tif"))
    pdf_path = tmp_path / "c.pdf"
    pdf_path.write_bytes(b"%PDF-1.4")
    pdf = resource(pdf_path, crs=None)
    plans = plan_revision(revision("p", (gpkg, tif, pdf), services=("wfs", "wms", "wmts", "download")))
    assert [(plan.kind, plan.services) for plan in plans] == [
        ("vector", ["WFS", "WMS-VECTOR", "VECTOR-TMS", "DOWNLOAD"]),
        ("raster", ["WMS-RASTER", "WMTS-TMS", "DOWNLOAD"]),
        ("archive", ["DOWNLOAD"]),
    ]
    defaults = plan_revision(revision("p", (gpkg, tif), services=()))
    assert [plan.services for plan in defaults] == [["WFS", "WMS-VECTOR"], ["WMTS-TMS", "WMS-RASTER"]]


def _codes(problems: list[Any]) -> list[tuple[str, str]]:
    return [(problem.severity, problem.code) for problem in problems]


def test_preflight_cases(tmp_path: Path) -> None:
    connector = GeoplateformeConnector(_config())

    def check(*resources: Any, **values: Any) -> list[tuple[str, str]]:
        return _codes(connector.preflight(revision("p", tuple(resources), **values)))

    fine = resource(write_gpkg(tmp_path / "ok.gpkg", layer="pistes", ascii_columns=True))
    assert check(fine) == []
    accents = resource(write_gpkg(tmp_path / "accents.gpkg", layer="Pistes-Cyclables"))
    assert check(accents) == [("warning", "table_renamed"), ("warning", "columns_renamed")]
    broken = resource(write_gpkg(tmp_path / "broken.gpkg", layer="2024 pistes"))
    assert ("error", "bad_table_name") in check(broken)
    assert check(
        resource(write_gpkg(tmp_path / "srs.gpkg", layer="pistes", ascii_columns=True), crs="EPSG:4326")
    ) == [("error", "srs_mismatch")]
    assert check(
        resource(write_gpkg(tmp_path / "nosrs.gpkg", layer="pistes", ascii_columns=True), crs=None)
    ) == [("error", "srs_missing")]
    assert check(
        resource(write_gpkg(tmp_path / "bad.gpkg", layer="pistes", ascii_columns=True), crs="EPSG:99999999")
    ) == [("error", "srs_unknown")]
    assert check(
        resource(write_gpkg(tmp_path / "big.gpkg", layer="pistes", ascii_columns=True), size=3 * 1024**3)
    ) == [("error", "too_large")]
    cog = resource(write_geotiff(tmp_path / "ortho.tif"), format="cog")
    assert check(cog, services=("wmts",)) == [("warning", "cog_recomputed")]
    parquet = tmp_path / "d.parquet"
    parquet.write_bytes(b"PAR1")
    assert check(resource(parquet, format="parquet", kind="vector")) == [("error", "format_not_integrated")]
    docx = tmp_path / "notice.docx"
    docx.write_bytes(b"PK")
    assert check(resource(docx, crs=None, kind="document"), services=("wfs",)) == [
        ("warning", "format_not_served"),
        ("warning", "nothing_to_publish"),
    ]
    assert check(fine, access="restricted") == [("warning", "permissions_manual")]
    unzipped = tmp_path / "lonely.shp"
    unzipped.write_bytes(b"\x00\x00\x27\x0a")
    assert check(resource(unzipped, format="shp", kind="vector")) == [("error", "shapefile_not_zipped")]


def test_preflight_reads_blobs_without_extension(tmp_path: Path) -> None:
    """The broker keeps files content-addressed, without extension: CSV needs one for GDAL."""
    blob = tmp_path / "ab" / "cd" / ("0" * 64)
    blob.parent.mkdir(parents=True)
    blob.write_text("id,nom,wkt\n1,Comédie,POINT(770500 6279500)\n", encoding="utf-8")
    csv = resource(blob, name="Arrêts-de-bus.csv", format="csv", kind="vector")
    problems = GeoplateformeConnector(_config()).preflight(revision("p", (csv,)))
    assert _codes(problems) == [("warning", "table_renamed")]
    assert "« arrets_de_bus »" in problems[0].message


def test_preflight_warns_about_a_csv_without_geometry(tmp_path: Path) -> None:
    path = tmp_path / "comptages.csv"
    path.write_text("id,compteur,passages\n1,Lez,1250\n", encoding="utf-8")
    problems = GeoplateformeConnector(_config()).preflight(revision("p", (resource(path),)))
    assert _codes(problems) == [("warning", "csv_without_geometry")]
    located = tmp_path / "arrets.csv"
    located.write_text("id,nom,lon,lat\n1,Comédie,3.8797,43.6084\n", encoding="utf-8")
    assert (
        GeoplateformeConnector(_config()).preflight(revision("p", (resource(located, crs="EPSG:4326"),)))
        == []
    )
