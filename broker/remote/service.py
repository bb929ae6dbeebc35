"""Remote resources at intake, and their scheduled syncs.

At intake, every URL resource of a manifest is fetched (:func:`fetch_manifest_urls`), so it gets a sha256,
a size and an inspection like a sent file. Resources with ``sync: daily|weekly|monthly`` get a row in
``remote_sync`` (kept in step with the current revisions by :func:`reconcile`); when a row is due, the
resource is fetched again, conditionally (RFC 9110 §13.1.2 If-None-Match with the stored ETag, else
If-Modified-Since); a 304 or the same sha256 changes nothing, new bytes make a new revision through
:func:`broker.publications.service.derive_revision` (channel ``sync``), hence new deliveries.

A failing sync is recorded on its row (``last_error``, ``failures``), retried with a doubling delay capped
at its period, shown by ``GET /api/v1/publications/{id}/syncs``, and e-mailed to the organisation's contact
on the first failure of a streak, the fifth, then every twentieth (one e-mail a day at most for a daily
sync, not one per retry).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session

from broker.config import get_settings
from broker.db import iso, session_scope, utcnow
from broker.errors import InvalidInput
from broker.events import service as events
from broker.intake.staging import Staging
from broker.organizations import repository as organizations_repository
from broker.publications import repository as publications_repository
from broker.publications import service as publications
from broker.publications.models import Publication
from broker.remote import mail, repository
from broker.remote.fetch import FetchPolicy, FetchResult, RemoteError, fetch_into
from broker.remote.models import RemoteSync
from broker.remote.settings import get_remote_settings
from regional_store.blobs import BlobStore

logger = logging.getLogger(__name__)

PERIODS: dict[str, timedelta] = {
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=30),
}
#: A claimed row is not claimed again for this long (its task sets the real next date when it ends).
CLAIM_LEASE = timedelta(minutes=30)
NOTIFY_AT = {1, 5}


# --------------------------------------------------------------------------------------------- intake


def url_resources(raw: dict[str, Any]) -> list[tuple[int, str]]:
    """(index, url) of each URL resource of a not-yet-validated manifest (anything else is skipped:
    validation reports it)."""
    found: list[tuple[int, str]] = []
    resources = raw.get("resources")
    if not isinstance(resources, list):
        return found
    for index, item in enumerate(resources):
        if isinstance(item, dict) and isinstance(item.get("url"), str) and "file" not in item:
            found.append((index, item["url"]))
    return found


def fetch_manifest_urls(
    staging: Staging, raw: dict[str, Any], *, policy: FetchPolicy | None = None
) -> dict[int, FetchResult]:
    """Fetch every URL resource of ``raw`` into ``staging`` under ``remote_key(index)``.

    Raises 422 naming each resource that could not be fetched and why (refused address, too large,
    remote error); the caller's ``staging.discard`` then takes back what was stored.
    """
    results: dict[int, FetchResult] = {}
    fields: dict[str, list[str]] = {}
    for index, url in url_resources(raw):
        try:
            results[index] = fetch_into(staging, index, url, policy=policy)
        except RemoteError as exc:
            logger.info("remote resource %d refused or failed: %s", index, exc.reason)
            fields.setdefault(f"resources.{index}.url", []).append(exc.reason)
    if fields:
        raise InvalidInput(
            "Des ressources distantes n'ont pas pu être récupérées.", fields=fields, code="remote_refused"
        )
    return results


# --------------------------------------------------------------------------------------------- schedule


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def reconcile(session: Session, publication_id: str | None = None) -> int:
    """Make ``remote_sync`` match the synced URL resources of current revisions; returns rows added."""
    wanted = {}
    for resource, revision, publication in repository.synced_resources(session, publication_id):
        wanted[(publication.id, resource.position)] = (resource, revision)
    added = 0
    for row in repository.all_rows(session, publication_id):
        key = (row.publication_id, row.position)
        found = wanted.pop(key, None)
        if found is None:
            repository.delete(session, row)
            continue
        resource, revision = found
        if resource.url != row.url:  # another remote file now: start afresh
            row.url = resource.url or row.url
            row.etag = row.last_modified = row.last_error = None
            row.failures = 0
            row.sha256 = resource.sha256
            row.next_due_at = utcnow() + PERIODS[resource.sync or "daily"]
        if resource.sync != row.sync:
            row.sync = resource.sync or row.sync
            row.next_due_at = min(_aware(row.next_due_at), utcnow() + PERIODS[row.sync])
        row.resource_name = resource.name
        if resource.sha256 and resource.sha256 != row.sha256 and row.failures == 0:
            row.sha256 = resource.sha256  # a producer's new revision brought new bytes
        session.add(row)
    for (publication_id_, position), (resource, revision) in wanted.items():
        assert resource.url is not None and resource.sync is not None
        repository.add(
            session,
            RemoteSync(
                publication_id=publication_id_,
                position=position,
                resource_name=resource.name,
                url=resource.url,
                sync=resource.sync,
                sha256=resource.sha256,
                next_due_at=_aware(revision.created_at) + PERIODS[resource.sync],
            ),
        )
        added += 1
    session.flush()
    return added


def claim_due(session: Session, limit: int = 200) -> list[str]:
    """Ids of due syncs, each claimed (moved out of the due window) so it is sent once."""
    now = utcnow()
    claimed = []
    for row in repository.due(session, now, limit):
        if repository.claim(session, row.id, row.next_due_at, now + CLAIM_LEASE):
            claimed.append(row.id)
    return claimed


def make_due(session: Session, publication_id: str) -> list[str]:
    """ "Check now": reconcile one publication's syncs and claim them all."""
    reconcile(session, publication_id)
    until = utcnow() + CLAIM_LEASE
    ids = []
    for row in repository.for_publication(session, publication_id):
        row.next_due_at = until
        session.add(row)
        ids.append(row.id)
    session.flush()
    return ids


