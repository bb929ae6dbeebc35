"""Store logic: write and withdraw records idempotently, decide who may read, collect unused blobs."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from sqlalchemy.engine import Engine
from sqlmodel import Session

from regional_store import repository
from regional_store.blobs import BlobStore
from regional_store.models import RegionalFile, RegionalRecord, utcnow
from regional_store.schemas import FileSpec, RecordSpec, Viewer

logger = logging.getLogger(__name__)

LOCK_NAME = "gc.lock"
API_PREFIX = "/api/v1/regional"


class RegionalStoreError(Exception):
    """An expected refusal, rendered by the router as ``{"error", "detail"}``."""

    def __init__(
        self, status_code: int, code: str, detail: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.code = code
        self.detail = detail
        self.headers = headers or {}


class StaleRevision(Exception):
    """The store already holds a newer revision of this publication."""

    def __init__(self, held: int, offered: int) -> None:
        super().__init__(f"revision {offered} is older than the stored revision {held}")
        self.held = held
        self.offered = offered


def download_url(public_url: str, publication_id: str, name: str) -> str:
    """Where the world downloads a stored file (names are URL-quoted, accents included)."""
    return (
        f"{public_url.rstrip('/')}{API_PREFIX}/publications/{quote(publication_id, safe='')}"
        f"/files/{quote(name, safe='')}"
    )


# --------------------------------------------------------------------------------------------- access


def can_read(record: RegionalRecord, viewer: Viewer | None) -> bool:
    """Open records are public; restricted ones only for listed users or organisations, the producing
    organisation's own members, and staff."""
    if record.state != "present":
        return False
    if record.access == "open":
        return True
    if viewer is None:
        return False
    # Staff, and the members of the producing organisation: they read what they publish, listed or not.
    if viewer.is_staff or record.organization in viewer.organizations:
        return True
    users = {user.casefold() for user in record.restricted_users}
    # Subjects are opaque ids (exact match); emails are compared without case.
    if viewer.subject in record.restricted_users:
        return True
    if viewer.email and viewer.email.casefold() in users:
        return True
    return bool(set(viewer.organizations) & set(record.restricted_organizations))


def readable_record(session: Session, publication_id: str, viewer: Viewer | None) -> RegionalRecord:
    """The record if ``viewer`` may read it; otherwise the refusal a client should see."""
    record = repository.get_record(session, publication_id)
    if record is None or record.state != "present":
        raise RegionalStoreError(404, "not_found", "Aucune publication de ce nom dans l'entrepôt régional.")
    if can_read(record, viewer):
        return record
    if viewer is None:
        raise RegionalStoreError(
            401,
            "unauthorized",
            "Ces données sont en accès restreint : authentifiez-vous pour les consulter.",
            headers={"WWW-Authenticate": 'Bearer realm="regional"'},
        )
    raise RegionalStoreError(
        403, "forbidden", "Ces données sont en accès restreint et votre compte n'y a pas accès."
    )


# --------------------------------------------------------------------------------------------- records


def upsert_record(session: Session, spec: RecordSpec) -> set[str]:
    """Write the record and its file list as ``spec`` says; return digests the record no longer uses.

    Idempotent: the same spec twice leaves the same rows. Raises :class:`StaleRevision` rather than let an
    older revision overwrite a newer one.
    """
    record = repository.get_record(session, spec.publication_id)
    now = utcnow()
    if record is None:
        record = RegionalRecord(
            publication_id=spec.publication_id,
            organization=spec.organization,
            title=spec.title,
            revision=spec.revision,
            created_at=now,
        )
    elif record.revision > spec.revision:
        raise StaleRevision(record.revision, spec.revision)
    record.organization = spec.organization
    record.title = spec.title
    record.revision = spec.revision
    record.access = spec.access
    record.restricted_users = list(spec.restricted_users)
    record.restricted_organizations = list(spec.restricted_organizations)
    record.meta = dict(spec.metadata)
    record.state = "present"
    record.updated_at = now
    repository.add(session, record)
    session.flush()

    existing = {row.name: row for row in repository.list_files(session, spec.publication_id)}
    wanted = {file.name for file in spec.files}
    dropped: set[str] = set()
    for name, row in existing.items():
        if name not in wanted:
            if row.sha256:
                dropped.add(row.sha256)
            repository.delete_file(session, row)
    # Deletes first, so a file renamed onto a freed name never meets the unique constraint.
    session.flush()
    for position, file in enumerate(spec.files):
        row = existing.get(file.name) or RegionalFile(publication_id=spec.publication_id, name=file.name)
        if row.sha256 and row.sha256 != file.sha256:
            dropped.add(row.sha256)
        _fill(row, file, position)
        repository.add(session, row)
    session.flush()
    return dropped - {file.sha256 for file in spec.files if file.sha256}


def _fill(row: RegionalFile, file: FileSpec, position: int) -> None:
    row.position = position
    row.title = file.title
    row.url = file.url
    row.sha256 = file.sha256
    row.size = file.size
    row.media_type = file.media_type
    row.format = file.format


def withdraw_record(session: Session, publication_id: str) -> set[str]:
    """Stop serving the record (rows are kept for the record's history); return the digests it used."""
    record = repository.get_record(session, publication_id)
    if record is None:
        return set()
    if record.state != "withdrawn":
        record.state = "withdrawn"
        record.updated_at = utcnow()
        repository.add(session, record)
        session.flush()
    return {row.sha256 for row in repository.list_files(session, publication_id) if row.sha256}


# --------------------------------------------------------------------------------------------- blobs


@contextmanager
def blob_lock(blobs: BlobStore, *, exclusive: bool) -> Iterator[None]:
    """A lock across processes between garbage collection (exclusive) and publishers checking blobs.

    Without it a collector could find a digest unreferenced, a publisher commit a record using it and
    see the blob still there, and the collector then delete it.
    """
    blobs.root.mkdir(parents=True, exist_ok=True)
    with Path(blobs.root / LOCK_NAME).open("a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def collect_garbage(engine: Engine, blobs: BlobStore, candidates: Iterable[str]) -> list[str]:
    """Delete the blobs among ``candidates`` that no present record references; return those deleted.

    Call it after the transaction that dropped the references has committed.
    """
    wanted = set(candidates)
    if not wanted:
        return []
    with blob_lock(blobs, exclusive=True), Session(engine) as session:
        unused = sorted(wanted - repository.referenced_digests(session, wanted))
        for digest in unused:
            blobs.delete(digest)
    if unused:
        logger.info("regional store: %d unused blob(s) deleted", len(unused))
    return unused
