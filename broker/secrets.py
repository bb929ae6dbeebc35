"""Encrypt per-organisation credentials at rest (Fernet), with a key from settings or the data directory."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from broker.config import get_settings

logger = logging.getLogger(__name__)


def _key_file() -> Path:
    return get_settings().keys_dir / "secrets.key"


@functools.lru_cache(maxsize=4)
def _fernet(configured: str | None, key_path: str) -> Fernet:
    if configured:
        # Any string works as BROKER_SECRET_KEY: derive a 32-byte Fernet key from it.
        return Fernet(base64.urlsafe_b64encode(hashlib.sha256(configured.encode()).digest()))
    path = Path(key_path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = Fernet.generate_key()
        try:
            # O_EXCL: two processes starting at once agree on one key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key)
            logger.info("created the credentials encryption key %s", path)
        except FileExistsError:
            pass
    return Fernet(path.read_bytes().strip())


def fernet() -> Fernet:
    settings = get_settings()
    configured = settings.secret_key.get_secret_value() if settings.secret_key else None
    return _fernet(configured, str(_key_file()))


def encrypt(values: dict[str, Any]) -> str:
    return fernet().encrypt(json.dumps(values).encode()).decode()


def decrypt(token: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(fernet().decrypt(token.encode()))
    except InvalidToken as exc:
        raise ValueError("stored credentials cannot be decrypted with the current key") from exc
    return data
