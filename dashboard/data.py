"""Turn API answers into the rows the pages and the report show. Pure functions, tested directly."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from dashboard import labels

# ------------------------------------------------------------------------------------------ audit log


def events_since(events: Iterable[Mapping[str, Any]], since: datetime) -> list[Mapping[str, Any]]:
    out = []
    for event in events:
        moment = labels.parse_datetime(event.get("at"))
        if moment is not None and moment >= since:
            out.append(event)
    return out


def monthly_summary(
    events: Iterable[Mapping[str, Any]], now: datetime | None = None, days: int = 30
) -> dict[str, Any]:
    """What changed in the last ``days`` days: counts per kind of event and sentences to show."""
    moment = now or datetime.now(UTC)
    recent = events_since(events, moment - timedelta(days=days))
    counts = Counter(str(e.get("action")) for e in recent)
    sentences = [
        labels.plural(counts[action], words)
        for action, words in labels.EVENT_SUMMARY.items()
        if counts.get(action)
    ]
    publications = {e.get("publication_id") for e in recent if e.get("publication_id")}
    return {
        "since": (moment - timedelta(days=days)).date(),
        "events": len(recent),
        "counts": dict(counts),
        "sentences": sentences,
        "publications_touched": len(publications),
    }


def event_rows(
    events: Iterable[Mapping[str, Any]], titles: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The audit trail as table rows, in French."""
    rows = []
    for event in events:
        actor = event.get("actor") or {}
        detail = event.get("detail") or {}
        rows.append(
            {
                "Quand": labels.french_datetime(event.get("at")),
                "Quoi": labels.label(labels.EVENT_ACTIONS, event.get("action")),
                "Cible": labels.target_name(str(event["target"]), titles) if event.get("target") else "",
                "Qui": str(actor.get("subject") or ""),
                "Détail": _detail_text(detail),
            }
        )
    return rows


_CHANNELS = {
    "api": "par l'API",
    "cli": "en ligne de commande",
    "dashboard": "depuis le tableau de bord",
    "sftp": "par dépôt SFTP",
    "harvest": "par moissonnage",
}


_REASONS = {
    "not_configured": "cible non configurée",
    "gap": "en attente d'une évolution nationale",
    "superseded": "remplacée par une révision plus récente",
    "withdrawn": "publication retirée",
}


def _detail_text(detail: Mapping[str, Any]) -> str:
    parts = []
    if detail.get("channel"):
        parts.append(labels.label(_CHANNELS, detail["channel"]))
    if detail.get("revision"):
        parts.append(f"révision {detail['revision']}")
    if detail.get("attempt"):
        parts.append(f"essai {detail['attempt']}")
    for key in ("error", "message", "reason"):
        if detail.get(key):
            parts.append(labels.label(_REASONS, detail[key]))
    return " ; ".join(parts)


# ------------------------------------------------------------------------------------------ deliveries


