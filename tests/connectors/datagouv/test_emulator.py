"""The data.gouv.fr emulator's routes, validation rules and error bodies (research/datagouv-api.md)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from emulators.datagouv import create_app

UNAUTHORIZED = (
    "The server could not verify that you are authorized to access the URL requested. You either supplied "
    "the wrong credentials (e.g. a bad password), or your browser doesn't understand how to supply the "
    "credentials required."
)


class Site:
    def __init__(self, client: TestClient) -> None:
        self.client = client
        provisioned = client.post(
            "/_emulator/provision", json={"organization": {"slug": "herault", "name": "Hérault"}}
        )
        assert provisioned.status_code == 201
        self.org = provisioned.json()["organization_id"]
        self.key = provisioned.json()["api_key"]
        self.headers = {"X-API-KEY": self.key}

    def create(self, **fields: Any) -> Any:
        body = {
            "title": "Routes départementales",
            "description": "Réseau routier du département de l'Hérault.",
            "organization": self.org,
            **fields,
        }
        return self.client.post("/api/1/datasets/", json=body, headers=self.headers)

    def dataset(self, **fields: Any) -> dict[str, Any]:
        response = self.create(**fields)
        assert response.status_code == 201, response.text
        return dict(response.json())


@pytest.fixture
def site() -> Iterator[Site]:
    with TestClient(create_app()) as client:
        yield Site(client)


# --------------------------------------------------------------------------------------------- auth


def test_bad_key_is_401_with_challenge_even_on_reads(site: Site) -> None:
    response = site.client.get("/api/1/datasets/", headers={"X-API-KEY": "udata_nope"})
    assert response.status_code == 401
    assert response.json() == {"message": "Invalid API token"}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="uData"'


def test_write_without_key_is_401(site: Site) -> None:
    response = site.client.post("/api/1/datasets/", json={"title": "x", "description": "y"})
    assert response.status_code == 401 and response.json() == {"message": UNAUTHORIZED}


def test_revoked_key(site: Site) -> None:
    assert site.client.post("/_emulator/tokens/revoke", json={"api_key": site.key}).status_code == 204
    response = site.client.get("/api/1/me/", headers=site.headers)
    assert response.status_code == 401 and response.json() == {"message": "Revoked API token"}


def test_me_lists_organizations(site: Site) -> None:
    me = site.client.get("/api/1/me/", headers=site.headers).json()
    assert [o["id"] for o in me["organizations"]] == [site.org]


def test_not_a_member_and_other_users_dataset(site: Site) -> None:
    other = site.client.post("/_emulator/users", json={"first_name": "Eve"}).json()
    response = site.client.post(
        "/api/1/datasets/",
        json={"title": "x", "description": "y", "organization": site.org},
        headers={"X-API-KEY": other["api_key"]},
    )
    assert response.status_code == 400
    assert response.json() == {"errors": {"organization": ["Permission denied for this organization"]}}

    dataset = site.dataset()
    response = site.client.put(
        f"/api/1/datasets/{dataset['id']}/", json={"title": "volé"}, headers={"X-API-KEY": other["api_key"]}
    )
    assert response.status_code == 403
    assert response.json() == {"message": "You do not have the permission to modify that object."}


def test_provision_is_idempotent(site: Site) -> None:
    again = site.client.post(
        "/_emulator/provision", json={"organization": {"slug": "herault", "name": "Hérault"}}
    )
    assert again.status_code == 200
    assert again.json()["organization_id"] == site.org and again.json()["api_key"] == site.key


def test_provision_one_service_account_for_several_organizations(site: Site) -> None:
    gard = site.client.post(
        "/_emulator/provision", json={"organization": {"slug": "gard", "name": "Gard"}, "api_key": site.key}
    ).json()
    assert gard["api_key"] == site.key and gard["organization_id"] != site.org
    me = site.client.get("/api/1/me/", headers=site.headers).json()
    assert {o["slug"] for o in me["organizations"]} == {"herault", "gard"}


# --------------------------------------------------------------------------------------------- validation


def test_content_type_and_json_object(site: Site) -> None:
    response = site.client.post("/api/1/datasets/", content=b"title=x", headers=site.headers)
    assert response.status_code == 400
    assert response.json() == {"errors": {"Content-Type": "expecting application/json"}}
    response = site.client.post("/api/1/datasets/", json=["not", "an", "object"], headers=site.headers)
    assert response.json() == {"errors": {"request": "expecting a JSON object"}}


@pytest.mark.parametrize(
    ("fields", "status", "body"),
    [
        ({"title": ""}, 400, {"errors": {"title": ["This field is required."]}}),
        ({"title": "t" * 351}, 400, {"errors": {"title": ["Field cannot be longer than 350 characters."]}}),
        ({"description": None}, 400, {"errors": {"description": ["This field is required."]}}),
        ({"frequency": "foo"}, 400, {"message": "'foo' is not a valid UpdateFrequency"}),
        ({"license": "wtfpl"}, 400, {"errors": {"license": ["Not a valid choice"]}}),
        ({"access_type": "secret"}, 400, {"errors": {"access_type": ["Not a valid choice."]}}),
        (
            {"tags": ["ok-tag", "é"]},
            400,
            {"errors": {"tags": ['Tag "e" must be between 3 and 96 characters long.']}},
        ),
        (
            {"spatial": {"zones": ["fr:commune:34172", "fr:commune:00000"]}},
            400,
            {"errors": {"spatial": {"zones": ["Unknown geoid(s): fr:commune:00000"]}}},
        ),
        ({"spatial": {"geom": {"type": "Point", "coordinates": [3.8, 43.6]}}}, 400, None),
        (
            {"temporal_coverage": {"start": 2024}},
            400,
            {"errors": {"temporal_coverage": ["Date must be a string"]}},
        ),
        ({"extras": ["a"]}, 400, {"errors": {"extras": ["Unsupported data type"]}}),
    ],
)
def test_dataset_validation(
    site: Site, fields: dict[str, Any], status: int, body: dict[str, Any] | None
) -> None:
    response = site.create(**fields)
    assert response.status_code == status
    if body is not None:
        assert response.json() == body


def test_zones_and_geometry_are_mutually_exclusive(site: Site) -> None:
    geom = {"type": "MultiPolygon", "coordinates": [[[[3.8, 43.5], [3.9, 43.5], [3.9, 43.7], [3.8, 43.5]]]]}
    response = site.create(spatial={"zones": ["fr:departement:34"], "geom": geom})
    assert response.status_code == 400
    body = response.json()
    assert body["errors"] == {
        "spatial": {"__all__": "The spatial coverage cannot contains a Geozone and a Geometry"}
    }
    assert "The spatial coverage cannot contains a Geozone and a Geometry" in body["message"]


def test_create_normalises_input(site: Site) -> None:
    dataset = site.dataset(
        tags=["Vélo", "Mobilité douce"],
        frequency="biannual",  # legacy alias
        spatial={"zones": ["fr:region:76@1970-01-09"]},
        temporal_coverage="2020-01-01 - 2024-12-31",
        license="odc-odbl",
    )
    assert dataset["tags"] == ["velo", "mobilite-douce"]
    assert dataset["frequency"] == "semiannual"
    assert dataset["spatial"]["zones"] == ["fr:region:76"]
    assert dataset["temporal_coverage"] == {
        "start": "2020-01-01T00:00:00+00:00",
        "end": "2024-12-31T00:00:00+00:00",
    }
    assert dataset["slug"] == "routes-departementales" and dataset["private"] is False
    assert dataset["access_type"] == "open" and dataset["license"] == "odc-odbl"
    # A second dataset with the same title gets a suffixed slug (research §7.1).
    assert site.dataset()["slug"] == "routes-departementales-1"


def test_restricted_access_forces_license_to_null(site: Site) -> None:
    dataset = site.dataset(
        license="lov2", access_type="restricted", authorization_request_url="https://openig.example/demande"
    )
    assert dataset["license"] == "notspecified" and dataset["access_type"] == "restricted"
    assert dataset["authorization_request_url"] == "https://openig.example/demande"


# ----------------------------------------------------------------------------------------- update semantics


def test_put_keeps_omitted_keys_and_private(site: Site) -> None:
    dataset = site.dataset(private=True, extras={"a": 1, "b": 2}, tags=["routes"])
    url = f"/api/1/datasets/{dataset['id']}/"
    updated = site.client.put(url, json={"title": "Routes de l'Hérault"}, headers=site.headers).json()
    assert (
        updated["private"] is True and updated["extras"] == {"a": 1, "b": 2} and updated["tags"] == ["routes"]
    )
    assert updated["slug"] == "routes-de-l-herault"
    # The old slug answers 308 to the new one.
    moved = site.client.get(
        "/api/1/datasets/routes-departementales/", follow_redirects=False, headers=site.headers
    )
    assert moved.status_code == 308 and moved.headers["location"].endswith("/routes-de-l-herault/")
    assert site.client.put(url, json={"private": None}, headers=site.headers).json()["private"] is False
    assert site.client.put(url, json={"extras": {}}, headers=site.headers).json()["extras"] == {}


def test_put_resources_replaces_the_list(site: Site) -> None:
    dataset = site.dataset(
        resources=[
            {"title": "A", "url": "https://example.org/a.csv", "filetype": "remote"},
            {"title": "B", "url": "https://example.org/b.csv", "filetype": "remote"},
        ]
    )
    a, b = dataset["resources"]
    assert a["type"] == "other"  # the form's default (research §3)
    url = f"/api/1/datasets/{dataset['id']}/"
    body = {
        "resources": [
            {**b, "title": "B2"},
            {"id": "made-up", "title": "C", "url": "https://example.org/c.csv"},
        ]
    }
    updated = site.client.put(url, json=body, headers=site.headers).json()
    assert [r["title"] for r in updated["resources"]] == ["B2", "C"]
    assert updated["resources"][0]["id"] == b["id"] and updated["resources"][1]["id"] != "made-up"


def test_contact_points_quirk(site: Site) -> None:
    contact = {"name": "SIG", "email": "sig@herault.fr", "role": "contact", "organization": site.org}
    first = site.client.post("/api/1/contacts/", json=contact, headers=site.headers)
    second = site.client.post("/api/1/contacts/", json=contact, headers=site.headers)
    assert (first.status_code, second.status_code) == (201, 200)  # get_or_create
    point = first.json()["id"]
    dataset = site.dataset(contact_points=[point])
    url = f"/api/1/datasets/{dataset['id']}/"
    assert (
        len(site.client.put(url, json={"contact_points": []}, headers=site.headers).json()["contact_points"])
        == 1
    )
    assert (
        site.client.put(url, json={"contact_points": None}, headers=site.headers).json()["contact_points"]
        == []
    )


def test_delete_is_soft_then_410(site: Site) -> None:
    dataset = site.dataset()
    url = f"/api/1/datasets/{dataset['id']}/"
    assert site.client.delete(url, headers=site.headers).status_code == 204
    again = site.client.delete(url, headers=site.headers)
    assert again.status_code == 410 and again.json() == {"message": "Dataset has been deleted"}
    assert site.client.get(url).status_code == 410  # anonymous
    assert site.client.get(url, headers=site.headers).json()["deleted"] is not None  # a member still reads it
    assert site.client.put(url, json={"title": "x"}, headers=site.headers).status_code == 410
    listed = site.client.get(f"/api/1/organizations/{site.org}/datasets/", headers=site.headers).json()
    assert [d["id"] for d in listed["data"]] == [dataset["id"]]  # deleted ones stay in the org listing
    assert site.client.get("/api/1/datasets/").json()["total"] == 0  # but not in the public one
    restored = site.client.put(url, json={"deleted": None}, headers=site.headers)
    assert restored.status_code == 200 and restored.json()["deleted"] is None


def test_v2_extras_merge_and_delete(site: Site) -> None:
    dataset = site.dataset(extras={"a": 1, "b": 2})
    url = f"/api/2/datasets/{dataset['id']}/extras/"
    merged = site.client.put(url, json={"b": None, "c": "trois"}, headers=site.headers)
    assert merged.status_code == 200 and merged.json() == {"a": 1, "c": "trois"}
    assert site.client.put(url, json=["a"], headers=site.headers).json() == {
        "message": "Wrong payload format, dict expected"
    }
    assert site.client.request("DELETE", url, json=["a"], headers=site.headers).status_code == 204
    assert site.client.get(url).json() == {"c": "trois"}


def test_pagination_and_x_fields(site: Site) -> None:
    for n in range(3):
        site.dataset(title=f"Jeu {n}")
    page = site.client.get(
        f"/api/1/organizations/{site.org}/datasets/",
        params={"page_size": 2},
        headers={**site.headers, "X-Fields": "data{id,title},total,next_page"},
    ).json()
    assert set(page) == {"data", "total", "next_page"} and set(page["data"][0]) == {"id", "title"}
    assert page["total"] == 3 and "page=2" in page["next_page"]
    bad = site.client.get("/api/1/datasets/", params={"organization": "not-an-id"})
    assert bad.status_code == 400 and bad.json() == {"message": "Organization arg must be an identifier"}


# --------------------------------------------------------------------------------------------- resources


def test_upload_creates_hosted_resource(site: Site) -> None:
    dataset = site.dataset()
    response = site.client.post(
        f"/api/1/datasets/{dataset['id']}/upload/",
        files={"file": ("Routes Départementales.GeoJSON", b'{"type": "FeatureCollection"}')},
        headers=site.headers,
    )
    assert response.status_code == 201
    resource = response.json()
    assert resource["success"] is True
    assert resource["title"] == "routes-departementales.geojson" and resource["format"] == "geojson"
    assert resource["type"] == "main" and resource["filetype"] == "file"
    assert resource["checksum"] == {
        "type": "sha1",
        "value": hashlib.sha1(b'{"type": "FeatureCollection"}').hexdigest(),
    }
    assert "/s/resources/routes-departementales/" in resource["url"]
    assert site.client.get(resource["url"]).content == b'{"type": "FeatureCollection"}'

    # Re-uploading overwrites title and format; a PUT restores the metadata and ignores protected fields.
    rid = resource["id"]
    replaced = site.client.post(
        f"/api/1/datasets/{dataset['id']}/resources/{rid}/upload/",
        files={"file": ("v2.csv", b"a;b\n")},
        headers=site.headers,
    )
    assert (
        replaced.status_code == 200 and replaced.json()["title"] == "v2.csv" and replaced.json()["id"] == rid
    )
    put = site.client.put(
        f"/api/1/datasets/{dataset['id']}/resources/{rid}/",
        json={"title": "Routes", "url": "https://evil.example/x", "format": "exe"},
        headers=site.headers,
    ).json()
    assert put["title"] == "Routes" and put["format"] == "csv" and put["url"] == replaced.json()["url"]


def test_upload_errors(site: Site) -> None:
    dataset = site.dataset()
    url = f"/api/1/datasets/{dataset['id']}/upload/"
    refused = site.client.post(url, files={"file": ("trafic.parquet", b"PAR1")}, headers=site.headers)
    assert refused.status_code == 400
    assert refused.json() == {
        "message": "This file type is not allowed.The allowed file type list is available at "
        "http://testserver/api/1/datasets/extensions/"
    }
    missing = site.client.post(url, data={"uuid": "x"}, headers=site.headers)
    assert missing.status_code == 400 and missing.json() == {
        "success": False,
        "error": "Missing file parameter",
    }
    html = site.client.post(url, files={"file": ("page.html", b"<html>")}, headers=site.headers)
    assert html.status_code == 400  # not even an allowed extension


def test_chunked_upload_protocol(site: Site) -> None:
    """udata's own test_create_with_file_chunks: the sha1 of b"abcd" proves the order of the parts."""
    dataset = site.dataset()
    url = f"/api/1/datasets/{dataset['id']}/upload/"
    upload_uuid = str(uuid.uuid4())
    form = {"uuid": upload_uuid, "filename": "test.txt", "partbyteoffset": "0", "totalparts": "4"}
    for index, chunk in enumerate([b"a", b"b", b"c", b"d"]):
        part = site.client.post(
            url,
            data={**form, "partindex": str(index), "chunksize": "1"},
            files={"file": ("blob", chunk)},
            headers=site.headers,
        )
        assert part.status_code == 200 and part.json() == {"success": True}
    again = site.client.post(
        url,
        data={**form, "partindex": "0", "chunksize": "1"},
        files={"file": ("blob", b"a")},
        headers=site.headers,
    )
    assert again.status_code == 500  # a part is never overwritten (flask-storage FileExists)
    done = site.client.post(url, data=form, headers=site.headers)
    assert done.status_code == 201
    assert done.json()["checksum"]["value"] == "81fe8bfe87576c3ecb22426f8e57847382917acf"
    assert done.json()["title"] == "test.txt" and done.json()["filesize"] == 4

    mismatch = site.client.post(
        url, data={**form, "uuid": str(uuid.uuid4()), "partindex": "0", "chunksize": "10"},
        files={"file": ("blob", b"a")}, headers=site.headers,
    )  # fmt: skip
    assert mismatch.status_code == 400 and mismatch.json() == {
        "success": False,
        "error": "Chunk size mismatch",
    }


