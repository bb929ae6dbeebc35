"""Downloads and records over HTTP, with the access rules of restricted data."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session

from connectors.base import LedgerEntry, ResourceFile
from regional_store.router import build_router, content_disposition, etag_matches
from tests.regional_store.conftest import PUBLIC_URL, Env, RevisionFactory

GPKG = b"GPKG" + bytes(range(256)) * 64
NOTICE = "Notice des pistes cyclables, édition 2025.\n".encode()
OPEN_ID = "6f1d2c3b-4a59-4e8f-9b7a-1c2d3e4f5a6b"
RESTRICTED_ID = "3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f"
LATIN1_CSV = "commune;comptage\nBéziers;1204\n".encode("latin-1")
ACCENTED = "Réseau cyclable – été 2025.gpkg"


@dataclass(frozen=True)
class FakeViewer:
    subject: str
    email: str | None = None
    organizations: tuple[str, ...] = ()
    is_staff: bool = False


def anonymous() -> FakeViewer | None:
    """The application's viewer dependency; tests override it."""
    return None


@pytest.fixture
def published(env: Env, make_revision: RevisionFactory) -> Env:
    regional = env.connector()
    regional.publish(
        make_revision(
            [
                env.resource("pistes.gpkg", GPKG, media_type="application/geopackage+sqlite3"),
                env.resource(ACCENTED, NOTICE),
                env.resource("compteurs_2024.csv", LATIN1_CSV),
                ResourceFile(name="compteurs.csv", url="https://example.org/compteurs.csv"),
            ],
            publication_id=OPEN_ID,
        ),
        LedgerEntry(),
    )
    regional.publish(
        make_revision(
            [env.resource("cadastre_detaille.gpkg", GPKG + b"restreint")],
            publication_id=RESTRICTED_ID,
            title="Cadastre détaillé",
            access="restricted",
            restricted_users=("Agent.SIG@Beziers.fr", "kc-7f3e"),
            restricted_organizations=("sete-agglopole-mediterranee",),
        ),
        LedgerEntry(),
    )
    return env


@pytest.fixture
def app(published: Env) -> FastAPI:
    def get_session() -> Iterator[Session]:
        with Session(published.engine) as session:
            yield session
            session.commit()

    application = FastAPI()
    application.include_router(build_router(get_session, anonymous, lambda: published.tmp / "regional"))
    return application


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app)


def as_viewer(app: FastAPI, viewer: FakeViewer | None) -> None:
    app.dependency_overrides[anonymous] = lambda: viewer


def file_url(publication_id: str, name: str) -> str:
    return f"/api/v1/regional/publications/{publication_id}/files/{quote(name, safe='')}"


def test_open_download_returns_the_same_bytes(client: TestClient) -> None:
    response = client.get(file_url(OPEN_ID, "pistes.gpkg"))

    assert response.status_code == 200
    assert response.content == GPKG
    assert response.headers["content-length"] == str(len(GPKG))
    assert response.headers["content-type"] == "application/geopackage+sqlite3"
    assert response.headers["etag"] == f'"{hashlib.sha256(GPKG).hexdigest()}"'
    assert response.headers["content-disposition"].startswith("attachment;")
    assert response.headers["cache-control"] == "public, no-cache"


def test_etag_answers_not_modified(client: TestClient) -> None:
    etag = client.get(file_url(OPEN_ID, "pistes.gpkg")).headers["etag"]

    cached = client.get(file_url(OPEN_ID, "pistes.gpkg"), headers={"If-None-Match": f'"other", W/{etag}'})
    changed = client.get(file_url(OPEN_ID, "pistes.gpkg"), headers={"If-None-Match": '"other"'})

    assert cached.status_code == 304
    assert cached.content == b""
    assert cached.headers["etag"] == etag
    assert changed.status_code == 200


def test_text_files_get_no_invented_charset(client: TestClient) -> None:
    response = client.get(file_url(OPEN_ID, "compteurs_2024.csv"))

    assert response.status_code == 200
    assert response.content == LATIN1_CSV
    assert response.headers["content-type"] == "text/csv"


def test_head_gives_headers_without_body(client: TestClient) -> None:
    response = client.head(file_url(OPEN_ID, "pistes.gpkg"))

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(GPKG))
    assert response.headers["etag"] == f'"{hashlib.sha256(GPKG).hexdigest()}"'


def test_accented_file_name(client: TestClient) -> None:
    response = client.get(file_url(OPEN_ID, ACCENTED))

    assert response.status_code == 200
    assert response.content == NOTICE
    disposition = response.headers["content-disposition"]
    assert "filename*=UTF-8''R%C3%A9seau%20cyclable%20%E2%80%93%20%C3%A9t%C3%A9%202025.gpkg" in disposition
    assert 'filename="Reseau cyclable  ete 2025.gpkg"' in disposition


