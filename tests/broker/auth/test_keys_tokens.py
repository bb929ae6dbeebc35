"""The local signing key and locally minted tokens."""

from __future__ import annotations

import json
import multiprocessing
import stat
import time
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session

from broker.auth.keys import KEY_FILE_NAME, SigningKeyError, load_signing_key, local_jwks
from broker.auth.service import principal_from_token
from broker.auth.settings import AuthSettings
from broker.auth.tokens import issue_local_token
from broker.auth.validation import TokenValidator
from broker.config import Settings
from broker.errors import Unauthorized
from tests.broker.auth.conftest import MONTPELLIER, make_settings, unverified_claims


def test_key_is_created_private(settings: Settings) -> None:
    key = load_signing_key(settings)
    path = settings.keys_dir / KEY_FILE_NAME
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(settings.keys_dir.stat().st_mode) == 0o700
    assert key.is_private and key.kid
    data = json.loads(path.read_text())
    assert data["kty"] == "EC" and data["crv"] == "P-256" and "d" in data
    # Same key on the next read, no temporary file left behind.
    assert load_signing_key(settings).kid == key.kid
    assert [p.name for p in settings.keys_dir.iterdir()] == [KEY_FILE_NAME]


def test_local_jwks_is_public_only(settings: Settings) -> None:
    jwks = local_jwks(settings)
    (key,) = jwks["keys"]
    assert "d" not in key
    assert key["alg"] == "ES256" and key["use"] == "sig" and key["kid"] == load_signing_key(settings).kid


def _race(data_dir: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    results.put(load_signing_key(make_settings(Path(data_dir))).kid)


def test_two_processes_starting_at_once_share_one_key(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    count = 8
    barrier = context.Barrier(count)
    results = context.Queue()
    processes = [context.Process(target=_race, args=(str(tmp_path), barrier, results)) for _ in range(count)]
    for process in processes:
        process.start()
    kids = {results.get(timeout=30) for _ in processes}
    for process in processes:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert len(kids) == 1
    assert [p.name for p in (tmp_path / "keys").iterdir()] == [KEY_FILE_NAME]
    assert kids == {load_signing_key(make_settings(tmp_path)).kid}


def test_unusable_key_file_is_an_error(settings: Settings) -> None:
    settings.keys_dir.mkdir(parents=True)
    (settings.keys_dir / KEY_FILE_NAME).write_text(
        '{"kty": "oct", "k": "c2VjcmV0LWxvbmctZW5vdWdoLWZvci1obWFjLWtleXM"}'
    )
    with pytest.raises(SigningKeyError):
        load_signing_key(settings)


def test_issued_token_has_keycloak_shape(settings: Settings) -> None:
    before = int(time.time())
    token = issue_local_token(
        "agent-sig-42",
        MONTPELLIER,
        "producer",
        3600,
        email="sig@montpellier3m.example.fr",
        username="agent.sig",
        settings=settings,
    )
    claims = unverified_claims(token)
    assert claims["iss"] == settings.effective_token_issuer == "urn:openig-broker:local"
    assert claims["aud"] == "broker-api"
    assert claims["sub"] == "agent-sig-42"
    assert claims["realm_access"] == {"roles": ["producer"]}
    assert claims["organisation"] == MONTPELLIER
    assert claims["groups"] == [f"/organisations/{MONTPELLIER}"]
    assert claims["preferred_username"] == "agent.sig"
    assert claims["email"] == "sig@montpellier3m.example.fr"
    assert before <= claims["iat"] == claims["nbf"] and claims["exp"] == claims["iat"] + 3600


def test_issued_token_passes_the_same_validation(
    settings: Settings, validator: TokenValidator, session: Session
) -> None:
    token = issue_local_token("agent-sig-42", MONTPELLIER, "referent", settings=settings)
    verified = validator.validate(token)
    assert verified.local and verified.header["kid"] == load_signing_key(settings).kid
    principal = principal_from_token(token, session, validator)
    assert principal.roles == frozenset({"referent"})
    assert principal.organizations == (MONTPELLIER,)
    assert principal.username == "agent-sig-42"  # defaults to the subject
    assert principal.service_account is False
    assert principal.issuer == settings.effective_token_issuer

    staff = principal_from_token(
        issue_local_token("equipe", None, "staff", settings=settings), session, validator
    )
    assert staff.is_staff and staff.organizations == ()


def test_token_of_another_data_directory_is_refused(tmp_path: Path, validator: TokenValidator) -> None:
    """Two `broker up` instances side by side do not accept each other's tokens (different keys)."""
    other = make_settings(tmp_path / "autre")

    with pytest.raises(Unauthorized):
        validator.validate(issue_local_token("x", MONTPELLIER, "producer", settings=other))


def test_configured_token_issuer(tmp_path: Path, session: Session) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        token_issuer="https://broker.openig.example/local",
        token_audience="api",
    )

    validator = TokenValidator(settings, AuthSettings(_env_file=None))
    try:
        token = issue_local_token("a", None, "board", settings=settings)
        assert unverified_claims(token)["aud"] == "api"
        assert principal_from_token(token, session, validator).roles == frozenset({"board"})
    finally:
        validator.close()


@pytest.mark.parametrize(
    ("organization", "role", "ttl"),
    [
        (MONTPELLIER, "admin", 60),
        (None, "producer", 60),
        (None, "referent", 60),
        (MONTPELLIER, "producer", 0),
    ],
)
def test_issue_refuses_bad_requests(
    settings: Settings, organization: str | None, role: str, ttl: int
) -> None:
    with pytest.raises(ValueError):
        issue_local_token("x", organization, role, ttl, settings=settings)
