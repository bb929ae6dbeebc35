"""SFTP deposit: keys registered by referents, inboxes, and turning a drop into a publication.

A drop is a manifest (``*.yaml``, ``*.yml`` or ``*.json`` holding an ``organization`` key) and the files it
cites, put in the organisation's inbox. It goes through the same service functions as the API (channel
``sftp``), acting as a service principal of the organisation with the producer role, named after the key
that wrote the manifest (label and fingerprint in the audit log). A manifest may carry
``publication: <id>`` to make a new revision of an existing publication of the organisation.

The outcome is written back beside the manifest, as ``<manifest>.report.json`` and ``.report.txt`` (in
French), the inputs move to ``processed/<timestamp>/`` or ``rejected/<timestamp>/``, and the drop is
listed by ``GET /api/v1/organizations/{slug}/sftp-drops``.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
from sqlmodel import Session

from broker.auth.principal import Principal
from broker.config import get_settings
from broker.db import iso, session_scope, utcnow
from broker.errors import BrokerError, Conflict, InvalidInput, NotFound
from broker.events import service as events
from broker.events.service import Actor
from broker.intake.staging import Staging
from broker.organizations import repository as organizations_repository
from broker.organizations import service as organizations
from broker.organizations.models import Organization
from broker.publications import repository as publications_repository
from broker.publications import service as publications
from broker.publications.manifest import validate_manifest
from broker.remote.service import fetch_manifest_urls
from broker.sftp import repository
from broker.sftp.models import SftpDrop, SftpKey
from regional_store.blobs import BlobStore

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
REPORT_SUFFIXES = (".report.json", ".report.txt")
PARTIAL_SUFFIX = ".part"
#: Key types accepted for login; DSA and RSA below 2048 bits are refused (NIST SP 800-131A).
ACCEPTED_ALGORITHMS = {
    "ssh-ed25519",
    "ssh-ed448",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-rsa",
}
MIN_RSA_BITS = 2048


# --------------------------------------------------------------------------------------------- inboxes


def sftp_root() -> Path:
    return get_settings().data_dir / "sftp"


def inbox(slug: str) -> Path:
    """The organisation's inbox, created on demand; its slug is a checked one (SLUG_PATTERN)."""
    path = sftp_root() / slug
    path.mkdir(parents=True, exist_ok=True)
    return path


def is_manifest_name(name: str) -> bool:
    lower = name.lower()
    return (
        lower.endswith(MANIFEST_SUFFIXES)
        and not lower.endswith(REPORT_SUFFIXES)
        and not lower.endswith(PARTIAL_SUFFIX)
        and not name.startswith(".")
    )


# --------------------------------------------------------------------------------------------- keys


def parse_public_key(text: str) -> tuple[str, str, str]:
    """(algorithm, OpenSSH one-line key without comment, SHA256 fingerprint) or 422."""
    text = text.strip()
    try:
        key = asyncssh.import_public_key(text)
    except (asyncssh.KeyImportError, ValueError, TypeError) as exc:
        raise InvalidInput(
            "Clé publique illisible : collez la ligne « ssh-ed25519 AAAA… commentaire » du fichier .pub.",
            fields={"public_key": ["clé publique OpenSSH attendue"]},
        ) from exc
    algorithm = key.get_algorithm()
    if algorithm not in ACCEPTED_ALGORITHMS:
        raise InvalidInput(
            f"Type de clé refusé : {algorithm}.",
            fields={"public_key": ["ed25519, ecdsa ou rsa (2048 bits au moins)"]},
        )
    if algorithm == "ssh-rsa":
        bits = int(getattr(getattr(key, "pyca_key", None), "key_size", 0) or 0)
        if bits and bits < MIN_RSA_BITS:
            raise InvalidInput(
                f"Clé RSA trop courte ({bits} bits).", fields={"public_key": ["2048 bits au moins"]}
            )
    line = key.export_public_key("openssh").decode("ascii").strip()
    return algorithm, line, key.get_fingerprint("sha256")


