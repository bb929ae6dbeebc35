"""Bearer JWT validation, the broker being an OAuth 2.0 resource server (RFC 6750, RFC 9068).

One path for every token: parse the header and claims without trusting them, pick the key source from
the ``iss`` claim (the local issuer's JWKS read from the key file, or the OIDC issuer's JWKS found through
its discovery document), find the key by ``kid``, verify the signature with joserfc restricted to the
allowed asymmetric algorithms, then check ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` with a small
clock skew. The ``iss`` of a token never makes the broker fetch anything: only the configured issuer's
URLs are ever requested.

A ``kid`` the cached JWKS does not know triggers one refetch (the issuer may have rotated its keys), at
most once per ``oidc_jwks_min_refresh_seconds`` per issuer, so a flood of forged ``kid`` values costs the
issuer nothing. The ``typ`` header is not checked: oidc-provider sends ``at+jwt`` (RFC 9068 §2.1),
Keycloak sends ``JWT``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import ECKey, Key, OKPKey, RSAKey, import_key
from joserfc.jwt import JWTClaimsRegistry

from broker.auth.claims import ClaimsMapping
from broker.auth.keys import local_key_set
from broker.auth.settings import SAFE_ALGORITHMS, AuthSettings, get_auth_settings
from broker.config import Settings, get_settings
from broker.errors import Unauthorized, Unavailable

logger = logging.getLogger(__name__)

#: Larger than any real access token (Keycloak's with many groups stay under 8 KiB); refuse before parsing.
MAX_TOKEN_BYTES = 16 * 1024
#: After a failed discovery/JWKS fetch, wait this long (capped by the refresh window) before trying again.
FAILURE_BACKOFF_SECONDS = 5.0
#: Bounds on a JWKS lifetime taken from Cache-Control max-age.
MAX_JWKS_TTL_SECONDS = 24 * 3600

_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)

_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}


def _invalid(detail: str, reason: str, **context: Any) -> Unauthorized:
    """An RFC 6750 §3.1 ``invalid_token`` error. ``reason`` goes to the logs (never the token itself)."""
    logger.info("bearer token rejected: %s %s", reason, context or "")
    return Unauthorized(detail, error="invalid_token")


def _b64_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def peek(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, NOT verified: only to choose the key source and the key."""
    parts = token.split(".")
    if len(parts) != 3:
        # Five parts would be a JWE: the broker accepts only signed (not encrypted) access tokens.
        raise _invalid("Le jeton d'accès est mal formé.", "not a compact JWS")
    try:
        header = _b64_json(parts[0])
        claims = _b64_json(parts[1])
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise _invalid("Le jeton d'accès est mal formé.", "undecodable segments") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise _invalid("Le jeton d'accès est mal formé.", "header or payload not a JSON object")
    return header, claims


def _key_matches_alg(key: Key, alg: str) -> bool:
    """RFC 7518 §3: each algorithm needs its own key type (and curve); a key that names its ``alg``
    (RFC 7517 §4.4) may be used with that algorithm only."""
    if key.alg and key.alg != alg:
        return False
    use = key.get("use")
    if use and use != "sig":
        return False
    if alg.startswith(("RS", "PS")):
        return isinstance(key, RSAKey)
    if alg in _CURVES:
        return isinstance(key, ECKey) and key.curve_name == _CURVES[alg]
    if alg == "EdDSA":
        return isinstance(key, OKPKey)
    return False


def select_key(keys: list[Key], kid: str | None, alg: str) -> Key | None:
    candidates = [k for k in keys if (kid is None or k.kid == kid) and _key_matches_alg(k, alg)]
    if kid is None and len(candidates) != 1:
        # No kid and several possible keys: trying each would multiply the work per forged token.
        return None
    return candidates[0] if candidates else None


