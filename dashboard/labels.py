"""French words for the broker's identifiers, and the plain-language status of a delivery.

Pure functions only (no Streamlit), so they are tested directly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any

ROLES = {
    "producer": "producteur",
    "referent": "référent",
    "staff": "équipe OPenIG",
    "board": "membre du conseil",
}

CATEGORY_MEANING = {
    "A": "déjà servi par une plateforme nationale",
    "B": "servi nationalement après développement (date cible convenue)",
    "C": "servi par l'infrastructure régionale d'OPenIG",
}

#: Badge colours of the categories (Streamlit's named colours for :color-badge[...]).
CATEGORY_COLOUR = {"A": "green", "B": "orange", "C": "blue"}

#: Hex colours of the same categories for charts and tables.
CATEGORY_HEX = {"A": "#2e7d32", "B": "#ef6c00", "C": "#1565c0"}

TARGET_NAMES = {
    "datagouv": "data.gouv.fr",
    "geoplateforme": "Géoplateforme",
    "regional": "entrepôt régional OPenIG",
}

# "Publié sur data.gouv.fr", "Publié sur la Géoplateforme", "Publié dans l'entrepôt régional OPenIG".
_TARGET_PLACE = {
    "datagouv": "sur data.gouv.fr",
    "geoplateforme": "sur la Géoplateforme",
    "regional": "dans l'entrepôt régional OPenIG",
}
_TARGET_FROM = {
    "datagouv": "de data.gouv.fr",
    "geoplateforme": "de la Géoplateforme",
    "regional": "de l'entrepôt régional OPenIG",
}
_TARGET_TO = {
    "datagouv": "vers data.gouv.fr",
    "geoplateforme": "vers la Géoplateforme",
    "regional": "vers l'entrepôt régional OPenIG",
}

DELIVERY_STATES = {
    "pending": "en file d'attente",
    "running": "en cours",
    "retrying": "nouvel essai prévu",
    "waiting": "en attente",
    "done": "terminée",
    "failed": "en échec",
    "cancelled": "annulée",
}

ACTIONS = {"publish": "publication", "update": "mise à jour", "withdraw": "retrait"}

PUBLICATION_STATES = {"active": "active", "withdrawn": "retirée"}

ACCESS = {"open": "ouvert", "restricted": "restreint"}

MIGRATION_STATES = {"running": "en cours", "done": "terminée"}

GAP_STATUSES = {"open": "ouvert", "delivered": "livré", "dropped": "abandonné"}

INTERIM = {
    "regional": "servi par l'infrastructure régionale en attendant",
    "hold": "livraison nationale suspendue en attendant",
    "degrade": "publié nationalement sans cette partie en attendant",
}

EVENT_ACTIONS = {
    "publication.created": "Publication créée",
    "publication.revised": "Nouvelle révision",
    "publication.withdrawn": "Publication retirée",
    "delivery.pending": "Livraison en file d'attente",
    "delivery.running": "Livraison en cours",
    "delivery.retrying": "Nouvel essai prévu",
    "delivery.waiting": "Livraison en attente",
    "delivery.done": "Livraison réussie",
    "delivery.failed": "Livraison en échec",
    "delivery.cancelled": "Livraison annulée",
    "delivery.requeued": "Livraison relancée automatiquement",
    "delivery.retry_requested": "Nouvel essai demandé",
    "organization.created": "Organisation enregistrée",
    "gap.updated": "Écart national modifié",
    "gap.delivered": "Écart national livré",
    "migration.started": "Migration lancée",
    "migration.done": "Migration terminée",
}

#: Plural phrases for the monthly summary ("3 publications créées").
EVENT_SUMMARY = {
    "publication.created": ("publication créée", "publications créées"),
    "publication.revised": ("révision publiée", "révisions publiées"),
    "publication.withdrawn": ("publication retirée", "publications retirées"),
    "delivery.done": ("livraison réussie", "livraisons réussies"),
    "delivery.failed": ("livraison en échec", "livraisons en échec"),
    "delivery.waiting": ("livraison mise en attente", "livraisons mises en attente"),
    "delivery.retry_requested": ("nouvel essai demandé", "nouveaux essais demandés"),
    "organization.created": ("organisation enregistrée", "organisations enregistrées"),
}

SERVICES = {
    "download": "Téléchargement des fichiers",
    "wfs": "Service WFS (objets vecteur)",
    "wms": "Service WMS (carte)",
    "wmts": "Service WMTS (tuiles)",
    "api": "API de données",
}

SYNC = {"never": "jamais", "daily": "chaque jour", "weekly": "chaque semaine", "monthly": "chaque mois"}

# data.gouv.fr licence ids (manifest.schema.json) and their usual French names.
LICENSES = {
    "lov2": "Licence Ouverte / Open Licence 2.0 (Etalab)",
    "fr-lo": "Licence Ouverte / Open Licence 1.0",
    "odc-odbl": "ODbL (Open Database License)",
    "odc-by": "ODC-BY (Open Data Commons Attribution)",
    "odc-pddl": "ODC-PDDL (domaine public Open Data Commons)",
    "cc-by": "Creative Commons Attribution (CC-BY)",
    "cc-by-sa": "Creative Commons Attribution – Partage dans les mêmes conditions (CC-BY-SA)",
    "cc-zero": "Creative Commons Zero (CC0)",
    "other-at": "Autre (attribution)",
    "other-open": "Autre (ouverte)",
    "other-pd": "Autre (domaine public)",
    "notspecified": "Licence non précisée",
}

# data.gouv.fr frequency ids (manifest.schema.json).
FREQUENCIES = {
    "continuous": "En continu",
    "oneMinute": "Chaque minute",
    "fiveMinutes": "Toutes les 5 minutes",
    "tenMinutes": "Toutes les 10 minutes",
    "fifteenMinutes": "Toutes les 15 minutes",
    "thirtyMinutes": "Toutes les 30 minutes",
    "hourly": "Toutes les heures",
    "bihourly": "Toutes les deux heures",
    "trihourly": "Toutes les trois heures",
    "twelveHours": "Toutes les douze heures",
    "severalTimesADay": "Plusieurs fois par jour",
    "threeTimesADay": "Trois fois par jour",
    "semidaily": "Deux fois par jour",
    "daily": "Quotidienne",
    "fiveTimesAWeek": "Cinq fois par semaine",
    "threeTimesAWeek": "Trois fois par semaine",
    "semiweekly": "Deux fois par semaine",
    "weekly": "Hebdomadaire",
    "biweekly": "Toutes les deux semaines",
    "threeTimesAMonth": "Trois fois par mois",
    "semimonthly": "Deux fois par mois",
    "monthly": "Mensuelle",
    "bimonthly": "Tous les deux mois",
    "quarterly": "Trimestrielle",
    "threeTimesAYear": "Trois fois par an",
    "semiannual": "Semestrielle",
    "annual": "Annuelle",
    "biennial": "Tous les deux ans",
    "triennial": "Tous les trois ans",
    "quadrennial": "Tous les quatre ans",
    "quinquennial": "Tous les cinq ans",
    "decennial": "Tous les dix ans",
    "bidecennial": "Tous les vingt ans",
    "tridecennial": "Tous les trente ans",
    "punctual": "Ponctuelle",
    "irregular": "Irrégulière",
    "never": "Jamais mise à jour",
    "notPlanned": "Non planifiée",
    "other": "Autre",
    "unknown": "Inconnue",
}

_MONTHS = [
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
]


def label(table: Mapping[str, str], key: Any) -> str:
    """The French word for ``key``, or the key itself when the table does not know it (never blank)."""
    if key is None or key == "":
        return "—"
    return table.get(str(key), str(key))


def target_name(target: str, titles: Mapping[str, str] | None = None) -> str:
    if titles and titles.get(target):
        return titles[target]
    return TARGET_NAMES.get(target, target)


def parse_date(value: Any) -> date | None:
    """A date from an ISO string (``2027-03-31`` or a timestamp), else None."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if not value:
        return None
    text = str(value)
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def parse_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None