def add_key(
    session: Session, organization: Organization, public_key: str, label: str, actor: Actor
) -> SftpKey:
    algorithm, line, fingerprint = parse_public_key(public_key)
    if repository.key_by_fingerprint(session, organization.id, fingerprint) is not None:
        raise Conflict(f"Cette clé est déjà enregistrée pour « {organization.slug} » ({fingerprint}).")
    key = SftpKey(
        organization_id=organization.id,
        label=label.strip() or fingerprint,
        algorithm=algorithm,
        public_key=line,
        fingerprint=fingerprint,
        created_by=actor.subject,
    )
    repository.add(session, key)
    events.record(
        session,
        "sftp.key_added",
        actor=actor,
        organization_id=organization.id,
        detail={"label": key.label, "fingerprint": fingerprint, "algorithm": algorithm},
    )
    inbox(organization.slug)
    return key


def remove_key(session: Session, organization: Organization, key_id: str, actor: Actor) -> None:
    key = repository.key(session, key_id)
    if key is None or key.organization_id != organization.id:
        raise NotFound(f"Clé SFTP inconnue : {key_id}.")
    repository.delete(session, key)
    events.record(
        session,
        "sftp.key_removed",
        actor=actor,
        organization_id=organization.id,
        detail={"label": key.label, "fingerprint": key.fingerprint},
    )


def key_to_dict(key: SftpKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "label": key.label,
        "algorithm": key.algorithm,
        "fingerprint": key.fingerprint,
        "public_key": key.public_key,
        "created_at": iso(key.created_at),
        "created_by": key.created_by,
        "last_used_at": iso(key.last_used_at),
    }


@dataclass(frozen=True)
class KeyIdentity:
    """Who logged in: the organisation (user name) and the key it used."""

    slug: str
    key_id: str
    label: str
    fingerprint: str


def authenticate(slug: str, key: asyncssh.SSHKey) -> KeyIdentity | None:
    """The identity behind a login attempt, or None (unknown organisation or unregistered key)."""
    fingerprint = key.get_fingerprint("sha256")
    with session_scope() as session:
        organization = organizations_repository.get_by_slug(session, slug)
        if organization is None:
            return None
        found = repository.key_by_fingerprint(session, organization.id, fingerprint)
        if found is None:
            return None
        found.last_used_at = utcnow()
        session.add(found)
        return KeyIdentity(slug, found.id, found.label, fingerprint)


def service_principal(slug: str, identity: KeyIdentity | None) -> Principal:
    """The principal a drop acts as: a producer of the inbox's organisation, named after the key."""
    who = f"{identity.label} ({identity.fingerprint})" if identity else "dépôt SFTP"
    return Principal(
        subject=f"sftp:{slug}:{identity.fingerprint if identity else 'inbox'}",
        username=f"sftp {who}",
        email=None,
        roles=frozenset({"producer"}),
        organizations=(slug,),
        client_id=f"sftp-key:{identity.key_id}" if identity else "sftp",
        service_account=True,
        issuer="broker-sftp",
    )


# --------------------------------------------------------------------------------------------- drops


def cited_files(raw: dict[str, Any]) -> list[str]:
    resources = raw.get("resources")
    if not isinstance(resources, list):
        return []
    return [str(r["file"]) for r in resources if isinstance(r, dict) and isinstance(r.get("file"), str)]


def precheck(slug: str, raw: dict[str, Any]) -> None:
    """Errors a manifest shows by itself (schema, organisation), before waiting for its files."""
    data = {k: v for k, v in raw.items() if k != "publication"}
    fields: dict[str, list[str]] = {}
    if "publication" in raw and not isinstance(raw["publication"], str):
        fields["publication"] = ["identifiant de publication (texte) attendu"]
    try:
        validate_manifest(data)
    except InvalidInput as exc:
        fields.update(exc.fields)
    if data.get("organization") != slug:
        fields.setdefault("organization", []).append(
            f"doit être « {slug} » : cette boîte de dépôt est celle de « {slug} »"
        )
    if fields:
        count = sum(len(v) for v in fields.values())
        raise InvalidInput(
            f"Le manifeste contient {count} erreur(s) ; chaque champ est listé.", fields=fields
        )


