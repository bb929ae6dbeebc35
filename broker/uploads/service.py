"""Resumable uploads (tus 1.0.0, https://tus.io/protocols/resumable-upload): create, append, terminate,
expire, and hand complete uploads to a publication's staging store.

The bytes of an upload live in ``<data_dir>/uploads/<id>.part``; the row in ``upload`` holds the offset the
broker vouches for (bytes fsynced to disk), so a crash between a write and the row update only leaves bytes
beyond the offset, which the next PATCH truncates. The sha256 is computed while appending; the running hash
state is kept in memory per upload id, and rebuilt by re-reading the ``offset`` bytes already received when
it is missing (another API process took the previous PATCH, or the API restarted).

Services never commit: the router and the tasks own the transaction (broker.db).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import fcntl
import hashlib
import logging
import os
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, Protocol

from sqlmodel import Session

from broker.config import get_settings
from broker.db import iso, session_scope, utcnow
from broker.errors import BrokerError, Conflict, InvalidInput, NotFound, PayloadTooLarge
from broker.intake.staging import StagedFile, Staging, sanitize_filename
from broker.uploads import repository
from broker.uploads.models import Upload
from broker.uploads.settings import get_upload_settings

logger = logging.getLogger(__name__)

TUS_VERSION = "1.0.0"
TUS_EXTENSIONS = ("creation", "expiration", "termination", "checksum")
# tus checksum extension: sha1 is the one every client must be able to use; tuspy sends sha1.
CHECKSUM_ALGORITHMS: dict[str, Any] = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "md5": hashlib.md5}
_HASH_CACHE_SIZE = 1024
_LOCK_WAIT_SECONDS = 10.0


class Owner(Protocol):
    """Whoever owns an upload: a :class:`broker.auth.principal.Principal` satisfies it."""

    @property
    def subject(self) -> str: ...

    @property
    def issuer(self) -> str: ...


# --------------------------------------------------------------------------------------------- errors


class Gone(BrokerError):
    """tus 1.0 §HEAD/§PATCH: an upload that existed and expired is 410 (404 is for unknown ones)."""

    status_code = 410
    code = "gone"


class Locked(BrokerError):
    status_code = 423
    code = "locked"


class ChecksumMismatch(BrokerError):
    """tus checksum extension: 460 Checksum Mismatch; the bytes of that PATCH are dropped."""

    status_code = 460
    code = "checksum_mismatch"


class PreconditionFailed(BrokerError):
    """tus 1.0 §Tus-Resumable: 412 when the client speaks a version the server does not."""

    status_code = 412
    code = "tus_version"


class UnsupportedMediaType(BrokerError):
    status_code = 415
    code = "unsupported_media_type"


# --------------------------------------------------------------------------------------------- paths


def uploads_dir() -> Path:
    path = get_settings().data_dir / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def part_path(upload_id: str) -> Path:
    return uploads_dir() / f"{upload_id}.part"


def expires_header(value: datetime) -> str:
    """tus expiration extension: Upload-Expires is an RFC 7231 HTTP-date (always GMT)."""
    return format_datetime(_aware(value).astimezone(UTC), usegmt=True)


# --------------------------------------------------------------------------------------------- headers


def parse_metadata(header: str | None) -> dict[str, str]:
    """Upload-Metadata (tus 1.0): comma-separated ``key base64value`` pairs; the value may be absent."""
    pairs: dict[str, str] = {}
    if not header:
        return pairs
    for item in header.split(","):
        item = item.strip()
        if not item:
            continue
        key, _, encoded = item.partition(" ")
        if not key or " " in encoded.strip():
            raise InvalidInput(
                "En-tête Upload-Metadata mal formé.", fields={"Upload-Metadata": ["« clé valeur_base64 »"]}
            )
        try:
            value = base64.b64decode(encoded.strip(), validate=True).decode("utf-8") if encoded else ""
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidInput(
                f"Valeur de « {key} » illisible dans Upload-Metadata (base64 UTF-8 attendu).",
                fields={"Upload-Metadata": [key]},
            ) from exc
        pairs[key] = value[:2000]
    return pairs


def parse_checksum(header: str | None) -> tuple[str, bytes] | None:
    """Upload-Checksum (tus checksum extension): ``<algorithm> <base64 digest>``."""
    if not header:
        return None
    algorithm, _, encoded = header.strip().partition(" ")
    algorithm = algorithm.lower()
    if algorithm not in CHECKSUM_ALGORITHMS:
        raise InvalidInput(
            f"Algorithme de somme de contrôle non pris en charge : {algorithm}.",
            fields={"Upload-Checksum": [f"algorithmes : {', '.join(CHECKSUM_ALGORITHMS)}"]},
        )
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error as exc:
        raise InvalidInput(
            "Upload-Checksum mal formé.", fields={"Upload-Checksum": ["base64 attendu"]}
        ) from exc


def parse_non_negative(name: str, value: str | None) -> int:
    if value is None or not value.isdigit():
        raise InvalidInput(f"En-tête {name} absent ou invalide.", fields={name: ["entier positif attendu"]})
    return int(value)


# --------------------------------------------------------------------------------------------- state


def create(session: Session, owner: Owner, length: int, metadata: dict[str, str]) -> Upload:
    """A new empty upload of ``length`` bytes (tus creation extension)."""
    limit = get_settings().max_upload_bytes
    if length > limit:
        # tus 1.0 §creation: Upload-Length beyond Tus-Max-Size is 413.
        raise PayloadTooLarge(
            f"Le fichier annoncé ({length} octets) dépasse la taille maximale acceptée ({limit} octets).",
            fields={"Upload-Length": [f"au plus {limit}"]},
        )
    raw_name = metadata.get("filename") or metadata.get("name")
    now = utcnow()
    upload = Upload(
        owner_subject=owner.subject,
        owner_issuer=owner.issuer,
        filename=sanitize_filename(raw_name) if raw_name else None,
        meta=metadata,
        length=length,
        offset=0,
        created_at=now,
        updated_at=now,
        expires_at=now + timedelta(seconds=get_upload_settings().upload_expiry_seconds),
    )
    repository.add(session, upload)
    part_path(upload.id).touch()
    if length == 0:
        _complete(upload, hashlib.sha256())
    return upload


def get_owned(session: Session, owner: Owner, upload_id: str) -> Upload:
    """The caller's upload; someone else's is "not found" (its existence is not theirs to learn)."""
    upload = repository.get(session, upload_id)
    if upload is None or upload.owner_subject != owner.subject or upload.owner_issuer != owner.issuer:
        raise NotFound(f"Téléversement inconnu : {upload_id}.")
    expires_at = _aware(upload.expires_at)
    if expires_at <= utcnow():
        raise Gone(f"Le téléversement {upload_id} a expiré ; recommencez-le.")
    return upload


def terminate(session: Session, owner: Owner, upload_id: str) -> None:
    """tus termination extension: forget the upload and free its space."""
    upload = get_owned(session, owner, upload_id)
    repository.delete(session, upload)
    part_path(upload.id).unlink(missing_ok=True)
    _HASHES.drop(upload.id)


def record_progress(session: Session, upload_id: str, offset: int, hasher: Any) -> Upload:
    """Write the offset reached by a PATCH (its bytes are fsynced); complete the upload at its length."""
    upload = repository.get(session, upload_id)
    if upload is None:  # terminated while bytes were coming in
        raise NotFound(f"Téléversement inconnu : {upload_id}.")
    now = utcnow()
    upload.offset = offset
    upload.updated_at = now
    # An upload in use stays alive: expiry counts from the last byte received (tus expiration extension).
    upload.expires_at = now + timedelta(seconds=get_upload_settings().upload_expiry_seconds)
    if offset == upload.length:
        _complete(upload, hasher)
    session.add(upload)
    session.flush()
    return upload


def _complete(upload: Upload, hasher: Any) -> None:
    upload.sha256 = hasher.hexdigest()
    upload.state = "complete"
    _HASHES.drop(upload.id)
    logger.info("upload %s complete: %d bytes, sha256 %s", upload.id, upload.length, upload.sha256)


def cleanup_expired(session: Session) -> int:
    """Delete expired uploads (rows and bytes). Blobs already linked into the file store stay."""
    removed = 0
    for upload in repository.expired(session, utcnow()):
        part_path(upload.id).unlink(missing_ok=True)
        _HASHES.drop(upload.id)
        repository.delete(session, upload)
        removed += 1
    # Part files whose row is gone (a crash between the two deletions) go too, once old enough.
    horizon = time.time() - get_upload_settings().upload_expiry_seconds
    for path in uploads_dir().glob("*.part"):
        with contextlib.suppress(OSError):
            if path.stat().st_mtime < horizon and repository.get(session, path.stem) is None:
                path.unlink()
    return removed


def to_dict(upload: Upload) -> dict[str, Any]:
    return {
        "id": upload.id,
        "filename": upload.filename,
        "length": upload.length,
        "offset": upload.offset,
        "state": upload.state,
        "sha256": upload.sha256,
        "created_at": iso(upload.created_at),
        "expires_at": iso(upload.expires_at),
        "metadata": upload.meta,
    }


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


# --------------------------------------------------------------------------------------------- hashing


class _HashCache:
    """Running sha256 per upload id, with the offset it covers (hash objects cannot be stored)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[str, tuple[int, Any]] = OrderedDict()
        self.lock = threading.Lock()

    def take(self, upload_id: str, offset: int) -> Any | None:
        with self.lock:
            found = self.items.pop(upload_id, None)
        if found is None or found[0] != offset:
            return None
        return found[1]

    def put(self, upload_id: str, offset: int, hasher: Any) -> None:
        with self.lock:
            self.items[upload_id] = (offset, hasher)
            self.items.move_to_end(upload_id)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def drop(self, upload_id: str) -> None:
        with self.lock:
            self.items.pop(upload_id, None)


