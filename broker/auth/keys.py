"""The local signing key: what signs the tokens of ``broker token issue`` when there is no Keycloak.

One asymmetric private key (ES256 by default) in the data directory, as a JWK, created on first use with
mode 0600. Tokens it signs are checked through the same path as Keycloak's, against the "local JWKS": the
public half of this key (DESIGN §6). An operator may put an RSA private JWK there instead (RS256).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
import threading
from pathlib import Path
from typing import Any

from joserfc.jwk import ECKey, Key, KeySet, RSAKey, import_key

from broker.config import Settings, get_settings

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "token-signing-key.jwk"

_cache_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], ECKey | RSAKey]] = {}


class SigningKeyError(RuntimeError):
    """The key file exists but cannot be used (unreadable, not a private asymmetric key)."""


def signing_key_path(settings: Settings | None = None) -> Path:
    settings = settings or get_settings()
    return settings.keys_dir / KEY_FILE_NAME


def signing_algorithm(key: Key) -> str:
    """The JWS algorithm a local key signs with (RFC 7518 §3.1)."""
    if isinstance(key, ECKey):
        return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}[key.curve_name]
    if isinstance(key, RSAKey):
        return key.alg if key.alg in ("RS256", "PS256") else "RS256"
    raise SigningKeyError(f"type de clé non pris en charge : {key.key_type}")


def _create_key_file(path: Path) -> None:
    """Write a new key so that two processes starting at once end up with the same single key.

    The key is written to a private temporary file (mkstemp creates it 0600) and published with
    ``os.link``, which is atomic and never replaces an existing file: the first process wins, the others
    discard their key and read the winner's. Nobody ever reads a half-written file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    key = ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, private=True, auto_kid=True)
    data = json.dumps(key.as_dict(private=True), indent=2)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(tmp_name, path)
            logger.info("created the local token signing key %s (kid %s)", path, key.kid)
        except FileExistsError:
            logger.debug("another process created the signing key first; using it")
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def _read_key_file(path: Path) -> ECKey | RSAKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning("the token signing key %s is readable by others; chmod 600 it", path)
    try:
        data: Any = json.loads(path.read_text(encoding="utf-8"))
        key = import_key(data)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SigningKeyError(f"clé de signature illisible : {path}") from exc
    if not isinstance(key, ECKey | RSAKey) or not key.is_private:
        raise SigningKeyError(f"la clé {path} doit être une clé privée EC ou RSA")
    key.ensure_kid()
    return key


def load_signing_key(settings: Settings | None = None, *, create: bool = True) -> ECKey | RSAKey:
    """The local private signing key, created on first use (``create=True``)."""
    path = signing_key_path(settings)
    if not path.exists():
        if not create:
            raise SigningKeyError(f"aucune clé de signature locale : {path}")
        _create_key_file(path)
    st = path.stat()
    version = (st.st_mtime_ns, st.st_size)
    with _cache_lock:
        cached = _cache.get(path)
        if cached and cached[0] == version:
            return cached[1]
    key = _read_key_file(path)
    with _cache_lock:
        _cache[path] = (version, key)
    return key


def public_jwk(key: ECKey | RSAKey) -> dict[str, Any]:
    """The public half as a JWK, with the ``kid``, ``alg`` and ``use`` a verifier needs."""
    data: dict[str, Any] = dict(key.as_dict(private=False))
    data["kid"] = key.kid
    data["alg"] = signing_algorithm(key)
    data["use"] = "sig"
    return data


def local_jwks(settings: Settings | None = None) -> dict[str, Any]:
    """The local JWKS document (RFC 7517 §5), as served at ``/api/v1/auth/jwks.json``."""
    return {"keys": [public_jwk(load_signing_key(settings))]}


def local_key_set(settings: Settings | None = None) -> KeySet:
    """Public keys that verify local tokens. Creating the key here is fine: a token signed before the key
    existed cannot exist, so a fresh key simply makes every presented token fail with an unknown ``kid``."""
    return KeySet.import_key_set(local_jwks(settings))  # type: ignore[arg-type]
