"""Page *Rapport*: the board report, as CSV tables and as a printable HTML page (print it to PDF)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import streamlit as st

from dashboard import data, labels, report, session, ui
from dashboard.client import ApiError, BrokerClient


def collect(client: BrokerClient) -> tuple[report.ReportData, list[dict[str, Any]]]:
    """Everything the report needs, and the publication rows for the CSV; raises ApiError on the basics."""
    titles = session.target_titles()
    need_titles = session.need_titles()
    listing = client.publications(state="active", limit=1000)
    publications = list(listing.get("data") or [])
    by_category: dict[str, int] = {}
    for publication in publications:
        key = str(publication.get("category") or "?")
        by_category[key] = by_category.get(key, 0) + 1
    deliveries: dict[str, int] = {}
    for delivery in data.latest_per_target(client.deliveries(limit=1000)):
        state = str(delivery.get("state"))
        deliveries[state] = deliveries.get(state, 0) + 1
    content = report.ReportData(
        generated_at=datetime.now(UTC),
        broker_url=session.api_url(),
        publications_total=int(listing.get("total") or len(publications)),
        by_category=by_category,
        deliveries=deliveries,
        monthly=data.monthly_summary(client.events(limit=1000)),
    )
    try:
        stats = client.migration_stats()
    except ApiError as error:
        if not error.unavailable:
            raise
    else:
        content.stats_available = True
        content.totals = dict(stats.get("totals") or {})
        content.national_share = data.national_share(content.totals)
        content.history = data.history_rows(stats.get("history") or [])
        content.by_organization = data.breakdown_rows(stats.get("by_organization"), ["organization", "name"])
        content.by_need = data.breakdown_rows(stats.get("by_need"), ["need_title", "need", "title"])
    catalogue: dict[str, Any] | None
    try:
        catalogue = session.categories()
    except ApiError:
        catalogue = None
    if catalogue:
        rows, platform_titles = data.categories_matrix(catalogue)
        content.category_counts = data.category_counts(rows, platform_titles)
    try:
        content.gaps = data.gap_rows(client.gaps(), titles)
    except ApiError as error:
        if not error.unavailable:
            raise
        if catalogue:  # no register yet: the catalogue's target dates still tell the board what is expected
            content.gaps = data.gap_rows(data.planned_gaps(catalogue), titles)
            content.gaps_planned = True
    return content, data.publication_rows(publications, titles, need_titles)


def main() -> None:
    ui.require_login()
    st.title("Rapport au conseil d'administration")
    st.caption(
        "Exportez les chiffres de la migration : tableaux CSV (tableur) et une page imprimable avec ses "
        "graphiques, que votre navigateur enregistre en PDF (Imprimer → Enregistrer au format PDF)."
    )
    try:
        content, publication_rows = collect(session.client())
    except ApiError as error:
        session.show_error(error)
        return
    stamp = content.generated_at.strftime("%Y-%m-%d")

    a, b, c = st.columns(3)
    a.metric("Publications actives", labels.french_number(content.publications_total or 0))
    b.metric("Servies nationalement", labels.percent(content.national_share))
    c.metric("Livraisons en échec", content.deliveries.get("failed", 0))
    missing = []
    if not content.stats_available:
        missing.append("statistiques de la migration")
    if content.gaps is None or content.gaps_planned:
        missing.append("registre des écarts (le rapport reprend les dates cibles du catalogue)")
    if missing:
        session.coming_soon("Pour ce rapport, " + " et ".join(missing))

    page = report.build_html(content)
    st.subheader("Page imprimable")
    st.download_button(
        "Télécharger le rapport (HTML imprimable)",
        page.encode("utf-8"),
        file_name=f"rapport-openig-{stamp}.html",
        mime="text/html",
        on_click="ignore",  # a download needs no rerun (the report is rebuilt on each run)
        type="primary",
        icon=":material/print:",
    )
    st.subheader("Tableaux CSV")
    one, two, three = st.columns(3)
    one.download_button(
        "Publications (CSV)",
        report.csv_bytes(
            [{k: v for k, v in r.items() if k != "id"} | {"id": r["id"]} for r in publication_rows]
        ),
        file_name=f"publications-{stamp}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/table:",
    )
    two.download_button(
        "Écarts nationaux (CSV)",
        report.csv_bytes(
            [{k: v for k, v in g.items() if k != "id"} for g in content.gaps or []],
        ),
        file_name=f"ecarts-{stamp}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/table:",
        disabled=not content.gaps,
    )
    three.download_button(
        "Progression de la migration (CSV)",
        report.csv_bytes(content.history, ["date", "série", "part"]),
        file_name=f"migration-{stamp}.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/table:",
        disabled=not content.history,
    )
    with st.expander("Aperçu du rapport", expanded=True):
        st.iframe(page, height=900)


main()
