"""Service accounts: the operator CLI (``broker service-account``) and the staff API, both audited."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from sqlmodel import select
from typer.testing import CliRunner

from broker.auth.cli import app as service_account_app
from broker.db import session_scope
from broker.events.models import Event
from tests.broker.access.conftest import MONTPELLIER, SETE, Seeded, bearer, token

runner = CliRunner()


def audit(action: str) -> list[Event]:
    with session_scope() as session:
        return list(session.exec(select(Event).where(Event.action == action)))


def test_the_operator_binds_lists_and_unbinds(seeded: Seeded, app_env: Path) -> None:
    result = runner.invoke(
        service_account_app, ["bind", "harvester-montpellier", "--org", MONTPELLIER, "--role", "producer"]
    )
    assert result.exit_code == 0, result.output
    assert "rattaché à montpellier-mediterranee-metropole" in result.output
    result = runner.invoke(
        service_account_app, ["bind", "sftp-sete", "--org", SETE, "--data-dir", str(app_env)]
    )
    assert result.exit_code == 0, result.output

    result = runner.invoke(service_account_app, ["list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        f"harvester-montpellier\t{MONTPELLIER}\tproducer",
        f"sftp-sete\t{SETE}\tproducer",
    ]
    result = runner.invoke(service_account_app, ["list", "--org", SETE, "--json"])
    assert [row["client_id"] for row in json.loads(result.output)] == ["sftp-sete"]

    (bound, _) = audit("service_account.bound")
    assert bound.actor_subject.startswith("operator:") and bound.actor_client == "broker-cli"
    assert bound.detail == {
        "client_id": "harvester-montpellier",
        "organization": MONTPELLIER,
        "role": "producer",
    }
    assert bound.organization_id == seeded.organizations[MONTPELLIER]

    result = runner.invoke(service_account_app, ["unbind", "sftp-sete"])
    assert result.exit_code == 0 and "détaché" in result.output
    assert [e.detail["client_id"] for e in audit("service_account.unbound")] == ["sftp-sete"]


def test_the_operator_is_told_what_is_wrong(seeded: Seeded) -> None:
    result = runner.invoke(service_account_app, ["bind", "x", "--org", "inconnue-metropole"])
    assert result.exit_code == 1 and "broker org add inconnue-metropole" in result.output
    result = runner.invoke(service_account_app, ["bind", "x", "--org", MONTPELLIER, "--role", "admin"])
    assert result.exit_code == 2 and "rôle inconnu" in result.output
    assert runner.invoke(service_account_app, ["bind", "x", "--org", MONTPELLIER]).exit_code == 0
    result = runner.invoke(service_account_app, ["bind", "x", "--org", SETE])
    assert result.exit_code == 1 and "déjà rattaché" in result.output
    result = runner.invoke(service_account_app, ["unbind", "absent"])
    assert result.exit_code == 1 and "Aucun compte de service" in result.output


def test_staff_manage_service_accounts_over_the_api(client: TestClient, seeded: Seeded) -> None:
    staff = bearer(token("staff", subject="chloe"))
    body = {"client_id": "harvester-montpellier", "organization": MONTPELLIER, "role": "producer"}
    response = client.post("/api/v1/service-accounts", json=body, headers=staff)
    assert response.status_code == 201, response.text
    assert response.json()["client_id"] == "harvester-montpellier" and response.json()["created_at"]
    assert client.post("/api/v1/service-accounts", json=body, headers=staff).status_code == 409
    response = client.post(
        "/api/v1/service-accounts", json={**body, "client_id": "y", "organization": "inconnue"}, headers=staff
    )
    assert response.status_code == 422 and response.json()["fields"] == {
        "organization": ["organisation inconnue"]
    }
    response = client.post("/api/v1/service-accounts", json={**body, "role": "admin"}, headers=staff)
    assert response.status_code == 422

    listed = client.get("/api/v1/service-accounts", headers=staff).json()
    assert [(a["client_id"], a["organization"], a["role"]) for a in listed] == [
        ("harvester-montpellier", MONTPELLIER, "producer")
    ]
    assert client.get("/api/v1/service-accounts", params={"organization": SETE}, headers=staff).json() == []

    for who in (token("referent", MONTPELLIER), token("board"), token("producer", MONTPELLIER)):
        assert client.get("/api/v1/service-accounts", headers=bearer(who)).status_code == 403
        assert (
            client.delete("/api/v1/service-accounts/harvester-montpellier", headers=bearer(who)).status_code
            == 403
        )

    response = client.delete("/api/v1/service-accounts/harvester-montpellier", headers=staff)
    assert response.status_code == 204 and response.content == b""
    assert client.delete("/api/v1/service-accounts/harvester-montpellier", headers=staff).status_code == 404
    assert [e.actor_subject for e in audit("service_account.bound")] == ["chloe"]
    assert [e.actor_subject for e in audit("service_account.unbound")] == ["chloe"]