def test_remote_resources(site: Site) -> None:
    dataset = site.dataset()
    url = f"/api/1/datasets/{dataset['id']}/resources/"
    no_filetype = site.client.post(
        url, json={"title": "A", "url": "https://example.org/a.csv"}, headers=site.headers
    )
    assert no_filetype.status_code == 400
    assert no_filetype.json() == {"message": "This endpoint only supports remote resources"}
    local = site.client.post(
        url,
        json={"title": "A", "url": "http://127.0.0.1:8000/a.csv", "filetype": "remote"},
        headers=site.headers,
    )
    assert local.json() == {"errors": {"url": ['Invalid URL "http://127.0.0.1:8000/a.csv": is a local URL']}}
    private = site.client.post(
        url, json={"title": "A", "url": "https://10.1.2.3/a.csv", "filetype": "remote"}, headers=site.headers
    )
    assert private.json() == {"errors": {"url": ['Invalid URL "https://10.1.2.3/a.csv": is a private URL']}}
    first = site.client.post(
        url,
        json={"title": "A", "url": "https://example.org/a.csv", "filetype": "remote"},
        headers=site.headers,
    )
    second = site.client.post(
        url,
        json={"title": "B", "url": "https://example.org/b.csv", "filetype": "remote"},
        headers=site.headers,
    )
    assert first.status_code == second.status_code == 201
    resources = site.client.get(f"/api/1/datasets/{dataset['id']}/").json()["resources"]
    assert [r["title"] for r in resources] == ["B", "A"]  # prepended (research §3)
    reordered = site.client.put(url, json=[first.json()["id"], second.json()["id"]], headers=site.headers)
    assert [r["title"] for r in reordered.json()] == ["A", "B"]
    gone = site.client.delete(f"{url}{uuid.uuid4()}/", headers=site.headers)
    assert gone.status_code == 404 and gone.json() == {"message": "Resource does not exist"}
    assert site.client.delete(f"{url}{first.json()['id']}/", headers=site.headers).status_code == 204