def missing_files_error(missing: list[str], raw: dict[str, Any]) -> InvalidInput:
    fields: dict[str, list[str]] = {}
    for index, name in enumerate(cited_files(raw)):
        if name in missing:
            fields[f"resources.{index}.file"] = [f"le fichier « {name} » n'est pas arrivé dans la boîte"]
    return InvalidInput("Des fichiers cités par le manifeste manquent toujours.", fields=fields)


def _is_referenced(sha256: str) -> bool:
    with session_scope() as session:
        return publications_repository.sha256_referenced(session, sha256)


def process(
    root: Path,
    slug: str,
    manifest_name: str,
    raw: dict[str, Any],
    identity: KeyIdentity | None,
    *,
    refused: BrokerError | None = None,
    keep: set[str] | frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """Publish one drop (or record ``refused``), write its report, move its inputs (but the files in
    ``keep``, still being written); returns the report."""
    settings = get_settings()
    staging = Staging(BlobStore(settings.files_dir), settings.max_upload_bytes)
    principal = service_principal(slug, identity)
    data = {k: v for k, v in raw.items() if k != "publication"}
    target = raw.get("publication") if isinstance(raw.get("publication"), str) else None
    files = [name for name in cited_files(raw) if name not in keep and (root / name).is_file()]
    report: dict[str, Any]
    try:
        if refused is not None:
            raise refused
        for name in files:
            with (root / name).open("rb") as stream:
                staging.add(name, stream)
        fetch_manifest_urls(staging, data)
        with session_scope() as session:
            accepted = publications.accept(session, principal, data, staging, "sftp")
            if target:
                publication = publications.get(session, target)
                publications.revise(session, principal, publication, accepted, "sftp")
            else:
                publication = publications.create(session, principal, accepted, "sftp")
            session.flush()
            report = {
                "status": "accepted",
                "manifest": manifest_name,
                "publication": publication.id,
                "revision": publication.revision,
                "category": publication.category,
                "decision": publications.decision_view(accepted.result),
                "resources": [
                    {"name": r.name, "sha256": r.sha256, "size": r.size, "format": r.format}
                    for r in accepted.resources
                ],
            }
            _finish(session, root, slug, manifest_name, files, report, identity)
    except BrokerError as exc:
        staging.discard(_is_referenced)
        report = {
            "status": "rejected",
            "manifest": manifest_name,
            "error": exc.code,
            "detail": exc.detail,
            "fields": exc.fields,
        }
        with session_scope() as session:
            _finish(session, root, slug, manifest_name, files, report, identity)
    except Exception:
        staging.discard(_is_referenced)
        logger.exception("sftp drop %s/%s: unexpected error", slug, manifest_name)
        report = {
            "status": "rejected",
            "manifest": manifest_name,
            "error": "internal_error",
            "detail": "Erreur interne du broker ; elle a été journalisée. Déposez à nouveau plus tard.",
            "fields": {},
        }
        with session_scope() as session:
            _finish(session, root, slug, manifest_name, files, report, identity)
    logger.info("sftp drop %s/%s: %s", slug, manifest_name, report["status"])
    return report


def _finish(
    session: Session,
    root: Path,
    slug: str,
    manifest_name: str,
    files: list[str],
    report: dict[str, Any],
    identity: KeyIdentity | None,
) -> None:
    """Move the inputs, write the report twice (beside the manifest, and in the folder), record the drop."""
    now = utcnow()
    folder_name = f"{'processed' if report['status'] == 'accepted' else 'rejected'}/{_stamp(now)}"
    folder = root / folder_name
    folder.mkdir(parents=True, exist_ok=False)
    report = {**report, "at": iso(now), "folder": folder_name}
    if identity is not None:
        report["key"] = {"label": identity.label, "fingerprint": identity.fingerprint}
    for name in [manifest_name, *files]:
        source = root / name
        if source.is_file():
            shutil.move(str(source), str(folder / name))
    for base in (root, folder):
        _write_report(base / manifest_name, report)
    organization = organizations.get_by_slug(session, slug)
    drop = SftpDrop(
        organization_id=organization.id,
        manifest=manifest_name,
        status=report["status"],
        publication_id=report.get("publication"),
        revision=report.get("revision"),
        folder=folder_name,
        key_fingerprint=identity.fingerprint if identity else None,
        key_label=identity.label if identity else None,
        report=report,
        created_at=now,
    )
    repository.add(session, drop)
    events.record(
        session,
        f"sftp.drop_{report['status']}",
        actor=service_principal(slug, identity),
        organization_id=organization.id,
        publication_id=report.get("publication"),
        detail={"manifest": manifest_name, "folder": folder_name, "error": report.get("error")},
    )


def _stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


def _write_report(manifest_path: Path, report: dict[str, Any]) -> None:
    json_path = manifest_path.with_name(manifest_path.name + ".report.json")
    text_path = manifest_path.with_name(manifest_path.name + ".report.txt")
    for path, content in (
        (json_path, json.dumps(report, ensure_ascii=False, indent=2) + "\n"),
        (text_path, report_text(report)),
    ):
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(content, encoding="utf-8")
        temporary.replace(path)


def report_text(report: dict[str, Any]) -> str:
    """The report in French, for people who open the inbox rather than the JSON."""
    lines = [f"Dépôt « {report['manifest']} » — {report.get('at', '')}"]
    if report["status"] == "accepted":
        lines += [
            "Résultat : ACCEPTÉ",
            f"Publication : {report['publication']} (révision {report['revision']}, "
            f"catégorie {report.get('category')})",
            "Ressources :",
            *(f"  - {r['name']} ({r['size']} octets, format {r['format']})" for r in report["resources"]),
            "Les livraisons vers les plateformes sont en cours ; "
            "suivez-les dans l'API ou le tableau de bord.",
        ]
    else:
        lines += ["Résultat : REFUSÉ — rien n'a été publié.", f"Motif : {report['detail']}"]
        for field, messages in (report.get("fields") or {}).items():
            items = messages if isinstance(messages, list) else [messages]
            lines += [f"  - {field} : {message}" for message in items]
        lines.append("Corrigez, puis déposez à nouveau le manifeste et ses fichiers.")
    lines.append(f"Fichiers déplacés dans : {report.get('folder')}")
    return "\n".join(lines) + "\n"


def drop_to_dict(drop: SftpDrop) -> dict[str, Any]:
    return {
        "id": drop.id,
        "manifest": drop.manifest,
        "status": drop.status,
        "publication": drop.publication_id,
        "revision": drop.revision,
        "folder": drop.folder,
        "key": {"label": drop.key_label, "fingerprint": drop.key_fingerprint}
        if drop.key_fingerprint
        else None,
        "created_at": iso(drop.created_at),
        "report": drop.report,
    }


def read_manifest(path: Path, max_bytes: int) -> dict[str, Any] | None:
    """The mapping in ``path`` if it is a manifest (has ``organization``), else None; a manifest that does
    not parse raises :class:`InvalidInput` only when it looks like one (YAML/JSON text naming an
    organisation), so a GeoJSON data file is never mistaken for a broken manifest."""
    from broker.publications.manifest import parse_manifest_text

    try:
        if path.stat().st_size > max_bytes:
            return None
        text = path.read_bytes()
    except OSError:
        return None
    try:
        raw = parse_manifest_text(text)
    except InvalidInput:
        if b"organization" in text:
            raise
        return None
    return raw if "organization" in raw else None
