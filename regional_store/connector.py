"""The regional store as a delivery target: the first implementation of the connector contract."""

from __future__ import annotations

import errno
import functools
import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from pydantic import Field
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, create_engine

from connectors.base import (
    BaseConnector,
    Checkpoint,
    ConnectorConfig,
    LedgerEntry,
    PermanentConnectorError,
    PreflightProblem,
    PublicationRevision,
    RemoteDrift,
    RemoteState,
    ResourceFile,
    Superseded,
    TransientConnectorError,
)
from regional_store import repository, service
from regional_store.blobs import CHUNK, BlobStore
from regional_store.schemas import FileSpec, RecordSpec
from regional_store.service import download_url

logger = logging.getLogger(__name__)

# Indirection so tests can watch the throttle without sleeping.
_sleep = time.sleep

_METADATA_FIELDS = {
    "title",
    "description",
    "license",
    "keywords",
    "frequency",
    "temporal",
    "contact",
    "services",
    "portals",
    "spatial_zones",
    "inspire_theme",
    "extent_wgs84",
    "landing_url",
    "access_request_url",
}


class RegionalConfig(ConnectorConfig):
    root: Path = Field(description="Directory of the regional store; blobs live under root/blobs.")
    database_url: str = Field(description="SQLAlchemy URL of the database holding the regional tables.")
    public_url: str = Field(description="The broker's public base URL, to build download URLs.")
    intake_root: Path = Field(
        description="Root of the broker's intake BlobStore, where revisions' files are."
    )
    copy_rate: int | None = Field(
        None, gt=0, description="Cap on copy speed in bytes per second (hard links copy nothing)."
    )
    hard_link: bool = Field(
        True, description="Hard-link blobs from the intake store when on the same file system (no copy)."
    )


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while a worker writes; the busy timeout rides out short write locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@functools.lru_cache(maxsize=8)
def engine_for(url: str) -> Engine:
    """One engine per database URL for the whole process."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _no_checkpoint(_: LedgerEntry) -> None:
    return None


def _throttle(done: int, rate: int, started: float) -> None:
    ahead = done / rate - (time.monotonic() - started)
    if ahead > 0:
        _sleep(ahead)


def _name_problems(revision: PublicationRevision) -> list[PreflightProblem]:
    problems: list[PreflightProblem] = []
    seen: set[str] = set()
    for resource in revision.resources:
        if not resource.name or "/" in resource.name or resource.name in (".", ".."):
            problems.append(
                PreflightProblem(
                    target="regional",
                    resource=resource.name,
                    code="bad_name",
                    message=f"Le nom de ressource « {resource.name} » ne peut pas servir de nom de fichier.",
                )
            )
        elif resource.name in seen:
            problems.append(
                PreflightProblem(
                    target="regional",
                    resource=resource.name,
                    code="duplicate_name",
                    message=f"Deux ressources portent le même nom « {resource.name} ».",
                )
            )
        seen.add(resource.name)
    return problems


class RegionalConnector(BaseConnector[RegionalConfig]):
    """Keeps the files (content-addressed) and one record per publication in OPenIG's own store."""

    name = "regional"
    title = "Entrepôt régional OPenIG"
    config_model = RegionalConfig

    def __init__(self, config: RegionalConfig) -> None:
        super().__init__(config)
        self.blobs = BlobStore(config.root / "blobs")
        self.intake = BlobStore(config.intake_root)

    @property
    def engine(self) -> Engine:
        return engine_for(self.config.database_url)

    def base_url(self) -> str:
        return f"{self.config.public_url.rstrip('/')}/regional"

    def download_url(self, publication_id: str, name: str) -> str:
        return download_url(self.config.public_url, publication_id, name)

    # ----------------------------------------------------------------------------------------- checks

    def preflight(self, revision: PublicationRevision) -> list[PreflightProblem]:
        problems = _name_problems(revision)
        for resource in revision.resources:
            if resource.url and resource.path is None:
                continue
            if not self._available(resource):
                problems.append(
                    PreflightProblem(
                        target=self.name,
                        resource=resource.name,
                        code="file_missing",
                        message=f"Le fichier « {resource.name} » est introuvable dans le dépôt du broker.",
                    )
                )
        return problems

    def _available(self, resource: ResourceFile) -> bool:
        if resource.sha256 and self.blobs.exists(resource.sha256):
            return True
        return resource.path is not None and resource.path.is_file()

    # ----------------------------------------------------------------------------------------- delivery

    def publish(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        return self._deliver(revision, ledger, checkpoint)

    def update(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        # Same steps: the record is upserted and files the new revision dropped leave it.
        return self._deliver(revision, ledger, checkpoint)

    def _deliver(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint
    ) -> LedgerEntry:
        blocking = [p for p in _name_problems(revision) if p.severity == "error"]
        if blocking:
            raise PermanentConnectorError(
                blocking[0].message, fields={p.resource or "": p.code for p in blocking}
            )
        pid = revision.publication_id
        progress = ledger.model_copy(deep=True)
        progress.remote["record"] = pid
        files: dict[str, str] = {}
        progress.remote["files"] = files
        specs: list[FileSpec] = []
        stored: list[tuple[ResourceFile, str]] = []
        for resource in revision.resources:
            if resource.path is None and resource.url:
                specs.append(self._link_spec(resource))
                continue
            digest, size = self._materialise(resource)
            files[resource.name] = digest
            stored.append((resource, digest))
            specs.append(
                FileSpec(
                    name=resource.name,
                    title=resource.title,
                    sha256=digest,
                    size=size,
                    media_type=resource.media_type,
                    format=resource.format,
                )
            )
            progress.step = f"file:{resource.name}"
            checkpoint(progress.model_copy(deep=True))

        spec = RecordSpec(
            publication_id=pid,
            organization=revision.organization.slug,
            title=revision.title,
            revision=revision.revision,
            access=revision.access,
            restricted_users=revision.restricted_users,
            restricted_organizations=revision.restricted_organizations,
            metadata=self._metadata(revision),
            files=tuple(specs),
        )
        dropped = self._write_record(spec)
        self._recheck_blobs(stored)
        service.collect_garbage(self.engine, self.blobs, dropped)

        hosted = [file.name for file in specs if file.sha256]
        logger.info("regional store: publication %s revision %d stored", pid, revision.revision)
        return LedgerEntry(
            state="present",
            revision=revision.revision,
            step="record",
            remote={"record": pid, "files": dict(files)},
            urls=[self.download_url(pid, name) for name in hosted],
        )

    def _write_record(self, spec: RecordSpec) -> set[str]:
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                dropped = service.upsert_record(session, spec)
                session.commit()
                return dropped
        except service.StaleRevision as exc:
            logger.info("regional store: %s", exc)
            raise Superseded(str(exc)) from exc
        except (IntegrityError, OperationalError) as exc:
            # A concurrent delivery of the same publication or a locked database: worth another try.
            raise TransientConnectorError("L'entrepôt régional est occupé ; nouvel essai prévu.") from exc

    def _recheck_blobs(self, stored: list[tuple[ResourceFile, str]]) -> None:
        """Now that the record references its blobs, make sure a concurrent collector left them."""
        with service.blob_lock(self.blobs, exclusive=False):
            for resource, digest in stored:
                if not self.blobs.exists(digest):
                    logger.warning(
                        "regional store: blob of %s collected under our feet, restored", resource.name
                    )
                    self._materialise(resource)

    def _link_spec(self, resource: ResourceFile) -> FileSpec:
        return FileSpec(
            name=resource.name,
            title=resource.title,
            url=resource.url,
            size=resource.size,
            media_type=resource.media_type,
            format=resource.format,
        )

    @staticmethod
    def _metadata(revision: PublicationRevision) -> dict[str, Any]:
        metadata = revision.model_dump(mode="json", include=_METADATA_FIELDS, exclude_none=True)
        metadata["organization_name"] = revision.organization.name
        return metadata

    # ----------------------------------------------------------------------------------------- blobs

    def _materialise(self, resource: ResourceFile) -> tuple[str, int]:
        """Make the resource's blob present here; return (sha256, size). Present blobs are skipped."""
        digest = resource.sha256
        if digest and self.blobs.exists(digest):
            return digest, self.blobs.path(digest).stat().st_size
        source = resource.path
        if source is None or not source.is_file():
            raise PermanentConnectorError(
                f"Le fichier « {resource.name} » est introuvable dans le dépôt du broker.",
                fields={resource.name: "file_missing"},
            )
        try:
            if digest and self._linkable(source, digest) and self._hard_link(source, digest):
                return digest, source.stat().st_size
            return self._copy(source, digest, resource.name)
        except OSError as exc:
            # A full or unavailable disk is for staff to fix; the delivery can wait for them.
            raise TransientConnectorError(
                f"Copie de « {resource.name} » vers l'entrepôt régional impossible pour l'instant."
            ) from exc

    def _linkable(self, source: Path, digest: str) -> bool:
        # Only the intake store's own copy is trusted without re-hashing: its file name is its digest.
        if not self.config.hard_link:
            return False
        try:
            return source.resolve() == self.intake.path(digest).resolve()
        except ValueError:
            return False

    def _hard_link(self, source: Path, digest: str) -> bool:
        final = self.blobs.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, final)
        except FileExistsError:
            return True
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                return False  # another file system, or links not allowed: copy instead
            raise
        return True

    def _copy(self, source: Path, expected: str | None, name: str) -> tuple[str, int]:
        rate = self.config.copy_rate
        # Small reads under a cap keep the throughput smooth instead of bursting a megabyte at a time.
        chunk = max(1, min(CHUNK, rate // 4)) if rate else CHUNK
        fd, tmp_path = self.blobs.temp_file()
        digest = hashlib.sha256()
        size = 0
        started = time.monotonic()
        try:
            with os.fdopen(fd, "wb") as out, source.open("rb") as stream:
                while data := stream.read(chunk):
                    digest.update(data)
                    out.write(data)
                    size += len(data)
                    if rate:
                        _throttle(size, rate, started)
                out.flush()
                os.fsync(out.fileno())
            actual = digest.hexdigest()
            if expected and actual != expected:
                raise PermanentConnectorError(
                    f"Le fichier « {name} » ne correspond plus à son empreinte sha256 ; renvoyez-le.",
                    fields={name: "checksum_mismatch"},
                )
            self.blobs.adopt(tmp_path, actual, size)
            return actual, size
        except BaseException:
            tmp_path.unlink(missing_ok=True)
            raise

    def sweep_orphans(self) -> list[str]:
        """Delete every stored blob no present record references (after a crash between steps)."""
        digests = [
            path.name for path in self.blobs.root.glob("??/??/*") if len(path.name) == 64 and path.is_file()
        ]
        return service.collect_garbage(self.engine, self.blobs, digests)

    # ----------------------------------------------------------------------------------------- withdraw

    def withdraw(
        self, revision: PublicationRevision, ledger: LedgerEntry, checkpoint: Checkpoint = _no_checkpoint
    ) -> LedgerEntry:
        pid = revision.publication_id
        try:
            with Session(self.engine, expire_on_commit=False) as session:
                digests = service.withdraw_record(session, pid)
                session.commit()
        except OperationalError as exc:
            raise TransientConnectorError("L'entrepôt régional est occupé ; nouvel essai prévu.") from exc
        progress = ledger.model_copy(deep=True, update={"step": "record:withdrawn", "urls": []})
        checkpoint(progress)
        service.collect_garbage(self.engine, self.blobs, digests)
        logger.info("regional store: publication %s withdrawn", pid)
        return LedgerEntry(
            state="withdrawn", revision=ledger.revision, step="withdrawn", remote={"record": pid}, urls=[]
        )

    # ----------------------------------------------------------------------------------------- drift

    def inspect_remote(self, revision: PublicationRevision, ledger: LedgerEntry) -> RemoteState:
        pid = revision.publication_id
        with Session(self.engine) as session:
            record = repository.get_record(session, pid)
            rows = repository.list_files(session, pid) if record else []
        if record is None:
            drift: tuple[RemoteDrift, ...] = ()
            if ledger.state == "present":
                drift = (
                    RemoteDrift(
                        kind="missing", entity="record", message="La fiche a disparu de l'entrepôt régional."
                    ),
                )
            return RemoteState(exists=False, drift=drift)

        found: list[RemoteDrift] = []
        held = {row.name: row.sha256 for row in rows if row.sha256}
        if ledger.state == "present" and record.state != "present":
            found.append(RemoteDrift(kind="deleted", entity="record", message="La fiche a été retirée."))
        if ledger.state == "withdrawn" and record.state == "present":
            found.append(RemoteDrift(kind="extra", entity="record", message="La fiche est toujours servie."))
        if ledger.revision is not None and record.revision != ledger.revision:
            found.append(
                RemoteDrift(
                    kind="stale",
                    entity="record",
                    message=f"La fiche est à la révision {record.revision}, le registre à {ledger.revision}.",
                )
            )
        # A withdrawn record keeps its rows for history: only a served record's files can drift.
        if record.state == "present" and ledger.state != "withdrawn":
            found.extend(self._file_drift(dict(ledger.remote.get("files") or {}), held))
        return RemoteState(
            exists=record.state == "present",
            drift=tuple(found),
            remote={"record": pid, "revision": record.revision, "state": record.state, "files": held},
        )

    def _file_drift(self, expected: dict[str, str], held: dict[str, str]) -> list[RemoteDrift]:
        found: list[RemoteDrift] = []
        for name, digest in expected.items():
            if name not in held:
                found.append(
                    RemoteDrift(kind="missing", entity=f"file:{name}", message="Fichier absent de la fiche.")
                )
            elif held[name] != digest:
                found.append(
                    RemoteDrift(kind="changed", entity=f"file:{name}", message="Empreinte sha256 différente.")
                )
        for name in sorted(set(held) - set(expected)):
            found.append(
                RemoteDrift(kind="extra", entity=f"file:{name}", message="Fichier inconnu du registre.")
            )
        for name, digest in held.items():
            if not self.blobs.exists(digest):
                found.append(
                    RemoteDrift(
                        kind="deleted",
                        entity=f"file:{name}",
                        message="Le fichier stocké a disparu du disque.",
                    )
                )
        return found
