"""Token validation against a real OIDC provider (Keycloak paths) and the local issuer."""

from __future__ import annotations

import hashlib
import hmac
import socket
import time
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlmodel import Session

from broker.auth.keys import load_signing_key
from broker.auth.models import ServiceAccount
from broker.auth.service import principal_from_token
from broker.auth.validation import MAX_TOKEN_BYTES, TokenValidator
from broker.config import Settings
from broker.errors import Forbidden, Unauthorized, Unavailable
from tests.broker.auth.conftest import (
    MONTPELLIER,
    TOULOUSE,
    FakeClock,
    b64url,
    local_claims,
    make_auth_settings,
    sign,
    sign_local,
    unverified_claims,
)
from tests.fixtures.oidc import OIDCProvider


def provider_claims(provider: OIDCProvider, **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": provider.issuer,
        "aud": "broker-api",
        "sub": "intrus",
        "iat": now,
        "exp": now + 300,
        "realm_access": {"roles": ["staff"]},
    }
    claims.update(overrides)
    return claims


def rejected(validator: TokenValidator, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        validator.validate(token)
    assert info.value.status_code == 401
    assert 'error="invalid_token"' in info.value.headers["WWW-Authenticate"]
    return info.value


# -- tokens from the real provider -------------------------------------------------------------------


def test_user_token_from_the_provider_is_accepted(
    oidc_provider: OIDCProvider, validator: TokenValidator, session: Session
) -> None:
    token = oidc_provider.user_token("alice")
    verified = validator.validate(token)
    assert verified.issuer == oidc_provider.issuer
    assert verified.local is False
    assert verified.header["typ"] == "at+jwt"  # oidc-provider's RFC 9068 type; never checked

    principal = principal_from_token(token, session, validator)
    assert principal.username == "alice"
    assert principal.email == "alice@montpellier3m.example.fr"
    assert principal.roles == frozenset({"producer"})  # "publisher" mapped by BROKER_OIDC_ROLE_MAP
    assert principal.organizations == (MONTPELLIER,)  # claim and group name the same one
    assert principal.client_id == "broker-web"
    assert principal.service_account is False


def test_client_roles_and_groups_from_the_provider(
    oidc_provider: OIDCProvider, validator: TokenValidator, session: Session
) -> None:
    principal = principal_from_token(oidc_provider.user_token("bruno"), session, validator)
    # resource_access.broker-api.roles, and the organisation from the /organisations/<slug> group only.
    assert principal.roles == frozenset({"referent"})
    assert principal.organizations == (TOULOUSE,)

    staff = principal_from_token(oidc_provider.user_token("chloe"), session, validator)
    assert staff.is_staff and staff.organizations == ()
    board = principal_from_token(oidc_provider.user_token("denis"), session, validator)
    assert board.roles == frozenset({"board"})


def test_service_account_token_uses_its_binding(
    oidc_provider: OIDCProvider, validator: TokenValidator, session: Session
) -> None:
    session.add(ServiceAccount(client_id="harvester-montpellier", organization=MONTPELLIER, role="producer"))
    session.commit()
    token = oidc_provider.client_credentials_token("harvester-montpellier")
    assert unverified_claims(token)["realm_access"]["roles"] == ["default-roles-openig", "broker-service"]

    principal = principal_from_token(token, session, validator)
    assert principal.service_account is True
    assert principal.client_id == "harvester-montpellier"
    assert principal.username == "service-account-harvester-montpellier"
    assert principal.roles == frozenset({"producer"})
    assert principal.organizations == (MONTPELLIER,)


def test_unbound_service_account_is_forbidden(
    oidc_provider: OIDCProvider, validator: TokenValidator, session: Session
) -> None:
    token = oidc_provider.client_credentials_token("orphan-client")
    validator.validate(token)  # the token itself is fine...
    with pytest.raises(Forbidden) as info:  # ...but the broker does not know this machine
        principal_from_token(token, session, validator)
    assert "orphan-client" in info.value.detail


def test_tampered_provider_token_is_rejected(oidc_provider: OIDCProvider, validator: TokenValidator) -> None:
    header, payload, signature = oidc_provider.user_token("alice").split(".")
    claims = unverified_claims(f"{header}.{payload}.{signature}")
    claims["realm_access"] = {"roles": ["staff"]}
    error = rejected(validator, f"{header}.{b64url(claims)}.{signature}")
    assert "signature" in error.detail

    # Same header and claims, signature of another token: still refused.
    other_signature = oidc_provider.user_token("bruno").split(".")[2]
    rejected(validator, f"{header}.{payload}.{other_signature}")


# -- algorithm attacks ------------------------------------------------------------------------------


def test_alg_none_is_rejected(oidc_provider: OIDCProvider, validator: TokenValidator) -> None:
    kid = oidc_provider.jwks()["keys"][0]["kid"]
    claims = provider_claims(oidc_provider)
    for alg in ("none", "None", "NONE"):
        token = f"{b64url({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64url(claims)}."
        assert "algorithme" in rejected(validator, token).detail


def test_hmac_signed_with_the_public_key_is_rejected(
    oidc_provider: OIDCProvider, validator: TokenValidator
) -> None:
    """The key-confusion forgery: HS256 "signed" with the issuer's public RSA key as the shared secret."""
    jwk = oidc_provider.jwks()["keys"][0]
    public_pem = RSAKey.import_key(jwk).public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    claims = provider_claims(oidc_provider)
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        signing_input = f"{b64url({'alg': alg, 'typ': 'JWT', 'kid': jwk['kid']})}.{b64url(claims)}"
        signature = hmac.new(public_pem, signing_input.encode(), digest).digest()
        token = f"{signing_input}.{b64url(signature)}"
        assert "algorithme" in rejected(validator, token).detail


def test_only_configured_algorithms(
    settings: Settings, oidc_provider: OIDCProvider, clock: FakeClock
) -> None:
    only_rs256 = TokenValidator(
        settings, make_auth_settings(oidc_provider.issuer, oidc_allowed_algorithms=["RS256"])
    )
    try:
        # The local key signs ES256, which this deployment does not allow.
        assert "algorithme" in rejected(only_rs256, sign_local(settings)).detail
        only_rs256.validate(oidc_provider.user_token("alice"))
    finally:
        only_rs256.close()


def test_settings_refuse_symmetric_algorithms() -> None:
    for algorithms in (["HS256"], ["RS256", "none"], []):
        with pytest.raises(ValueError):
            make_auth_settings(None, oidc_allowed_algorithms=algorithms)


# -- keys: unknown kid, rotation, rate limit ------------------------------------------------------------


def test_unknown_kid_refreshes_once_within_the_window(
    oidc_provider: OIDCProvider, validator: TokenValidator, clock: FakeClock
) -> None:
    validator.validate(oidc_provider.user_token("alice"))  # first use: discovery + JWKS
    assert validator.remote is not None and validator.remote.fetch_count == 1
    clock.advance(31)  # the first download itself counts in the window; leave it
    before = oidc_provider.jwks_fetches()

    forger = RSAKey.generate_key(2048, parameters={"kid": "kid-inconnu"})
    forged = sign(provider_claims(oidc_provider), forger, "RS256")
    for _ in range(5):
        assert "clé inconnue" in rejected(validator, forged).detail
    # One refetch for the unknown kid, then none within the window: a flood costs the issuer one request.
    assert validator.remote.fetch_count == 2
    assert oidc_provider.jwks_fetches() - before == 1

    clock.advance(31)
    rejected(validator, forged)
    assert validator.remote.fetch_count == 3
    assert oidc_provider.jwks_fetches() - before == 2


def test_rotated_key_is_accepted_after_one_refresh(
    oidc_provider: OIDCProvider, validator: TokenValidator, clock: FakeClock
) -> None:
    old_token = oidc_provider.user_token("alice")
    validator.validate(old_token)
    assert validator.remote is not None and validator.remote.fetch_count == 1
    clock.advance(31)  # outside the refresh window, still inside the 10 min cache

    new_kid = oidc_provider.rotate_keys()
    new_token = oidc_provider.client_credentials_token("broker-backend")
    old_kid = validator.validate(old_token).header["kid"]
    assert new_kid != old_kid

    before = oidc_provider.jwks_fetches()
    assert validator.validate(new_token).header["kid"] == new_kid  # unknown kid -> one refresh -> known
    assert validator.remote.fetch_count == 2
    assert oidc_provider.jwks_fetches() - before == 1
    # The previous key stays published during a rotation, so tokens already issued keep working.
    validator.validate(old_token)
    validator.validate(oidc_provider.user_token("bruno"))
    assert validator.remote.fetch_count == 2


def test_jwks_is_cached(oidc_provider: OIDCProvider, validator: TokenValidator, clock: FakeClock) -> None:
    token = oidc_provider.user_token("alice")
    for _ in range(10):
        validator.validate(token)
    assert validator.remote is not None and validator.remote.fetch_count == 1
    clock.advance(601)  # past the default 10 min cache
    validator.validate(token)
    assert validator.remote.fetch_count == 2


# -- claims checks (signed by the trusted local key, so only the claim can fail) --------------------------


def test_local_token_is_accepted(validator: TokenValidator, settings: Settings) -> None:
    verified = validator.validate(sign_local(settings))
    assert verified.local is True
    assert verified.issuer == "urn:openig-broker:local"


def test_typ_header_is_not_checked(validator: TokenValidator, settings: Settings) -> None:
    key = load_signing_key(settings)
    for typ in ("JWT", "at+jwt", "application/at+jwt"):
        validator.validate(sign(local_claims(settings), key, "ES256", typ=typ))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"exp": int(time.time()) - 3600}, "expiré"),
        ({"nbf": int(time.time()) + 3600}, "pas encore valide"),
        ({"iat": int(time.time()) + 3600}, "pas encore valide"),
        ({"aud": "account"}, "audience"),
        ({"aud": ["account", "autre-api"]}, "audience"),
        ({"aud": None}, "aud"),
        ({"exp": None}, "exp"),
        ({"sub": None}, "sub"),
        ({"iss": "https://sso.ailleurs.example/realms/openig"}, "émetteur non reconnu"),
        ({"iss": None}, "émetteur"),
    ],
)
def test_bad_claims_are_rejected(
    validator: TokenValidator, settings: Settings, overrides: dict[str, Any], message: str
) -> None:
    assert message in rejected(validator, sign_local(settings, **overrides)).detail


