"""Migration: when a gap closes (or ``categories.yaml`` makes a need A on a platform), move every publication
that waited on it to the national platform, verify, then retire the interim regional copy.

A job lists its publications once (items). The beat task ``migration.advance`` moves each item one step at a
time, each step in its own transaction and decided only from what the database says, so a worker killed in
the middle loses at most the step it was doing (rolled back) and the next tick does it again:

``planned`` → ``reclassified``
    a new revision is derived with the rules in force (the gap now delivered makes the need A), channel
    ``migration``; its deliveries are planned with the withdrawals deferred, so the regional copy keeps
    serving while the national platform is not verified;
``reclassified`` → ``national_done`` | ``failed``
    the delivery of that revision (or a newer one) to the platform is ``done`` and the ledger says
    ``present``; a failed national delivery fails the item with its reason, the regional copy still serves;
``national_done`` → ``retired`` | ``mirrored`` | ``failed``
    the regional copy is withdrawn (a ``withdraw`` delivery, followed to its end), unless the gap keeps it as
    a mirror, or the regional store still serves the publication for other needs.

Two workers never do one step twice: a step first moves the item's ``version`` with a conditional update
(``repository.claim``), which also holds the row until the step commits.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from sqlmodel import Session

from broker.classification import service as classification
from broker.classification.overlay import GapState, classify_with_overlay, overlay_rules
from broker.db import after_commit, iso, session_scope, utcnow
from broker.deliveries import repository as deliveries_repository
from broker.deliveries import service as deliveries
from broker.deliveries.models import Delivery, DeliveryAction, DeliveryState
from broker.errors import BrokerError, Conflict, InvalidInput, NotFound
from broker.events import service as events
from broker.events.service import Actor
from broker.gaps import repository as gaps_repository
from broker.gaps.models import Gap
from broker.migration import repository
from broker.migration.models import (
    ACTIVE_ITEM_STATES,
    ItemState,
    JobState,
    MigrationItem,
    MigrationJob,
)
from broker.organizations import repository as organizations_repository
from broker.publications import repository as publications_repository
from broker.publications.manifest import validate_manifest
from broker.publications.models import Publication
from broker.targets import service as targets

logger = logging.getLogger(__name__)

CHANNEL = "migration"
REGIONAL = "regional"
STEPS_PER_TICK = 200


def _by(actor: Actor | None) -> str:
    if actor is None:
        return "broker"
    return str(getattr(actor, "display_name", None) or actor.subject)


def derive_reason(job: MigrationJob) -> str:
    """The reason written on the derived revision (what the producer sees in its history)."""
    if job.trigger == "categories.yaml":
        return f"categories.yaml: {job.need}/{job.platform} now A"
    return f"gap {job.need}/{job.platform} delivered"


# --------------------------------------------------------------------------------------------- starting


def start_for_gap(
    session: Session, actor: Actor | None, gap: Gap, *, reason: str | None = None
) -> MigrationJob:
    """The job that follows a gap marked delivered (created with the change, in the same transaction)."""
    if gap.status != "delivered":
        raise Conflict(
            f"La lacune {gap.need}/{gap.platform} n'est pas livrée : rien à migrer (aperçu possible avec "
            "dry_run)."
        )
    job = start(
        session, actor, need=gap.need, platform=gap.platform, gap=gap, trigger="gap.delivered", reason=reason
    )
    assert job is not None
    return job


def start(
    session: Session,
    actor: Actor | None,
    *,
    need: str,
    platform: str,
    gap: Gap | None,
    trigger: str,
    reason: str | None,
) -> MigrationJob | None:
    """List the affected publications as a job; a running job for the same cell is returned as it is.

    A change of ``categories.yaml`` that affects no publication starts no job (nothing to show).
    """
    running = repository.running_for_cell(session, need, platform)
    if running is not None:
        return running
    ids = gaps_repository.affected_publication_ids(session, need, platform)
    if not ids and trigger == "categories.yaml":
        return None
    rules = classification.current_rules()
    found = rules.needs.get(need)
    now = utcnow()
    job = MigrationJob(
        gap_id=gap.id if gap else None,
        need=need,
        platform=platform,
        trigger=trigger,
        mirror=bool(gap and gap.mirror and found is not None and found.regional),
        state=JobState.running.value if ids else JobState.done.value,
        reason=reason,
        created_by=_by(actor),
        created_at=now,
        updated_at=now,
        finished_at=None if ids else now,
    )
    repository.add(session, job)
    repository.add_all(
        session,
        [MigrationItem(job_id=job.id, publication_id=pid, created_at=now, updated_at=now) for pid in ids],
    )
    events.record(
        session,
        "migration.started",
        actor=actor,
        target=platform,
        detail={
            "job_id": job.id,
            "gap_id": job.gap_id,
            "need": need,
            "platform": platform,
            "trigger": trigger,
            "total": len(ids),
            "mirror": job.mirror,
            "reason": reason,
        },
    )
    if ids:
        after_commit(session, _kick)
    return job


def _kick() -> None:
    """Start advancing now rather than at the next beat tick (beat still drives it if this is lost)."""
    from broker.worker import send

    try:
        send("migration.advance", [], queue="default")
    except Exception:
        logger.warning("could not enqueue migration.advance; beat will", exc_info=True)


def create_from_request(
    session: Session, actor: Actor | None, *, gap_id: str | None, need: str | None, platform: str | None
) -> MigrationJob:
    """``POST /api/v1/migrations`` without dry run: a job for a delivered gap (by id, or by need and
    platform when the cell became A in ``categories.yaml``)."""
    gap = _gap(session, gap_id, need, platform)
    if gap is not None:
        return start_for_gap(session, actor, gap, reason="demandé par l'équipe OPenIG")
    assert need is not None and platform is not None
    rules = classification.rules_in_force(gaps_repository.states(session))
    entry = rules.needs[need].platforms.get(platform) if need in rules.needs else None
    if entry is None or entry.category != "A":
        raise Conflict(f"{need} n'est pas de catégorie A sur {platform} : rien à migrer.")
    job = start(session, actor, need=need, platform=platform, gap=None, trigger="staff", reason=None)
    assert job is not None
    return job


def _gap(session: Session, gap_id: str | None, need: str | None, platform: str | None) -> Gap | None:
    if gap_id:
        gap = gaps_repository.get(session, gap_id)
        if gap is None:
            raise NotFound(f"Lacune inconnue : {gap_id}.")
        return gap
    if not need or not platform:
        raise InvalidInput(
            "Indiquez une lacune (gap_id), ou un besoin et une plateforme.",
            fields={"gap_id": ["obligatoire sans need et platform"]},
        )
    if need not in classification.current_rules().needs:
        raise NotFound(f"Besoin inconnu : {need}.")
    return gaps_repository.by_cell(session, need, platform)


# --------------------------------------------------------------------------------------------- preview


def preview(
    session: Session, *, gap_id: str | None = None, need: str | None = None, platform: str | None = None
) -> dict[str, Any]:
    """What a migration would do, acting on nothing: each affected publication, its category now and after,
    and what would happen on the national platform and to the regional copy. For an open gap, as if it
    were delivered."""
    gap = _gap(session, gap_id, need, platform)
    need = gap.need if gap else need
    platform = gap.platform if gap else platform
    assert need is not None and platform is not None
    rules = overlay_rules(classification.current_rules(), assumed_register(session, need, platform))
    mirror = bool(gap and gap.mirror and rules.needs[need].regional)
    configured = targets.is_configured(platform)
    publications = []
    for publication_id in gaps_repository.affected_publication_ids(session, need, platform):
        publication = publications_repository.get(session, publication_id)
        if publication is None:
            continue
        publications.append(_preview_one(session, publication, need, platform, rules, mirror, configured))
    national = sum(1 for p in publications if p["new_category_of_need"] == "A")
    return {
        "dry_run": True,
        "gap_id": gap.id if gap else None,
        "need": need,
        "platform": platform,
        "gap_status": gap.status if gap else None,
        "mirror": mirror,
        "target_configured": configured,
        "rules_digest": rules.digest,
        "total": len(publications),
        "would_move": national,
        "publications": publications,
    }


def _preview_one(
    session: Session,
    publication: Publication,
    need: str,
    platform: str,
    rules: Any,
    mirror: bool,
    configured: bool,
) -> dict[str, Any]:
    from broker.publications import service as publications

    revision = publications_repository.revision(session, publication.id, publication.revision)
    assert revision is not None
    organization = organizations_repository.get(session, publication.organization_id)
    decision = publications_repository.decision(session, revision.id)
    manifest = validate_manifest(revision.manifest)
    resources = publications_repository.resources(session, revision.id)
    result = classify_with_overlay(publications.publication_facts(manifest, resources, CHANNEL), rules)
    before = next((n for n in (decision.needs if decision else []) if n.get("need") == need), {})
    after = next((n for n in result.needs if n.need == need), None)
    routed = {t.target: t for t in result.targets}
    ledgers = {r.target: r for r in deliveries_repository.ledgers(session, publication.id)}
    actions: list[str] = []
    national: dict[str, Any] | None = None
    if platform in routed:
        present = platform in ledgers and ledgers[platform].state == "present"
        action = DeliveryAction.update.value if present else DeliveryAction.publish.value
        held = list(routed[platform].held_by)
        national = {"target": platform, "action": action, "held_by": held}
        verb = "mise à jour" if present else "publication"
        line = f"{verb} sur {platform} avec le besoin {need}"
        if held:
            line += f" (reste en attente de : {', '.join(held)})"
        elif not configured:
            line += " (la cible n'est pas configurée : la livraison attendra)"
        actions.append(line)
    regional_present = REGIONAL in ledgers and ledgers[REGIONAL].state == "present"
    if REGIONAL in routed and need in routed[REGIONAL].needs and mirror:
        regional = "mirror"
        actions.append("copie régionale gardée en miroir")
    elif REGIONAL in routed:
        regional = "keep"
        actions.append(
            "copie régionale conservée pour d'autres besoins : " + ", ".join(routed[REGIONAL].needs)
        )
    elif regional_present:
        regional = "retire"
        actions.append("copie régionale retirée une fois la livraison nationale vérifiée")
    else:
        regional = "none"
    return {
        "id": publication.id,
        "title": publication.title,
        "organization": organization.slug if organization else None,
        "current_category": publication.category,
        "new_category": result.category,
        "category_of_need": before.get("category"),
        "new_category_of_need": after.category if after else None,
        "served_by": _served_by(before, platform),
        "national": national,
        "regional": regional,
        "actions": actions,
    }


def _served_by(need_decision: dict[str, Any], platform: str) -> str:
    if need_decision.get("category") == "C":
        return REGIONAL
    for ref in need_decision.get("gaps") or []:
        if ref.get("platform") == platform:
            return str(ref.get("interim") or "hold")
    return "hold"


# --------------------------------------------------------------------------------------------- advancing


def advance(limit: int = STEPS_PER_TICK) -> dict[str, int]:
    """One tick: one step for each item that has one left (oldest looked-at first), then close the jobs
    that have nothing left. Every step is its own transaction."""
    with session_scope() as session:
        due = [(i.id, i.version) for i in repository.due_items(session, limit=limit)]
    counts = {"looked_at": len(due), "moved": 0, "finished_jobs": 0}
    for item_id, version in due:
        try:
            if step(item_id, version):
                counts["moved"] += 1
        except Exception:  # one broken publication never stops the others; the next tick retries it
            logger.exception("migration item %s: step failed", item_id)
    counts["finished_jobs"] = _close_finished()
    return counts


def step(item_id: str, version: int) -> bool:
    """Advance one item by one step; True when its state changed."""
    try:
        with session_scope() as session:
            item = repository.item(session, item_id)
            if item is None or item.state not in {s.value for s in ACTIVE_ITEM_STATES}:
                return False
            if not repository.claim(session, item_id, version, utcnow()):
                return False  # another worker moved it since we listed it
            session.refresh(item)
            job = repository.job(session, item.job_id)
            assert job is not None
            before = item.state
            if before == ItemState.planned.value:
                _reclassify(session, job, item)
            elif before == ItemState.reclassified.value:
                _verify_national(session, job, item)
            else:
                _retire(session, job, item)
            if item.state != before:
                item.updated_at = utcnow()
                _record_item(session, job, item)
            session.add(item)
            return item.state != before
    except BrokerError as exc:
        # The derived revision was refused (the manifest no longer validates, the organisation is gone...):
        # nothing of it was written; the item fails with the reason, the regional copy keeps serving.
        with session_scope() as session:
            item = repository.item(session, item_id)
            if item is None or item.state not in {s.value for s in ACTIVE_ITEM_STATES}:
                return False
            job = repository.job(session, item.job_id)
            assert job is not None
            _fail(item, f"Reclassement impossible : {exc.detail}")
            item.version += 1
            _record_item(session, job, item)
            session.add(item)
        return True


def _fail(item: MigrationItem, message: str) -> None:
    item.state = ItemState.failed.value
    item.error = message
    item.waiting = False
    item.detail = "la copie régionale continue de servir"
    item.updated_at = utcnow()


def _record_item(session: Session, job: MigrationJob, item: MigrationItem) -> None:
    publication = publications_repository.get(session, item.publication_id)
    events.record(
        session,
        f"migration.{item.state}",
        publication_id=item.publication_id,
        organization_id=publication.organization_id if publication else None,
        target=job.platform,
        detail={
            "job_id": job.id,
            "item_id": item.id,
            "need": job.need,
            "revision": item.revision,
            "detail": item.detail,
            "error": item.error,
        },
    )


def _reclassify(session: Session, job: MigrationJob, item: MigrationItem) -> None:
    from broker.publications import service as publications

    publication = publications_repository.get(session, item.publication_id)
    if publication is None or publication.state != "active":
        item.state = ItemState.skipped.value
        item.detail = "publication retirée entre-temps"
        return
    row = gaps_repository.current_need(session, publication.id, job.need)
    if row is None:
        item.state = ItemState.skipped.value
        item.detail = f"la révision courante n'a plus le besoin {job.need}"
        return
    if row.category != "A":
        # The regional copy is retired by this job itself, once the national delivery is verified.
        publications.derive_revision(
            session, None, publication, channel=CHANNEL, reason=derive_reason(job), defer_withdrawal=True
        )
        row = gaps_repository.current_need(session, publication.id, job.need)
        if row is None or row.category != "A":
            _fail(
                item,
                f"Le reclassement laisse {job.need} en catégorie {row.category if row else '?'} : la lacune "
                "a-t-elle été rouverte ?",
            )
            item.revision = publication.revision
            return
    item.revision = publication.revision
    item.state = ItemState.reclassified.value
    item.detail = f"révision {publication.revision} ; livraison vers {job.platform} planifiée"


def _verify_national(session: Session, job: MigrationJob, item: MigrationItem) -> None:
    publication = publications_repository.get(session, item.publication_id)
    if publication is None or publication.state != "active":
        item.state = ItemState.skipped.value
        item.detail = "publication retirée entre-temps"
        return
    since = item.revision or publication.revision
    delivery = repository.latest_delivery(session, publication.id, job.platform, since)
    if delivery is None:
        _fail(item, f"Aucune livraison vers {job.platform} pour la révision {since}.")
        return
    item.national_delivery_id = delivery.id
    item.waiting = delivery.state == DeliveryState.waiting.value
    if delivery.state == DeliveryState.done.value:
        ledger = deliveries_repository.ledger(session, publication.id, job.platform)
        if ledger is not None and ledger.state == "present" and (ledger.revision or 0) >= since:
            item.state = ItemState.national_done.value
            item.detail = f"livrée sur {job.platform} (révision {ledger.revision}), vérifiée au registre"
        else:
            item.detail = "livraison terminée ; registre des identités pas encore à jour"
    elif delivery.state == DeliveryState.failed.value:
        _fail(item, f"Livraison vers {job.platform} échouée : {delivery.last_error or 'raison inconnue'}")
    elif delivery.state == DeliveryState.cancelled.value:
        item.detail = "livraison remplacée ; en attente de la suivante"
    elif item.waiting:
        item.detail = (
            f"livraison vers {job.platform} en attente : {delivery.last_error or delivery.waiting_reason}"
        )
    else:
        item.detail = f"livraison vers {job.platform} : {delivery.state}"


def _retire(session: Session, job: MigrationJob, item: MigrationItem) -> None:
    publication = publications_repository.get(session, item.publication_id)
    if publication is None or publication.state != "active":
        item.state = ItemState.skipped.value
        item.detail = "publication retirée entre-temps"
        return
    if job.mirror:
        item.state = ItemState.mirrored.value
        item.detail = "copie régionale gardée en miroir"
        return
    if item.withdraw_delivery_id is not None:
        withdrawal = deliveries_repository.get(session, item.withdraw_delivery_id)
        if withdrawal is None or withdrawal.state == DeliveryState.cancelled.value:
            item.withdraw_delivery_id = None  # superseded: decide again at the next tick
            item.detail = "retrait régional remplacé ; réexamen"
        elif withdrawal.state == DeliveryState.done.value:
            item.state = ItemState.retired.value
            item.detail = "copie régionale retirée"
        elif withdrawal.state == DeliveryState.failed.value:
            _fail(
                item, f"Retrait de la copie régionale échoué : {withdrawal.last_error or 'raison inconnue'}"
            )
            item.detail = f"servie par {job.platform} ; la copie régionale est encore en ligne"
        else:
            item.detail = f"retrait de la copie régionale : {withdrawal.state}"
        return
    if repository.routed_in_revision(session, publication.id, REGIONAL, publication.revision):
        item.state = ItemState.retired.value
        item.detail = f"{job.need} servi par {job.platform} ; copie régionale conservée pour d'autres besoins"
        return
    ledger = deliveries_repository.ledger(session, publication.id, REGIONAL)
    if ledger is None or ledger.state != "present":
        item.state = ItemState.retired.value
        item.detail = "aucune copie régionale à retirer"
        return
    if repository.active_deliveries(session, publication.id, REGIONAL):
        item.detail = "une livraison régionale est en cours ; le retrait attend sa fin"
        return
    item.withdraw_delivery_id = _plan_regional_withdrawal(session, publication, job).id
    item.detail = "retrait de la copie régionale planifié"


def _plan_regional_withdrawal(session: Session, publication: Publication, job: MigrationJob) -> Delivery:
    """The withdrawal ``deliveries.plan`` deferred: the regional copy only, now that the national one is
    verified."""
    revision = publications_repository.revision(session, publication.id, publication.revision)
    assert revision is not None
    delivery = Delivery(
        publication_id=publication.id,
        revision_id=revision.id,
        revision_number=revision.number,
        target=REGIONAL,
        action=DeliveryAction.withdraw.value,
    )
    deliveries_repository.add(session, delivery)
    session.flush()
    events.record(
        session,
        "delivery.pending",
        publication_id=publication.id,
        organization_id=publication.organization_id,
        delivery_id=delivery.id,
        target=REGIONAL,
        detail={
            "action": delivery.action,
            "revision": revision.number,
            "reason": f"migration {job.need}/{job.platform}",
        },
    )
    deliveries.enqueue_after_commit(session, [delivery])
    return delivery


def _close_finished() -> int:
    closed = 0
    with session_scope() as session:
        for job in repository.running_jobs(session):
            if repository.active_items_left(session, job.id):
                continue
            job.state = JobState.done.value
            job.finished_at = job.updated_at = utcnow()
            session.add(job)
            counts = repository.state_counts(session, [job.id]).get(job.id, {})
            events.record(
                session,
                "migration.finished",
                target=job.platform,
                detail={"job_id": job.id, "need": job.need, "platform": job.platform, "counts": counts},
            )
            closed += 1
    return closed


# --------------------------------------------------------------------------------------------- views


def get(session: Session, job_id: str) -> MigrationJob:
    job = repository.job(session, job_id)
    if job is None:
        raise NotFound(f"Migration inconnue : {job_id}.")
    return job


def jobs_for_gap(session: Session, gap_id: str) -> list[MigrationJob]:
    return repository.jobs_for_gap(session, gap_id)


def summary(session: Session, job: MigrationJob, counts: dict[str, int] | None = None) -> dict[str, Any]:
    """``{"id", "gap_id", "need", "platform", "trigger", "state", "mirror", "total", "done", "failed",
    "waiting", "skipped", "by_state", ...}``; ``done`` counts the items retired or mirrored."""
    if counts is None:
        counts = repository.state_counts(session, [job.id]).get(job.id, {})
    by_state = {s.value: counts.get(s.value, 0) for s in ItemState}
    return {
        "id": job.id,
        "gap_id": job.gap_id,
        "need": job.need,
        "platform": job.platform,
        "trigger": job.trigger,
        "state": job.state,
        "mirror": job.mirror,
        "reason": job.reason,
        "created_by": job.created_by,
        "created_at": iso(job.created_at),
        "updated_at": iso(job.updated_at),
        "finished_at": iso(job.finished_at),
        "total": sum(by_state.values()),
        "done": by_state["retired"] + by_state["mirrored"],
        "failed": by_state["failed"],
        "waiting": counts.get("waiting", 0),
        "skipped": by_state["skipped"],
        "by_state": by_state,
    }


def list_view(session: Session, *, limit: int = 100) -> list[dict[str, Any]]:
    jobs = repository.jobs(session, limit=limit)
    counts = repository.state_counts(session, [j.id for j in jobs])
    return [summary(session, job, counts.get(job.id, {})) for job in jobs]


def detail_view(session: Session, job: MigrationJob) -> dict[str, Any]:
    body = summary(session, job)
    body["items"] = [
        {
            "id": item.id,
            "publication_id": item.publication_id,
            "title": title,
            "organization": slug,
            "state": item.state,
            "revision": item.revision,
            "waiting": item.waiting,
            "detail": item.detail,
            "error": item.error,
            "national_delivery_id": item.national_delivery_id,
            "withdraw_delivery_id": item.withdraw_delivery_id,
            "updated_at": iso(item.updated_at),
        }
        for item, title, slug in repository.items_with_publications(session, job.id)
    ]
    return body


def assumed_register(session: Session, need: str, platform: str) -> list[GapState]:
    """The register with one cell assumed delivered (what a dry run classifies with)."""
    return [
        replace(g, status="delivered") if (g.need, g.platform) == (need, platform) else g
        for g in gaps_repository.states(session)
    ]
