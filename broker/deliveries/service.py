"""Deliveries: plan them with the revision (one transaction), run them as resumable state machines,
retry transient failures with backoff, and recover lost messages.

A delivery is claimed with an atomic update (``repository.claim``) so that a duplicated message, a
restarted worker or the sweeper never runs the same work twice at once, and never two deliveries of
one publication to one target at the same time.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlmodel import Session

from broker.classification.schemas import ClassificationResult
from broker.config import get_settings
from broker.db import after_commit, iso, session_scope, utcnow
from broker.deliveries import repository
from broker.deliveries.models import (
    TERMINAL_STATES,
    Delivery,
    DeliveryAction,
    DeliveryState,
    LedgerRecord,
)
from broker.events import service as events
from broker.events.service import Actor
from broker.publications.models import Publication, Revision
from broker.targets import service as targets
from connectors.base import (
    ConnectorConfigurationError,
    LedgerEntry,
    PermanentConnectorError,
    PreflightProblem,
    PublicationRevision,
    RemoteGoneError,
    Superseded,
    TransientConnectorError,
)

logger = logging.getLogger(__name__)

WAITING_GAP = "gap"
WAITING_NOT_CONFIGURED = "not_configured"
"""Key of ``Session.info``: while true, :func:`plan` plans no withdrawal (see its docstring)."""


# --------------------------------------------------------------------------------------------- planning


def plan(
    session: Session,
    publication: Publication,
    revision: Revision,
    result: ClassificationResult,
    *,
    actor: Actor | None,
    blocked: dict[str, list[PreflightProblem]] | None = None,
    defer_withdrawal: bool = False,
) -> list[Delivery]:
    """Create one delivery per target of ``result`` (and a withdrawal for targets no longer routed).

    Older revisions' deliveries that have not started are cancelled; a running one stops at its next
    step boundary (its checkpoint sees the newer delivery) and the newest carries on from the ledger.

    ``defer_withdrawal`` plans no withdrawal: a migration retires the interim regional copy itself, only
    once the national delivery is verified.
    """
    planned: list[Delivery] = []
    routed = {plan.target: plan for plan in result.targets}
    known = {record.target: record for record in repository.ledgers(session, publication.id)}
    for target, target_plan in routed.items():
        ledger = known.get(target)
        action = (
            DeliveryAction.update
            if ledger is not None and ledger.state == "present"
            else DeliveryAction.publish
        )
        delivery = Delivery(
            publication_id=publication.id,
            revision_id=revision.id,
            revision_number=revision.number,
            target=target,
            action=action.value,
            needs=list(target_plan.needs),
        )
        problems = (blocked or {}).get(target)
        if problems:
            # A file this target cannot take fails this delivery only, with reasons the producer can act on.
            delivery.state = DeliveryState.failed.value
            delivery.finished_at = utcnow()
            delivery.last_error = "Refusé avant envoi : " + " ; ".join(p.message for p in problems)
            delivery.error_fields = {}
            for problem in problems:
                delivery.error_fields.setdefault(problem.resource or "publication", []).append(
                    problem.message
                )
        elif target_plan.held_by:
            delivery.state = DeliveryState.waiting.value
            delivery.waiting_reason = WAITING_GAP
            delivery.last_error = "En attente d'une évolution nationale : " + ", ".join(target_plan.held_by)
        elif not targets.is_configured(target):
            delivery.state = DeliveryState.waiting.value
            delivery.waiting_reason = WAITING_NOT_CONFIGURED
            delivery.last_error = "Cible non configurée sur ce broker ; la livraison attend sa configuration."
        planned.append(delivery)
    for target, ledger in known.items():
        if not defer_withdrawal and target not in routed and ledger.state == "present":
            planned.append(
                Delivery(
                    publication_id=publication.id,
                    revision_id=revision.id,
                    revision_number=revision.number,
                    target=target,
                    action=DeliveryAction.withdraw.value,
                )
            )
    _supersede(session, publication.id, [d.target for d in planned], revision.number)
    for delivery in planned:
        repository.add(session, delivery)
    session.flush()
    for delivery in planned:
        events.record(
            session,
            f"delivery.{delivery.state}",
            actor=actor,
            publication_id=publication.id,
            organization_id=publication.organization_id,
            delivery_id=delivery.id,
            target=delivery.target,
            detail={
                "action": delivery.action,
                "revision": revision.number,
                "reason": delivery.waiting_reason,
            },
        )
    enqueue_after_commit(session, [d for d in planned if d.state == DeliveryState.pending.value])
    return planned


def plan_withdrawal(
    session: Session, publication: Publication, revision: Revision, *, actor: Actor | None
) -> list[Delivery]:
    """Withdraw from every target where the publication is (or is being) delivered."""
    planned: list[Delivery] = []
    present = {r.target for r in repository.ledgers(session, publication.id) if r.state == "present"}
    active = {
        d.target
        for d in repository.for_publication(session, publication.id)
        if d.state in {s.value for s in (DeliveryState.running, DeliveryState.retrying)}
    }
    for target in sorted(present | active):
        planned.append(
            Delivery(
                publication_id=publication.id,
                revision_id=revision.id,
                revision_number=revision.number,
                target=target,
                action=DeliveryAction.withdraw.value,
            )
        )
    _supersede(session, publication.id, None, revision.number)
    for delivery in planned:
        if not targets.is_configured(delivery.target):
            delivery.state = DeliveryState.waiting.value
            delivery.waiting_reason = WAITING_NOT_CONFIGURED
        repository.add(session, delivery)
    session.flush()
    for delivery in planned:
        events.record(
            session,
            "delivery.pending",
            actor=actor,
            publication_id=publication.id,
            organization_id=publication.organization_id,
            delivery_id=delivery.id,
            target=delivery.target,
            detail={"action": delivery.action, "revision": revision.number},
        )
    enqueue_after_commit(session, [d for d in planned if d.state == DeliveryState.pending.value])
    return planned


def _supersede(session: Session, publication_id: str, only_targets: list[str] | None, revision: int) -> None:
    """Cancel deliveries of older revisions that have not started; running ones stop at a step boundary."""
    for target in only_targets if only_targets is not None else targets.TARGETS:
        for older in repository.active_for_target(session, publication_id, target):
            if older.state == DeliveryState.running.value:
                continue
            older.state = DeliveryState.cancelled.value
            older.last_error = f"Remplacée par la révision {revision}."
            older.finished_at = utcnow()
            older.updated_at = utcnow()
            events.record(
                session,
                "delivery.cancelled",
                publication_id=publication_id,
                delivery_id=older.id,
                target=target,
                detail={"reason": "superseded", "by_revision": revision},
            )


def enqueue_after_commit(session: Session, deliveries: list[Delivery]) -> None:
    items = [(d.id, d.target) for d in deliveries]
    if not items:
        return
    now = utcnow()
    repository.mark_enqueued(session, [i for i, _ in items], now)
    after_commit(session, lambda: _send_all(items))


def _send_all(items: list[tuple[str, str]], countdown: float | None = None) -> None:
    from broker.worker import delivery_queue, send

    for delivery_id, target in items:
        try:
            send("deliveries.run", [delivery_id], queue=delivery_queue(target), countdown=countdown)
        except Exception:  # Redis down: the sweeper re-enqueues it once the queue is back
            logger.warning("could not enqueue delivery %s; the sweeper will", delivery_id, exc_info=True)


# --------------------------------------------------------------------------------------------- running


@dataclass
class RunOutcome:
    state: str
    next_delivery: tuple[str, str] | None = None


def run(delivery_id: str) -> RunOutcome | None:
    """Run one delivery if it can be claimed; return its outcome (None when not claimed)."""
    settings = get_settings()
    now = utcnow()
    with session_scope() as session:
        claimed = repository.claim(
            session, delivery_id, now, now + timedelta(seconds=settings.delivery_lease_seconds)
        )
        if not claimed:
            logger.info("delivery %s not claimable now (done, cancelled, early or target busy)", delivery_id)
            return None
        delivery = _must(session, delivery_id)
        session.refresh(delivery)
        events.record(
            session,
            "delivery.running",
            publication_id=delivery.publication_id,
            delivery_id=delivery.id,
            target=delivery.target,
            detail={"attempt": delivery.attempts, "action": delivery.action},
        )
        target, action, revision_number = delivery.target, delivery.action, delivery.revision_number
        organization_id = _organization_id(session, delivery)

    if not targets.is_configured(target):
        with session_scope() as session:
            _wait_for_configuration(session, _must(session, delivery_id))
        return RunOutcome(DeliveryState.waiting.value)
    try:
        with session_scope() as session:
            targets.ensure_emulator_identity(session, organization_id, target)
    except TransientConnectorError as exc:
        return _finish_transient(delivery_id, exc.message, exc.retry_after, exc.fields)

    try:
        with session_scope() as session:
            delivery = _must(session, delivery_id)
            payload = build_payload(session, delivery)
            ledger = _ledger_entry(repository.ledger(session, delivery.publication_id, target))
            connector = targets.get_connector(target, organization_id, session)
            links = _service_links(session, delivery.publication_id) if target == "datagouv" else []
    except ConnectorConfigurationError as exc:
        return _finish_failed(delivery_id, exc.message, exc.fields, "staff")
    assert connector is not None

    def checkpoint(entry: LedgerEntry) -> None:
        with session_scope() as session:
            _store_ledger(session, delivery_id, entry)
            repository.extend_lease(
                session, delivery_id, utcnow() + timedelta(seconds=settings.delivery_lease_seconds), utcnow()
            )
            current = _must(session, delivery_id)
            if current.state != DeliveryState.running.value or repository.newer_active_exists(
                session, current
            ):
                raise Superseded(f"delivery {delivery_id} superseded")

    try:
        operation = {
            DeliveryAction.publish.value: connector.publish,
            DeliveryAction.update.value: connector.update,
            DeliveryAction.withdraw.value: connector.withdraw,
        }[action]
        result = operation(payload, ledger, checkpoint)
        link_services = getattr(connector, "set_service_links", None)
        if link_services is not None and action != DeliveryAction.withdraw.value and links:
            # The Géoplateforme's services appear on data.gouv.fr as remote resources of the dataset.
            result = link_services(payload, result, links, checkpoint)
    except Superseded:
        return _finish_superseded(delivery_id)
    except TransientConnectorError as exc:
        return _finish_transient(delivery_id, exc.message, exc.retry_after, exc.fields)
    except RemoteGoneError as exc:
        # The ledger points at something deleted remotely: forget it and start over from scratch.
        with session_scope() as session:
            _store_ledger(session, delivery_id, LedgerEntry())
        return _finish_transient(delivery_id, exc.message, 0.0, exc.fields)
    except PermanentConnectorError as exc:
        audience = "staff" if isinstance(exc, ConnectorConfigurationError) else "producer"
        return _finish_failed(delivery_id, exc.message, exc.fields, audience)
    except Exception as exc:  # a bug or an outage we did not foresee: retry, then fail visibly
        logger.exception("delivery %s crashed", delivery_id)
        return _finish_transient(delivery_id, f"Erreur inattendue : {type(exc).__name__}", None, {})
    return _finish_done(delivery_id, result, revision_number)


def _organization_id(session: Session, delivery: Delivery) -> str:
    from broker.publications import repository as publications

    publication = publications.get(session, delivery.publication_id)
    assert publication is not None
    return publication.organization_id


def _service_links(session: Session, publication_id: str) -> list[tuple[str, str, str]]:
    """The Géoplateforme's published service URLs, as (title, url, format) for data.gouv.fr."""
    record = repository.ledger(session, publication_id, "geoplateforme")
    if record is None or record.state != "present":
        return []
    links: list[tuple[str, str, str]] = []
    for offering in ((record.remote or {}).get("offerings") or {}).values():
        kinds = offering.get("url_types") or [offering.get("type")] * len(offering.get("urls", []))
        for url, kind in zip(offering.get("urls", []), kinds, strict=False):
            label = str(kind or offering.get("type") or "service")
            title = f"Service {label} de la Géoplateforme ({offering.get('layer_name') or ''})".replace(
                " ()", ""
            )
            links.append((title, url, label.lower()))
    return links