def import_jwks(document: Any) -> list[Key]:
    """Signing keys from a JWKS document; keys that cannot be used are skipped, not fatal (RFC 7517 §5:
    Keycloak also publishes RSA-OAEP encryption keys, and may publish key types joserfc does not know)."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: list[Key] = []
    for data in document["keys"]:
        if not isinstance(data, Mapping) or data.get("use", "sig") != "sig":
            continue
        try:
            key = import_key(dict(data))
        except (JoseError, ValueError, TypeError, KeyError):
            logger.warning("skipping an unusable key (kid %s) in a JWKS", data.get("kid"))
            continue
        if key.is_private:
            # A JWKS is public; never keep private material that was published by mistake.
            key = import_key(key.as_dict(private=False))
        key.ensure_kid()
        keys.append(key)
    return keys


class KeySource:
    """Where the verification keys of one issuer come from."""

    issuer: str

    def key_for(self, kid: str | None, alg: str) -> Key | None:  # pragma: no cover - interface
        raise NotImplementedError


class LocalKeySource(KeySource):
    """The local JWKS: the public half of the key file in the data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.issuer = settings.effective_token_issuer

    def key_for(self, kid: str | None, alg: str) -> Key | None:
        return select_key(list(local_key_set(self.settings)), kid, alg)


