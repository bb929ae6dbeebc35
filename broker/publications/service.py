"""Publications: accept a manifest and its files, classify, write the revision with its decision and
deliveries in one transaction, and describe where everything stands."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlmodel import Session

from broker.auth.principal import Principal
from broker.classification import service as classification
from broker.classification.schemas import ClassificationResult, PublicationFacts, ResourceFacts
from broker.config import get_settings
from broker.db import iso, utcnow
from broker.deliveries import repository as deliveries_repository
from broker.deliveries import service as deliveries
from broker.errors import Conflict, InvalidInput, NotFound
from broker.events import service as events
from broker.intake.detect import FileDescription, describe_url
from broker.intake.inspect import inspect_file
from broker.intake.preflight import preflight as file_preflight
from broker.intake.staging import StagedFile, Staging
from broker.organizations import repository as organizations_repository
from broker.organizations import service as organizations
from broker.organizations.models import Organization
from broker.publications import repository
from broker.publications.manifest import Manifest, validate_manifest
from broker.publications.models import Decision, DecisionNeed, Publication, Resource, Revision
from broker.targets import service as targets
from connectors.base import (
    ConnectorConfigurationError,
    Contact,
    OrganizationRef,
    PreflightProblem,
    PublicationRevision,
    ResourceFile,
    Temporal,
    TransientConnectorError,
)

logger = logging.getLogger(__name__)


@dataclass
class Accepted:
    """A manifest checked against its files, described and classified; nothing stored yet."""

    manifest: Manifest
    raw: dict[str, Any]
    organization: Organization
    resources: list[Resource]
    descriptions: list[FileDescription]
    result: ClassificationResult
    files_root: Path | None = None  # where the staged files are (the intake store, or a plan's scratch)


def _authorize_write(principal: Principal, organization: Organization) -> None:
    from broker.auth.dependencies import require_organization_write

    require_organization_write(principal, organization.slug)


def accept(
    session: Session,
    principal: Principal | None,
    raw: dict[str, Any],
    staging: Staging | None,
    channel: str,
    *,
    carried: dict[str, Resource] | None = None,
    deposit_channel: str | None = None,
) -> Accepted:
    """Validate, authorise, match files, describe and classify. Raises on any bad input.

    ``principal`` None means the broker itself acts (migrations, scheduled syncs): no user check.
    """
    manifest = validate_manifest(raw)
    organization = organizations.get_by_slug(session, manifest.organization)
    if principal is not None:
        _authorize_write(principal, organization)
    resources, descriptions = _match_resources(manifest, staging, carried)
    # Needs come from how the producer deposits (API, SFTP…), not from the broker's own revisions.
    facts = publication_facts(manifest, resources, deposit_channel or channel)
    result = classification.decide(facts)
    return Accepted(
        manifest,
        raw,
        organization,
        resources,
        descriptions,
        result,
        files_root=staging.store.root if staging else None,
    )


DEPOSIT_CHANNELS = frozenset({"api", "cli", "dashboard", "sftp", "harvest"})
"""Channels through which a producer deposits; the broker's own revisions (sync, access…) are not."""

SIDECARS = {"shx", "dbf", "prj", "cpg", "sbn", "sbx", "qix", "tfw", "aux.xml"}


def remote_key(index: int) -> str:
    """Staging name under which the bytes fetched for the manifest's URL resource ``index`` are kept."""
    return f"url:{index}"