def _must(session: Session, delivery_id: str) -> Delivery:
    delivery = repository.get(session, delivery_id)
    if delivery is None:
        raise LookupError(delivery_id)
    return delivery


def _ledger_entry(record: LedgerRecord | None) -> LedgerEntry:
    if record is None:
        return LedgerEntry()
    return LedgerEntry(
        remote=dict(record.remote or {}),
        urls=list(record.urls or []),
        revision=record.revision,
        step=record.step,
        state=record.state,
    )


def _store_ledger(session: Session, delivery_id: str, entry: LedgerEntry) -> None:
    delivery = _must(session, delivery_id)
    record = repository.ledger(session, delivery.publication_id, delivery.target)
    if record is None:
        record = LedgerRecord(publication_id=delivery.publication_id, target=delivery.target)
    record.remote = dict(entry.remote)
    record.urls = list(entry.urls)
    record.step = entry.step
    record.state = entry.state
    record.revision = entry.revision
    record.updated_at = utcnow()
    repository.save_ledger(session, record)
    delivery.remote = dict(entry.remote)
    delivery.urls = list(entry.urls)
    delivery.updated_at = utcnow()


def _finish_done(delivery_id: str, entry: LedgerEntry, revision_number: int) -> RunOutcome:
    with session_scope() as session:
        delivery = _must(session, delivery_id)
        if entry.state != "withdrawn":
            entry = entry.model_copy(update={"state": "present", "revision": revision_number})
        _store_ledger(session, delivery_id, entry)
        _follow_up_links(session, delivery)
        detail = {"action": delivery.action, "revision": revision_number, "urls": list(entry.urls)}
        return _conclude(session, delivery, DeliveryState.done, None, {}, detail)


