"""The gap register: national feature gaps (a category-B need on one platform), their target dates, their
history, and what happens when one closes.

- Seeded from the B cells of ``categories.yaml`` at start-up (:func:`sync_with_categories`, idempotent):
  a new B cell creates a gap, a B cell whose date changed in the file records a slip by
  ``categories.yaml``, a B cell that became A in the file delivers the gap, one that became C drops it.
  The matrix seen is stored, so a change between two starts is an event ``categories.changed`` with the
  differences, and every need that became A on a platform starts a migration job.
- Staff steer it (:func:`create`, :func:`update`): every change is a history entry (who, when, why) and an
  audit event; marking a gap delivered starts its migration job (``broker.migration``).
- The register is laid over ``categories.yaml`` by ``broker.classification.overlay``: a delivered gap makes
  its need A on that platform for every later decision.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlmodel import Session

from broker.classification import service as classification
from broker.classification.rules import NATIONAL_PLATFORMS, Rules
from broker.db import iso, utcnow
from broker.errors import Conflict, InvalidInput, NotFound
from broker.events import service as events
from broker.events.service import Actor
from broker.gaps import repository
from broker.gaps.models import CategoriesState, Gap, GapHistory
from broker.gaps.schemas import GapCreate, GapPatch

logger = logging.getLogger(__name__)

FILE_AUTHOR = "categories.yaml"
"""The ``by`` of history entries written because the file changed."""

TRACKED = ("target_date", "status", "upstream", "interim", "mirror", "probe")
NEEDS_REASON = ("target_date", "status")


@dataclass(frozen=True)
class Operator:
    """Someone acting through the operator CLI (on the database, without a token)."""

    subject: str
    organizations: tuple[str, ...] = ()
    client_id: str | None = None

    @property
    def display_name(self) -> str:
        return self.subject


def author(actor: Actor | None) -> str:
    """How a history entry names who acted."""
    if actor is None:
        return "broker"
    return str(getattr(actor, "display_name", None) or actor.subject)


def today() -> date:
    return datetime.now(UTC).date()


# --------------------------------------------------------------------------------------------- reading


def get(session: Session, ref: str) -> Gap:
    """A gap by id, or by ``need/platform`` (what operators type)."""
    gap = repository.get(session, ref)
    if gap is None and "/" in ref:
        need, _, platform = ref.partition("/")
        gap = repository.by_cell(session, need.strip(), platform.strip())
    if gap is None:
        raise NotFound(f"Lacune inconnue : {ref}.")
    return gap


def _value(value: Any) -> Any:
    """A value as history and the API show it (dates in ISO)."""
    if isinstance(value, date):
        return value.isoformat()
    return value


def view(gap: Gap, *, waiting: int, on: date | None = None, rules: Rules | None = None) -> dict[str, Any]:
    """``{"id", "need", "need_title", "platform", "target_date", "status", "interim", "mirror", "upstream",
    "late", "days_late", "probe", "looks_delivered", "waiting_publications", "created_at", "updated_at"}``."""
    on = on or today()
    rules = rules or classification.current_rules()
    need = rules.needs.get(gap.need)
    platform = rules.platforms.get(gap.platform)
    late = gap.status == "open" and gap.target_date is not None and gap.target_date < on
    return {
        "id": gap.id,
        "need": gap.need,
        "need_title": need.title if need else gap.need,
        "platform": gap.platform,
        "platform_title": platform.title if platform else gap.platform,
        "target_date": _value(gap.target_date),
        "status": gap.status,
        "interim": gap.interim,
        "mirror": gap.mirror,
        "upstream": gap.upstream,
        "late": late,
        "days_late": (on - gap.target_date).days if late and gap.target_date else 0,
        "probe": gap.probe,
        "looks_delivered": gap.looks_delivered,
        "probe_checked_at": iso(gap.probe_checked_at),
        "probe_detail": gap.probe_detail,
        "waiting_publications": waiting,
        "source": gap.source,
        "created_at": iso(gap.created_at),
        "updated_at": iso(gap.updated_at),
    }


def waiting_counts(session: Session) -> dict[tuple[str, str], int]:
    """(need, platform) -> publications waiting, counted on the metrics' summary (a GROUP BY over one row
    per publication, not a join over every decision's needs)."""
    from broker.stats import service as stats

    return stats.waiting_by_cell(session)


def list_view(session: Session, *, on: date | None = None) -> list[dict[str, Any]]:
    counts = waiting_counts(session)
    rules = classification.current_rules()
    return [
        view(gap, waiting=counts.get((gap.need, gap.platform), 0), on=on, rules=rules)
        for gap in repository.list_all(session)
    ]