def french_date(value: Any) -> str:
    """``31 mars 2027``; ``—`` when there is no date."""
    day = parse_date(value)
    if day is None:
        return "—"
    return f"{day.day} {_MONTHS[day.month - 1]} {day.year}"


def french_datetime(value: Any) -> str:
    moment = parse_datetime(value)
    if moment is None:
        return "—"
    return f"{french_date(moment)} à {moment:%H:%M}"


def french_number(value: float | int, decimals: int = 0) -> str:
    """French digit grouping (narrow no-break space) and decimal comma."""
    text = f"{value:,.{decimals}f}".replace(",", "\u202f").replace(".", ",")
    return text


def percent(share: float | None) -> str:
    """A share in [0, 1] as ``42 %``; ``—`` when unknown."""
    if share is None:
        return "—"
    return f"{french_number(share * 100, 0)}\u00a0%"


def file_size(size: int | None) -> str:
    if size is None:
        return "—"
    value = float(size)
    for unit in ("o", "Ko", "Mo", "Go"):
        if value < 1024 or unit == "Go":
            return f"{french_number(value, 0 if unit == 'o' else 1)} {unit}"
        value /= 1024
    return f"{size} o"  # pragma: no cover - the loop always returns


def field_errors_text(error_fields: Mapping[str, Any] | None) -> list[str]:
    """``champ : message`` lines from an API ``fields`` object (messages may be a string or a list)."""
    lines = []
    for name, messages in (error_fields or {}).items():
        if isinstance(messages, str):
            messages = [messages]
        elif not isinstance(messages, Sequence):
            messages = [str(messages)]
        for message in messages:
            lines.append(f"{name} : {message}")
    return lines


