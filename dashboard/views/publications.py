"""Page *Publications*: every delivery per target, failures with their reasons, and retry (staff)."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import data, labels, session, ui
from dashboard.client import ApiError

ALL = ""


def filters() -> dict[str, str | None]:
    organizations = {str(o["slug"]): str(o.get("name") or o["slug"]) for o in session.all_organizations()}
    targets = [str(t["name"]) for t in session.targets()] or list(labels.TARGET_NAMES)
    titles = session.target_titles()
    one, two, three, four = st.columns(4)
    organization = one.selectbox(
        "Organisation",
        [ALL, *sorted(organizations)],
        format_func=lambda s: "Toutes" if s == ALL else organizations.get(s, s),
        key="flt_organization",
    )
    state = two.selectbox(
        "État de livraison",
        [ALL, *labels.DELIVERY_STATES],
        format_func=lambda s: "Tous" if s == ALL else labels.DELIVERY_STATES[s],
        key="flt_state",
    )
    category = three.selectbox(
        "Catégorie",
        [ALL, "A", "B", "C"],
        format_func=lambda s: "Toutes" if s == ALL else f"{s} — {labels.CATEGORY_MEANING[s]}",
        key="flt_category",
    )
    target = four.selectbox(
        "Cible",
        [ALL, *targets],
        format_func=lambda s: "Toutes" if s == ALL else labels.target_name(s, titles),
        key="flt_target",
    )
    return {
        "organization": organization or None,
        "state": state or None,
        "category": category or None,
        "target": target or None,
    }


def retry(delivery_id: str) -> None:
    try:
        session.client().retry(delivery_id)
    except ApiError as error:
        session.show_error(error, "Nouvel essai refusé")
        return
    st.toast("Nouvel essai demandé : la livraison repart dans la file.", icon=":material/replay:")


def failure_cards(rows: list[dict[str, Any]], staff: bool) -> None:
    failed = [r for r in rows if r["state"] in ("failed", "retrying")]
    st.subheader(f"Échecs et nouveaux essais ({len(failed)})")
    if not failed:
        st.markdown(ui.status_markdown("Aucune livraison en échec.", "success"))
        return
    for row in failed:
        with st.container(border=True):
            st.markdown(
                f"**{ui.escape(row['Publication'])}** · {ui.escape(row['Organisation'])} · "
                f"{ui.escape(row['Cible'])} · {ui.escape(row['Action'])} (révision {row['Révision']}, "
                f"{row['Essais']} essai(s))"
            )
            st.markdown(ui.status_markdown(row["Statut"], row["tone"]))
            if staff and row["state"] == "failed":
                st.button(
                    "Relancer",
                    key=f"retry_{row['id']}",
                    icon=":material/replay:",
                    on_click=retry,
                    args=(str(row["id"]),),
                )


def main() -> None:
    ui.require_login()
    st.title("Publications et livraisons")
    st.caption(
        "Chaque livraison d'une révision vers une cible : data.gouv.fr, la Géoplateforme, "
        "l'entrepôt régional."
    )
    chosen = filters()
    show_history = st.toggle("Afficher l'historique complet (toutes les révisions)", value=False)
    client = session.client()
    try:
        answer = client.publications(organization=chosen["organization"], category=chosen["category"])
        deliveries = client.deliveries(state=chosen["state"], target=chosen["target"])
    except ApiError as error:
        session.show_error(error)
        return
    publications = {str(p["id"]): p for p in answer.get("data") or []}
    if not show_history:
        deliveries = list(data.latest_per_target(deliveries))
    rows = data.delivery_rows(deliveries, publications, session.target_titles(), session.need_titles())
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    st.markdown(
        " · ".join(f"**{n}** {labels.DELIVERY_STATES.get(s, s)}" for s, n in sorted(counts.items()))
        or "Aucune livraison pour ces filtres."
    )
    if rows:
        st.dataframe(
            rows,
            hide_index=True,
            width="stretch",
            # The plain-words status first: it says what to fix; the other columns are for sorting.
            column_order=[
                "Publication",
                "Cible",
                "Statut",
                "État",
                "Organisation",
                "Catégorie",
                "Action",
                "Révision",
                "Essais",
                "Mis à jour",
            ],
            column_config={"Statut": st.column_config.TextColumn("Statut", width="large")},
        )
    failure_cards(rows, session.is_staff())
    if not session.is_staff():
        st.caption(":material/info: Relancer une livraison est réservé à l'équipe OPenIG.")


main()
