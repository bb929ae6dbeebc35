"""The emulator answers like the Entrepôt API (geoplateforme-api.md): routes, statuses, errors, pagination."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.embedded import free_port
from tests.connectors.geoplateforme.conftest import REPO_ROOT, STEP_SECONDS
from tests.connectors.geoplateforme.samples import write_gpkg
from tests.fixtures.servers import http_ok, start_process


def _wait(api: httpx.Client, path: str, done: Any, timeout: float = 10.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = api.get(path).json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(STEP_SECONDS)


def _upload(
    api: httpx.Client, name: str = "livraison", srs: str = "EPSG:2154", kind: str = "VECTOR"
) -> dict[str, Any]:
    response = api.post("/uploads", json={"name": name, "description": "test", "type": kind, "srs": srs})
    assert response.status_code == 201, response.text
    upload: dict[str, Any] = response.json()
    return upload


def _push(api: httpx.Client, upload_id: str, path: Path, remote: str) -> None:
    with path.open("rb") as handle:
        api.post(
            f"/uploads/{upload_id}/data", params={"path": remote}, files={"file": (path.name, handle)}
        ).raise_for_status()


def test_tokens_and_oauth2_errors(emulator: Any) -> None:
    org = emulator.organisation()
    url = org["token_url"]

    wrong = httpx.post(
        url, data={"grant_type": "client_credentials", "client_id": org["client_id"], "client_secret": "x"}
    )
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    unsupported = httpx.post(url, data={"grant_type": "implicit", "client_id": org["client_id"]})
    assert unsupported.status_code == 400 and unsupported.json()["error"] == "unsupported_grant_type"
    basic = httpx.post(
        url, data={"grant_type": "client_credentials"}, auth=(org["client_id"], org["client_secret"])
    )
    assert basic.status_code == 200 and basic.json()["token_type"] == "Bearer"

    anonymous = httpx.get(f"{org['api_url']}/users/me")
    assert anonymous.status_code == 401
    assert anonymous.json() == {"error": "Unauthorized", "error_description": ["Authentification requise."]}


def test_users_me_lists_the_community_and_its_datastore(emulator: Any) -> None:
    org = emulator.organisation()
    with emulator.api(org) as api:
        me = api.get(f"{org['api_url']}/users/me").json()
        (member,) = me["communities_member"]
        assert member["community"]["datastore"] == org["datastore_id"]
        assert {"UPLOAD", "PROCESSING", "BROADCAST"} <= set(member["rights"])
        datastore = api.get(f"{org['api_url']}/datastores/{org['datastore_id']}").json()
        types = {(entry["endpoint"]["type"], entry["endpoint"]["open"]) for entry in datastore["endpoints"]}
        for kind in ("WFS", "WMS-VECTOR", "WMS-RASTER", "WMTS-TMS", "VECTOR-TMS", "DOWNLOAD", "METADATA"):
            assert {(kind, True), (kind, False)} <= types
        private_wfs = api.get("/endpoints", params={"type": "WFS", "open": "false"}).json()
        assert [entry["endpoint"]["open"] for entry in private_wfs] == [False]
        names = {item["name"] for item in api.get("/processings", params={"limit": 100}).json()}
        assert {
            "Intégration de données vecteur livrées en base",
            "Calcul de pyramide raster",
            "Recopie d'une archive livrée",
            "Calcul ou mise à jour de pyramide vecteur",
        } <= names
        # Another organisation's datastore is out of reach.
        other = emulator.organisation()
        assert api.get(f"{org['api_url']}/datastores/{other['datastore_id']}").status_code == 403


def test_processing_ids_differ_per_datastore(emulator: Any) -> None:
    ids = []
    for org in (emulator.organisation(), emulator.organisation()):
        with emulator.api(org) as api:
            items = api.get("/processings", params={"name": "Calcul de pyramide raster"}).json()
            ids.append(items[0]["_id"])
    assert ids[0] != ids[1]


def test_lists_are_paged_with_content_range_and_filtered_by_tags(emulator: Any) -> None:
    org = emulator.organisation()
    with emulator.api(org) as api:
        uploads = [_upload(api, name=f"livraison-{index}") for index in range(3)]
        api.post(f"/uploads/{uploads[1]['_id']}/tags", json={"openig_publication": "p1"}).raise_for_status()

        first = api.get("/uploads", params={"limit": 2, "page": 1})
        second = api.get("/uploads", params={"limit": 2, "page": 2})
        tagged = api.get("/uploads", params={"tags[openig_publication]": "p1"}).json()
        wildcard = api.get("/uploads", params={"name": "livraison-%"}).json()

    assert first.headers["Content-Range"] == "0-1/3" and len(first.json()) == 2
    assert second.headers["Content-Range"] == "2-2/3" and len(second.json()) == 1
    assert [item["_id"] for item in tagged] == [uploads[1]["_id"]]
    assert len(wildcard) == 3


def test_upload_checks_pass_and_a_wrong_md5_makes_the_upload_unstable(emulator: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    gpkg = write_gpkg(tmp_path / "pistes.gpkg")
    with emulator.api(org) as api:
        good, bad = _upload(api, "bonne"), _upload(api, "mauvaise")
        for upload in (good, bad):
            _push(api, upload["_id"], gpkg, "data/pistes.gpkg")
        correct = hashlib.md5(gpkg.read_bytes(), usedforsecurity=False).hexdigest()
        api.post(f"/uploads/{good['_id']}/md5", files={"file": ("c.md5", f"{correct}  data/pistes.gpkg\n")})
        api.post(f"/uploads/{bad['_id']}/md5", files={"file": ("c.md5", f"{'0' * 32}  data/pistes.gpkg\n")})
        tree = api.get(f"/uploads/{good['_id']}/tree").json()
        data = next(entry for entry in tree if entry["name"] == "data")
        assert data["type"] == "DIRECTORY"
        assert data["children"] == [{"type": "FILE", "name": "pistes.gpkg", "size": gpkg.stat().st_size}]
        assert {"type": "FILE", "name": "c.md5", "size": len(f"{correct}  data/pistes.gpkg\n")} in tree
        for upload in (good, bad):
            closed = api.post(f"/uploads/{upload['_id']}/close").json()
            assert closed["status"] == "CLOSED"
        # Closing again is refused: the upload is no longer open.
        assert api.post(f"/uploads/{good['_id']}/close").status_code == 400

        _wait(
            api,
            f"/uploads/{good['_id']}",
            lambda body: (
                body["status"] in ("CLOSED", "UNSTABLE")
                and not api.get(f"/uploads/{good['_id']}/checks").json()["in_progress"]
            ),
        )
        done = _wait(
            api, f"/uploads/{bad['_id']}/checks", lambda body: not body["asked"] and not body["in_progress"]
        )
        assert api.get(f"/uploads/{good['_id']}/checks").json()["failed"] == []
        assert api.get(f"/uploads/{bad['_id']}").json()["status"] == "UNSTABLE"
        (failed,) = done["failed"]
        assert failed["check"]["name"] == "Vérification standard"
        logs = api.get(f"/checks/executions/{failed['_id']}/logs").json()
        assert any("signature MD5 du fichier data/pistes.gpkg est différente" in line for line in logs)
        # More checks can be run on a closed upload: a raster check on vector data fails.
        raster = api.get("/checks", params={"name": "Vérification raster"}).json()[0]["_id"]
        api.post(f"/uploads/{good['_id']}/checks", json={"checks": [raster]}).raise_for_status()
        report = _wait(
            api, f"/uploads/{good['_id']}/checks", lambda body: not body["asked"] and not body["in_progress"]
        )
        assert [item["check"]["name"] for item in report["failed"]] == ["Vérification raster"]
        assert api.get(f"/uploads/{good['_id']}").json()["status"] == "UNSTABLE"
        # Files cannot be added once closed.
        with gpkg.open("rb") as handle:
            refused = api.post(
                f"/uploads/{good['_id']}/data", params={"path": "data/x.gpkg"}, files={"file": handle}
            )
        assert refused.status_code == 400 and "n'est pas ouverte" in refused.json()["error_description"][0]


def test_configuration_rules_layer_names_and_offerings(emulator: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    gpkg = write_gpkg(tmp_path / "pistes.gpkg")
    with emulator.api(org) as api:
        upload = _upload(api)
        _push(api, upload["_id"], gpkg, "data/pistes.gpkg")
        api.post(f"/uploads/{upload['_id']}/close")
        _wait(
            api,
            f"/uploads/{upload['_id']}/checks",
            lambda body: not body["asked"] and not body["in_progress"],
        )
        processing = api.get(
            "/processings", params={"name": "Intégration de données vecteur livrées en base"}
        ).json()[0]
        execution = api.post(
            "/processings/executions",
            json={
                "processing": processing["_id"],
                "inputs": {"upload": [upload["_id"]]},
                "output": {"stored_data": {"name": "pistes", "storage_tags": ["VECTEUR"]}},
                "parameters": {},
            },
        ).json()
        assert execution["status"] == "CREATED"
        api.post(f"/processings/executions/{execution['_id']}/launch").raise_for_status()
        seen = set()

        def finished(body: dict[str, Any]) -> bool:
            seen.add(body["status"])
            return body["status"] in ("SUCCESS", "FAILURE")

        assert _wait(api, f"/processings/executions/{execution['_id']}", finished)["status"] == "SUCCESS"
        assert "PROGRESS" in seen or "WAITING" in seen
        stored = execution["output"]["stored_data"]["_id"]
        assert api.get(f"/stored_data/{stored}").json()["status"] == "GENERATED"

        def body(layer_name: str, table: str = "pistes_cyclables") -> dict[str, Any]:
            return {
                "type": "WFS",
                "name": "Pistes",
                "layer_name": layer_name,
                "type_infos": {
                    "used_data": [
                        {
                            "stored_data": stored,
                            "relations": [{"native_name": table, "title": "t", "abstract": "a"}],
                        }
                    ],
                },
            }

        bad_name = api.post("/configurations", json=body("1-pistes"))
        assert bad_name.status_code == 400
        missing = api.post("/configurations", json=body("pistes_ok", table="absente"))
        assert missing.status_code == 400 and "absente" in missing.json()["error_description"][0]
        created = api.post("/configurations", json=body("emulator_test_pistes"))
        assert created.status_code == 201 and created.json()["status"] == "UNPUBLISHED"
        clash = api.post("/configurations", json=body("emulator_test_pistes"))
        assert clash.status_code == 409

        configuration = created.json()["_id"]
        endpoint = api.get("/endpoints", params={"type": "WFS", "open": "true"}).json()[0]["endpoint"]["_id"]
        old = api.post(
            f"/configurations/{configuration}/offerings", json={"endpoint": endpoint, "visibility": "PUBLIC"}
        )
        assert old.status_code == 400  # §2.5: visibility was removed, open replaces it
        offering = api.post(
            f"/configurations/{configuration}/offerings", json={"endpoint": endpoint, "open": True}
        ).json()
        assert offering["status"] == "PUBLISHING"
        assert (
            api.post(f"/configurations/{configuration}/offerings", json={"endpoint": endpoint}).status_code
            == 409
        )
        _wait(api, f"/offerings/{offering['_id']}", lambda item: item["status"] == "PUBLISHED")
        assert api.get(f"/configurations/{configuration}").json()["status"] == "PUBLISHED"
        assert api.delete(f"/configurations/{configuration}").status_code == 409
        assert api.delete(f"/stored_data/{stored}").status_code == 409

        assert api.delete(f"/offerings/{offering['_id']}").status_code == 204
        assert api.get(f"/offerings/{offering['_id']}").json()["status"] == "UNPUBLISHING"
        gone = _wait(api, f"/offerings/{offering['_id']}", lambda item: item.get("error") == "Not Found")
        assert gone["error_description"]
        assert api.get(f"/configurations/{configuration}").json()["status"] == "UNPUBLISHED"
        assert api.delete(f"/configurations/{configuration}").status_code == 204


def test_metadata_upload_rules(emulator: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    record = (
        b'<gmd:MD_Metadata xmlns:gmd="http://www.isotc211.org/2005/gmd" xmlns:gco="http://www.isotc211.org/2005/gco">'
        b"<gmd:fileIdentifier><gco:CharacterString>fr-test-emulator-0001</gco:CharacterString></gmd:fileIdentifier>"
        b"</gmd:MD_Metadata>"
    )
    with emulator.api(org) as api:
        malformed = api.post("/metadata", files={"file": ("m.xml", b"<gmd:MD_Metadata><oops>")})
        assert malformed.status_code == 422
        assert malformed.json()["error"] == "Unprocessable Entity"
        created = api.post(
            "/metadata", files={"file": ("m.xml", record)}, data={"type": "INSPIRE", "open_data": "true"}
        )
        assert created.status_code == 201
        assert created.json() | {"_id": None} == {
            "_id": None,
            "type": "INSPIRE",
            "open_data": True,
            "level": "DATASET",
            "file_identifier": "fr-test-emulator-0001",
            "tags": {},
            "endpoints": [],
        }
        duplicate = api.post("/metadata", files={"file": ("m.xml", record)})
        assert duplicate.status_code == 409
        csw = api.get("/endpoints", params={"type": "METADATA", "open": "true"}).json()[0]["endpoint"]["_id"]
        body = {"file_identifiers": ["fr-test-emulator-0001"], "endpoint": csw}
        api.post("/metadata/publication", json=body).raise_for_status()
        assert api.delete(f"/metadata/{created.json()['_id']}").status_code == 409  # unpublish first (§3)
        api.post("/metadata/unpublication", json=body).raise_for_status()
        assert api.delete(f"/metadata/{created.json()['_id']}").status_code == 204


def test_sld_styles_must_be_version_1_0_0(emulator: Any) -> None:
    org = emulator.organisation()
    sld = '<StyledLayerDescriptor version="{}" xmlns="http://www.opengis.net/sld"/>'
    with emulator.api(org) as api:
        refused = api.post(
            "/statics",
            data={"name": "s", "type": "GEOSERVER-STYLE"},
            files={"file": ("s.sld", sld.format("1.1.0"))},
        )
        accepted = api.post(
            "/statics",
            data={"name": "s", "type": "GEOSERVER-STYLE"},
            files={"file": ("s.sld", sld.format("1.0.0"))},
        )
    assert refused.status_code == 400 and "1.0.0" in refused.json()["error_description"][0]
    assert accepted.status_code == 201 and accepted.json()["type_infos"] == {"used_attributes": []}


def test_faults_are_switched_at_run_time(emulator: Any) -> None:
    org = emulator.organisation()
    with emulator.api(org) as api:
        emulator.faults(fail_next=2, fail_status=500, retry_after=3)
        answers = [api.get(f"{org['api_url']}/users/me") for _ in range(3)]
        assert [answer.status_code for answer in answers] == [500, 500, 200]
        assert answers[0].headers["Retry-After"] == "3"
        assert answers[0].json()["error_description"] == ["Erreur injectée par l'émulateur."]
        # The admin API is never failed on purpose.
        assert emulator.state()["faults"]["fail_next"] == 0


def test_state_survives_a_restart_with_a_state_dir(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    command = [
        sys.executable,
        "-m",
        "emulators.geoplateforme",
        "--port",
        str(port),
        "--step-seconds",
        "0.05",
        "--state-dir",
        str(tmp_path / "state"),
    ]
    handle = start_process(
        command, env, tmp_path / "emulator.log", http_ok(f"{url}/_emulator/state"), cwd=REPO_ROOT
    )
    try:
        org = httpx.post(f"{url}/_emulator/organisations", json={"technical_name": "persistante"}).json()
        token = httpx.post(
            org["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": org["client_id"],
                "client_secret": org["client_secret"],
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        created = httpx.post(
            f"{org['api_url']}/datastores/{org['datastore_id']}/uploads",
            headers=headers,
            json={"name": "l", "description": "d", "type": "ARCHIVE", "srs": "EPSG:2154"},
        ).json()
        handle.restart()
        again = httpx.post(f"{url}/_emulator/organisations", json={"technical_name": "persistante"})
        assert again.status_code == 200 and again.json()["client_secret"] == org["client_secret"]
        upload = httpx.get(
            f"{org['api_url']}/datastores/{org['datastore_id']}/uploads/{created['_id']}", headers=headers
        )
        assert upload.status_code == 200 and upload.json()["name"] == "l"
    finally:
        handle.stop()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"name": "l", "description": "d", "type": "VECTOR", "srs": "EPSG:999999"}, "n'est pas reconnu"),
        ({"name": "l", "description": "d", "type": "SHAPE", "srs": "EPSG:2154"}, "est inconnu"),
        ({"description": "d", "type": "VECTOR", "srs": "EPSG:2154"}, "Le champ name est obligatoire."),
    ],
)
def test_upload_declarations_are_validated(emulator: Any, body: dict[str, Any], message: str) -> None:
    org = emulator.organisation()
    with emulator.api(org) as api:
        answer = api.post("/uploads", json=body)
    assert answer.status_code == 400
    assert any(message in line for line in answer.json()["error_description"])
