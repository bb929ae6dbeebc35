"""End to end with the national emulators over real HTTP: one deposit lands on data.gouv.fr and on the
Géoplateforme, the services are cross-linked, restricted data keeps its files regional, and the metadata
documents are served."""

from __future__ import annotations

import json
import os
import signal
from typing import Any

import httpx
import pytest
from lxml import etree
from rdflib import Graph
from rdflib.namespace import DCAT, DCTERMS

from broker.embedded import free_port
from tests.broker.test_spine_e2e import ORG, authed, geojson, manifest, post, register, wait_for
from tests.fixtures.servers import http_ok, start_process

pytestmark = pytest.mark.servers


def emulator_datasets(root: str) -> list[dict[str, Any]]:
    """Every dataset the data.gouv.fr emulator holds, deleted ones included (its admin API)."""
    found = httpx.get(f"{root}/_emulator/datasets").json()
    rows: list[dict[str, Any]] = found.get("data", found) if isinstance(found, dict) else found
    return rows


def all_settled(body: dict[str, Any]) -> bool:
    return bool(body["deliveries"]) and all(
        d["state"] in {"done", "failed", "cancelled", "waiting"} for d in body["deliveries"]
    )


def test_open_vector_data_lands_on_both_national_platforms(
    broker_stack: Any, national_emulators: Any
) -> None:
    stack = broker_stack(env=national_emulators.env)
    register(stack)
    client = authed(stack)
    body = manifest(["pistes.geojson"], services=["download", "wfs", "wms"], portals=[])
    response = post(client, "/api/v1/publications", body, {"pistes.geojson": geojson()})
    assert response.status_code == 202, response.text
    publication_id = response.json()["id"]
    assert {d["target"] for d in response.json()["deliveries"]} == {"datagouv", "geoplateforme"}

    final = wait_for(client, publication_id, all_settled, timeout=180)
    states = {d["target"]: d for d in final["deliveries"]}
    assert states["datagouv"]["state"] == "done", states["datagouv"]
    assert states["geoplateforme"]["state"] == "done", states["geoplateforme"]
    service_urls = states["geoplateforme"]["urls"]
    assert any("wfs" in u.lower() for u in service_urls) and any("wms" in u.lower() for u in service_urls)

    # data.gouv.fr: exactly one dataset, under the organisation provisioned on the emulator, with the
    # broker's id in its extras, the file hosted, and (after the Géoplateforme published) its services.
    ours = [
        d
        for d in emulator_datasets(national_emulators.datagouv_url)
        if (d.get("extras") or {}).get("openig-broker:publication-id") == publication_id
    ]
    assert len(ours) == 1

    def linked(b: dict[str, Any]) -> bool:
        dataset_id = b["ledger"]["datagouv"]["remote"].get("dataset")
        found = httpx.get(f"{national_emulators.datagouv_url}/api/1/datasets/{dataset_id}/").json()
        urls = [r["url"] for r in found.get("resources", [])]
        return any(u in urls for u in service_urls)

    wait_for(client, publication_id, linked, timeout=120)

    # The Géoplateforme emulator holds the published offerings.
    state = httpx.get(f"{national_emulators.geoplateforme_url}/_emulator/state").json()
    assert state["counts"]["offerings"] >= 2

    iso = client.get(f"/api/v1/publications/{publication_id}/metadata.iso19139.xml")
    assert iso.status_code == 200 and iso.headers["content-type"].startswith("application/xml")
    root = etree.fromstring(iso.content)
    assert root.tag.endswith("MD_Metadata")
    assert b"Pistes cyclables" in iso.content

    ttl = client.get(f"/api/v1/publications/{publication_id}/metadata.dcat.ttl")
    assert ttl.status_code == 200 and "charset=utf-8" in ttl.headers["content-type"]
    graph = Graph().parse(data=ttl.text, format="turtle")
    datasets_in_graph = list(graph.subjects(predicate=DCTERMS.identifier))
    assert len(datasets_in_graph) == 1
    assert str(graph.value(datasets_in_graph[0], DCTERMS.identifier)) == publication_id
    assert any(True for _ in graph.objects(predicate=DCAT.accessURL))


