"""Failures the platform can throw at the connector, injected in the emulator at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import (
    ConnectorConfigurationError,
    LedgerEntry,
    PermanentConnectorError,
    TransientConnectorError,
)
from connectors.geoplateforme.auth import totp
from tests.connectors.geoplateforme.samples import Recorder, resource, revision, write_gpkg


def test_5xx_answers_are_transient_and_the_next_attempt_resumes(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    rev = revision("pub-5xx-1", (resource(write_gpkg(tmp_path / "pistes.gpkg")),))

    def break_platform(ledger: LedgerEntry) -> None:
        recorder(ledger)
        if ledger.step and ledger.step.endswith("upload_closed"):
            emulator.faults(fail_next=6, fail_status=502)

    recorder = Recorder()
    with pytest.raises(TransientConnectorError) as failure:
        connector.publish(rev, LedgerEntry(), break_platform)
    assert "HTTP 502" in failure.value.message
    assert failure.value.fields["error_description"] == ["Erreur injectée par l'émulateur."]

    emulator.clear_faults()
    ledger = connector.publish(rev, recorder.last)

    assert ledger.state == "present"
    assert emulator.state(org["datastore_id"])["created"]["uploads"] == 1


def test_a_429_carries_its_retry_after(emulator: Any, make_connector: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    connector = make_connector(org, request_retries=0)
    connector.client.datastore  # noqa: B018 - log in and discover the datastore first
    emulator.faults(fail_next=1, fail_status=429, retry_after=7)

    with pytest.raises(TransientConnectorError) as failure:
        connector.publish(revision("pub-429-1", (resource(write_gpkg(tmp_path / "p.gpkg")),)), LedgerEntry())

    assert failure.value.retry_after == 7.0


def test_a_few_failed_reads_are_retried_quietly(emulator: Any, make_connector: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    connector = make_connector(org, request_retries=2)
    connector.client.datastore  # noqa: B018
    emulator.faults(fail_next=2, fail_status=503)  # the first GETs of the delivery

    ledger = connector.publish(
        revision("pub-retry-1", (resource(write_gpkg(tmp_path / "p.gpkg")),)), LedgerEntry()
    )

    assert ledger.state == "present"


def test_the_token_is_refreshed_on_401(emulator: Any, make_connector: Any, tmp_path: Path) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    rev = revision("pub-token-1", (resource(write_gpkg(tmp_path / "pistes.gpkg")),))
    ledger = connector.publish(rev, LedgerEntry())
    issued = emulator.state()["tokens_issued"]
    assert connector.client.tokens.fetched == 1

    emulator.admin.post("/tokens/revoke").raise_for_status()  # every token now answers 401
    state = connector.inspect_remote(rev, ledger)

    assert state.exists and state.drift == ()
    assert connector.client.tokens.fetched == 2
    assert emulator.state()["tokens_issued"] == issued + 1


def test_bad_credentials_are_a_configuration_error_without_the_secret(
    emulator: Any, make_connector: Any
) -> None:
    org = emulator.organisation()
    connector = make_connector({**org, "client_secret": "not-the-secret-123"})

    with pytest.raises(ConnectorConfigurationError) as failure:
        connector.client.datastore  # noqa: B018

    assert "invalid_client" in failure.value.message
    assert "not-the-secret-123" not in failure.value.message
    assert "not-the-secret-123" not in repr(connector.config)


def test_password_grant_with_totp(emulator: Any, make_connector: Any) -> None:
    secret = "JBSWY3DPEHPK3PXP"
    org = emulator.organisation(username="agent.sig", password="mot-de-passe", totp_secret=secret)
    connector = make_connector(
        org,
        client_id="gpf-warehouse",
        client_secret=None,
        username="agent.sig",
        password="mot-de-passe",
        totp_secret=secret,
    )

    assert connector.client.datastore == org["datastore_id"]

    # Without the code, Keycloak refuses the account (OAuth2 error body, §1).
    answer = httpx.post(
        org["token_url"],
        data={
            "grant_type": "password",
            "client_id": "gpf-warehouse",
            "username": "agent.sig",
            "password": "mot-de-passe",
        },
        trust_env=False,
    )
    assert answer.status_code == 401 and answer.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid user credentials",
    }
    assert (
        httpx.post(
            org["token_url"],
            data={
                "grant_type": "password",
                "client_id": "gpf-warehouse",
                "username": "agent.sig",
                "password": "mot-de-passe",
                "totp": totp(secret),
            },
            trust_env=False,
        ).status_code
        == 200
    )


def test_an_unstable_offering_is_removed_and_recreated_next_time(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org)
    rev = revision("pub-unstable-1", (resource(write_gpkg(tmp_path / "pistes.gpkg")),))
    recorder = Recorder()
    emulator.faults(unstable_next_offering=True)

    with pytest.raises(TransientConnectorError, match="instable"):
        connector.publish(rev, LedgerEntry(), recorder)
    assert emulator.state(org["datastore_id"])["counts"]["offerings"] == 0

    ledger = connector.publish(rev, recorder.last)

    assert ledger.remote["offerings"]["pistes.gpkg:WFS"]["status"] == "PUBLISHED"
    assert emulator.state(org["datastore_id"])["created"]["stored_data"] == 1


def test_a_failed_processing_is_permanent_and_shows_its_log(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    emulator.faults(unstable_next_execution=True)

    with pytest.raises(PermanentConnectorError) as failure:
        make_connector(org).publish(
            revision("pub-fail-1", (resource(write_gpkg(tmp_path / "p.gpkg")),)), LedgerEntry()
        )

    assert "a échoué sur la Géoplateforme (FAILURE)" in failure.value.message
    assert "Échec provoqué par l'injection de fautes" in failure.value.message


def test_a_slow_platform_hits_the_deadline_transiently(
    emulator: Any, make_connector: Any, tmp_path: Path
) -> None:
    org = emulator.organisation()
    connector = make_connector(org, deadline_seconds=1.0)
    emulator.faults(slow_factor=1000)
    recorder = Recorder()

    with pytest.raises(TransientConnectorError, match="toujours en cours") as failure:
        connector.publish(
            revision("pub-slow-1", (resource(write_gpkg(tmp_path / "p.gpkg")),)), LedgerEntry(), recorder
        )

    assert failure.value.retry_after is not None
    assert recorder.last.step == "vector:p.gpkg:upload_closed"  # the broker resumes from here