def _conclude(
    session: Session,
    delivery: Delivery,
    state: DeliveryState,
    message: str | None,
    fields: dict[str, Any],
    detail: dict[str, Any],
) -> RunOutcome:
    """End a delivery (done, failed or cancelled), record it, and send the one waiting behind it."""
    delivery.state = state.value
    delivery.last_error = message
    delivery.error_fields = fields
    delivery.lease_until = None
    delivery.finished_at = utcnow()
    delivery.updated_at = utcnow()
    events.record(
        session,
        f"delivery.{state.value}",
        publication_id=delivery.publication_id,
        delivery_id=delivery.id,
        target=delivery.target,
        detail=detail,
    )
    return RunOutcome(state.value, _chain_next(session, delivery))


def _follow_up_links(session: Session, delivery: Delivery) -> None:
    """Once the Géoplateforme serves a publication, data.gouv.fr lists its services: plan an update there
    when the data.gouv.fr copy exists and no newer delivery is on its way."""
    if delivery.target != "geoplateforme" or delivery.action == DeliveryAction.withdraw.value:
        return
    record = repository.ledger(session, delivery.publication_id, "datagouv")
    if record is None or record.state != "present":
        return
    if repository.active_for_target(session, delivery.publication_id, "datagouv"):
        return  # the pending data.gouv.fr delivery will read the links when it runs
    follow = Delivery(
        publication_id=delivery.publication_id,
        revision_id=delivery.revision_id,
        revision_number=delivery.revision_number,
        target="datagouv",
        action=DeliveryAction.update.value,
        needs=[],
    )
    previous = repository.latest_for_target(session, delivery.publication_id, "datagouv")
    if previous is not None:
        follow.needs = list(previous.needs or [])
    repository.add(session, follow)
    session.flush()
    events.record(
        session,
        "delivery.pending",
        publication_id=delivery.publication_id,
        delivery_id=follow.id,
        target="datagouv",
        detail={"action": "update", "reason": "service_links"},
    )
    enqueue_after_commit(session, [follow])