def test_restricted_publication_sends_no_file_to_datagouv(broker_stack: Any, national_emulators: Any) -> None:
    stack = broker_stack(env=national_emulators.env)
    register(stack)
    client = authed(stack)
    body = manifest(
        ["reseau_eau.geojson"],
        title="Réseau d'eau potable",
        services=["download"],
        portals=[],
        access="restricted",
        restricted_to={"users": ["agent@montpellier3m.fr"], "organizations": []},
    )
    response = post(client, "/api/v1/publications", body, {"reseau_eau.geojson": geojson("Conduite")})
    assert response.status_code == 202, response.text
    publication_id = response.json()["id"]
    targets = {d["target"] for d in response.json()["deliveries"]}
    assert "regional" in targets, targets

    final = wait_for(client, publication_id, all_settled, timeout=180)
    states = {d["target"]: d for d in final["deliveries"]}
    assert states["regional"]["state"] == "done"
    # data.gouv.fr describes the dataset (it is catalogued there) but receives no file.
    assert "datagouv" in states, states
    assert states["datagouv"]["state"] == "done", states["datagouv"]
    dataset_id = final["ledger"]["datagouv"]["remote"]["dataset"]
    dataset = next(d for d in emulator_datasets(national_emulators.datagouv_url) if d["id"] == dataset_id)
    assert dataset.get("access_type") == "restricted"
    assert dataset.get("authorization_request_url", "").endswith(f"/acces/{publication_id}")
    assert all(r.get("filetype") != "file" for r in dataset.get("resources", []))
    # The file itself is served regionally, to listed people only.
    anonymous = stack.client()
    download = final["resources"][0]["download_url"]
    assert anonymous.get(download).status_code == 401


def test_datagouv_field_error_reaches_the_producer(broker_stack: Any, national_emulators: Any) -> None:
    stack = broker_stack(env=national_emulators.env)
    register(stack)
    client = authed(stack)
    # An unknown zone id passes the manifest's syntax check, but data.gouv.fr refuses it (400, research §2).
    body = manifest(["p.geojson"], services=["download"], portals=[], zones=["fr:commune:99999"])
    response = post(client, "/api/v1/publications", body, {"p.geojson": geojson()})
    assert response.status_code == 202, response.text
    final = wait_for(client, response.json()["id"], all_settled, timeout=120)
    datagouv = next(d for d in final["deliveries"] if d["target"] == "datagouv")
    assert datagouv["state"] == "failed"
    assert datagouv["last_error"] and datagouv["error_fields"], datagouv
    assert "spatial" in json.dumps(datagouv["error_fields"]) or "zone" in datagouv["last_error"].lower()