_HASHES = _HashCache(_HASH_CACHE_SIZE)

CHUNK = 1024 * 1024


def resume_hash(upload_id: str, path: Path, offset: int) -> Any:
    """The sha256 state after the first ``offset`` bytes: from memory, else by re-reading them."""
    hasher = _HASHES.take(upload_id, offset)
    if hasher is not None:
        return hasher
    hasher = hashlib.sha256()
    remaining = offset
    with path.open("rb") as stream:
        while remaining > 0:
            data = stream.read(min(CHUNK, remaining))
            if not data:
                raise Conflict("Les octets déjà reçus de ce téléversement sont incomplets ; recommencez-le.")
            hasher.update(data)
            remaining -= len(data)
    logger.info("upload %s: hash state rebuilt from %d bytes on disk", upload_id, offset)
    return hasher


def keep_hash(upload_id: str, offset: int, hasher: Any) -> None:
    _HASHES.put(upload_id, offset, hasher)


# --------------------------------------------------------------------------------------------- appending


class Appender:
    """Appends one PATCH's bytes to the part file from a worker thread: write, hash, then fsync.

    The file is locked (``flock``) for the whole PATCH, so two PATCHes on one upload, in one process or
    several, never interleave; the second waits a moment, then gets 423.
    """

    def __init__(self, upload_id: str, offset: int, checksum: tuple[str, bytes] | None) -> None:
        self.upload_id = upload_id
        self.start = offset
        self.offset = offset
        self.path = part_path(upload_id)
        self.checksum = checksum
        self.chunk_hasher = CHECKSUM_ALGORITHMS[checksum[0]]() if checksum else None
        self.hasher: Any = None
        self.stream: Any = None

    def open(self) -> None:
        """Lock the file, drop any bytes beyond the vouched offset, and get the running hash ready."""
        # Unbuffered: each chunk goes straight to os.write, without a copy into a Python buffer.
        stream = self.path.open("r+b", buffering=0)
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        while True:
            try:
                fcntl.flock(stream.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    stream.close()
                    raise Locked(
                        "Un autre envoi est en cours sur ce téléversement ; réessayez dans un instant."
                    ) from None
                time.sleep(0.05)
        self.stream = stream
        try:
            stream.truncate(self.start)
            stream.seek(self.start)
            self.hasher = resume_hash(self.upload_id, self.path, self.start)
        except BaseException:
            self.close()
            raise

    def write(self, chunks: list[bytes]) -> None:
        """Write and hash the chunks as received (no joining copy); os.write and hashlib release the GIL,
        so this overlaps with the event loop receiving the next ones."""
        assert self.stream is not None
        for data in chunks:
            view = memoryview(data)
            while view:
                written = self.stream.write(view)
                view = view[written or 0 :]
            self.hasher.update(data)
            if self.chunk_hasher is not None:
                self.chunk_hasher.update(data)
            self.offset += len(data)

    def finish(self, complete_body: bool) -> int:
        """Flush to disk and return the offset to record; a PATCH whose checksum fails keeps nothing."""
        assert self.stream is not None
        if self.checksum is not None:
            good = (
                complete_body
                and self.chunk_hasher is not None
                and self.chunk_hasher.digest() == self.checksum[1]
            )
            if not good:
                self.rollback()
                if complete_body:
                    raise ChecksumMismatch(
                        "La somme de contrôle ne correspond pas aux octets reçus ; renvoyez ce morceau.",
                        fields={"Upload-Checksum": ["somme différente"]},
                    )
                return self.start
        self.stream.flush()
        os.fsync(self.stream.fileno())
        return self.offset

    def rollback(self) -> None:
        """Forget this PATCH's bytes: back to the offset it started from, hash state forgotten."""
        if self.stream is not None:
            self.stream.truncate(self.start)
            self.stream.flush()
        self.offset = self.start
        self.hasher = None

    def close(self) -> None:
        if self.stream is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self.stream.fileno(), fcntl.LOCK_UN)
            self.stream.close()
            self.stream = None


