"""Page *Catégories*: the A/B/C matrix of needs × platforms, with the sources behind each cell."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import charts, data, labels, session, ui
from dashboard.client import ApiError


def colour_cell(value: Any) -> str:
    colour = labels.CATEGORY_HEX.get(str(value))
    return (
        f"background-color: {colour}; color: white; font-weight: bold; text-align: center" if colour else ""
    )


def need_detail(catalogue: dict[str, Any], need_id: str) -> None:
    need = (catalogue.get("needs") or {}).get(need_id) or {}
    platforms = catalogue.get("platforms") or {}
    st.markdown(f"**{ui.escape(need.get('title') or need_id)}** :gray[({ui.escape(need_id)})]")
    if need.get("description"):
        st.caption(str(need["description"]))
    for platform, cell in (need.get("platforms") or {}).items():
        title = (platforms.get(platform) or {}).get("title") or platform
        lines = [f"{ui.category_badge(cell.get('category'))} **{ui.escape(title)}**"]
        if cell.get("note"):
            lines.append(ui.escape(cell["note"]))
        if cell.get("source"):
            lines.append(f":gray[Source : {ui.escape(cell['source'])}]")
        if cell.get("target_date"):
            lines.append(f"Date cible : {labels.french_date(cell['target_date'])}")
        if cell.get("interim"):
            lines.append(f"En attendant : {labels.label(labels.INTERIM, cell['interim'])}")
        if cell.get("upstream"):
            url = data.upstream_url(cell["upstream"])
            lines.append(
                f"Suivi amont : [{ui.escape(cell['upstream'])}]({url})" if url else str(cell["upstream"])
            )
        st.markdown("  \n".join(lines))


def main() -> None:
    ui.require_login()
    st.title("Catégories des besoins")
    st.caption(
        "Pour chaque besoin des membres, ce que chaque plateforme apporte : "
        + " ; ".join(f"**{c}** {labels.CATEGORY_MEANING[c]}" for c in "ABC")
        + "."
    )
    try:
        catalogue = session.categories()
    except ApiError as error:
        session.show_error(error)
        return
    rows, platform_titles = data.categories_matrix(catalogue)
    st.altair_chart(
        charts.category_counts_chart(data.category_counts(rows, platform_titles)), width="stretch"
    )

    with_sources = st.toggle("Afficher les sources et les notes", value=False)
    columns = ["Groupe", "Besoin", *platform_titles]
    if with_sources:
        for title in platform_titles:
            columns += [f"{title} · note", f"{title} · source", f"{title} · date cible"]
    frame = pd.DataFrame(rows)[columns]
    styled = frame.style.map(colour_cell, subset=platform_titles)
    st.dataframe(styled, hide_index=True, width="stretch", height=min(38 * (len(rows) + 1), 900))

    need_ids = [str(r["need"]) for r in rows]
    titles = {str(r["need"]): str(r["Besoin"]) for r in rows}
    choice = st.selectbox(
        "Détail d'un besoin", need_ids, format_func=lambda n: titles.get(n, n), key="need_detail"
    )
    if choice:
        need_detail(catalogue, choice)
    st.caption(f"Catalogue {catalogue.get('source', '')} · empreinte {str(catalogue.get('digest', ''))[:12]}")


main()