def test_reconcile_repairs_a_resource_deleted_behind_the_brokers_back(
    broker_stack: Any, national_emulators: Any
) -> None:
    stack = broker_stack(env=national_emulators.env)
    register(stack)
    client = authed(stack)
    body = manifest(["compteurs.geojson"], title="Compteurs vélo", services=["download"], portals=[])
    response = post(client, "/api/v1/publications", body, {"compteurs.geojson": geojson("Compteur")})
    assert response.status_code == 202, response.text
    publication_id = response.json()["id"]
    final = wait_for(client, publication_id, all_settled, timeout=120)
    dataset_id = final["ledger"]["datagouv"]["remote"]["dataset"]

    # Someone deletes the file on data.gouv.fr by hand, with the organisation's key.
    key = httpx.post(
        f"{national_emulators.datagouv_url}/_emulator/provision",
        json={"organization": {"slug": ORG, "name": "Montpellier Méditerranée Métropole"}},
    ).json()["api_key"]
    dataset = httpx.get(f"{national_emulators.datagouv_url}/api/1/datasets/{dataset_id}/").json()
    hosted = [r for r in dataset["resources"] if r["filetype"] == "file"]
    assert len(hosted) == 1
    deleted = httpx.delete(
        f"{national_emulators.datagouv_url}/api/1/datasets/{dataset_id}/resources/{hosted[0]['id']}/",
        headers={"X-API-KEY": key},
    )
    assert deleted.status_code == 204

    report = stack.cli("reconcile", "datagouv")
    assert report.returncode == 1, report.stdout + report.stderr  # drift found, not repaired
    assert publication_id in report.stdout and "écart" in report.stdout

    repaired = stack.cli("reconcile", "datagouv", "--repair")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    dataset = httpx.get(f"{national_emulators.datagouv_url}/api/1/datasets/{dataset_id}/").json()
    assert len([r for r in dataset["resources"] if r["filetype"] == "file"]) == 1
    clean = stack.cli("reconcile", "datagouv")
    assert clean.returncode == 0, clean.stdout
    actions = [
        e["action"] for e in client.get("/api/v1/events", params={"publication": publication_id}).json()
    ]
    assert "ledger.reconciled" in actions


def test_worker_killed_after_the_upload_is_closed_resumes_at_processing(
    broker_stack: Any, tmp_path: Any, broker_command: list[str]
) -> None:
    """SIGKILL of the Celery worker once the Géoplateforme upload is closed: the retry finds the upload by
    its tags and goes on with the checks and the processing; the platform never gets a second upload."""
    port = free_port()
    # Slow statuses (1 s a step) leave time to kill the worker between the close and the processing.
    emulator = start_process(
        [*broker_command, "emulate", "geoplateforme", "--port", str(port), "--step-seconds", "1.0"],
        env={**os.environ},
        log_path=tmp_path / "emulator-geoplateforme.log",
        ready=http_ok(f"http://127.0.0.1:{port}/_emulator/state"),
        timeout=60,
        name="emulator-geoplateforme-slow",
    )
    try:
        root = f"http://127.0.0.1:{port}"
        env = {
            "BROKER_GEOPLATEFORME_API_URL": f"{root}/api",
            "BROKER_GEOPLATEFORME_TOKEN_URL": f"{root}/realms/geoplateforme/protocol/openid-connect/token",
            "BROKER_GEOPLATEFORME_CSW_URL": f"{root}/csw",
            "BROKER_GEOPLATEFORME_EMULATOR": "true",
        }
        stack = broker_stack(beat=True, env=env)
        register(stack)
        client = authed(stack)
        body = manifest(["pistes.geojson"], services=["wfs"], portals=[])
        response = post(client, "/api/v1/publications", body, {"pistes.geojson": geojson()})
        assert response.status_code == 202, response.text
        publication_id = response.json()["id"]

        def upload_closed(b: dict[str, Any]) -> bool:
            step = (b.get("ledger", {}).get("geoplateforme") or {}).get("step") or ""
            return step.endswith(":upload_closed") or step.endswith(":checks_passed")

        wait_for(client, publication_id, upload_closed, timeout=120)
        worker = stack.workers[0]
        worker.kill(signal.SIGKILL)
        worker.restart()

        final = wait_for(
            client,
            publication_id,
            lambda b: any(
                d["target"] == "geoplateforme" and d["state"] in {"done", "failed"} for d in b["deliveries"]
            ),
            timeout=240,
        )
        geoplateforme = next(d for d in final["deliveries"] if d["target"] == "geoplateforme")
        assert geoplateforme["state"] == "done", geoplateforme
        assert geoplateforme["attempts"] >= 2
        created = httpx.get(f"{root}/_emulator/state").json()["created"]
        assert created["uploads"] == 1, created
        assert any("wfs" in url.lower() for url in geoplateforme["urls"])
    finally:
        emulator.stop()