def served_by(decision_needs: list[dict[str, Any]], need: str, platform: str, default: str) -> str:
    """How the decision serves ``need`` while ``platform`` lacks it: its gap's interim policy then."""
    for entry in decision_needs:
        if entry.get("need") != need:
            continue
        for ref in entry.get("gaps") or []:
            if ref.get("platform") == platform and ref.get("interim"):
                return str(ref["interim"])
    return default


def detail_view(session: Session, gap: Gap, *, on: date | None = None, limit: int = 500) -> dict[str, Any]:
    """:func:`view` plus ``history`` and ``publications`` (those waiting on it) and its ``migrations``."""
    from broker.migration import service as migration

    waiting = repository.waiting_publications(session, gap.need, gap.platform, limit=limit)
    counts = waiting_counts(session)
    body = view(gap, waiting=counts.get((gap.need, gap.platform), 0), on=on)
    body["history"] = [
        {
            "at": iso(h.at),
            "by": h.by,
            "change": h.change,
            "from": h.from_value,
            "to": h.to_value,
            "reason": h.reason,
        }
        for h in repository.history(session, gap.id)
    ]
    body["publications"] = [
        {
            "id": publication.id,
            "title": publication.title,
            "organization": slug,
            "served_by": served_by(decision.needs, gap.need, gap.platform, gap.interim),
        }
        for publication, slug, decision in waiting
    ]
    body["migrations"] = [migration.summary(session, job) for job in migration.jobs_for_gap(session, gap.id)]
    return body


# --------------------------------------------------------------------------------------------- writing


def _record(
    session: Session, gap: Gap, change: str, before: Any, after: Any, by: str, reason: str | None
) -> GapHistory:
    entry = GapHistory(
        gap_id=gap.id,
        at=utcnow(),
        by=by,
        change=change,
        from_value=_value(before),
        to_value=_value(after),
        reason=reason,
    )
    repository.add(session, entry)
    return entry


def _check_cell(need: str, platform: str, interim: str, rules: Rules) -> None:
    found = rules.needs.get(need)
    if found is None:
        raise InvalidInput(
            f"Besoin inconnu de categories.yaml : « {need} ».", fields={"need": ["besoin inconnu"]}
        )
    if platform not in NATIONAL_PLATFORMS:
        raise InvalidInput("Une lacune porte sur une plateforme nationale.", fields={"platform": [platform]})
    if interim == "regional" and not found.regional:
        raise InvalidInput(
            f"L'infrastructure régionale ne sait pas servir « {found.title} » : politique d'attente "
            "« regional » impossible.",
            fields={"interim": ["le besoin n'est pas servi régionalement (regional: false)"]},
        )


def create(session: Session, actor: Actor | None, body: GapCreate) -> Gap:
    """Staff opens a gap on a cell of the matrix (the overlay makes that cell B from now on)."""
    _check_cell(body.need, body.platform, body.interim, classification.current_rules())
    if repository.by_cell(session, body.need, body.platform) is not None:
        raise Conflict(f"Une lacune existe déjà pour {body.need} sur {body.platform}.")
    now = utcnow()
    gap = Gap(
        need=body.need,
        platform=body.platform,
        status="open",
        target_date=body.target_date,
        interim=body.interim,
        mirror=body.mirror,
        upstream=body.upstream,
        probe=body.probe.model_dump(mode="json") if body.probe else None,
        source="staff",
        created_at=now,
        updated_at=now,
    )
    repository.add(session, gap)
    _record(session, gap, "created", None, "open", author(actor), body.reason)
    events.record(
        session,
        "gap.created",
        actor=actor,
        target=gap.platform,
        detail={"gap_id": gap.id, "need": gap.need, "platform": gap.platform, "reason": body.reason},
    )
    return gap


def update(session: Session, actor: Actor | None, gap: Gap, patch: GapPatch) -> Gap:
    """Apply the fields present in ``patch``; each change is a history entry and the whole an event.

    A change of target date or status needs a reason. Marking a gap delivered starts its migration.
    """
    given = patch.model_fields_set - {"reason"}
    wanted: dict[str, Any] = {}
    for name in given:
        value = getattr(patch, name)
        if name == "probe":
            value = value.model_dump(mode="json") if value is not None else None
        if value is None and name in ("status", "interim", "mirror"):
            raise InvalidInput("Ce champ ne peut pas être vide.", fields={name: ["valeur attendue"]})
        if value != getattr(gap, name):
            wanted[name] = value
    reason = (patch.reason or "").strip() or None
    missing = [name for name in NEEDS_REASON if name in wanted]
    if missing and reason is None:
        raise InvalidInput(
            "Une raison est obligatoire pour changer la date cible ou le statut d'une lacune.",
            fields={"reason": ["obligatoire quand " + " et ".join(missing) + " change"]},
        )
    if not wanted:
        return gap
    if wanted.get("interim") == "regional":
        _check_cell(gap.need, gap.platform, "regional", classification.current_rules())
    changes = apply(session, gap, wanted, by=author(actor), reason=reason)
    events.record(
        session,
        "gap.updated",
        actor=actor,
        target=gap.platform,
        detail={
            "gap_id": gap.id,
            "need": gap.need,
            "platform": gap.platform,
            "changes": changes,
            "reason": reason,
        },
    )
    if wanted.get("status") == "delivered":
        from broker.migration import service as migration

        migration.start_for_gap(session, actor, gap, reason=reason)
    return gap


