"""End to end, with real servers: API under uvicorn, Celery workers and beat on a real Redis, the two national
emulators over HTTP. A gap closes and the publications that waited on it move to the Géoplateforme: previewed
without acting, slipped first, then delivered; a worker killed in the middle; metrics before and after."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.broker.test_spine_e2e import (
    ORG,
    authed,
    geojson,
    manifest,
    post,
    regional_state,
    register,
    wait_for,
)

pytestmark = pytest.mark.servers

GAP = "extraction"


def settled(body: dict[str, Any]) -> bool:
    return bool(body["deliveries"]) and all(
        d["state"] in {"done", "failed", "cancelled"} for d in body["deliveries"]
    )


# Four member organisations waiting on the same gap (one datastore each on the Géoplateforme, whose offering
# quota per service endpoint is 10: research/geoplateforme-api.md).
ORGANIZATIONS = {
    ORG: "Montpellier Méditerranée Métropole",
    "sete-agglopole-mediterranee": "Sète Agglopôle Méditerranée",
    "departement-de-l-herault": "Département de l'Hérault",
    "ville-de-beziers": "Ville de Béziers",
}


def publish_all(client: httpx.Client, count: int, organization: str = ORG) -> list[str]:
    ids = []
    for n in range(count):
        # A cycle network served as WFS, with on-demand extraction: B on the Géoplateforme, served
        # regionally meanwhile.
        body = manifest(
            [f"pistes_{n}.geojson"],
            organization=organization,
            title=f"Pistes cyclables, secteur {n}",
            services=["download", "wfs"],
            portals=[],
            features=["extraction"],
        )
        response = post(
            client, "/api/v1/publications", body, {f"pistes_{n}.geojson": geojson(f"Secteur {n}")}
        )
        assert response.status_code == 202, response.text
        ids.append(response.json()["id"])
    return ids


def eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last: {json.dumps(last, default=str)[:2000]}")


def gap_of(client: httpx.Client, need: str) -> dict[str, Any]:
    gaps = client.get("/api/v1/gaps")
    assert gaps.status_code == 200, gaps.text
    return next(g for g in gaps.json() if g["need"] == need and g["platform"] == "geoplateforme")


def test_a_delivered_gap_moves_twenty_publications_to_the_geoplateforme(
    broker_stack: Any, national_emulators: Any
) -> None:
    stack = broker_stack(env=national_emulators.env, workers=2, beat=True)
    ids: list[str] = []
    for slug, name in ORGANIZATIONS.items():
        register(stack, slug, name)
        ids += publish_all(authed(stack, org=slug), 5, slug)
    producer = authed(stack)
    staff = authed(stack, role="staff", org=None)
    board = authed(stack, role="board", org=None)
    for publication_id in ids:
        body = wait_for(producer, publication_id, settled, timeout=300)
        states = {d["target"]: d["state"] for d in body["deliveries"]}
        assert states == {"datagouv": "done", "geoplateforme": "done", "regional": "done"}, body["deliveries"]
    download_urls = {
        i: producer.get(f"/api/v1/publications/{i}").json()["resources"][0]["download_url"] for i in ids
    }
    assert all(producer.get(url).status_code == 200 for url in download_urls.values())

    # Before: everything is on the national platforms, and regional too for the extraction it waits for.
    before = board.get("/api/v1/stats/migration")
    assert before.status_code == 200, before.text
    before_body = before.json()
    assert before_body["totals"]["publications"] == 20
    assert (before_body["totals"]["national"], before_body["totals"]["regional"]) == (20, 20)
    extraction = next(n for n in before_body["by_need"] if n["need"] == GAP)
    assert (extraction["category"], extraction["regional"]) == ("B", 20)
    by_organization = {o["organization"]: o for o in before_body["by_organization"]}
    assert set(by_organization) == set(ORGANIZATIONS)
    assert all((o["publications"], o["regional"]) == (5, 5) for o in by_organization.values())
    gap = gap_of(board, GAP)
    assert gap["status"] == "open" and gap["waiting_publications"] == 20 and gap["interim"] == "regional"

    # Only staff steer gaps; a date slip needs a reason, and shows in the history.
    assert (
        board.patch(
            f"/api/v1/gaps/{gap['id']}", json={"target_date": "2029-01-31", "reason": "x"}
        ).status_code
        == 403
    )
    refused = staff.patch(f"/api/v1/gaps/{gap['id']}", json={"target_date": "2029-01-31"})
    assert refused.status_code == 422 and "reason" in refused.json()["fields"]
    slipped = staff.patch(
        f"/api/v1/gaps/{gap['id']}",
        json={"target_date": "2029-01-31", "reason": "Comité de suivi IGN : report du module d'extraction"},
    )
    assert slipped.status_code == 200, slipped.text
    slip = slipped.json()["history"][-1]
    assert (slip["change"], slip["from"], slip["to"]) == ("target_date", "2028-06-30", "2029-01-31")
    assert slip["by"] == "local-staff-openig" and slip["reason"].startswith("Comité de suivi IGN")

    # A dry run lists the twenty publications and what would happen, and acts on nothing.
    events_before = len(staff.get("/api/v1/events", params={"limit": 5000}).json())
    preview = staff.post("/api/v1/migrations", json={"gap_id": gap["id"], "dry_run": True})
    assert preview.status_code == 200, preview.text
    plan = preview.json()
    assert plan["total"] == 20 and plan["would_move"] == 20 and plan["target_configured"] is True
    assert {p["id"] for p in plan["publications"]} == set(ids)
    assert all(
        p["regional"] == "retire" and p["national"]["action"] == "update" for p in plan["publications"]
    )
    assert len(staff.get("/api/v1/events", params={"limit": 5000}).json()) == events_before
    assert staff.get("/api/v1/migrations").json() == []
    assert all(producer.get(f"/api/v1/publications/{i}").json()["revision"] == 1 for i in ids)
    assert board.post("/api/v1/migrations", json={"gap_id": gap["id"], "dry_run": True}).status_code == 403

    # The IGN delivers: staff mark the gap delivered; a migration job starts.
    delivered = staff.patch(
        f"/api/v1/gaps/{gap['id']}",
        json={"status": "delivered", "reason": "Extraction à la demande ouverte sur la Géoplateforme"},
    )
    assert delivered.status_code == 200, delivered.text
    (job,) = board.get("/api/v1/migrations").json()
    assert job["gap_id"] == gap["id"] and job["total"] == 20 and job["mirror"] is False

    # Kill a worker in the middle of the job (SIGKILL, its whole process group), then start it again.
    def halfway() -> dict[str, Any] | None:
        progress = board.get(f"/api/v1/migrations/{job['id']}").json()
        moved = sum(1 for i in progress["items"] if i["state"] != "planned")
        return progress if moved >= 3 and progress["done"] < 20 else None

    eventually(halfway, 300, "the migration to be under way")
    victim = stack.workers[0]
    victim.kill(signal.SIGKILL)
    victim.restart()

    def finished() -> dict[str, Any] | None:
        progress = board.get(f"/api/v1/migrations/{job['id']}").json()
        return progress if progress["state"] == "done" else None

    final = eventually(finished, 600, "the migration to finish")
    assert (final["done"], final["failed"], final["total"]) == (20, 0, 20), final["items"]
    assert {i["state"] for i in final["items"]} == {"retired"}

    for publication_id in ids:
        body = producer.get(f"/api/v1/publications/{publication_id}").json()
        # Exactly one derived revision, whatever the kill interrupted.
        assert body["revision"] == 2, body["deliveries"]
        need = next(n for n in body["decision"]["needs"] if n["need"] == GAP)
        assert (need["category"], need["platforms"]) == ("A", ["geoplateforme"])
        assert body["ledger"]["geoplateforme"]["state"] == "present"
        assert body["ledger"]["regional"]["state"] == "withdrawn"
        events = producer.get("/api/v1/events", params={"publication": publication_id}).json()
        withdrawals = [
            e
            for e in events
            if e["action"] == "delivery.done"
            and e["target"] == "regional"
            and e["detail"].get("action") == "withdraw"
        ]
        assert len(withdrawals) == 1
        revised = [e for e in events if e["action"] == "publication.revised"]
        assert [e["detail"]["channel"] for e in revised] == ["migration"]
        assert producer.get(download_urls[publication_id]).status_code == 404

    # After: all national, nothing regional; the gap is delivered and waits for nobody.
    after = board.get("/api/v1/stats/migration").json()
    assert (after["totals"]["national"], after["totals"]["regional"], after["totals"]["both"]) == (20, 0, 0)
    assert after["totals"]["national_share"] == 1.0 and after["totals"]["bytes_regional"] == 0
    extraction = [n for n in after["by_need"] if n["need"] == GAP]
    assert [(n["category"], n["publications"], n["regional"]) for n in extraction] == [("A", 20, 0)]
    assert after["gaps"]["delivered"] == 1 and after["deliveries"]["failed"] == 0
    assert all(o["regional"] == 0 and o["national_share"] == 1.0 for o in after["by_organization"])
    detail = board.get(f"/api/v1/gaps/{gap['id']}").json()
    assert (
        detail["status"] == "delivered"
        and detail["waiting_publications"] == 0
        and detail["publications"] == []
    )
    assert [h["change"] for h in detail["history"]] == ["created", "target_date", "status"]
    assert detail["migrations"][0]["state"] == "done"

    snapshot = staff.post("/api/v1/stats/migration/snapshot")
    assert snapshot.status_code == 200, snapshot.text
    (point,) = board.get("/api/v1/stats/migration").json()["history"]
    assert (point["publications"], point["national"], point["regional"], point["national_share"]) == (
        20,
        20,
        0,
        1.0,
    )


def cli(stack: Any, *args: str) -> Any:
    """Run the operator commands in this process, on the stack's data directory, registered as broker.cli
    registers them (``broker gaps ...``, ``broker migrate ...``)."""
    import typer
    from typer.testing import CliRunner

    from broker.config import reset_settings
    from broker.gaps import cli as gaps_cli

    app = typer.Typer()
    app.add_typer(gaps_cli.gaps_app, name="gaps")
    app.command("migrate")(gaps_cli.migrate)
    env = {key: value for key, value in stack.env.items() if key.startswith("BROKER_")}
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        reset_settings()


def test_cli_plans_and_steers_gaps(broker_stack: Any) -> None:
    stack = broker_stack()
    register(stack)
    producer = authed(stack)
    for publication_id in publish_all(producer, 2):
        wait_for(producer, publication_id, regional_state("done"))

    listing = cli(stack, "gaps", "list")
    assert listing.exit_code == 0, listing.output
    assert "extraction/geoplateforme" in listing.output and "2 publication(s)" in listing.output

    plan = cli(stack, "migrate", "--plan", "--gap", "extraction/geoplateforme")
    assert plan.exit_code == 0, plan.output
    assert "2 publication(s)" in plan.output and "copie régionale retirée" in plan.output
    assert "Pistes cyclables, secteur 0" in plan.output
    # Without an option, `broker migrate` only previews: the same plan, nothing started.
    preview = cli(stack, "migrate")
    assert preview.exit_code == 0 and "2 publication(s)" in preview.output, preview.output
    assert not stack.client(token=stack.token(None, "staff")).get("/api/v1/migrations").json()

    refused = cli(stack, "gaps", "slip", "extraction/geoplateforme", "--to", "2029-01-31", "--reason", " ")
    assert refused.exit_code == 1 and "raison" in refused.output
    slipped = cli(
        stack, "gaps", "slip", "extraction/geoplateforme", "--to", "2029-01-31", "--reason", "report IGN"
    )
    assert slipped.exit_code == 0, slipped.output
    shown = cli(stack, "gaps", "show", "extraction/geoplateforme", "--json")
    history = json.loads(shown.output)["history"]
    assert history[-1]["change"] == "target_date" and history[-1]["by"].startswith("cli:")
    dropped = cli(stack, "gaps", "drop", "format_cog/geoplateforme", "--reason", "pas de COG natif à l'IGN")
    assert dropped.exit_code == 0, dropped.output
    delivered = cli(stack, "gaps", "deliver", "extraction/geoplateforme", "--reason", "livrée")
    assert delivered.exit_code == 0 and "2 publication(s) à déplacer" in delivered.output, delivered.output
    staff = authed(stack, role="staff", org=None)
    (job,) = staff.get("/api/v1/migrations").json()
    assert job["total"] == 2 and job["trigger"] == "gap.delivered" and job["created_by"].startswith("cli:")
    gaps = {g["need"]: g for g in staff.get("/api/v1/gaps").json()}
    assert gaps["format_cog"]["status"] == "dropped" and gaps["extraction"]["target_date"] == "2029-01-31"


def test_migration_on_postgresql(broker_stack: Any, national_emulators: Any, postgres_server: Any) -> None:
    """The same migration on PostgreSQL (distributed deployment): upserts, GROUP BYs and claims."""
    # The Géoplateforme only: on PostgreSQL the data.gouv.fr connector's ledger step outgrows its column
    # (VARCHAR(80), reported to the lead); its deliveries wait here, unconfigured, which the gap ignores.
    geoplateforme_only = {k: v for k, v in national_emulators.env.items() if "GEOPLATEFORME" in k}
    stack = broker_stack(
        database_url=postgres_server.new_database(), env=geoplateforme_only, workers=2, beat=True
    )
    register(stack)
    producer = authed(stack)
    staff = authed(stack, role="staff", org=None)
    ids = publish_all(producer, 4)

    def delivered(body: dict[str, Any]) -> bool:
        states = {d["target"]: d["state"] for d in body["deliveries"]}
        return states.get("geoplateforme") == "done" and states.get("regional") == "done"

    for publication_id in ids:
        wait_for(producer, publication_id, delivered, timeout=300)
    before = staff.get("/api/v1/stats/migration").json()
    assert (before["totals"]["publications"], before["totals"]["both"]) == (4, 4)
    gap = gap_of(staff, GAP)
    assert gap["waiting_publications"] == 4
    assert staff.post("/api/v1/migrations", json={"gap_id": gap["id"], "dry_run": True}).json()["total"] == 4
    response = staff.patch(
        f"/api/v1/gaps/{gap['id']}", json={"status": "delivered", "reason": "livrée par l'IGN"}
    )
    assert response.status_code == 200, response.text
    (job,) = staff.get("/api/v1/migrations").json()

    def finished() -> dict[str, Any] | None:
        progress = staff.get(f"/api/v1/migrations/{job['id']}").json()
        return progress if progress["state"] == "done" else None

    final = eventually(finished, 300, "the migration to finish")
    assert (final["done"], final["failed"]) == (4, 0), final["items"]
    after = staff.get("/api/v1/stats/migration").json()
    assert (after["totals"]["national"], after["totals"]["regional"], after["totals"]["national_share"]) == (
        4,
        0,
        1.0,
    )
    assert staff.post("/api/v1/stats/migration/snapshot").status_code == 200
    assert len(staff.get("/api/v1/stats/migration").json()["history"]) == 1