def _match_resources(
    manifest: Manifest, staging: Staging | None, carried: dict[str, Resource] | None = None
) -> tuple[list[Resource], list[FileDescription]]:
    """Pair the manifest's resources with the files sent, and inspect each file by its content.

    ``carried`` holds the previous revision's resources by name: a derived revision keeps their files
    without sending them again. Bytes fetched for a URL resource are staged under ``remote_key(index)``.
    """
    staged: dict[str, StagedFile] = staging.by_name() if staging else {}
    carried = carried or {}
    siblings = {name: f.path for name, f in staged.items()}
    fields: dict[str, list[str]] = {}
    resources: list[Resource] = []
    descriptions: list[FileDescription] = []
    cited: set[str] = set()
    for index, item in enumerate(manifest.resources):
        if item.file is not None:
            cited.add(item.file)
            found = staged.get(item.file)
            previous = carried.get(item.file)
            if found is None and previous is not None and previous.sha256:
                resources.append(_carry(index, item.title, previous))
                descriptions.append(_stored_description(previous))
                continue
            if found is None:
                fields.setdefault(f"resources.{index}.file", []).append(
                    f"le fichier « {item.file} » n'a pas été envoyé avec le manifeste"
                )
                continue
            description = inspect_file(found.path, found.name, siblings=siblings)
            resources.append(_resource(index, item.file, item.title, found, description, None, None))
        else:
            assert item.url is not None
            cited.add(remote_key(index))
            fetched = staged.get(remote_key(index))
            previous = carried.get(item.name)
            if fetched is not None:
                description = inspect_file(fetched.path, item.name)
            elif previous is not None and previous.url == item.url and previous.sha256:
                resources.append(_carry(index, item.title, previous))
                descriptions.append(_stored_description(previous))
                continue
            else:
                description = describe_url(item.url, item.format)
            resources.append(
                _resource(index, item.name, item.title, fetched, description, item.url, item.sync)
            )
        descriptions.append(description)
    for name in staged:
        if name not in cited:
            hint = (
                " ; un Shapefile s'envoie complet dans un fichier ZIP (.shp, .shx, .dbf, .prj, .cpg)"
                if name.lower().rsplit(".", 1)[-1] in SIDECARS or name.lower().endswith(".shp")
                else ""
            )
            fields.setdefault("files", []).append(
                f"le fichier « {name} » n'est cité par aucune ressource{hint}"
            )
    if fields:
        raise InvalidInput("Les fichiers envoyés ne correspondent pas au manifeste.", fields=fields)
    return resources, descriptions


def _carry(position: int, title: str | None, previous: Resource) -> Resource:
    """The same file as in the previous revision (content-addressed: nothing is copied)."""
    data = previous.model_dump(exclude={"id", "revision_id", "position", "title"})
    return Resource(revision_id="", position=position, title=title, **data)


def _stored_description(resource: Resource) -> FileDescription:
    inspection = dict(resource.inspection or {})
    warnings = list(inspection.pop("warnings", []) or [])
    return FileDescription(
        format=resource.format,
        kind=resource.kind,
        media_type=resource.media_type,
        crs=resource.crs,
        extent_wgs84=resource.extent_wgs84,
        details=inspection,
        warnings=warnings,
    )


def _resource(
    position: int,
    name: str,
    title: str | None,
    staged: StagedFile | None,
    description: FileDescription,
    url: str | None,
    sync: str | None,
) -> Resource:
    return Resource(
        revision_id="",
        position=position,
        name=name,
        title=title,
        url=url,
        sync=sync,
        sha256=staged.sha256 if staged else None,
        size=staged.size if staged else None,
        media_type=description.media_type,
        format=description.format,
        kind=description.kind,
        crs=description.crs,
        extent_wgs84=description.extent_wgs84,
        inspection={**description.details, "warnings": description.warnings},
    )


def publication_facts(manifest: Manifest, resources: list[Resource], channel: str) -> PublicationFacts:
    return PublicationFacts(
        access=manifest.access,
        services=tuple(manifest.services),
        portals=tuple(manifest.portals),
        channel=channel,
        resources=tuple(
            ResourceFacts(name=r.name, format=r.format, kind=r.kind, remote=r.url is not None, sync=r.sync)
            for r in resources
        ),
        keywords=tuple(k.lower() for k in manifest.keywords),
        themes=tuple(manifest.themes),
        features=tuple(manifest.features),
    )