def delivery_status(
    delivery: Mapping[str, Any],
    need_titles: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """A delivery status in plain words, and its tone (``success``, ``info``, ``warning``, ``error``).

    Examples: ("Publié sur data.gouv.fr", "success"), ("En attente : cible non configurée", "warning"),
    ("Échec : <what to fix>", "error").
    """
    target = str(delivery.get("target") or "")
    place = _TARGET_PLACE.get(target, f"sur {target}")
    state = delivery.get("state")
    action = delivery.get("action") or "publish"
    error = str(delivery.get("last_error") or "").strip()
    if state == "done":
        if action == "withdraw":
            return f"Retiré {_TARGET_FROM.get(target, 'de ' + target)}", "info"
        if action == "update":
            return f"Mis à jour {place}", "success"
        return f"Publié {place}", "success"
    if state == "pending":
        return f"En file d'attente {_TARGET_TO.get(target, 'vers ' + target)}", "info"
    if state == "running":
        return f"Livraison en cours {_TARGET_TO.get(target, 'vers ' + target)}", "info"
    if state == "retrying":
        attempts = delivery.get("attempts") or 0
        text = f"Nouvel essai prévu {_TARGET_TO.get(target, 'vers ' + target)} (essai {attempts})"
        return (f"{text} : {error}" if error else text), "warning"
    if state == "waiting":
        reason = delivery.get("waiting_reason")
        if reason == "not_configured":
            return "En attente : cible non configurée", "warning"
        if reason == "gap":
            held = [(need_titles or {}).get(n, n) for n in _held_needs(delivery, error)]
            what = ", ".join(held) if held else "un développement national"
            return f"En attente d'une évolution nationale : {what}", "warning"
        return f"En attente : {error}" if error else "En attente", "warning"
    if state == "failed":
        fixes = field_errors_text(delivery.get("error_fields"))
        what = error or "erreur sans détail"
        if fixes:
            what += " — à corriger : " + " ; ".join(fixes)
        return f"Échec : {what}", "error"
    if state == "cancelled":
        return "Annulé (remplacé par une révision plus récente, ou publication retirée)", "info"
    return label(DELIVERY_STATES, state), "info"


def delivery_line(
    delivery: Mapping[str, Any],
    need_titles: Mapping[str, str] | None = None,
    titles: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """:func:`delivery_status` with the target named in front when the sentence does not name it.

    ("Géoplateforme — En attente : cible non configurée", "warning"); "Publié sur data.gouv.fr" is unchanged.
    """
    text, tone = delivery_status(delivery, need_titles)
    if delivery.get("state") in ("waiting", "failed", "cancelled"):
        text = f"{target_name(str(delivery.get('target')), titles)} — {text}"
    return text, tone


def _held_needs(delivery: Mapping[str, Any], error: str) -> list[str]:
    """Needs a gap holds: the API says them after a colon in last_error (``…nationale : need_a, need_b``)."""
    if ":" in error:
        tail = error.rsplit(":", 1)[1]
        names = [n.strip() for n in tail.split(",") if n.strip()]
        if names and all(" " not in n for n in names):
            return names
    return []


def plural(count: int, words: tuple[str, str]) -> str:
    return f"{count} {words[0] if count <= 1 else words[1]}"