# --------------------------------------------------------------------------------------------- one sync


@dataclass
class SyncOutcome:
    sync_id: str
    status: str  # unchanged | revised | failed | gone
    revision: int | None = None
    error: str | None = None


def sync_one(sync_id: str, *, policy: FetchPolicy | None = None) -> SyncOutcome:
    """Fetch one synced resource again and act on what changed (a unit of work of its own)."""
    with session_scope() as session:
        row = repository.get(session, sync_id)
        if row is None:
            return SyncOutcome(sync_id, "gone")
        publication = publications_repository.get(session, row.publication_id)
        if publication is None or publication.state != "active" or not _still_current(session, row):
            repository.delete(session, row)
            return SyncOutcome(sync_id, "gone")
        position, url, etag, last_modified, known = (
            row.position,
            row.url,
            row.etag,
            row.last_modified,
            row.sha256,
        )
    settings = get_settings()
    staging = Staging(BlobStore(settings.files_dir), settings.max_upload_bytes)
    try:
        result = fetch_into(
            staging, position, url, etag=etag if known else None, last_modified=last_modified, policy=policy
        )
    except RemoteError as exc:
        staging.discard(_is_referenced)
        return _failed(sync_id, exc.reason)
    if result.status == "not_modified" or result.sha256 == known:
        staging.discard(_is_referenced)
        with session_scope() as session:
            row = repository.get(session, sync_id)
            if row is not None:
                _succeeded(row, result, changed=False)
        return SyncOutcome(sync_id, "unchanged")
    try:
        with session_scope() as session:
            row = repository.get(session, sync_id)
            publication = publications_repository.get(session, row.publication_id) if row else None
            if row is None or publication is None:
                raise LookupError("sync row or publication vanished")
            publications.derive_revision(
                session,
                None,
                publication,
                channel="sync",
                staging=staging,
                reason="remote resource changed",
            )
            _succeeded(row, result, changed=True)
            number = publication.revision
    except Exception as exc:
        staging.discard(_is_referenced)
        detail = getattr(exc, "detail", None) or type(exc).__name__
        fields = getattr(exc, "fields", None)
        if fields:
            detail = f"{detail} {fields}"
        logger.warning("sync %s: new bytes refused: %s", sync_id, detail)
        return _failed(sync_id, f"nouvelle version refusée : {detail}"[:2000])
    logger.info("sync %s: remote resource changed, revision %d", sync_id, number)
    return SyncOutcome(sync_id, "revised", revision=number)


def _is_referenced(sha256: str) -> bool:
    with session_scope() as session:
        return publications_repository.sha256_referenced(session, sha256)