# --------------------------------------------------------------------------------------------- writes


def create(session: Session, principal: Principal, accepted: Accepted, channel: str) -> Publication:
    """Write the publication, its first revision, decision and deliveries (one transaction)."""
    now = utcnow()
    publication = Publication(
        organization_id=accepted.organization.id,
        title=accepted.manifest.title,
        access=accepted.manifest.access,
        revision=1,
        category=accepted.result.category,
        created_by=principal.subject,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, publication)
    revision = _write_revision(session, principal, publication, accepted, 1, channel)
    events.record(
        session,
        "publication.created",
        actor=principal,
        publication_id=publication.id,
        organization_id=publication.organization_id,
        detail={"title": publication.title, "category": publication.category, "channel": channel},
    )
    deliveries.plan(session, publication, revision, accepted.result, actor=principal)
    return publication


def revise(
    session: Session,
    principal: Principal | None,
    publication: Publication,
    accepted: Accepted,
    channel: str,
    *,
    reason: str | None = None,
    defer_withdrawal: bool = False,
) -> Publication:
    if publication.organization_id != accepted.organization.id:
        raise InvalidInput(
            "Une publication ne change pas d'organisation.",
            fields={"organization": ["doit rester celle de la publication"]},
        )
    if publication.state == "withdrawn":
        raise Conflict("Cette publication a été retirée ; publiez-en une nouvelle.")
    number = publication.revision + 1
    publication.revision = number
    publication.title = accepted.manifest.title
    publication.access = accepted.manifest.access
    publication.category = accepted.result.category
    publication.updated_at = utcnow()
    revision = _write_revision(session, principal, publication, accepted, number, channel)
    events.record(
        session,
        "publication.revised",
        actor=principal,
        publication_id=publication.id,
        organization_id=publication.organization_id,
        detail={"revision": number, "category": publication.category, "channel": channel, "reason": reason},
    )
    deliveries.plan(
        session,
        publication,
        revision,
        accepted.result,
        actor=principal,
        blocked=_blocking(session, accepted),
        defer_withdrawal=defer_withdrawal,
    )
    return publication


def derive_revision(
    session: Session,
    principal: Principal | None,
    publication: Publication,
    *,
    channel: str,
    changes: dict[str, Any] | None = None,
    staging: Staging | None = None,
    reason: str | None = None,
    defer_withdrawal: bool = False,
) -> Publication:
    """A new revision from the current one: manifest keys in ``changes`` replaced, files kept unless
    ``staging`` brings new bytes for them (by file name, or ``remote_key(i)`` for a URL resource).

    Used when an access list changes, when a scheduled sync finds new bytes, and when a migration
    re-classifies a publication. ``principal`` None: the broker itself acts.
    """
    current = repository.revision(session, publication.id, publication.revision)
    if current is None:
        raise NotFound(f"Révision courante introuvable pour {publication.id}.")
    raw = {**current.manifest, **(changes or {})}
    carried = {r.name: r for r in repository.resources(session, current.id)}
    deposit = next(
        (
            r.channel
            for r in reversed(repository.revisions(session, publication.id))
            if r.channel in DEPOSIT_CHANNELS
        ),
        current.channel,
    )
    accepted = accept(session, principal, raw, staging, channel, carried=carried, deposit_channel=deposit)
    return revise(
        session, principal, publication, accepted, channel, reason=reason, defer_withdrawal=defer_withdrawal
    )


def _blocking(session: Session, accepted: Accepted) -> dict[str, list[PreflightProblem]]:
    """Per target, the pre-flight errors that stop its delivery (the other targets proceed)."""
    return {
        target: [p for p in problems if p.severity == "error"]
        for target, problems in preflight(session, accepted).items()
        if any(p.severity == "error" for p in problems)
    }


