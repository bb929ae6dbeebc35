"""Remote resources end to end: API under uvicorn, a Celery worker and beat on a real Redis, a loopback
HTTP origin (exempted through BROKER_REMOTE_ALLOWED_HOSTS) and an SMTP sink."""

from __future__ import annotations

import email
import email.policy
import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.broker.remote.servers import Origin, Route, SmtpSink
from tests.broker.remote.servers import origin as running_origin
from tests.broker.uploads.stacking import shared_stack
from tests.fixtures.servers import Stack

pytestmark = pytest.mark.servers

ORG = "ville-de-montpellier"
CONTACT = "sig@montpellier.example"


def csv(rows: int) -> bytes:
    lines = ["station;date;passages"] + [
        f"Albert 1er;2024-05-{1 + i % 28:02d};{100 + i}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def world(request: pytest.FixtureRequest) -> Iterator[tuple[Stack, Origin, SmtpSink]]:
    origin = Origin().start()
    smtp = SmtpSink().start()
    env = {
        "BROKER_REMOTE_ALLOWED_HOSTS": f"127.0.0.1:{origin.port}",
        "BROKER_REMOTE_MAX_BYTES": str(512 * 1024),
        "BROKER_REMOTE_SYNC_INTERVAL_SECONDS": "1",
        "BROKER_SMTP_HOST": "127.0.0.1",
        "BROKER_SMTP_PORT": str(smtp.port),
        "BROKER_SMTP_FROM": "broker@openig.example",
    }
    try:
        with shared_stack(request, workers=1, beat=True, env=env) as stack:
            stack.cli("org", "add", ORG, "--name", "Ville de Montpellier", "--email", CONTACT, check=True)
            yield stack, origin, smtp
    finally:
        origin.stop()
        smtp.stop()


def manifest(url: str, sync: str = "daily") -> dict[str, Any]:
    return {
        "organization": ORG,
        "title": "Comptages vélo",
        "description": "Passages quotidiens aux compteurs vélo de la ville.",
        "license": "lov2",
        "access": "open",
        "services": ["download"],
        "resources": [{"url": url, "title": "Comptages (CSV)", "sync": sync}],
    }


def wait_until(fetch: Callable[[], Any], done: Callable[[Any], bool], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    value = fetch()
    while not done(value):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; last value: {json.dumps(value, indent=1, default=str)[:3000]}")
        time.sleep(0.2)
        value = fetch()
    return value


def test_url_resources_refused_by_the_address_policy(world: tuple[Stack, Origin, SmtpSink]) -> None:
    stack, origin, _ = world
    client = stack.client(stack.token(ORG, "producer"))
    with running_origin() as inside:
        inside.routes["/secret"] = Route(body=b"interne")
        origin.routes["/redirige"] = Route(
            302, headers={"Location": f"http://127.0.0.1:{inside.port}/secret"}
        )
        origin.routes["/gros.csv"] = Route(body=b"x" * (600 * 1024))
        cases = {
            f"http://localhost:{origin.port}/x.csv": "boucle locale",  # a name not on the allow-list
            "http://169.254.169.254/latest/meta-data/": "lien-local",
            "http://[::ffff:127.0.0.1]/": "IPv4 dans une adresse IPv6",
            f"{origin.url}/redirige": "boucle locale",  # an allowed host redirecting inside
            f"{origin.url}/gros.csv": "taille maximale",
        }
        for url, reason in cases.items():
            response = client.post("/api/v1/publications", json=manifest(url, "never"))
            assert response.status_code == 422, (url, response.text)
            body = response.json()
            assert reason in " ".join(body["fields"]["resources.0.url"]), (url, body)
        assert inside.requests == []
    assert client.get("/api/v1/publications", params={"organization": ORG}).json()["total"] == 0


def test_sync_revises_on_change_and_reports_failures(world: tuple[Stack, Origin, SmtpSink]) -> None:
    stack, origin, smtp = world
    client = stack.client(stack.token(ORG, "producer"))
    origin.routes["/comptages.csv"] = Route(body=csv(20), headers={"Content-Type": "text/csv"})

    response = client.post("/api/v1/publications", json=manifest(f"{origin.url}/comptages.csv"))
    assert response.status_code == 202, response.text
    publication = response.json()
    pid = publication["id"]
    resource = publication["resources"][0]
    assert resource["url"] == f"{origin.url}/comptages.csv"
    assert resource["size"] == len(csv(20)) and resource["sha256"]
    first_sha = resource["sha256"]

    syncs = client.get(f"/api/v1/publications/{pid}/syncs").json()["data"]
    assert len(syncs) == 1 and syncs[0]["sync"] == "daily" and syncs[0]["state"] == "pending"
    assert syncs[0]["sha256"] == first_sha

    def get() -> dict[str, Any]:
        return dict(client.get(f"/api/v1/publications/{pid}").json())

    def sync_row() -> dict[str, Any]:
        return dict(client.get(f"/api/v1/publications/{pid}/syncs").json()["data"][0])

    # Unchanged bytes: nothing happens (no If-None-Match yet, same sha256), the row is checked.
    assert client.post(f"/api/v1/publications/{pid}/syncs/run").status_code == 202
    row = wait_until(sync_row, lambda r: r["last_checked_at"] is not None)
    assert row["state"] == "ok" and row["etag"]
    assert get()["revision"] == 1

    # Unchanged again: now a conditional request, answered 304.
    checked = row["last_checked_at"]
    client.post(f"/api/v1/publications/{pid}/syncs/run")
    wait_until(sync_row, lambda r: r["last_checked_at"] != checked)
    assert origin.requests[-1][1].get("if-none-match") == row["etag"]
    assert get()["revision"] == 1

    # Changed: revision 2 through derive_revision (channel "sync"), with new deliveries.
    origin.routes["/comptages.csv"] = Route(body=csv(40), headers={"Content-Type": "text/csv"})
    client.post(f"/api/v1/publications/{pid}/syncs/run")
    body = wait_until(get, lambda b: b["revision"] == 2)
    assert body["resources"][0]["sha256"] != first_sha
    assert body["resources"][0]["size"] == len(csv(40))
    assert body["deliveries"] and all(d["revision"] == 2 for d in body["deliveries"] if "revision" in d)
    events = client.get("/api/v1/events", params={"publication": pid}).json()
    items = events if isinstance(events, list) else events.get("data", [])
    revised = [e for e in items if e["action"] == "publication.revised"]
    assert revised and revised[0]["detail"]["channel"] == "sync"
    assert revised[0]["detail"]["reason"] == "remote resource changed"
    row = sync_row()
    assert row["sha256"] == body["resources"][0]["sha256"] and row["last_changed_at"]

    # Failing: recorded on the row, visible in the API, e-mailed to the organisation's contact.
    origin.routes["/comptages.csv"] = Route(500, body=b"panne")
    client.post(f"/api/v1/publications/{pid}/syncs/run")
    row = wait_until(sync_row, lambda r: r["failures"] == 1)
    assert row["state"] == "failing" and "500" in row["last_error"]
    mail = wait_until(lambda: smtp.messages, lambda m: len(m) >= 1)[0]
    assert mail.recipients == [CONTACT]
    message = email.message_from_string(mail.data, policy=email.policy.default)
    assert "Synchronisation en échec" in str(message["Subject"])
    text = message.get_content()  # type: ignore[attr-defined]
    assert "Comptages vélo" in text and "500" in text and f"/api/v1/publications/{pid}/syncs" in text
    assert get()["revision"] == 2

    # The beat finds due rows by itself: make the row due in the database, the origin healthy again.
    origin.routes["/comptages.csv"] = Route(body=csv(40), headers={"Content-Type": "text/csv"})
    database = stack.data_dir / "broker.db"
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE remote_sync SET next_due_at = '2001-01-01 00:00:00.000000'")
    row = wait_until(sync_row, lambda r: r["failures"] == 0, timeout=30)
    assert row["state"] == "ok" and row["last_error"] is None
    assert get()["revision"] == 2, "same bytes as revision 2: no new revision"


def test_direct_fetch_errors_have_no_side_effects(world: tuple[Stack, Origin, SmtpSink]) -> None:
    stack, origin, _ = world
    client = stack.client(stack.token(ORG, "producer"))
    origin.routes["/absent.csv"] = Route(404, body=b"non")
    response = client.post("/api/v1/publications", json=manifest(f"{origin.url}/absent.csv", "weekly"))
    assert response.status_code == 422
    assert "404" in response.json()["fields"]["resources.0.url"][0]
    # Plans fetch too, into a scratch store.
    origin.routes["/plan.csv"] = Route(body=csv(3))
    response = client.post("/api/v1/plan", json=manifest(f"{origin.url}/plan.csv", "never"))
    assert response.status_code == 200, response.text
    assert response.json()["resources"][0]["size"] == len(csv(3))
    assert httpx.get(f"{stack.url}/healthz", trust_env=False).status_code == 200