def _still_current(session: Session, row: RemoteSync) -> bool:
    publication = publications_repository.get(session, row.publication_id)
    assert publication is not None
    revision = publications_repository.revision(session, publication.id, publication.revision)
    if revision is None:
        return False
    return any(
        r.position == row.position and r.url == row.url and r.sync in PERIODS
        for r in publications_repository.resources(session, revision.id)
    )


def _succeeded(row: RemoteSync, result: FetchResult, *, changed: bool) -> None:
    now = utcnow()
    row.last_checked_at = now
    row.next_due_at = now + PERIODS.get(row.sync, PERIODS["daily"])
    row.failures = 0
    row.last_error = None
    row.etag = result.etag
    row.last_modified = result.last_modified
    if result.sha256:
        row.sha256 = result.sha256
    if changed:
        row.last_changed_at = now


def _failed(sync_id: str, reason: str) -> SyncOutcome:
    notify: tuple[list[str], str, str] | None = None
    with session_scope() as session:
        row = repository.get(session, sync_id)
        if row is None:
            return SyncOutcome(sync_id, "gone", error=reason)
        now = utcnow()
        row.failures += 1
        row.last_error = reason
        row.last_checked_at = now
        period = PERIODS.get(row.sync, PERIODS["daily"])
        retry = timedelta(seconds=get_remote_settings().remote_sync_retry_seconds * 2 ** (row.failures - 1))
        row.next_due_at = now + min(retry, period)
        session.add(row)
        publication = publications_repository.get(session, row.publication_id)
        assert publication is not None
        events.record(
            session,
            "remote.sync_failed",
            publication_id=publication.id,
            organization_id=publication.organization_id,
            detail={"resource": row.resource_name, "url": row.url, "error": reason, "failures": row.failures},
        )
        if row.failures in NOTIFY_AT or row.failures % 20 == 0:
            notify = _failure_mail(session, publication, row)
    logger.warning("sync %s failed (%s)", sync_id, reason)
    if notify is not None:
        mail.send(*notify)
    return SyncOutcome(sync_id, "failed", error=reason)


def _failure_mail(session: Session, publication: Publication, row: RemoteSync) -> tuple[list[str], str, str]:
    organization = organizations_repository.get(session, publication.organization_id)
    recipients: list[str] = []
    if organization is not None and organization.contact_email:
        recipients.append(organization.contact_email)
    if not recipients:
        revision = publications_repository.revision(session, publication.id, publication.revision)
        contact = (revision.manifest.get("contact") or {}) if revision else {}
        if isinstance(contact, dict) and contact.get("email"):
            recipients.append(str(contact["email"]))
    public_url = get_settings().public_url.rstrip("/")
    subject = f"[OPenIG] Synchronisation en échec : {publication.title}"
    body = (
        "Bonjour,\n\n"
        f"La ressource distante « {row.resource_name} » de la publication « {publication.title} » "
        "n'a pas pu être synchronisée.\n\n"
        f"Adresse : {row.url}\n"
        f"Erreur : {row.last_error}\n"
        f"Échecs consécutifs : {row.failures}\n"
        f"Prochain essai : {iso(row.next_due_at)}\n\n"
        "Les plateformes gardent la dernière version récupérée. Vérifiez que l'adresse est toujours "
        "valide, ou publiez une révision avec la nouvelle adresse.\n\n"
        f"Suivi : {public_url}/api/v1/publications/{publication.id}/syncs\n\n"
        "-- \nLe broker de publication OPenIG\n"
    )
    return recipients, subject, body


# --------------------------------------------------------------------------------------------- views


def to_dict(row: RemoteSync) -> dict[str, Any]:
    return {
        "id": row.id,
        "resource": row.resource_name,
        "position": row.position,
        "url": row.url,
        "sync": row.sync,
        "etag": row.etag,
        "last_modified": row.last_modified,
        "sha256": row.sha256,
        "last_checked_at": iso(row.last_checked_at),
        "last_changed_at": iso(row.last_changed_at),
        "next_due_at": iso(row.next_due_at),
        "last_error": row.last_error,
        "failures": row.failures,
        "state": "failing" if row.failures else ("pending" if row.last_checked_at is None else "ok"),
    }