def _finish_superseded(delivery_id: str) -> RunOutcome:
    with session_scope() as session:
        delivery = _must(session, delivery_id)
        message = "Remplacée par une révision plus récente ; elle reprend là où celle-ci s'est arrêtée."
        return _conclude(session, delivery, DeliveryState.cancelled, message, {}, {"reason": "superseded"})


def backoff_seconds(attempt: int, retry_after: float | None) -> float:
    """Exponential backoff with jitter, never shorter than the server's ``Retry-After``."""
    settings = get_settings()
    ceiling = min(settings.retry_max_seconds, settings.retry_base_seconds * 2 ** max(attempt - 1, 0))
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    return max(delay, retry_after or 0.0)


def _finish_transient(
    delivery_id: str, message: str, retry_after: float | None, fields: dict[str, Any]
) -> RunOutcome:
    settings = get_settings()
    with session_scope() as session:
        delivery = _must(session, delivery_id)
        if delivery.attempts >= settings.max_attempts:
            return _fail(
                session,
                delivery,
                f"{message} (abandon après {delivery.attempts} tentatives)",
                fields,
                "staff",
            )
        delay = backoff_seconds(delivery.attempts, retry_after)
        when = utcnow() + timedelta(seconds=delay)
        delivery.state = DeliveryState.retrying.value
        delivery.next_attempt_at = when
        delivery.enqueued_at = when
        delivery.lease_until = None
        delivery.last_error = message
        delivery.error_fields = fields
        delivery.updated_at = utcnow()
        events.record(
            session,
            "delivery.retrying",
            publication_id=delivery.publication_id,
            delivery_id=delivery.id,
            target=delivery.target,
            detail={"error": message, "attempt": delivery.attempts, "retry_in_seconds": round(delay, 2)},
        )
        item = (delivery.id, delivery.target)
        after_commit(session, lambda: _send_all([item], countdown=delay))
        return RunOutcome(DeliveryState.retrying.value)


