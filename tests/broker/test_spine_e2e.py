"""End to end, with real servers: API under uvicorn, Celery workers on a real Redis, SQLite or PostgreSQL.

Publish once → classify → route → deliver to the regional store → track; and the failure modes the
design promises to survive: a worker killed mid-delivery, a lost queue message.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis

pytestmark = pytest.mark.servers

ORG = "montpellier-mediterranee-metropole"


def geojson(name: str = "Voie verte de la Mosson", features: int = 3) -> bytes:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"nom": f"{name} {i}", "catégorie": "piste cyclable", "longueur_m": 120 + i},
                "geometry": {"type": "LineString", "coordinates": [[3.80 + i / 100, 43.60], [3.90, 43.62]]},
            }
            for i in range(features)
        ],
    }
    return json.dumps(collection, ensure_ascii=False).encode("utf-8")


def manifest(files: list[str], **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "organization": ORG,
        "title": "Pistes cyclables",
        "description": "Réseau cyclable de la métropole, mis à jour chaque trimestre.",
        "license": "lov2",
        "keywords": ["mobilite", "velo"],
        "frequency": "quarterly",
        "temporal": {"start": "2024-01-01"},
        "contact": {"name": "Service SIG", "email": "sig@example.fr"},
        "access": "open",
        "services": ["download"],
        # A white-label sub-portal has no national answer (category C): the regional store serves it.
        "portals": ["cc-grand-pic-saint-loup"],
        "resources": [{"file": f, "title": f"Fichier {f}"} for f in files],
    }
    data.update(changes)
    return data


def post(client: httpx.Client, path: str, body: dict[str, Any], files: dict[str, bytes]) -> httpx.Response:
    parts: list[tuple[str, Any]] = [("manifest", (None, json.dumps(body), "application/json"))]
    parts += [("files", (name, content, "application/octet-stream")) for name, content in files.items()]
    return client.post(path, files=parts)


def wait_for(
    client: httpx.Client, publication_id: str, done: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        body = client.get(f"/api/v1/publications/{publication_id}").json()
        if done(body):
            return body
        time.sleep(0.3)
    raise AssertionError(f"timed out; last state: {json.dumps(body.get('deliveries'), indent=1)}")


def delivery(body: dict[str, Any], target: str) -> dict[str, Any]:
    found = [d for d in body["deliveries"] if d["target"] == target]
    assert found, f"no delivery to {target}: {body['deliveries']}"
    return found[0]


def regional_state(state: str, revision: int | None = None) -> Callable[[dict[str, Any]], bool]:
    def check(body: dict[str, Any]) -> bool:
        d = [x for x in body["deliveries"] if x["target"] == "regional"]
        return bool(d) and d[0]["state"] == state and (revision is None or d[0]["revision"] == revision)

    return check


def authed(stack: Any, role: str = "producer", org: str | None = ORG) -> httpx.Client:
    client: httpx.Client = stack.client()
    token = stack.token(org, role)
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def register(stack: Any, slug: str = ORG, name: str = "Montpellier Méditerranée Métropole") -> None:
    result = stack.cli("org", "add", slug, "--name", name)
    assert result.returncode == 0, result.stderr


def test_publish_revise_withdraw_through_the_regional_store(broker_stack: Any) -> None:
    stack = broker_stack()
    register(stack)
    client = authed(stack)
    data = geojson()

    response = post(client, "/api/v1/publications", manifest(["pistes.geojson"]), {"pistes.geojson": data})
    assert response.status_code == 202, response.text
    body = response.json()
    publication_id = body["id"]
    assert body["revision"] == 1
    assert body["decision"]["rules_digest"]
    assert body["decision"]["needs"], "a GeoJSON publication derives needs"
    assert all({"need", "category", "platforms", "rule"} <= set(n) for n in body["decision"]["needs"])
    assert body["resources"][0]["sha256"] and body["resources"][0]["size"] == len(data)

    body = wait_for(client, publication_id, regional_state("done"))
    regional = delivery(body, "regional")
    assert regional["attempts"] >= 1 and regional["urls"]
    download_url = body["resources"][0]["download_url"]
    assert download_url, body["resources"]
    downloaded = client.get(download_url)
    assert downloaded.status_code == 200 and downloaded.content == data

    # National targets are not configured in this deployment: their deliveries wait, visibly.
    for national in ("datagouv", "geoplateforme"):
        for d in body["deliveries"]:
            if d["target"] == national:
                assert d["state"] == "waiting" and d["waiting_reason"] in {"not_configured", "gap"}
    targets = {t["name"]: t for t in client.get("/api/v1/targets").json()}
    assert targets["regional"]["configured"] is True
    assert {"name", "url", "configured", "emulator"} <= set(targets["datagouv"])

    events = client.get("/api/v1/events", params={"publication": publication_id}).json()
    actions = [e["action"] for e in events]
    assert "publication.created" in actions and "delivery.done" in actions
    created = next(e for e in events if e["action"] == "publication.created")
    assert created["actor"]["subject"] and created["actor"]["organization"] == ORG

    # A new revision with a changed file: the regional copy follows, with the new bytes.
    changed = geojson("Piste des Arceaux", features=5)
    response = post(
        client,
        f"/api/v1/publications/{publication_id}/revisions",
        manifest(["pistes.geojson"], title="Pistes cyclables 2025"),
        {"pistes.geojson": changed},
    )
    assert response.status_code == 202, response.text
    body = wait_for(client, publication_id, regional_state("done", revision=2))
    assert body["title"] == "Pistes cyclables 2025"
    assert client.get(body["resources"][0]["download_url"]).content == changed

    listing = client.get("/api/v1/publications", params={"organization": ORG}).json()
    assert listing["total"] == 1 and listing["data"][0]["id"] == publication_id

    # Withdraw: removed from the regional store, the audit trail stays.
    assert client.delete(f"/api/v1/publications/{publication_id}").status_code == 202
    body = wait_for(
        client,
        publication_id,
        lambda b: any(
            d["target"] == "regional" and d["action"] == "withdraw" and d["state"] == "done"
            for d in b["deliveries"]
        ),
    )
    assert body["state"] == "withdrawn"
    assert client.get(download_url).status_code == 404
    actions = [
        e["action"] for e in client.get("/api/v1/events", params={"publication": publication_id}).json()
    ]
    assert "publication.withdrawn" in actions and "publication.created" in actions


def test_rejected_requests_store_nothing(broker_stack: Any) -> None:
    stack = broker_stack(env={"BROKER_MAX_UPLOAD_BYTES": "4096"})
    register(stack)
    client = authed(stack)

    bad = manifest(["a.geojson"], license="cc-by-nc", frequency="trimestriel", title="")
    response = post(client, "/api/v1/publications", bad, {"a.geojson": geojson()})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "invalid" and {"license", "frequency", "title"} <= set(body["fields"])

    response = post(
        client,
        "/api/v1/publications",
        manifest(["a.geojson"], organization="inconnue-du-bataillon"),
        {"a.geojson": geojson()},
    )
    assert response.status_code == 404 and response.json()["error"] == "not_found"

    response = post(
        client, "/api/v1/publications", manifest(["a.geojson", "b.geojson"]), {"a.geojson": geojson()}
    )
    assert response.status_code == 422 and "resources.1.file" in response.json()["fields"]

    response = post(client, "/api/v1/publications", manifest(["big.geojson"]), {"big.geojson": b" " * 10_000})
    assert response.status_code == 413

    response = client.post(
        "/api/v1/publications", content=b"not a form", headers={"content-type": "text/plain"}
    )
    assert response.status_code == 422

    assert client.get("/api/v1/publications").json()["total"] == 0
    files_dir = stack.data_dir / "files"
    leftovers = [p for p in files_dir.rglob("*") if p.is_file()] if files_dir.exists() else []
    assert leftovers == [], leftovers

    # A plan runs the same checks and stores nothing either.
    response = post(client, "/api/v1/plan", manifest(["a.geojson"]), {"a.geojson": geojson()})
    assert response.status_code == 200, response.text
    assert response.json()["decision"]["needs"] and "preflight" in response.json()
    assert client.get("/api/v1/publications").json()["total"] == 0
    leftovers = [p for p in files_dir.rglob("*") if p.is_file()] if files_dir.exists() else []
    assert leftovers == []

    # Without a token nothing is accepted; a board member cannot write.
    anonymous = stack.client()
    assert (
        post(anonymous, "/api/v1/publications", manifest(["a.geojson"]), {"a.geojson": geojson()}).status_code
        == 401
    )
    board = authed(stack, role="board", org=None)
    assert (
        post(board, "/api/v1/publications", manifest(["a.geojson"]), {"a.geojson": geojson()}).status_code
        == 403
    )


def test_distributed_postgres_with_two_workers(broker_stack: Any, postgres_server: Any) -> None:
    stack = broker_stack(database_url=postgres_server.new_database(), workers=2)
    register(stack)
    client = authed(stack)
    sent: dict[str, bytes] = {}
    for i in range(6):
        data = geojson(f"Tronçon {i}", features=i + 1)
        response = post(
            client,
            "/api/v1/publications",
            manifest([f"t{i}.geojson"], title=f"Tronçons {i}"),
            {f"t{i}.geojson": data},
        )
        assert response.status_code == 202, response.text
        sent[response.json()["id"]] = data
    for publication_id, data in sent.items():
        body = wait_for(client, publication_id, regional_state("done"))
        assert client.get(body["resources"][0]["download_url"]).content == data
    done_events = [
        e
        for e in client.get("/api/v1/events", params={"limit": 1000}).json()
        if e["action"] == "delivery.done" and e["target"] == "regional"
    ]
    assert len(done_events) == len(sent)


def test_worker_killed_mid_delivery_finishes_exactly_once(broker_stack: Any) -> None:
    # A slow copy into the regional store leaves time to kill the worker in the middle of it.
    stack = broker_stack(
        beat=True, env={"BROKER_REGIONAL_COPY_RATE": "400000", "BROKER_REGIONAL_HARD_LINK": "false"}
    )
    register(stack)
    client = authed(stack)
    files = {f"dalle_{i}.geojson": geojson(f"Dalle {i}", features=1) + b" " * 500_000 for i in range(4)}
    response = post(client, "/api/v1/publications", manifest(list(files)), files)
    assert response.status_code == 202, response.text
    publication_id = response.json()["id"]

    wait_for(client, publication_id, regional_state("running"), timeout=60)
    time.sleep(0.8)  # let it store a file or two
    worker = stack.workers[0]
    worker.kill(signal.SIGKILL)
    worker.restart()

    body = wait_for(client, publication_id, regional_state("done"), timeout=120)
    regional = delivery(body, "regional")
    assert regional["attempts"] >= 2, regional
    events = client.get("/api/v1/events", params={"publication": publication_id}).json()
    done = [e for e in events if e["action"] == "delivery.done" and e["delivery_id"] == regional["id"]]
    assert len(done) == 1
    for resource in body["resources"]:
        assert client.get(resource["download_url"]).content == files[resource["name"]]
    record = client.get(f"/api/v1/regional/publications/{publication_id}").json()
    assert sorted(f["name"] for f in record["files"]) == sorted(files)


def test_lost_queue_message_is_recovered_by_the_sweeper(broker_stack: Any) -> None:
    stack = broker_stack(workers=0, beat=False)
    register(stack)
    client = authed(stack)
    response = post(client, "/api/v1/publications", manifest(["p.geojson"]), {"p.geojson": geojson()})
    assert response.status_code == 202
    publication_id = response.json()["id"]
    assert delivery(response.json(), "regional")["state"] == "pending"

    queue = redis.Redis.from_url(stack.env["BROKER_REDIS_URL"])
    assert queue.llen("deliveries.regional") == 1
    queue.flushdb()  # the message is lost

    stack.add_worker()
    stack.start_beat()
    body = wait_for(client, publication_id, regional_state("done"), timeout=90)
    assert delivery(body, "regional")["attempts"] == 1
    actions = [
        e["action"] for e in client.get("/api/v1/events", params={"publication": publication_id}).json()
    ]
    assert "delivery.requeued" in actions


def test_new_revision_during_a_delivery_supersedes_it_at_a_step_boundary(broker_stack: Any) -> None:
    stack = broker_stack(env={"BROKER_REGIONAL_COPY_RATE": "400000", "BROKER_REGIONAL_HARD_LINK": "false"})
    register(stack)
    client = authed(stack)
    first = {f"zone_{i}.geojson": geojson(f"Zone {i}", features=1) + b" " * 400_000 for i in range(3)}
    response = post(client, "/api/v1/publications", manifest(list(first)), first)
    assert response.status_code == 202, response.text
    publication_id = response.json()["id"]
    wait_for(client, publication_id, regional_state("running"), timeout=60)

    second = {name: geojson(f"Zone révisée {name}", features=2) for name in first}
    response = post(
        client, f"/api/v1/publications/{publication_id}/revisions", manifest(list(second)), second
    )
    assert response.status_code == 202, response.text

    body = wait_for(client, publication_id, regional_state("done", revision=2), timeout=120)
    for resource in body["resources"]:
        assert client.get(resource["download_url"]).content == second[resource["name"]]
    regional = [
        d
        for d in client.get("/api/v1/deliveries", params={"target": "regional"}).json()
        if d["publication_id"] == publication_id
    ]
    by_revision = {d["revision"]: d for d in regional}
    assert by_revision[1]["state"] == "cancelled", by_revision[1]
    assert by_revision[2]["state"] == "done"
    # Never two deliveries of one publication to one target at once.
    events = client.get("/api/v1/events", params={"publication": publication_id, "limit": 1000}).json()
    running = sorted(
        (e["id"], e["action"], e["delivery_id"])
        for e in events
        if e["action"] in {"delivery.running", "delivery.done", "delivery.cancelled"}
    )
    active: set[str] = set()
    for _, action, delivery_id in running:
        if action == "delivery.running":
            assert not (active - {delivery_id}), "two deliveries ran at once on the regional target"
            active.add(delivery_id)
        else:
            active.discard(delivery_id)
