"""Page *Migration*: progress towards the national platforms over time, per organisation and per need."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import charts, data, labels, session, ui
from dashboard.client import ApiError, BrokerClient


def category_split(client: BrokerClient) -> dict[str, int]:
    """Active publications per overall category (A, B, C), from the publications list."""
    return {
        category: int(client.publications(state="active", category=category, limit=1).get("total") or 0)
        for category in ("A", "B", "C")
    }


def show_split(split: dict[str, int]) -> None:
    columns = st.columns(3)
    for column, category in zip(columns, ("A", "B", "C"), strict=True):
        column.metric(f"Catégorie {category}", split.get(category, 0), help=labels.CATEGORY_MEANING[category])


def main() -> None:
    ui.require_login()
    st.title("Migration vers les plateformes nationales")
    client = session.client()
    try:
        split = category_split(client)
    except ApiError as error:
        session.show_error(error)
        return
    try:
        stats: dict[str, Any] | None = client.migration_stats()
    except ApiError as error:
        if not error.unavailable:
            session.show_error(error, "Statistiques")
            return
        stats = None

    if stats is None:
        session.coming_soon("Progression dans le temps")
        st.markdown("**Répartition actuelle des publications actives par catégorie**")
        show_split(split)
        return

    totals = stats.get("totals") or {}
    share = data.national_share(totals)
    a, b, c, d = st.columns(4)
    a.metric("Publications", labels.french_number(totals.get("publications") or 0))
    b.metric(
        "Servies nationalement",
        labels.percent(share),
        help=f"{totals.get('national', 0)} publications sur data.gouv.fr ou la Géoplateforme.",
    )
    c.metric("Servies régionalement", totals.get("regional", 0), help="Présentes dans l'entrepôt régional.")
    d.metric(
        "Des deux côtés", totals.get("both", 0), help="Nationales et régionales à la fois (miroir, attente)."
    )
    st.caption(
        f"Volumes : {labels.file_size(totals.get('bytes_national'))} au national, "
        f"{labels.file_size(totals.get('bytes_regional'))} en régional · statistiques du "
        f"{labels.french_datetime(stats.get('generated_at'))}."
    )
    show_split(split)

    st.subheader("Progression dans le temps")
    history = data.history_rows(stats.get("history") or [])
    if history:
        st.altair_chart(charts.share_over_time(history), width="stretch")
    else:
        st.caption("Pas encore d'historique : un relevé est enregistré chaque jour.")

    titles = session.target_titles()
    by_org = data.breakdown_rows(stats.get("by_organization"), ["organization_name", "organization", "name"])
    by_need = data.breakdown_rows(stats.get("by_need"), ["need_title", "need", "title"])
    platforms = [
        {**row, "platform": titles.get(str(row.get("platform")), row.get("platform"))}
        for row in stats.get("by_platform") or []
    ]
    by_platform = data.breakdown_rows(platforms, ["platform", "target", "name"])
    for title, rows, chart_title in (
        ("Par organisation", by_org, "Publications par organisation"),
        ("Par besoin", by_need, "Publications par besoin"),
    ):
        st.subheader(title)
        if not rows:
            st.caption("Aucune donnée.")
            continue
        st.altair_chart(charts.breakdown(rows, chart_title), width="stretch")
        with st.expander("Tableau"):
            st.dataframe(data.stat_table(rows), hide_index=True, width="stretch")
    if by_platform:
        st.subheader("Par plateforme")
        st.dataframe(data.stat_table(by_platform), hide_index=True, width="stretch")

    st.subheader("Migrations")
    try:
        migrations = client.migrations()
    except ApiError as error:
        if error.unavailable:
            session.coming_soon("Suivi des migrations")
        else:
            session.show_error(error, "Migrations")
        return
    if migrations:
        rows = data.migration_rows(migrations, session.target_titles(), session.need_titles())
        st.dataframe(rows, hide_index=True, width="stretch")
    else:
        st.caption("Aucune migration enregistrée.")


main()