def _finish_failed(delivery_id: str, message: str, fields: dict[str, Any], audience: str) -> RunOutcome:
    with session_scope() as session:
        return _fail(session, _must(session, delivery_id), message, fields, audience)


def _fail(
    session: Session, delivery: Delivery, message: str, fields: dict[str, Any], audience: str
) -> RunOutcome:
    detail = {"error": message, "fields": fields, "audience": audience}
    return _conclude(session, delivery, DeliveryState.failed, message, fields, detail)


def _chain_next(session: Session, delivery: Delivery) -> tuple[str, str] | None:
    """A delivery waiting for this one (same publication and target) is sent once this one ends."""
    following = repository.next_runnable_for_target(session, delivery.publication_id, delivery.target)
    if following is None:
        return None
    enqueue_after_commit(session, [following])
    return (following.id, following.target)


def _wait_for_configuration(session: Session, delivery: Delivery) -> None:
    delivery.state = DeliveryState.waiting.value
    delivery.waiting_reason = WAITING_NOT_CONFIGURED
    delivery.last_error = "Cible non configurée sur ce broker ; la livraison attend sa configuration."
    delivery.lease_until = None
    delivery.updated_at = utcnow()
    events.record(
        session,
        "delivery.waiting",
        publication_id=delivery.publication_id,
        delivery_id=delivery.id,
        target=delivery.target,
        detail={"reason": WAITING_NOT_CONFIGURED},
    )


# --------------------------------------------------------------------------------------------- payload


def build_payload(session: Session, delivery: Delivery) -> PublicationRevision:
    from broker.publications import service as publications

    return publications.revision_payload(session, delivery.revision_id, needs=tuple(delivery.needs or ()))


# --------------------------------------------------------------------------------------------- sweeper


def sweep() -> dict[str, int]:
    """Re-enqueue deliveries whose message was lost, and wake the ones waiting for a configured target."""
    settings = get_settings()
    now = utcnow()
    counts = {"requeued": 0, "woken": 0}
    with session_scope() as session:
        stale = repository.stale(session, now, now - timedelta(seconds=settings.pending_timeout_seconds))
        for delivery in stale:
            logger.warning("sweeper: re-enqueueing %s delivery %s", delivery.state, delivery.id)
            events.record(
                session,
                "delivery.requeued",
                publication_id=delivery.publication_id,
                delivery_id=delivery.id,
                target=delivery.target,
                detail={"state": delivery.state},
            )
        enqueue_after_commit(session, stale)
        counts["requeued"] = len(stale)
        for target in targets.TARGETS:
            if not targets.is_configured(target):
                continue
            woken = repository.waiting_for_configuration(session, target)
            for delivery in woken:
                delivery.state = DeliveryState.pending.value
                delivery.waiting_reason = None
                delivery.last_error = None
                delivery.updated_at = now
            enqueue_after_commit(session, woken)
            counts["woken"] += len(woken)
    return counts