def apply(
    session: Session, gap: Gap, wanted: dict[str, Any], *, by: str, reason: str | None
) -> list[dict[str, Any]]:
    """Set the fields of ``wanted`` (in a stable order), one history entry each; the changes as a list."""
    changes = []
    for name in TRACKED:
        if name not in wanted:
            continue
        before, after = getattr(gap, name), wanted[name]
        setattr(gap, name, after)
        _record(session, gap, name, before, after, by, reason)
        changes.append({"change": name, "from": _value(before), "to": _value(after)})
    gap.updated_at = utcnow()
    session.add(gap)
    session.flush()
    return changes


def record_probe(session: Session, gap: Gap, looks: bool, detail: str) -> bool:
    """Store a probe's outcome; a new verdict is a history entry for staff to confirm. Never changes the
    status (staff decide that a gap is delivered). True when the verdict changed."""
    gap.probe_checked_at = utcnow()
    gap.probe_detail = detail
    changed = gap.looks_delivered is not looks
    if changed:
        _record(session, gap, "probe", gap.looks_delivered, looks, "sonde", detail)
        events.record(
            session,
            "gap.probe",
            target=gap.platform,
            detail={"gap_id": gap.id, "need": gap.need, "looks_delivered": looks, "detail": detail},
        )
        gap.looks_delivered = looks
    session.add(gap)
    session.flush()
    return changed


# --------------------------------------------------------------------------------------------- categories


def matrix_of(rules: Rules) -> dict[str, dict[str, dict[str, Any]]]:
    """Need -> national platform -> the cell as the file says it (what a change is measured on)."""
    return {
        need_id: {
            platform: {
                "category": entry.category,
                "target_date": entry.target_date,
                "upstream": entry.upstream,
                "interim": entry.interim,
                "mirror": entry.mirror,
            }
            for platform, entry in need.platforms.items()
        }
        for need_id, need in rules.needs.items()
    }


def differences(
    before: dict[str, dict[str, dict[str, Any]]], after: dict[str, dict[str, dict[str, Any]]]
) -> list[dict[str, Any]]:
    """What changed between two matrices, cell by cell and key by key."""
    found: list[dict[str, Any]] = []
    for need in sorted(set(before) | set(after)):
        if need not in before:
            found.append({"need": need, "change": "added"})
            continue
        if need not in after:
            found.append({"need": need, "change": "removed"})
            continue
        for platform in sorted(set(before[need]) | set(after[need])):
            old, new = before[need].get(platform) or {}, after[need].get(platform) or {}
            for key in ("category", "target_date", "upstream", "interim", "mirror"):
                if old.get(key) != new.get(key):
                    found.append(
                        {
                            "need": need,
                            "platform": platform,
                            "change": key,
                            "from": old.get(key),
                            "to": new.get(key),
                        }
                    )
    return found


