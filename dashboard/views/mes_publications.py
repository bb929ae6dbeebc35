"""Page *Mes publications*: publications of the viewer's organisations, per-target status, links, log."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import data, labels, session, ui
from dashboard.client import ApiError


def load_publications(organizations: list[str], state: str | None) -> list[dict[str, Any]]:
    client = session.client()
    found: dict[str, dict[str, Any]] = {}
    for organization in organizations:
        answer = client.publications(organization=organization, state=state)
        for publication in answer.get("data") or []:
            found[str(publication["id"])] = publication
    return sorted(found.values(), key=lambda p: str(p.get("updated_at") or ""), reverse=True)


def show_detail(publication_id: str) -> None:
    client = session.client()
    try:
        publication = client.publication(publication_id)
        events = client.events(publication=publication_id, limit=500)
    except ApiError as error:
        session.show_error(error, "Détail indisponible")
        return
    titles = session.target_titles()
    need_titles = session.need_titles()
    st.subheader(str(publication.get("title")))
    st.markdown(
        f"{ui.category_badge(publication.get('category'))} "
        f"révision {publication.get('revision')} · "
        f"accès {labels.label(labels.ACCESS, publication.get('access'))}"
        f" · {labels.label(labels.PUBLICATION_STATES, publication.get('state'))}"
        f" · :gray[{ui.escape(publication.get('id'))}]"
    )
    status_col, decision_col = st.columns(2)
    with status_col:
        st.markdown("**Statut par cible**")
        ui.delivery_lines(publication.get("deliveries") or [], need_titles, titles)
        downloads = [r for r in publication.get("resources") or [] if r.get("download_url")]
        if downloads:
            st.markdown("**Téléchargements**")
            for resource in downloads:
                st.markdown(f"- [{ui.escape(resource['name'])}]({resource['download_url']})")
    with decision_col:
        st.markdown("**Décision**")
        for need in (publication.get("decision") or {}).get("needs") or []:
            platforms = ", ".join(labels.target_name(p, titles) for p in need.get("platforms") or [])
            st.markdown(
                f"- {ui.category_badge(need.get('category'))} "
                f"{ui.escape(need_titles.get(str(need.get('need')), need.get('need')))} "
                f"→ {ui.escape(platforms)}"
            )
    st.markdown("**Journal**")
    st.dataframe(data.event_rows(events, titles), hide_index=True, width="stretch")

    if session.can_write() and publication.get("state") == "active":
        with st.expander("Retirer cette publication"):
            st.caption(
                "Le retrait supprime la publication de chaque plateforme, dans l'ordre des dépendances ; "
                "le journal est conservé."
            )
            sure = st.checkbox(
                "Je confirme le retrait de toutes les plateformes", key=f"withdraw_ok_{publication_id}"
            )
            if st.button(
                "Retirer", disabled=not sure, icon=":material/delete:", key=f"withdraw_{publication_id}"
            ):
                try:
                    client.withdraw(publication_id)
                except ApiError as error:
                    session.show_error(error, "Retrait refusé")
                else:
                    st.toast("Retrait demandé : le broker retire la publication de chaque plateforme.")
                    st.rerun()


def main() -> None:
    ui.require_login()
    st.title("Mes publications")
    organizations = session.organizations()
    if not organizations:
        st.info("Votre compte n'est rattaché à aucune organisation.")
        return
    st.caption("Organisations : " + ", ".join(organizations))
    show_withdrawn = st.toggle("Inclure les publications retirées", value=False)
    try:
        publications = load_publications(organizations, None if show_withdrawn else "active")
    except ApiError as error:
        session.show_error(error, "Liste indisponible")
        return
    if not publications:
        st.info("Aucune publication pour l'instant.")
        st.page_link("views/publier.py", label="Publier un premier jeu de données", icon=":material/upload:")
        return
    titles = session.target_titles()
    need_titles = session.need_titles()
    rows = data.publication_rows(publications, titles, need_titles)
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_config={"Statut par cible": st.column_config.TextColumn("Statut par cible", width="large")},
        column_order=[
            "Titre",
            "Statut par cible",
            "Catégorie",
            "Révision",
            "Accès",
            "État",
            "Organisation",
            "Mis à jour",
        ],
    )
    choice = st.selectbox(
        "Voir le détail de",
        [str(p["id"]) for p in publications],
        format_func=lambda pid: next(
            (f"{p.get('title')} ({p.get('organization')})" for p in publications if str(p["id"]) == pid), pid
        ),
        key="my_publication",
    )
    if st.button("Actualiser", icon=":material/refresh:"):
        st.rerun()
    if choice:
        show_detail(choice)


main()