def test_clock_skew_is_tolerated(validator: TokenValidator, settings: Settings) -> None:
    now = int(time.time())
    validator.validate(sign_local(settings, exp=now - 10))  # within the default 30 s
    validator.validate(sign_local(settings, nbf=now + 10, iat=now + 10))
    validator.validate(sign_local(settings, aud=["account", "broker-api"]))  # Keycloak lists audiences
    rejected(validator, sign_local(settings, exp=now - 45))
    rejected(validator, sign_local(settings, nbf=now + 45))


def test_wrong_issuer_signed_by_its_own_key(oidc_provider: OIDCProvider, validator: TokenValidator) -> None:
    """A token claiming the provider as issuer but signed by someone else, with the provider's kid."""
    kid = oidc_provider.jwks()["keys"][0]["kid"]
    forger = RSAKey.generate_key(2048, parameters={"kid": kid})
    assert "signature" in rejected(validator, sign(provider_claims(oidc_provider), forger, "RS256")).detail
    # An EC key under an RSA kid: the key type does not fit the algorithm, so no key is found.
    ec = ECKey.generate_key("P-256", parameters={"kid": kid})
    rejected(validator, sign(provider_claims(oidc_provider), ec, "ES256"))


def test_local_token_under_unknown_local_kid(validator: TokenValidator, settings: Settings) -> None:
    other = ECKey.generate_key("P-256", auto_kid=True)
    assert "clé inconnue" in rejected(validator, sign(local_claims(settings), other, "ES256")).detail


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c.d.e",
        "!!!.???.###",
        f"{b64url(b'[1]')}.{b64url(b'{}')}.",
        "x" * (MAX_TOKEN_BYTES + 1),
    ],
)
def test_malformed_tokens(validator: TokenValidator, token: str) -> None:
    rejected(validator, token)