def test_local_urls_allowed_when_asked() -> None:
    with TestClient(create_app(allow_local_urls=True)) as client:
        site = Site(client)
        dataset = site.dataset()
        created = client.post(
            f"/api/1/datasets/{dataset['id']}/resources/",
            json={"title": "A", "url": "http://127.0.0.1:8000/a.csv", "filetype": "remote"},
            headers=site.headers,
        )
        assert created.status_code == 201


# --------------------------------------------------------------------------------------------- lists


def test_reference_lists(site: Site) -> None:
    frequencies = [f["id"] for f in site.client.get("/api/1/datasets/frequencies/").json()]
    assert len(frequencies) == 40 and "quarterly" in frequencies and "notPlanned" in frequencies
    licenses = {lic["id"] for lic in site.client.get("/api/1/datasets/licenses/").json()}
    assert {"lov2", "odc-odbl", "cc-by", "notspecified"} <= licenses
    extensions = site.client.get("/api/1/datasets/extensions/").json()
    assert "gpkg" in extensions and "parquet" not in extensions
    zone = site.client.get("/api/1/spatial/zone/fr:commune:34172/").json()
    assert zone["properties"]["name"] == "Montpellier"
    suggest = site.client.get("/api/1/spatial/zones/suggest/", params={"q": "hérault"}).json()
    assert [z["id"] for z in suggest] == ["fr:departement:34"]


