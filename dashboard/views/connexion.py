"""Page *Connexion*: log in (OIDC through st.login, or a local token), and see who is logged in."""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard import labels, session, ui
from dashboard.client import ApiError


def show_identity(me: dict[str, Any]) -> None:
    name = me.get("username") or me.get("email") or me.get("subject")
    st.success(f"Connecté en tant que **{ui.escape(name)}**.", icon=":material/verified_user:")
    roles = [labels.label(labels.ROLES, r) for r in me.get("roles") or []]
    organizations = list(me.get("organizations") or [])
    rows = {
        "Identifiant": str(me.get("subject") or "—"),
        "Nom d'utilisateur": str(me.get("username") or "—"),
        "Adresse électronique": str(me.get("email") or "—"),
        "Rôles": ", ".join(roles) or "aucun",
        "Organisations": ", ".join(organizations) or "aucune",
        "Émetteur du jeton": str(me.get("issuer") or "—"),
        "Connexion par": "SSO (OIDC)"
        if st.session_state.get(session.KEY_SOURCE) == "oidc"
        else "jeton local",
    }
    st.markdown("\n".join(f"- **{key}** : {ui.escape(value)}" for key, value in rows.items()))
    if not session.can_write():
        st.info(
            "Votre compte a un accès en **lecture seule** : vous consultez les tableaux de bord et les "
            "statistiques, sans publier ni modifier.",
            icon=":material/visibility:",
        )
    st.markdown("**Pages**")
    if session.can_write():
        st.page_link("views/publier.py", label="Publier un jeu de données", icon=":material/upload:")
    st.page_link("views/vue_ensemble.py", label="Vue d'ensemble", icon=":material/dashboard:")


def local_token_form() -> None:
    with st.form("local_token", clear_on_submit=True):
        raw = st.text_input(
            "Jeton d'accès",
            type="password",
            help=(
                "Un jeton émis par `broker token issue --org SLUG --role ROLE` (installation sans SSO). "
                "Il reste dans cette session du navigateur et n'est jamais affiché."
            ),
        )
        submitted = st.form_submit_button("Se connecter", type="primary", icon=":material/key:")
    if submitted:
        try:
            session.login_with_token(raw)
        except ApiError as error:
            st.error(f"Connexion refusée : {error.message}", icon=":material/block:")
            return
        st.rerun()


def main() -> None:
    st.title("Connexion")
    st.caption(f"Broker : {session.api_url()}")
    notice = st.session_state.pop(session.KEY_NOTICE, None)
    if notice:
        st.warning(str(notice), icon=":material/warning:")
    me = session.viewer()
    if me is not None:
        show_identity(me)
        if st.button("Se déconnecter", icon=":material/logout:"):
            from_oidc = st.session_state.get(session.KEY_SOURCE) == "oidc"
            session.forget_login()
            if from_oidc:
                st.logout()
            st.rerun()
        return

    st.write(
        "Le tableau de bord s'adresse aux **producteurs** (publier et suivre leurs jeux de données), à "
        "**l'équipe OPenIG** (écarts nationaux, livraisons, catégories) et aux **membres du conseil** "
        "(progression de la migration, en lecture seule). Vos droits sont ceux de votre compte sur le broker."
    )
    if session.oidc_configured():
        st.subheader("Compte OPenIG")
        if st.button("Se connecter avec le SSO d'OPenIG", type="primary", icon=":material/login:"):
            st.login()
        with st.expander("Ou avec un jeton local"):
            local_token_form()
    else:
        st.subheader("Jeton local")
        st.caption(
            "Ce broker n'a pas de SSO configuré pour le tableau de bord (voir docs/auth.md) : "
            "connectez-vous avec un jeton local."
        )
        local_token_form()


main()