def _write_revision(
    session: Session,
    principal: Principal | None,
    publication: Publication,
    accepted: Accepted,
    number: int,
    channel: str,
) -> Revision:
    revision = Revision(
        publication_id=publication.id,
        number=number,
        manifest=accepted.raw,
        channel=channel,
        created_by=principal.subject if principal else "broker",
    )
    repository.add(session, revision)
    for resource in accepted.resources:
        resource.revision_id = revision.id
    decision = Decision(
        revision_id=revision.id,
        category=accepted.result.category,
        rules_digest=accepted.result.rules_digest,
        needs=[n.to_dict() for n in accepted.result.needs],
    )
    repository.add(session, *accepted.resources, decision)
    repository.add(
        session,
        *(
            DecisionNeed(
                decision_id=decision.id,
                publication_id=publication.id,
                need=n.need,
                category=n.category,
                platforms=list(n.platforms),
                rule=n.rule,
            )
            for n in accepted.result.needs
        ),
    )
    return revision


def withdraw(session: Session, principal: Principal, publication: Publication) -> Publication:
    organization = organizations_repository.get(session, publication.organization_id)
    assert organization is not None
    _authorize_write(principal, organization)
    if publication.state == "withdrawn":
        return publication
    revision = repository.revision(session, publication.id, publication.revision)
    assert revision is not None
    publication.state = "withdrawn"
    publication.updated_at = utcnow()
    events.record(
        session,
        "publication.withdrawn",
        actor=principal,
        publication_id=publication.id,
        organization_id=publication.organization_id,
    )
    deliveries.plan_withdrawal(session, publication, revision, actor=principal)
    return publication


def get(session: Session, publication_id: str) -> Publication:
    publication = repository.get(session, publication_id)
    if publication is None:
        raise NotFound(f"Publication inconnue : {publication_id}.")
    return publication


# --------------------------------------------------------------------------------------------- payload


def revision_payload(
    session: Session, revision_id: str, *, needs: tuple[str, ...] = ()
) -> PublicationRevision:
    revision = repository.revision_by_id(session, revision_id)
    assert revision is not None
    publication = repository.get(session, revision.publication_id)
    assert publication is not None
    organization = organizations_repository.get(session, publication.organization_id)
    assert organization is not None
    decision = repository.decision(session, revision.id)
    routed_regional = bool(decision and any("regional" in n.get("platforms", []) for n in decision.needs))
    return build_payload(
        publication.id,
        revision.number,
        organization,
        validate_manifest(revision.manifest),
        repository.resources(session, revision.id),
        needs=needs,
        regional=routed_regional,
    )


def build_payload(
    publication_id: str,
    number: int,
    organization: Organization,
    manifest: Manifest,
    resources: list[Resource],
    *,
    needs: tuple[str, ...] = (),
    regional: bool = False,
    files_root: Path | None = None,
) -> PublicationRevision:
    settings = get_settings()
    public_url = settings.public_url.rstrip("/")
    blobs_root = files_root or settings.files_dir
    from regional_store.blobs import BlobStore

    store = BlobStore(blobs_root)
    files = tuple(
        ResourceFile(
            name=r.name,
            title=r.title,
            url=r.url,
            path=store.path(r.sha256) if r.sha256 else None,
            sha256=r.sha256,
            size=r.size,
            media_type=r.media_type,
            format=r.format,
            kind=r.kind,
            crs=r.crs,
            extent_wgs84=tuple(r.extent_wgs84) if r.extent_wgs84 else None,
            inspection=r.inspection or {},
            download_url=regional_download_url(publication_id, r.name) if regional and r.sha256 else None,
        )
        for r in resources
    )
    extents = [r.extent_wgs84 for r in resources if r.extent_wgs84]
    extent = (
        (
            min(e[0] for e in extents),
            min(e[1] for e in extents),
            max(e[2] for e in extents),
            max(e[3] for e in extents),
        )
        if extents
        else None
    )
    return PublicationRevision(
        publication_id=publication_id,
        revision=number,
        organization=OrganizationRef(
            id=organization.id,
            slug=organization.slug,
            name=organization.name,
            remote=organization.remote or {},
        ),
        title=manifest.title,
        description=manifest.description,
        license=manifest.license,
        keywords=tuple(manifest.keywords),
        frequency=manifest.frequency,
        temporal=Temporal(start=manifest.temporal.start, end=manifest.temporal.end)
        if manifest.temporal
        else None,
        contact=Contact(name=manifest.contact.name, email=manifest.contact.email)
        if manifest.contact
        else None,
        access=manifest.access,
        restricted_users=tuple(manifest.restricted_to.users),
        restricted_organizations=tuple(manifest.restricted_to.organizations),
        services=tuple(manifest.services),
        portals=tuple(manifest.portals),
        spatial_zones=tuple(manifest.zones),
        inspire_theme=manifest.inspire_theme,
        extent_wgs84=extent,
        resources=files,
        needs=needs,
        public_url=public_url,
        access_request_url=f"{public_url}/acces/{publication_id}",
        landing_url=f"{public_url}/api/v1/publications/{publication_id}",
    )