def test_crit_header_is_refused(validator: TokenValidator, settings: Settings) -> None:
    """RFC 7515 §4.1.11: an extension the broker does not understand, marked critical, is refused."""
    key = load_signing_key(settings)
    assert isinstance(key, ECKey)
    header = {"alg": "ES256", "kid": key.kid, "crit": ["urn:example:policy"], "urn:example:policy": "x"}
    signing_input = f"{b64url(header)}.{b64url(local_claims(settings))}"
    private_key = key.private_key
    assert private_key is not None
    der = private_key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    token = f"{signing_input}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"
    assert "extension" in rejected(validator, token).detail


# -- the issuer unreachable or misconfigured --------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_issuer_is_503_not_500(settings: Settings) -> None:
    issuer = f"http://127.0.0.1:{_closed_port()}/realms/openig"
    down = TokenValidator(settings, make_auth_settings(issuer, oidc_http_timeout_seconds=2))
    try:
        forger = RSAKey.generate_key(2048, auto_kid=True)
        token = sign({**local_claims(settings), "iss": issuer}, forger, "RS256")
        with pytest.raises(Unavailable) as info:
            down.validate(token)
        assert info.value.status_code == 503
        assert str(issuer) not in info.value.detail or "injoignable" in info.value.detail
        # Local tokens keep working while Keycloak is down.
        down.validate(sign_local(settings))
    finally:
        down.close()


