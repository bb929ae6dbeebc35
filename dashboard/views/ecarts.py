"""Page *Écarts nationaux*: the gap register, its timeline of target dates and slips, and staff changes."""

from __future__ import annotations

from datetime import date
from typing import Any

import streamlit as st

from dashboard import charts, data, labels, session, ui
from dashboard.client import ApiError, BrokerClient

KEY_GAP_ERRORS = "gap_errors"


@st.cache_data(ttl=30, show_spinner=False)
def gap_details(base_url: str, bearer: str | None, gap_ids: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Each gap's detail (history, publications); one call per gap, so cached for a short while."""
    client = BrokerClient(base_url, bearer)
    return {gap_id: client.gap(gap_id) for gap_id in gap_ids}


def gap_table(rows: list[dict[str, Any]]) -> None:
    st.dataframe(
        rows,
        hide_index=True,
        width="stretch",
        column_order=[
            "Besoin",
            "Plateforme",
            "Date cible",
            "Jours de retard",
            "Statut",
            "Publications en attente",
            "Suivi amont",
            "Politique d'attente",
        ],
        column_config={
            "Date cible": st.column_config.DateColumn("Date cible", format="DD/MM/YYYY"),
            "Suivi amont": st.column_config.LinkColumn(
                "Suivi amont", display_text=r"https://github\.com/(.*)"
            ),
            "Jours de retard": st.column_config.NumberColumn("Jours de retard", format="%d j"),
        },
    )


def staff_form(gaps: list[dict[str, Any]], titles: dict[str, str]) -> None:
    """Slip a target date, mark delivered or dropped, with the reason the history will keep."""
    st.subheader("Modifier un écart")
    by_id = {str(g["id"]): g for g in gaps if g.get("id")}
    if not by_id:
        return
    gap_id = st.selectbox(
        "Écart",
        list(by_id),
        format_func=lambda i: (
            f"{by_id[i].get('need_title') or by_id[i].get('need')} — "
            f"{labels.target_name(str(by_id[i].get('platform')), titles)}"
        ),
        key="gap_edit_id",
    )
    gap = by_id[gap_id]
    errors = (st.session_state.get(KEY_GAP_ERRORS) or {}).get(gap_id) or {}
    statuses = list(labels.GAP_STATUSES)
    interims = list(labels.INTERIM)
    with st.form(f"gap_form_{gap_id}"):
        current_date = labels.parse_date(gap.get("target_date"))
        target_date = st.date_input(
            "Date cible",
            value=current_date,
            format="DD/MM/YYYY",
            help="Un report est enregistré comme glissement.",
        )
        status = st.selectbox(
            "Statut",
            statuses,
            index=statuses.index(str(gap.get("status"))) if gap.get("status") in statuses else 0,
            format_func=lambda s: labels.label(labels.GAP_STATUSES, s),
            help="« Livré » fait migrer les publications en attente vers la plateforme nationale.",
        )
        upstream = st.text_input(
            "Suivi amont", value=str(gap.get("upstream") or ""), help="Ex. IGNF/cartes.gouv.fr#790"
        )
        interim = st.selectbox(
            "Politique d'attente",
            interims,
            index=interims.index(str(gap.get("interim"))) if gap.get("interim") in interims else 0,
            format_func=lambda s: labels.label(labels.INTERIM, s),
        )
        reason = st.text_area("Motif (obligatoire)", help="Conservé dans l'historique de l'écart.")
        for name, messages in errors.items():
            for message in messages:
                st.markdown(f":red[:material/error: {ui.escape(name)} : {ui.escape(message)}]")
        submitted = st.form_submit_button("Enregistrer", type="primary", icon=":material/save:")
    if not submitted:
        return
    changes: dict[str, Any] = {"reason": reason.strip()}
    if isinstance(target_date, date) and target_date != current_date:
        changes["target_date"] = target_date.isoformat()
    if status != gap.get("status"):
        changes["status"] = status
    if upstream.strip() != str(gap.get("upstream") or ""):
        changes["upstream"] = upstream.strip() or None
    if interim != gap.get("interim"):
        changes["interim"] = interim
    if len(changes) == 1:
        st.info("Rien n'a changé.")
        return
    if not changes["reason"]:
        st.session_state[KEY_GAP_ERRORS] = {gap_id: {"motif": ["indiquez pourquoi l'écart change"]}}
        st.rerun()
    try:
        session.client().update_gap(gap_id, changes)
    except ApiError as error:
        if error.status == 422 and error.fields:
            st.session_state[KEY_GAP_ERRORS] = {gap_id: error.fields}
            st.rerun()
        session.show_error(error, "Modification refusée")
        return
    st.session_state.pop(KEY_GAP_ERRORS, None)
    gap_details.clear()
    st.toast("Écart mis à jour.")
    st.rerun()


def main() -> None:
    ui.require_login()
    st.title("Écarts nationaux")
    st.caption(
        "Besoins de catégorie B : ce que data.gouv.fr ou la Géoplateforme feront après un développement "
        "convenu, avec sa date cible. En attendant, la politique d'attente de chaque besoin s'applique."
    )
    titles = session.target_titles()
    client = session.client()
    try:
        gaps = client.gaps()
    except ApiError as error:
        if not error.unavailable:
            session.show_error(error)
            return
        session.coming_soon("Registre des écarts")
        try:
            planned = data.planned_gaps(session.categories())
        except ApiError:
            return
        st.markdown("**Écarts prévus par le catalogue des besoins** (dates cibles de categories.yaml)")
        gap_table(data.gap_rows(planned, titles))
        points, slips = data.gap_timeline_rows(planned, titles)
        if points:
            st.altair_chart(charts.gaps_timeline(points, slips, data.today().isoformat()), width="stretch")
        return

    if not gaps:
        st.info("Aucun écart national enregistré.")
        return
    counts = data.gap_counts(gaps)
    a, b, c, d = st.columns(4)
    a.metric("Ouverts", counts["open"])
    b.metric("En retard", counts["late"])
    c.metric("Livrés", counts["delivered"])
    d.metric("Abandonnés", counts["dropped"])
    rows = data.gap_rows(gaps, titles)
    gap_table(rows)
    hints = [r for r in rows if r["Semble livré"] and r["Statut"] == labels.GAP_STATUSES["open"]]
    for row in hints:
        st.info(
            f"« {row['Besoin']} » sur {row['Plateforme']} semble livré d'après la sonde : vérifiez, puis "
            "marquez-le livré."
        )

    try:
        details = gap_details(
            session.api_url(), session.token(), tuple(str(g["id"]) for g in gaps if g.get("id"))
        )
    except ApiError as error:
        session.show_error(error, "Historique des écarts")
        details = {}
    merged = [{**g, **details.get(str(g.get("id")), {})} for g in gaps]
    points, slips = data.gap_timeline_rows(merged, titles)
    if points:
        st.altair_chart(charts.gaps_timeline(points, slips, data.today().isoformat()), width="stretch")
    if slips:
        st.markdown("**Glissements enregistrés**")
        st.dataframe(slips, hide_index=True, width="stretch")

    with st.expander("Publications en attente d'un écart"):
        waiting = [
            {
                "Écart": data.gap_name(g, titles),
                "Publication": p.get("title"),
                "Organisation": p.get("organization"),
                "Servie par": labels.target_name(str(p.get("served_by")), titles)
                if p.get("served_by")
                else "—",
            }
            for g in merged
            for p in g.get("publications") or []
        ]
        if waiting:
            st.dataframe(waiting, hide_index=True, width="stretch")
        else:
            st.caption("Aucune publication n'attend un écart.")

    if session.is_staff():
        staff_form(gaps, titles)
    else:
        ui.read_only_notice()


main()
