"""Tableau de bord du broker OPenIG: the Streamlit entry point (``streamlit run dashboard/app.py``).

It reads and writes the broker over HTTP only (``BROKER_API_URL``), with the viewer's own token, so the API
enforces every right; this file only picks which pages a viewer sees.
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run dashboard/app.py` puts dashboard/ itself on sys.path, not the repository; the pages import
# the package as `dashboard.…`, so make its parent importable even when the project is not pip-installed.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import streamlit as st  # noqa: E402

from dashboard import labels, session  # noqa: E402

VIEWS = Path(__file__).resolve().parent / "views"
# A local file, not a :material/…: icon: Streamlit fetches those favicons from Google's font CDN, and the
# dashboard must work on a closed network.
FAVICON = Path(__file__).resolve().parent / "assets" / "favicon.svg"


def _page(file: str, title: str, icon: str, url_path: str, *, default: bool = False) -> st.Page:
    return st.Page(str(VIEWS / file), title=title, icon=icon, url_path=url_path, default=default)


def pages() -> dict[str, list[st.Page]]:
    """The pages this viewer may open: *Connexion* alone before login; never *Publier* for board members."""
    if session.viewer() is None:
        return {"": [_page("connexion.py", "Connexion", ":material/login:", "connexion", default=True)]}
    sections: dict[str, list[st.Page]] = {}
    if session.can_write():
        producer = [_page("publier.py", "Publier", ":material/upload:", "publier")]
        if session.organizations():
            producer.append(
                _page("mes_publications.py", "Mes publications", ":material/folder_open:", "mes-publications")
            )
        sections["Producteurs"] = producer
    sections["Pilotage"] = [
        _page("vue_ensemble.py", "Vue d'ensemble", ":material/dashboard:", "vue-ensemble", default=True),
        _page("ecarts.py", "Écarts nationaux", ":material/event_upcoming:", "ecarts"),
        _page("migration.py", "Migration", ":material/trending_up:", "migration"),
        _page("publications.py", "Publications", ":material/local_shipping:", "publications"),
        _page("categories.py", "Catégories", ":material/grid_on:", "categories"),
        _page("rapport.py", "Rapport", ":material/description:", "rapport"),
    ]
    sections["Compte"] = [_page("connexion.py", "Connexion", ":material/account_circle:", "connexion")]
    return sections


def sidebar_identity() -> None:
    me = session.viewer()
    with st.sidebar:
        st.markdown("**Broker de publication OPenIG**")
        if me is None:
            st.caption("Non connecté.")
            return
        name = me.get("username") or me.get("email") or me.get("subject")
        roles = ", ".join(labels.label(labels.ROLES, r) for r in me.get("roles") or []) or "aucun rôle"
        st.caption(f":material/person: {name} — {roles}")
        if me.get("organizations"):
            st.caption(":material/apartment: " + ", ".join(me["organizations"]))
        if not session.can_write():
            st.caption(":material/visibility: Lecture seule")


def main() -> None:
    st.set_page_config(
        page_title="Broker OPenIG — tableau de bord",
        page_icon=str(FAVICON) if FAVICON.is_file() else None,
        layout="wide",
        menu_items={"About": "Tableau de bord du broker de publication d'OPenIG (Occitanie)."},
    )
    session.sync_oidc()
    navigation = st.navigation(pages())
    sidebar_identity()
    navigation.run()


main()