class ScriptedIssuer:
    """An httpx transport playing an issuer's discovery + JWKS (unit tests of the cache policy)."""

    def __init__(self, issuer: str, key: RSAKey, *, cache_control: str | None = None) -> None:
        self.issuer = issuer
        self.keys = [key]
        self.cache_control = cache_control
        self.discovery_issuer = issuer
        self.fail = False
        self.jwks_calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            raise httpx.ConnectError("refused", request=request)
        if request.url.path.endswith("/.well-known/openid-configuration"):
            return httpx.Response(
                200,
                json={
                    "issuer": self.discovery_issuer,
                    "jwks_uri": f"{self.issuer}/protocol/openid-connect/certs",
                },
            )
        self.jwks_calls += 1
        headers = {"Cache-Control": self.cache_control} if self.cache_control else {}
        # An encryption key as Keycloak publishes one (RSA-OAEP, use "enc") must be ignored.
        enc = RSAKey.generate_key(2048, parameters={"kid": "enc-key", "use": "enc", "alg": "RSA-OAEP"})
        keys = [k.as_dict(private=False) for k in self.keys] + [enc.as_dict(private=False)]
        return httpx.Response(200, json={"keys": keys}, headers=headers)


def _scripted(settings: Settings, script: ScriptedIssuer, clock: FakeClock) -> TokenValidator:
    client = httpx.Client(transport=httpx.MockTransport(script))
    return TokenValidator(settings, make_auth_settings(script.issuer), http_client=client, clock=clock)


ISSUER = "https://sso.openig.example/realms/openig"


def test_cache_control_max_age_is_honoured(settings: Settings, clock: FakeClock) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    script = ScriptedIssuer(ISSUER, key, cache_control="public, max-age=120")
    validator = _scripted(settings, script, clock)
    token = sign({**local_claims(settings), "iss": ISSUER}, key, "RS256")
    validator.validate(token)
    clock.advance(100)
    validator.validate(token)
    assert script.jwks_calls == 1
    clock.advance(25)
    validator.validate(token)
    assert script.jwks_calls == 2


def test_stale_keys_are_kept_while_the_issuer_is_down(settings: Settings, clock: FakeClock) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    script = ScriptedIssuer(ISSUER, key)
    validator = _scripted(settings, script, clock)
    token = sign({**local_claims(settings), "iss": ISSUER}, key, "RS256")
    validator.validate(token)
    script.fail = True
    clock.advance(3600)
    validator.validate(token)  # cache expired, issuer down: the keys we had still verify
    # An unknown kid while the issuer is down is a 401, not a 500.
    other = RSAKey.generate_key(2048, parameters={"kid": "k2"})
    rejected(validator, sign({**local_claims(settings), "iss": ISSUER}, other, "RS256"))


def test_discovery_naming_another_issuer_is_refused(settings: Settings, clock: FakeClock) -> None:
    key = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    script = ScriptedIssuer(ISSUER, key)
    script.discovery_issuer = "https://sso.ailleurs.example/realms/openig"
    validator = _scripted(settings, script, clock)
    with pytest.raises(Unavailable):
        validator.validate(sign({**local_claims(settings), "iss": ISSUER}, key, "RS256"))
    assert script.jwks_calls == 0


def test_no_oidc_issuer_means_local_tokens_only(settings: Settings, oidc_provider: OIDCProvider) -> None:
    local_only = TokenValidator(settings, make_auth_settings(None))
    try:
        assert local_only.remote is None
        local_only.validate(sign_local(settings))
        assert "émetteur non reconnu" in rejected(local_only, oidc_provider.user_token("alice")).detail
    finally:
        local_only.close()


def test_token_without_kid_uses_the_single_key(validator: TokenValidator, settings: Settings) -> None:
    key = load_signing_key(settings)
    token = jwt.encode({"alg": "ES256"}, local_claims(settings), key, algorithms=["ES256"])
    assert validator.validate(token).claims["sub"] == "agent-sig-42"