# --------------------------------------------------------------------------------------------- switches


def test_read_only_blocks_creates_only(site: Site) -> None:
    dataset = site.dataset()
    site.client.put("/_emulator/read-only", json={"enabled": True})
    blocked = site.create()
    assert blocked.status_code == 423
    assert blocked.json() == {
        "message": "Due to security reasons, the creation of new content is currently disabled."
    }
    upload = site.client.post(
        f"/api/1/datasets/{dataset['id']}/upload/", files={"file": ("a.csv", b"a")}, headers=site.headers
    )
    assert upload.status_code == 423
    assert (
        site.client.put(
            f"/api/1/datasets/{dataset['id']}/", json={"title": "ok"}, headers=site.headers
        ).status_code
        == 200
    )


def test_fault_injection(site: Site) -> None:
    site.client.put("/_emulator/faults", json={"fail_next": 1, "throttle_next": 1, "retry_after": 3})
    throttled = site.client.get("/api/1/datasets/")
    assert throttled.status_code == 429 and throttled.headers["retry-after"] == "3"
    failed = site.client.get("/api/1/datasets/")
    assert failed.status_code == 500 and failed.json() == {"message": "Internal Server Error"}
    assert site.client.get("/api/1/datasets/").status_code == 200
    log = site.client.get("/_emulator/requests").json()
    assert [e["fault"] for e in log[-3:]] == ["injected 429", "injected 500", None]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    with TestClient(create_app(state_dir=tmp_path)) as client:
        site = Site(client)
        dataset = site.dataset()
        upload = client.post(
            f"/api/1/datasets/{dataset['id']}/upload/",
            files={"file": ("a.csv", b"x;y\n")},
            headers=site.headers,
        ).json()
    with TestClient(create_app(state_dir=tmp_path)) as client:
        again = client.get(f"/api/1/datasets/{dataset['id']}/", headers={"X-API-KEY": site.key})
        assert again.status_code == 200 and again.json()["resources"][0]["id"] == upload["id"]
        assert client.get(upload["url"]).content == b"x;y\n"