def latest_per_target(deliveries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Newest delivery of each (publication, target); the API lists the newest change first."""
    seen: set[tuple[Any, Any]] = set()
    out: list[dict[str, Any]] = []
    for delivery in deliveries:
        key = (delivery.get("publication_id"), delivery.get("target"))
        if key in seen:
            continue
        seen.add(key)
        out.append(dict(delivery))
    return out


def delivery_rows(
    deliveries: Sequence[Mapping[str, Any]],
    publications: Mapping[str, Mapping[str, Any]],
    titles: Mapping[str, str] | None = None,
    need_titles: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Deliveries joined with their publication (title, organisation, category) for the *Publications* page.

    Deliveries of publications outside ``publications`` (filtered out by organisation or category) are left
    out.
    """
    rows = []
    for delivery in deliveries:
        publication = publications.get(str(delivery.get("publication_id")))
        if publication is None:
            continue
        status, tone = labels.delivery_status(delivery, need_titles)
        rows.append(
            {
                "id": delivery.get("id"),
                "publication_id": delivery.get("publication_id"),
                "Publication": publication.get("title"),
                "Organisation": publication.get("organization"),
                "Catégorie": publication.get("category"),
                "Cible": labels.target_name(str(delivery.get("target")), titles),
                "Action": labels.label(labels.ACTIONS, delivery.get("action")),
                "Révision": delivery.get("revision"),
                "État": labels.label(labels.DELIVERY_STATES, delivery.get("state")),
                "Essais": delivery.get("attempts") or 0,
                "Statut": status,
                "Mis à jour": labels.french_datetime(delivery.get("updated_at")),
                "state": delivery.get("state"),
                "tone": tone,
            }
        )
    return rows


# ------------------------------------------------------------------------------------------ publications


def publication_rows(
    publications: Iterable[Mapping[str, Any]],
    titles: Mapping[str, str] | None = None,
    need_titles: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One row per publication, with each target's status in plain words."""
    rows = []
    for publication in publications:
        deliveries = publication.get("deliveries") or []
        statuses = [labels.delivery_line(d, need_titles, titles)[0] for d in deliveries]
        rows.append(
            {
                "id": publication.get("id"),
                "Titre": publication.get("title"),
                "Organisation": publication.get("organization"),
                "Catégorie": publication.get("category") or "—",
                "Révision": publication.get("revision"),
                "Accès": labels.label(labels.ACCESS, publication.get("access")),
                "État": labels.label(labels.PUBLICATION_STATES, publication.get("state")),
                "Statut par cible": " · ".join(statuses) or "—",
                "Mis à jour": labels.french_datetime(publication.get("updated_at")),
            }
        )
    return rows


# ------------------------------------------------------------------------------------------ gaps


def gap_rows(
    gaps: Iterable[Mapping[str, Any]], titles: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    rows = []
    for gap in gaps:
        waiting = gap.get("waiting_publications")
        if isinstance(waiting, list):
            waiting = len(waiting)
        rows.append(
            {
                "id": gap.get("id"),
                "Besoin": gap.get("need_title") or gap.get("need"),
                "Plateforme": gap.get("platform_title")
                or labels.target_name(str(gap.get("platform")), titles),
                "Date cible": labels.parse_date(gap.get("target_date")),
                "Statut": labels.label(labels.GAP_STATUSES, gap.get("status")),
                "Jours de retard": int(gap.get("days_late") or 0) if gap.get("late") else 0,
                "En retard": bool(gap.get("late")),
                "Politique d'attente": labels.label(labels.INTERIM, gap.get("interim")),
                "Suivi amont": upstream_url(gap.get("upstream")),
                "Publications en attente": int(waiting or 0),
                "Semble livré": bool(gap.get("looks_delivered")),
            }
        )
    return rows


def upstream_url(upstream: Any) -> str | None:
    """A link for an upstream reference: ``IGNF/cartes.gouv.fr#790`` becomes its GitHub issue URL."""
    if not upstream:
        return None
    text = str(upstream).strip()
    if text.startswith(("http://", "https://")):
        return text
    if "#" in text and "/" in text.split("#", 1)[0]:
        repo, number = text.split("#", 1)
        if number.isdigit():
            return f"https://github.com/{repo}/issues/{number}"
    return None


def gap_name(gap: Mapping[str, Any], titles: Mapping[str, str] | None = None) -> str:
    """``Accès restreint … — Géoplateforme``: a gap as people name it."""
    need = gap.get("need_title") or gap.get("need")
    return f"{need} — {labels.target_name(str(gap.get('platform')), titles)}"


def planned_gaps(catalogue: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The B cells of the needs catalogue, shaped like gaps: what the gap register holds once it exists.

    Shown while a broker has no ``GET /api/v1/gaps`` yet, so staff and board still see the target dates.
    """
    out = []
    for need_id, need in (catalogue.get("needs") or {}).items():
        for platform, cell in (need.get("platforms") or {}).items():
            if cell.get("category") == "B":
                out.append(
                    {
                        "need": need_id,
                        "need_title": need.get("title"),
                        "platform": platform,
                        "target_date": cell.get("target_date"),
                        "status": "open",
                        "interim": cell.get("interim"),
                        "upstream": cell.get("upstream"),
                    }
                )
    return out


def gap_counts(gaps: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    counts = {"open": 0, "late": 0, "delivered": 0, "dropped": 0}
    for gap in gaps:
        status = str(gap.get("status") or "open")
        if status in counts:
            counts[status] += 1
        if status == "open" and gap.get("late"):
            counts["late"] += 1
    return counts


def gap_timeline_rows(
    gaps: Iterable[Mapping[str, Any]], titles: Mapping[str, str] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Points (current target dates) and slips (old date → new date) for the gaps timeline.

    Slips come from each gap's ``history`` (``GET /api/v1/gaps/{id}``): entries whose change is the target
    date, with ``from`` and ``to``.
    """
    points: list[dict[str, Any]] = []
    slips: list[dict[str, Any]] = []
    for gap in gaps:
        name = gap_name(gap, titles)
        target = labels.parse_date(gap.get("target_date"))
        if target is not None:
            points.append(
                {
                    "gap": name,
                    "date": target.isoformat(),
                    "statut": labels.label(labels.GAP_STATUSES, gap.get("status")),
                    "retard": int(gap.get("days_late") or 0) if gap.get("late") else 0,
                }
            )
        for entry in gap.get("history") or []:
            if str(entry.get("change")) not in ("target_date", "slip", "date"):
                continue
            start, end = labels.parse_date(entry.get("from")), labels.parse_date(entry.get("to"))
            if start is None or end is None:
                continue
            slips.append(
                {
                    "gap": name,
                    "de": start.isoformat(),
                    "à": end.isoformat(),
                    "le": labels.french_date(entry.get("at")),
                    "motif": str(entry.get("reason") or ""),
                    "jours": (end - start).days,
                }
            )
    return points, slips


# ------------------------------------------------------------------------------------------ statistics


def breakdown_rows(rows: Any, key_names: Sequence[str]) -> list[dict[str, Any]]:
    """Rows of a ``by_*`` list of the migration statistics, with a ``libellé`` column.

    The statistics endpoint returns lists of rows with counts; the label key depends on the list
    (``organization``, ``need``…), so this takes the first one found.
    """
    out = []
    if isinstance(rows, Mapping):  # {"label": {...counts}} is accepted as well as a list of rows
        rows = [{key_names[0]: k, **(v if isinstance(v, Mapping) else {"total": v})} for k, v in rows.items()]
    for row in rows or []:
        if not isinstance(row, Mapping):
            continue
        name = next((row[k] for k in key_names if row.get(k)), None)
        if name is None:
            name = next((v for v in row.values() if isinstance(v, str)), "?")
        item: dict[str, Any] = {"libellé": str(name)}
        for key, value in row.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                item[key] = value
        out.append(item)
    return out


#: French headers of the statistics' count columns (``national_share`` is shown as a percentage).
STAT_COLUMNS = {
    "libellé": "Nom",
    "publications": "Publications",
    "national": "Servies nationalement",
    "regional": "Servies régionalement",
    "both": "Des deux côtés",
    "resources": "Ressources",
    "bytes": "Volume",
    "bytes_national": "Volume national",
    "bytes_regional": "Volume régional",
    "national_share": "Part nationale",
}


def stat_table(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Statistics rows for display: French headers, shares as percentages, volumes in Ko/Mo/Go."""
    out = []
    for row in rows:
        item: dict[str, Any] = {}
        for key, value in row.items():
            header = STAT_COLUMNS.get(key, key)
            if key == "national_share" and isinstance(value, (int, float)):
                value = labels.percent(float(value))
            elif key.startswith("bytes") and isinstance(value, (int, float)):
                value = labels.file_size(int(value))
            item[header] = value
        out.append(item)
    return out


def exclusive_parts(row: Mapping[str, Any], keys: Sequence[str]) -> dict[str, int]:
    """Counts that add up, for stacked bars.

    The statistics count a publication served on both sides in ``national``, in ``regional`` and in
    ``both``; stacking those would count it three times, so ``national`` and ``regional`` lose ``both``.
    """
    counts = {k: int(row.get(k) or 0) for k in keys}
    if {"national", "regional", "both"} <= set(keys):
        counts["national"] = max(0, counts["national"] - counts["both"])
        counts["regional"] = max(0, counts["regional"] - counts["both"])
    return counts


def national_share(totals: Mapping[str, Any]) -> float | None:
    share = totals.get("national_share")
    if isinstance(share, (int, float)):
        return float(share if share <= 1 else share / 100)
    national, total = totals.get("national"), totals.get("publications")
    if isinstance(national, (int, float)) and isinstance(total, (int, float)) and total:
        return float(national) / float(total)
    return None


def history_rows(history: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Long-form rows (date, série, part) for the share-over-time chart."""
    rows = []
    for point in history:
        day = labels.parse_date(point.get("date"))
        if day is None:
            continue
        share = point.get("national_share")
        if not isinstance(share, (int, float)):
            total = point.get("publications") or 0
            share = (point.get("national") or 0) / total if total else 0.0
        share = float(share if share <= 1 else share / 100)
        rows.append({"date": day.isoformat(), "série": "nationale", "part": share})
        rows.append({"date": day.isoformat(), "série": "régionale seulement", "part": 1.0 - share})
    return rows


def categories_matrix(catalogue: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """One row per need: group, title, and per platform its category, note, source and target date."""
    platforms = catalogue.get("platforms") or {}
    platform_ids = list(platforms)
    groups = catalogue.get("groups") or {}
    needs = catalogue.get("needs") or {}
    order = catalogue.get("need_order") or list(needs)
    rows = []
    for need_id in order:
        need = needs.get(need_id) or {}
        row: dict[str, Any] = {
            "need": need_id,
            "Groupe": groups.get(need.get("group"), need.get("group") or ""),
            "Besoin": need.get("title") or need_id,
            "Description": need.get("description") or "",
        }
        for platform in platform_ids:
            cell = (need.get("platforms") or {}).get(platform) or {}
            title = (platforms.get(platform) or {}).get("title") or platform
            row[title] = cell.get("category") or "—"
            row[f"{title} · source"] = cell.get("source") or ""
            row[f"{title} · note"] = cell.get("note") or ""
            row[f"{title} · date cible"] = cell.get("target_date") or ""
        rows.append(row)
    titles = [(platforms.get(p) or {}).get("title") or p for p in platform_ids]
    return rows, titles


def category_counts(
    rows: Iterable[Mapping[str, Any]], platform_titles: Sequence[str]
) -> list[dict[str, Any]]:
    """How many needs each platform answers in A, B and C."""
    out = []
    rows = list(rows)
    for title in platform_titles:
        counts = Counter(str(r.get(title)) for r in rows)
        if any(counts.get(c) for c in "ABC"):  # the regional store has no A/B/C column of its own
            out.append({"Plateforme": title, **{c: counts.get(c, 0) for c in ("A", "B", "C")}})
    return out


def migration_rows(
    jobs: Iterable[Mapping[str, Any]],
    titles: Mapping[str, str] | None = None,
    need_titles: Mapping[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Migration jobs (``GET /api/v1/migrations``) as French table rows."""
    return [
        {
            "Besoin": (need_titles or {}).get(str(job.get("need")), job.get("need")),
            "Plateforme": labels.target_name(str(job.get("platform")), titles),
            "État": labels.label(labels.MIGRATION_STATES, job.get("state")),
            "Publications": job.get("total", 0),
            "Migrées": job.get("done", 0),
            "En échec": job.get("failed", 0),
            "En attente": job.get("waiting", 0),
            "Lancée le": labels.french_datetime(job.get("created_at")),
            "Par": job.get("created_by") or job.get("trigger") or "",
        }
        for job in jobs
    ]


def today() -> date:
    return datetime.now(UTC).date()