def test_record_lists_files_with_download_urls(client: TestClient) -> None:
    response = client.get(f"/api/v1/regional/publications/{OPEN_ID}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["title"], body["organization"], body["revision"], body["access"]) == (
        OPEN_ID,
        "Pistes cyclables",
        "montpellier-mediterranee-metropole",
        1,
        "open",
    )
    files = {f["name"]: f for f in body["files"]}
    assert files["pistes.gpkg"]["sha256"] == hashlib.sha256(GPKG).hexdigest()
    assert files["pistes.gpkg"]["size"] == len(GPKG)
    assert files["pistes.gpkg"]["url"] == "http://testserver" + file_url(OPEN_ID, "pistes.gpkg")
    assert files["compteurs.csv"] == {
        "name": "compteurs.csv",
        "title": None,
        "size": None,
        "sha256": None,
        "media_type": None,
        "format": None,
        "url": "https://example.org/compteurs.csv",
        "hosted": False,
    }
    # The download URL the record gives is the one that serves the file.
    assert client.get(files[ACCENTED]["url"]).content == NOTICE


def test_record_urls_use_the_public_url_when_given(published: Env) -> None:
    def get_session() -> Iterator[Session]:
        with Session(published.engine) as session:
            yield session

    application = FastAPI()
    router = build_router(
        get_session, anonymous, lambda: published.tmp / "regional", public_url=lambda: PUBLIC_URL
    )
    application.include_router(router)

    body = TestClient(application).get(f"/api/v1/regional/publications/{OPEN_ID}").json()

    assert body["files"][0]["url"] == PUBLIC_URL + file_url(OPEN_ID, "pistes.gpkg")


def test_link_resource_redirects_to_the_producer(client: TestClient) -> None:
    response = client.get(file_url(OPEN_ID, "compteurs.csv"), follow_redirects=False)

    assert response.status_code == 307
    assert response.headers["location"] == "https://example.org/compteurs.csv"


def test_restricted_anonymous_is_asked_to_authenticate(client: TestClient) -> None:
    for url in (
        file_url(RESTRICTED_ID, "cadastre_detaille.gpkg"),
        f"/api/v1/regional/publications/{RESTRICTED_ID}",
    ):
        response = client.get(url)

        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["error"] == "unauthorized"
        assert "authentifiez-vous" in response.json()["detail"]


def test_restricted_unlisted_viewer_is_forbidden(app: FastAPI, client: TestClient) -> None:
    as_viewer(
        app,
        FakeViewer(
            subject="kc-0001",
            email="curieux@example.fr",
            organizations=("toulouse-metropole",),
        ),
    )

    response = client.get(file_url(RESTRICTED_ID, "cadastre_detaille.gpkg"))

    assert response.status_code == 403
    assert response.json() == {
        "error": "forbidden",
        "detail": "Ces données sont en accès restreint et votre compte n'y a pas accès.",
    }


@pytest.mark.parametrize(
    "viewer",
    [
        pytest.param(FakeViewer(subject="kc-0002", email="agent.sig@beziers.fr"), id="listed-by-email"),
        pytest.param(FakeViewer(subject="kc-7f3e"), id="listed-by-subject"),
        pytest.param(
            FakeViewer(subject="kc-0003", organizations=("sete-agglopole-mediterranee",)),
            id="listed-organisation",
        ),
        pytest.param(FakeViewer(subject="kc-0004", is_staff=True), id="staff"),
    ],
)
def test_restricted_listed_viewer_downloads(app: FastAPI, client: TestClient, viewer: FakeViewer) -> None:
    as_viewer(app, viewer)

    response = client.get(file_url(RESTRICTED_ID, "cadastre_detaille.gpkg"))

    assert response.status_code == 200
    assert response.content == GPKG + b"restreint"
    assert response.headers["cache-control"] == "private, no-cache"
    assert client.get(f"/api/v1/regional/publications/{RESTRICTED_ID}").json()["access"] == "restricted"


def test_withdrawn_and_unknown_are_not_found(
    published: Env, make_revision: RevisionFactory, client: TestClient
) -> None:
    published.connector().withdraw(make_revision([], publication_id=OPEN_ID), LedgerEntry(state="present"))

    for url in (
        file_url(OPEN_ID, "pistes.gpkg"),
        f"/api/v1/regional/publications/{OPEN_ID}",
        f"/api/v1/regional/publications/{'0' * 8}-0000-4000-8000-{'0' * 12}",
    ):
        response = client.get(url)
        assert response.status_code == 404, url
        assert response.json()["error"] == "not_found"


def test_unknown_file_is_not_found(client: TestClient) -> None:
    response = client.get(file_url(OPEN_ID, "inconnu.gpkg"))

    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "detail": "Aucun fichier de ce nom dans cette publication.",
    }


def test_unknown_file_of_a_restricted_record_is_not_revealed_to_strangers(client: TestClient) -> None:
    assert client.get(file_url(RESTRICTED_ID, "inconnu.gpkg")).status_code == 401


def test_openapi_documents_the_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    assert "/api/v1/regional/publications/{publication_id}" in paths
    assert "get" in paths["/api/v1/regional/publications/{publication_id}/files/{name}"]


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, False), ("*", True), ('"abc"', True), ('W/"abc"', True), ('"x", "abc"', True), ('"abcd"', False)],
)
def test_etag_matching(header: str | None, expected: bool) -> None:
    assert etag_matches(header, "abc") is expected


def test_content_disposition_escapes_quotes() -> None:
    assert content_disposition('a"b.csv') == "attachment; filename=\"a_b.csv\"; filename*=UTF-8''a%22b.csv"