def retry_now(session: Session, delivery: Delivery, *, actor: Actor | None) -> Delivery:
    """Staff action: put a failed or waiting delivery back in the queue."""
    if delivery.state in {DeliveryState.done.value, DeliveryState.cancelled.value}:
        return delivery
    if delivery.state in TERMINAL_STATES:
        delivery.attempts = 0  # a failed delivery starts a fresh series of attempts
    delivery.state = DeliveryState.pending.value
    delivery.next_attempt_at = None
    delivery.waiting_reason = None
    delivery.last_error = None
    delivery.updated_at = utcnow()
    events.record(
        session,
        "delivery.retry_requested",
        actor=actor,
        publication_id=delivery.publication_id,
        delivery_id=delivery.id,
        target=delivery.target,
    )
    enqueue_after_commit(session, [delivery])
    return delivery


def to_dict(delivery: Delivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "target": delivery.target,
        "action": delivery.action,
        "revision": delivery.revision_number,
        "state": delivery.state,
        "attempts": delivery.attempts,
        "next_attempt_at": iso(delivery.next_attempt_at),
        "waiting_reason": delivery.waiting_reason,
        "last_error": delivery.last_error,
        "error_fields": delivery.error_fields or {},
        "needs": list(delivery.needs or []),
        "remote": delivery.remote or {},
        "urls": list(delivery.urls or []),
        "created_at": iso(delivery.created_at),
        "updated_at": iso(delivery.updated_at),
        "finished_at": iso(delivery.finished_at),
    }


# --------------------------------------------------------------------------------------------- reconcile


def reconcile(
    target: str, *, publication_ids: list[str] | None = None, repair: bool = False, actor: Actor | None = None
) -> list[dict[str, Any]]:
    """Compare the ledger with what ``target`` holds; repair on request. One report per publication."""
    with session_scope() as session:
        records = repository.present_ledgers(session, target, publication_ids)
        jobs = [(r.publication_id, _ledger_entry(r)) for r in records]
    reports: list[dict[str, Any]] = []
    for publication_id, ledger in jobs:
        with session_scope() as session:
            from broker.publications import repository as publications

            publication = publications.get(session, publication_id)
            if publication is None:
                continue
            revision = publications.revision(session, publication_id, publication.revision)
            assert revision is not None
            payload = build_payload_for_revision(session, revision.id, target)
            connector = targets.get_connector(target, publication.organization_id, session)
        if connector is None:
            raise LookupError(f"target {target} is not configured")
        report: dict[str, Any] = {"publication_id": publication_id, "title": payload.title}
        try:
            repairer = getattr(connector, "reconcile", None)
            if repairer is not None:
                state, repaired = repairer(payload, ledger, repair)
            else:
                state, repaired = connector.inspect_remote(payload, ledger), ledger
        except (TransientConnectorError, PermanentConnectorError) as exc:
            report.update({"error": exc.message, "drift": []})
            reports.append(report)
            continue
        report["exists"] = state.exists
        report["drift"] = [d.model_dump() for d in state.drift]
        report["repaired"] = bool(repair and state.drift)
        with session_scope() as session:
            if repair and state.drift:
                record = repository.ledger(session, publication_id, target)
                if record is not None:
                    record.remote = dict(repaired.remote)
                    record.urls = list(repaired.urls)
                    record.updated_at = utcnow()
                    repository.save_ledger(session, record)
            events.record(
                session,
                "ledger.reconciled",
                actor=actor,
                publication_id=publication_id,
                target=target,
                detail={"drift": report["drift"], "repaired": report["repaired"]},
            )
        reports.append(report)
    return reports


def build_payload_for_revision(session: Session, revision_id: str, target: str) -> PublicationRevision:
    from broker.publications import repository as publications
    from broker.publications import service as publication_service

    decision = publications.decision(session, revision_id)
    needs = tuple(n["need"] for n in (decision.needs if decision else []) if target in n.get("platforms", []))
    return publication_service.revision_payload(session, revision_id, needs=needs)