class RemoteKeySource(KeySource):
    """An OIDC issuer's JWKS, found through ``{issuer}/.well-known/openid-configuration``, cached.

    Thread-safe: one lock per issuer, so concurrent requests that all miss wait for a single fetch.
    """

    def __init__(
        self,
        issuer: str,
        *,
        http_client: httpx.Client,
        cache_seconds: float = 600,
        min_refresh_seconds: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = issuer
        self.discovery_url = f"{issuer.rstrip('/')}/.well-known/openid-configuration"
        self._http = http_client
        self._cache_seconds = cache_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._jwks_uri: str | None = None
        self._keys: list[Key] | None = None
        self._expires_at = 0.0
        self._last_attempt: float | None = None
        self._last_failed = False
        #: Number of JWKS downloads, for logs and tests.
        self.fetch_count = 0

    # -- fetching -------------------------------------------------------------------------------------
    def _get_json(self, url: str, what: str) -> tuple[Any, httpx.Headers]:
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            logger.warning("cannot reach the OIDC issuer for its %s (%s): %s", what, url, type(exc).__name__)
            raise Unavailable(
                "Le fournisseur d'identité est injoignable ; réessayez dans un instant."
            ) from exc
        if response.status_code != 200:
            logger.warning("the OIDC issuer answered %s for its %s (%s)", response.status_code, what, url)
            raise Unavailable("Le fournisseur d'identité ne répond pas correctement ; réessayez plus tard.")
        try:
            return response.json(), response.headers
        except ValueError as exc:
            logger.warning("the OIDC issuer's %s is not JSON (%s)", what, url)
            raise Unavailable("Le fournisseur d'identité a renvoyé une réponse illisible.") from exc

    def _discover(self) -> str:
        document, _ = self._get_json(self.discovery_url, "discovery document")
        if not isinstance(document, Mapping):
            raise Unavailable("Le fournisseur d'identité a renvoyé une réponse illisible.")
        # OpenID Connect Discovery 1.0 §4.3: the document's issuer MUST be the one we asked.
        if str(document.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            logger.error(
                "discovery at %s names issuer %r, not %r: check BROKER_OIDC_ISSUER",
                self.discovery_url,
                document.get("issuer"),
                self.issuer,
            )
            raise Unavailable(
                "La configuration du fournisseur d'identité ne correspond pas à l'émetteur attendu."
            )
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise Unavailable("Le fournisseur d'identité ne publie pas ses clés (jwks_uri).")
        return jwks_uri

    def _ttl(self, headers: httpx.Headers) -> float:
        match = _MAX_AGE.search(headers.get("cache-control", ""))
        if not match:
            return self._cache_seconds
        # Honour max-age, but never below the refresh window (Keycloak may say max-age=0 / no-cache,
        # which taken literally would mean one download per request).
        return float(min(max(int(match.group(1)), self._min_refresh, 1), MAX_JWKS_TTL_SECONDS))

    def _fetch(self, reason: str) -> None:
        now = self._clock()
        self._last_attempt = now
        try:
            if self._jwks_uri is None:
                self._jwks_uri = self._discover()
            document, headers = self._get_json(self._jwks_uri, "JWKS")
            try:
                keys = import_jwks(document)
            except ValueError as exc:
                logger.warning("the OIDC issuer's JWKS is not a key set (%s)", self._jwks_uri)
                raise Unavailable("Le fournisseur d'identité a renvoyé des clés illisibles.") from exc
        except Unavailable:
            self._last_failed = True
            self._jwks_uri = None  # rediscover next time: the endpoint may have moved
            raise
        self.fetch_count += 1
        self._keys = keys
        self._expires_at = now + self._ttl(headers)
        self._last_failed = False
        logger.info(
            "fetched the JWKS of %s (%s): %d key(s) %s", self.issuer, reason, len(keys), [k.kid for k in keys]
        )

    # -- lookup ---------------------------------------------------------------------------------------
    def _recently_attempted(self, now: float, window: float) -> bool:
        return self._last_attempt is not None and now - self._last_attempt < window

    def _ensure_fresh(self) -> None:
        now = self._clock()
        if self._keys is not None and now < self._expires_at:
            return
        backoff = min(FAILURE_BACKOFF_SECONDS, self._min_refresh) if self._min_refresh else 0.0
        if self._last_failed and self._recently_attempted(now, backoff):
            if self._keys is not None:
                return  # the issuer just failed us: keep using the keys we had
            raise Unavailable("Le fournisseur d'identité est injoignable ; réessayez dans un instant.")
        try:
            self._fetch("cache expired" if self._keys is not None else "first use")
        except Unavailable:
            if self._keys is None:
                raise
            # Serving stale keys while the issuer is down keeps valid tokens working; a rotated key
            # will be picked up at the next successful fetch.
            logger.warning("keeping the stale JWKS of %s while the issuer is unreachable", self.issuer)

    def key_for(self, kid: str | None, alg: str) -> Key | None:
        with self._lock:
            self._ensure_fresh()
            assert self._keys is not None
            key = select_key(self._keys, kid, alg)
            if key is not None or kid is None:
                return key
            now = self._clock()
            if self._recently_attempted(now, self._min_refresh):
                logger.info("unknown kid %r for %s; JWKS refreshed too recently to refetch", kid, self.issuer)
                return None
            try:
                self._fetch(f"unknown kid {kid!r}")
            except Unavailable:
                logger.warning("could not refresh the JWKS of %s for kid %r", self.issuer, kid)
                return None
            return select_key(self._keys, kid, alg)


@dataclass(frozen=True)
class VerifiedToken:
    """A token whose signature and registered claims have been checked."""

    issuer: str
    local: bool
    header: dict[str, Any]
    claims: dict[str, Any]
    mapping: ClaimsMapping


class TokenValidator:
    """Validates bearer tokens of the local issuer and, when configured, of one OIDC issuer.

    Build one per process (:func:`get_token_validator`); tests build their own, with their own cache.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        auth_settings: AuthSettings | None = None,
        *,
        http_client: httpx.Client | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.auth_settings = auth_settings or get_auth_settings()
        self.algorithms = tuple(a for a in self.auth_settings.oidc_allowed_algorithms if a in SAFE_ALGORITHMS)
        self.leeway = self.auth_settings.oidc_clock_skew_seconds
        self._wall_clock = wall_clock or (lambda: int(time.time()))
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            timeout=self.auth_settings.oidc_http_timeout_seconds,
            follow_redirects=True,
            headers={"User-Agent": "openig-broker"},
        )
        self.local = LocalKeySource(self.settings)
        self.local_mapping = ClaimsMapping.keycloak_defaults(self.settings.token_audience)
        self.remote: RemoteKeySource | None = None
        self.remote_mapping = ClaimsMapping.from_settings(self.auth_settings)
        if self.auth_settings.oidc_issuer:
            if self.auth_settings.oidc_issuer.rstrip("/") == self.local.issuer.rstrip("/"):
                logger.warning("BROKER_OIDC_ISSUER equals the local token issuer; local keys win")
            self.remote = RemoteKeySource(
                self.auth_settings.oidc_issuer,
                http_client=self._http,
                cache_seconds=self.auth_settings.oidc_jwks_cache_seconds,
                min_refresh_seconds=self.auth_settings.oidc_jwks_min_refresh_seconds,
                clock=clock,
            )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def _source_for(self, issuer: str) -> tuple[KeySource, bool, ClaimsMapping, str]:
        if issuer.rstrip("/") == self.local.issuer.rstrip("/"):
            return self.local, True, self.local_mapping, self.settings.token_audience
        if self.remote is not None and issuer.rstrip("/") == self.remote.issuer.rstrip("/"):
            return self.remote, False, self.remote_mapping, self.auth_settings.oidc_audience
        raise _invalid("Le jeton d'accès provient d'un émetteur non reconnu.", "unknown issuer", iss=issuer)

    def validate(self, token: str) -> VerifiedToken:
        """Check ``token`` completely. Raises :class:`Unauthorized` (401) when it is not acceptable and
        :class:`Unavailable` (503) when the issuer cannot be reached to get its keys."""
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise _invalid("Le jeton d'accès est mal formé.", "empty or oversized token")
        header, unverified = peek(token)

        alg = header.get("alg")
        # RFC 8725 §2.1/§3.1: the algorithm comes from our allow-list, never from the token; this stops
        # "none" and the HS256-with-the-public-key forgery before any key is looked at.
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise _invalid(
                "L'algorithme de signature du jeton n'est pas accepté.", "algorithm refused", alg=alg
            )
        if "crit" in header:
            # RFC 7515 §4.1.11: we understand no extension, so a token that makes one critical is refused.
            raise _invalid("Le jeton d'accès utilise une extension non prise en charge.", "crit header")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise _invalid("Le jeton d'accès est mal formé.", "kid not a string")

        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or not issuer:
            raise _invalid("Le jeton d'accès n'indique pas son émetteur.", "no iss")
        source, local, mapping, audience = self._source_for(issuer)

        key = source.key_for(kid, alg)
        if key is None:
            raise _invalid(
                "Le jeton d'accès est signé par une clé inconnue.", "unknown key", iss=issuer, kid=kid
            )
        try:
            verified = jwt.decode(token, key, algorithms=[alg])
        except BadSignatureError as exc:
            raise _invalid("La signature du jeton d'accès est invalide.", "bad signature", kid=kid) from exc
        except (JoseError, ValueError) as exc:
            raise _invalid("Le jeton d'accès est invalide.", f"undecodable ({type(exc).__name__})") from exc

        registry = JWTClaimsRegistry(
            now=self._wall_clock,
            leeway=self.leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(verified.claims)
        except ExpiredTokenError as exc:
            raise _invalid("Le jeton d'accès a expiré.", "expired", iss=issuer) from exc
        except MissingClaimError as exc:
            raise _invalid(
                f"Le jeton d'accès ne contient pas la revendication obligatoire « {exc.claim} ».",
                "missing claim",
                claim=exc.claim,
            ) from exc
        except InvalidClaimError as exc:
            messages = {
                "aud": "Le jeton d'accès n'est pas destiné au broker (audience).",
                "nbf": "Le jeton d'accès n'est pas encore valide.",
                "iat": "Le jeton d'accès n'est pas encore valide (émis dans le futur).",
            }
            detail = messages.get(
                exc.claim, f"La revendication « {exc.claim} » du jeton d'accès est invalide."
            )
            raise _invalid(detail, "invalid claim", claim=exc.claim) from exc
        return VerifiedToken(
            issuer=issuer,
            local=local,
            header=dict(verified.header),
            claims=dict(verified.claims),
            mapping=mapping,
        )


@functools.lru_cache(maxsize=1)
def _default_validator() -> TokenValidator:
    return TokenValidator(get_settings(), get_auth_settings())


def get_token_validator() -> TokenValidator:
    """The process-wide validator (its JWKS cache is shared by every request). A FastAPI dependency:
    tests override it with their own instance."""
    return _default_validator()


def reset_token_validator() -> None:
    """Drop the process-wide validator (after settings changed)."""
    if _default_validator.cache_info().currsize:
        _default_validator().close()
    _default_validator.cache_clear()
