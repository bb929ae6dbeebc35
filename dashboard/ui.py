"""Small Streamlit pieces shared by the pages: login guard, badges, status lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import streamlit as st

from dashboard import labels, session

_TONE = {
    "success": ("green", ":material/check_circle:"),
    "info": ("blue", ":material/info:"),
    "warning": ("orange", ":material/schedule:"),
    "error": ("red", ":material/error:"),
}


def require_login() -> dict[str, Any]:
    """The viewer; stops the page with a link to *Connexion* when nobody is logged in."""
    me = session.viewer()
    if me is None:
        st.warning("Connectez-vous d'abord pour voir cette page.", icon=":material/lock:")
        st.page_link("views/connexion.py", label="Aller à la connexion", icon=":material/login:")
        st.stop()
    return me


def category_badge(category: Any) -> str:
    """Markdown for a coloured A/B/C badge."""
    if not category:
        return ":gray-badge[?]"
    letter = str(category)
    colour = labels.CATEGORY_COLOUR.get(letter, "gray")
    return f":{colour}-badge[{letter}]"


def escape(text: Any) -> str:
    """Text shown inside Streamlit markdown without being read as markup."""
    out = str(text)
    for char in ("\\", "[", "]", "*", "_", "`", "$", "<", ">", "#", "|", ":"):
        out = out.replace(char, "\\" + char)
    return out


def status_markdown(text: str, tone: str) -> str:
    colour, icon = _TONE.get(tone, _TONE["info"])
    return f"{icon} :{colour}[{escape(text)}]"


def delivery_lines(
    deliveries: list[Mapping[str, Any]],
    need_titles: Mapping[str, str],
    titles: Mapping[str, str] | None = None,
) -> None:
    """One line per target: its status in plain words, then its links."""
    if not deliveries:
        st.caption("Aucune livraison.")
        return
    for delivery in deliveries:
        text, tone = labels.delivery_line(delivery, need_titles, titles)
        st.markdown(status_markdown(text, tone))
        for url in delivery.get("urls") or []:
            st.markdown(f"&nbsp;&nbsp;&nbsp;&nbsp;:material/link: [{escape(url)}]({url})")


def read_only_notice() -> None:
    if not session.can_write():
        st.caption(":material/visibility: Accès en lecture seule.")