# --------------------------------------------------------------------------------------------- publications


def upload_refs(raw: dict[str, Any], part: Any = None) -> dict[str, str]:
    """Take the ``uploads`` mapping (file name -> upload id) out of a request.

    A JSON request carries it as a top-level ``uploads`` key beside the manifest's keys (removed here, so
    the stored manifest never holds upload ids); a multipart request as an ``uploads`` part (JSON text).
    """
    import json

    value: Any = raw.pop("uploads", None)
    if part is not None:
        text = part if isinstance(part, str | bytes) else None
        if text is None:
            raise InvalidInput(
                "La partie « uploads » doit être du JSON.", fields={"uploads": ["objet JSON attendu"]}
            )
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise InvalidInput(
                "La partie « uploads » n'est pas du JSON valide.", fields={"uploads": [str(exc)]}
            ) from exc
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidInput(
            "« uploads » associe des noms de fichier à des identifiants de téléversement.",
            fields={"uploads": ['objet {"nom_du_fichier": "identifiant"} attendu']},
        )
    return dict(value)


def stage_uploads(staging: Staging, refs: dict[str, str], owner: Owner) -> None:
    """Make each complete upload in ``refs`` (file name -> upload id) a staged file of that name.

    The bytes are hard-linked into the content-addressed store (copied across file systems), so the
    upload stays usable if the publication is refused, until it expires. Raises 422 naming each bad
    reference (unknown, someone else's, expired, incomplete).
    """
    if not refs:
        return
    fields: dict[str, list[str]] = {}
    ready: list[tuple[str, Upload]] = []
    with session_scope() as session:
        for name, upload_id in refs.items():
            key = f"uploads.{name}"
            if sanitize_filename(name) != name:
                fields.setdefault(key, []).append("un nom de fichier seul est attendu, sans chemin")
                continue
            try:
                upload = get_owned(session, owner, upload_id)
            except (NotFound, Gone) as exc:
                fields.setdefault(key, []).append(exc.detail)
                continue
            if upload.state != "complete" or upload.sha256 is None:
                fields.setdefault(key, []).append(
                    f"téléversement incomplet ({upload.offset} octets reçus sur {upload.length})"
                )
                continue
            ready.append((name, upload))
    if fields:
        raise InvalidInput("Des téléversements cités ne sont pas utilisables.", fields=fields)
    for name, upload in ready:
        assert upload.sha256 is not None
        staging.files.append(_link_into_store(staging, name, upload))


def _link_into_store(staging: Staging, name: str, upload: Upload) -> StagedFile:
    assert upload.sha256 is not None
    store = staging.store
    final = store.path(upload.sha256)
    if final.exists():
        return StagedFile(name=name, sha256=upload.sha256, size=upload.length, path=final, new=False)
    source = part_path(upload.id)
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, final)
    except FileExistsError:
        return StagedFile(name=name, sha256=upload.sha256, size=upload.length, path=final, new=False)
    except OSError:  # another file system: copy (and check) instead of linking
        sha256, _, final = store.put_file(source)
        if sha256 != upload.sha256:
            raise Conflict(
                f"Le téléversement {upload.id} est corrompu sur le disque ; recommencez-le."
            ) from None
    return StagedFile(name=name, sha256=upload.sha256, size=upload.length, path=final, new=True)