def regional_download_url(publication_id: str, name: str) -> str:
    public_url = get_settings().public_url.rstrip("/")
    return f"{public_url}/api/v1/regional/publications/{publication_id}/files/{quote(name)}"


def preflight(session: Session, accepted: Accepted) -> dict[str, list[PreflightProblem]]:
    """Every problem each target would have with this revision, found without sending anything.

    File rules (formats, names, projections, sizes) come from the intake's inspection of each file; the
    connector adds what only it knows. Whether the target is configured is reported too.
    """
    for plan in accepted.result.targets:
        try:
            # With a national emulator, the organisation gets its account there before anything is checked.
            targets.ensure_emulator_identity(session, accepted.organization.id, plan.target)
        except TransientConnectorError:
            logger.warning(
                "could not provision %s on the %s emulator", accepted.organization.slug, plan.target
            )
    payload = build_payload(
        "00000000-0000-0000-0000-000000000000",
        1,
        accepted.organization,
        accepted.manifest,
        accepted.resources,
        regional=any(t.target == "regional" for t in accepted.result.targets),
        files_root=accepted.files_root,
    )
    report: dict[str, list[PreflightProblem]] = {}
    for plan in accepted.result.targets:
        problems: list[PreflightProblem] = []
        sends_files = plan.target != "datagouv" or accepted.manifest.access == "open"
        for resource, description in zip(accepted.resources, accepted.descriptions, strict=True):
            if resource.sha256 and sends_files:
                problems.extend(file_preflight(description, resource.name, plan.target))
        try:
            connector = targets.get_connector(plan.target, accepted.organization.id, session)
        except ConnectorConfigurationError as exc:
            problems.append(
                PreflightProblem(
                    target=plan.target, severity="warning", code="configuration", message=exc.message
                )
            )
            report[plan.target] = _unique(problems)
            continue
        if connector is None:
            problems.append(
                PreflightProblem(
                    target=plan.target,
                    severity="warning",
                    code="not_configured",
                    message="Cible non configurée sur ce broker : la livraison attendra sa configuration.",
                )
            )
        else:
            problems = _merge(problems, connector.preflight(payload.model_copy(update={"needs": plan.needs})))
        report[plan.target] = _unique(problems)
    return report


# The intake's file rules and the Géoplateforme connector's own checks overlap: one rule, reported once, in
# the intake's words (connector code -> the intake code prefix that already says it for that file).
SAME_RULE = {
    "bad_table_name": "geoplateforme_table_name",
    "table_renamed": "geoplateforme_table_name",
    "columns_renamed": "geoplateforme_column_name",
    "column_names": "geoplateforme_column_name",
    "srs_missing": "geoplateforme_srs",
    "srs_unknown": "geoplateforme_srs",
    "too_large": "geoplateforme_too_large",
    "cog_recomputed": "geoplateforme_cog",
    "format_not_served": "geoplateforme_archive_only",
    "csv_without_geometry": "geoplateforme_csv_geometry",
}


