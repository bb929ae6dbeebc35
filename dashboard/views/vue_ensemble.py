"""Page *Vue d'ensemble*: headline figures, and what changed in the last 30 days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import streamlit as st

from dashboard import data, labels, session, ui
from dashboard.client import ApiError, BrokerClient

DAYS = 30
PAGE = 1000
MAX_PAGES = 5  # 5,000 events a month is far above OPenIG's volume; the cap keeps the page quick anyway


def recent_events(client: BrokerClient, days: int = DAYS) -> list[dict[str, Any]]:
    """The audit log of the last ``days`` days, paging back with ``before``."""
    since = datetime.now(UTC) - timedelta(days=days)
    events: list[dict[str, Any]] = []
    before = None
    for _ in range(MAX_PAGES):
        page = client.events(limit=PAGE, before=before)
        events.extend(page)
        if len(page) < PAGE:
            break
        oldest = labels.parse_datetime(page[-1].get("at"))
        if oldest is None or oldest < since:
            break
        before = int(page[-1]["id"])
    return events


def main() -> None:
    ui.require_login()
    st.title("Vue d'ensemble")
    client = session.client()

    stats: dict[str, Any] | None = None
    try:
        stats = client.migration_stats()
    except ApiError as error:
        if not error.unavailable:
            session.show_error(error, "Statistiques")
    gaps: list[dict[str, Any]] | None = None
    try:
        gaps = client.gaps()
    except ApiError as error:
        if not error.unavailable:
            session.show_error(error, "Écarts nationaux")
    try:
        publications_total = int(client.publications(state="active", limit=1).get("total") or 0)
        failed = client.deliveries(state="failed")
    except ApiError as error:
        session.show_error(error)
        return

    totals = (stats or {}).get("totals") or {}
    share = data.national_share(totals) if stats else None
    counts = data.gap_counts(gaps or [])
    one, two, three, four = st.columns(4)
    one.metric("Publications actives", labels.french_number(totals.get("publications", publications_total)))
    two.metric(
        "Servies nationalement",
        labels.percent(share),
        help="Part des publications servies par data.gouv.fr ou la Géoplateforme."
        + ("" if stats else " Statistiques bientôt disponibles sur ce broker."),
    )
    three.metric(
        "Écarts ouverts / en retard",
        "—" if gaps is None else f"{counts['open']} / {counts['late']}",
        help=None if gaps is not None else "Registre des écarts bientôt disponible sur ce broker.",
    )
    four.metric(
        "Livraisons en échec",
        labels.french_number(len(data.latest_per_target(failed))),
        help="Livraisons terminées en échec, à corriger par le producteur ou à relancer par l'équipe.",
    )
    if stats is None or gaps is None:
        session.coming_soon("Part nationale et registre des écarts")

    st.subheader(f"Ce qui a changé ces {DAYS} derniers jours")
    try:
        events = recent_events(client)
    except ApiError as error:
        session.show_error(error, "Journal")
        return
    summary = data.monthly_summary(events, days=DAYS)
    if not summary["sentences"]:
        st.caption("Aucun changement enregistré sur la période.")
    else:
        st.markdown("\n".join(f"- {s}" for s in summary["sentences"]))
        events_text = labels.plural(summary["events"], ("événement", "événements"))
        touched = labels.plural(
            summary["publications_touched"], ("publication concernée", "publications concernées")
        )
        st.caption(f"{events_text} depuis le {labels.french_date(summary['since'])}, {touched}.")
    recent = data.events_since(events, datetime.now(UTC) - timedelta(days=DAYS))
    notable = [e for e in recent if e.get("action") in labels.EVENT_SUMMARY]
    if notable:
        st.markdown("**Derniers événements marquants**")
        st.dataframe(data.event_rows(notable[:50], session.target_titles()), hide_index=True, width="stretch")
    if failed:
        st.markdown("**Livraisons en échec**")
        st.page_link(
            "views/publications.py",
            label="Voir et relancer dans Publications",
            icon=":material/local_shipping:",
        )


main()