def _parse_date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def sync_with_categories(session: Session, rules: Rules | None = None) -> dict[str, Any]:
    """Bring the register in line with ``categories.yaml`` and remember the matrix seen (idempotent).

    Returns ``{"created": [...], "updated": [...], "differences": [...], "migrations": [...]}``.
    """
    from broker.migration import service as migration

    rules = rules or classification.current_rules()
    repository.lock_categories_state(session)
    state = repository.categories_state(session)
    matrix = matrix_of(rules)
    previous = state.matrix if state is not None else None
    report: dict[str, Any] = {"created": [], "updated": [], "differences": [], "migrations": []}
    became_a: list[tuple[str, str]] = []
    for need_id, cells in matrix.items():
        for platform, cell in cells.items():
            before = (previous or {}).get(need_id, {}).get(platform)
            gap = repository.by_cell(session, need_id, platform)
            if cell["category"] == "B":
                if gap is None:
                    gap = _seed(session, rules, need_id, platform, cell, first=previous is None)
                    report["created"].append(f"{need_id}/{platform}")
                    continue
                wanted = _follow_file(gap, before, cell)
                if wanted:
                    apply(session, gap, wanted, by=FILE_AUTHOR, reason=_file_reason(wanted))
                    report["updated"].append(f"{need_id}/{platform}")
            elif (
                before is not None
                and before.get("category") == "B"
                and gap is not None
                and gap.status == "open"
            ):
                status = "delivered" if cell["category"] == "A" else "dropped"
                apply(
                    session, gap, {"status": status}, by=FILE_AUTHOR, reason=_file_reason({"status": status})
                )
                report["updated"].append(f"{need_id}/{platform}")
            if cell["category"] == "A" and before is not None and before.get("category") in ("B", "C"):
                became_a.append((need_id, platform))
    if state is not None and state.digest != rules.digest:
        report["differences"] = differences(previous or {}, matrix)
        events.record(
            session,
            "categories.changed",
            detail={
                "from_digest": state.digest,
                "to_digest": rules.digest,
                "differences": report["differences"],
            },
        )
    for need_id, platform in became_a:
        gap = repository.by_cell(session, need_id, platform)
        job = migration.start(
            session,
            None,
            need=need_id,
            platform=platform,
            gap=gap,
            trigger="categories.yaml",
            reason=f"categories.yaml : {need_id} passe en catégorie A sur {platform}",
        )
        if job is not None:  # none when no publication is affected
            report["migrations"].append(job.id)
    if state is None:
        state = CategoriesState(id=1, digest=rules.digest, matrix=matrix, seen_at=utcnow())
    else:
        state.digest, state.matrix, state.seen_at = rules.digest, matrix, utcnow()
    repository.save(session, [state])
    return report


def _seed(
    session: Session, rules: Rules, need: str, platform: str, cell: dict[str, Any], *, first: bool
) -> Gap:
    now = utcnow()
    gap = Gap(
        need=need,
        platform=platform,
        status="open",
        target_date=_parse_date(cell.get("target_date")),
        interim=cell.get("interim") or "hold",
        mirror=bool(cell.get("mirror")),
        upstream=cell.get("upstream"),
        source=FILE_AUTHOR,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, gap)
    reason = (
        "catégorie B dans categories.yaml" if first else "nouvelle entrée de catégorie B dans categories.yaml"
    )
    _record(session, gap, "created", None, "open", FILE_AUTHOR, reason)
    events.record(
        session,
        "gap.created",
        target=platform,
        detail={"gap_id": gap.id, "need": need, "platform": platform, "reason": reason, "by": FILE_AUTHOR},
    )
    return gap


def _follow_file(gap: Gap, before: dict[str, Any] | None, cell: dict[str, Any]) -> dict[str, Any]:
    """The register follows what changed in the file since the last start (not what staff changed)."""
    wanted: dict[str, Any] = {}
    if before is None:
        return wanted
    if before.get("category") != "B":
        # The file makes this cell B again (it was A or C): the gap is open again.
        if gap.status != "open":
            wanted["status"] = "open"
        before = {}
    for key in ("target_date", "upstream", "interim", "mirror"):
        if before.get(key) == cell.get(key) and before:
            continue
        value: Any = cell.get(key)
        if key == "target_date":
            value = _parse_date(value)
        elif key == "interim":
            value = value or "hold"
        elif key == "mirror":
            value = bool(value)
        if value != getattr(gap, key):
            wanted[key] = value
    return wanted


def _file_reason(wanted: dict[str, Any]) -> str:
    if "status" in wanted:
        return {
            "delivered": "categories.yaml : le besoin passe en catégorie A sur cette plateforme",
            "dropped": "categories.yaml : le besoin passe en catégorie C sur cette plateforme",
            "open": "categories.yaml : le besoin repasse en catégorie B sur cette plateforme",
        }[wanted["status"]]
    if "target_date" in wanted:
        return "date cible modifiée dans categories.yaml"
    return "entrée modifiée dans categories.yaml"


def sync_at_startup() -> dict[str, Any]:
    """:func:`sync_with_categories` in its own transaction, as the API does when it starts.

    Two API processes starting together may both seed the same gap: the loser's unique constraint fails,
    it rolls back and runs again, and finds everything done.
    """
    from sqlalchemy.exc import IntegrityError

    from broker.db import session_scope

    for attempt in range(3):
        try:
            with session_scope() as session:
                report = sync_with_categories(session)
            if report["created"] or report["updated"] or report["differences"] or report["migrations"]:
                logger.info(
                    "gap register synchronised with categories.yaml: %d created, %d updated, %d "
                    "difference(s), %d migration(s)",
                    len(report["created"]),
                    len(report["updated"]),
                    len(report["differences"]),
                    len(report["migrations"]),
                )
            return report
        except IntegrityError:
            if attempt == 2:
                raise
            logger.info("gap register: another process synchronised at the same time; again")
    raise AssertionError("unreachable")