def _merge(
    file_problems: list[PreflightProblem], connector_problems: list[PreflightProblem]
) -> list[PreflightProblem]:
    said = {(p.resource, p.code) for p in file_problems}
    kept = list(file_problems)
    for problem in connector_problems:
        prefix = SAME_RULE.get(problem.code)
        if prefix and any(r == problem.resource and c.startswith(prefix) for r, c in said):
            continue
        kept.append(problem)
    return kept


def _unique(problems: list[PreflightProblem]) -> list[PreflightProblem]:
    seen: set[tuple[str | None, str]] = set()
    kept = []
    for problem in problems:
        key = (problem.resource, problem.code)
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


# --------------------------------------------------------------------------------------------- views


def view(session: Session, publication: Publication) -> dict[str, Any]:
    organization = organizations_repository.get(session, publication.organization_id)
    revision = repository.revision(session, publication.id, publication.revision)
    assert organization is not None and revision is not None
    decision = repository.decision(session, revision.id)
    ledgers = {r.target: r for r in deliveries_repository.ledgers(session, publication.id)}
    regional = ledgers.get("regional")
    regional_files: dict[str, str] = (
        dict((regional.remote or {}).get("files", {})) if regional and regional.state == "present" else {}
    )
    resources = []
    for r in repository.resources(session, revision.id):
        item: dict[str, Any] = {
            "name": r.name,
            "title": r.title,
            "sha256": r.sha256,
            "size": r.size,
            "format": r.format,
            "kind": r.kind,
            "media_type": r.media_type,
            "crs": r.crs,
            "extent_wgs84": r.extent_wgs84,
            "url": r.url,
            "sync": r.sync,
            "inspection": r.inspection or {},
            "download_url": (
                regional_download_url(publication.id, r.name)
                if r.sha256 and regional_files.get(r.name) == r.sha256
                else None
            ),
        }
        resources.append(item)
    manifest = revision.manifest
    return {
        "id": publication.id,
        "organization": organization.slug,
        "organization_name": organization.name,
        "title": publication.title,
        "description": manifest.get("description"),
        "revision": publication.revision,
        "access": publication.access,
        "state": publication.state,
        "category": publication.category,
        "created_at": iso(publication.created_at),
        "updated_at": iso(publication.updated_at),
        "manifest": manifest,
        "decision": {
            "category": decision.category if decision else None,
            "rules_digest": decision.rules_digest if decision else None,
            "needs": decision.needs if decision else [],
        },
        "resources": resources,
        "deliveries": [
            deliveries.to_dict(d) for d in deliveries_repository.latest_per_target(session, publication.id)
        ],
        "ledger": {
            target: {
                "state": r.state,
                "revision": r.revision,
                "step": r.step,
                "remote": r.remote or {},
                "urls": r.urls or [],
            }
            for target, r in ledgers.items()
        },
    }


def summary(
    session: Session, publication: Publication, organizations_by_id: dict[str, str]
) -> dict[str, Any]:
    return {
        "id": publication.id,
        "organization": organizations_by_id.get(publication.organization_id),
        "title": publication.title,
        "revision": publication.revision,
        "access": publication.access,
        "state": publication.state,
        "category": publication.category,
        "updated_at": iso(publication.updated_at),
        "deliveries": [
            {
                "id": d.id,
                "target": d.target,
                "action": d.action,
                "state": d.state,
                "waiting_reason": d.waiting_reason,
                "last_error": d.last_error,
                "error_fields": d.error_fields or {},
                "urls": list(d.urls or []),
            }
            for d in deliveries_repository.latest_per_target(session, publication.id)
        ],
    }


def decision_view(result: ClassificationResult) -> dict[str, Any]:
    return result.to_dict()
