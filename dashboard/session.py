"""Who is looking: login state, the viewer's token and roles, and the API client built from them.

Two ways in: OpenID Connect through Streamlit's ``st.login`` when ``[auth]`` secrets exist (docs/auth.md),
or a token from ``broker token issue`` pasted on the *Connexion* page. Either way the token is checked with
``GET /api/v1/auth/me``, and every call carries it: the API decides what the viewer may do.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from dashboard.client import ApiError, BrokerClient, api_url_from_env
from dashboard.labels import TARGET_NAMES

KEY_API_URL = "api_url"  # tests and operators may point the dashboard elsewhere through session state
KEY_TOKEN = "auth_token"
KEY_ME = "auth_me"
KEY_SOURCE = "auth_source"  # "local" or "oidc"
KEY_NOTICE = "auth_notice"  # a message for the Connexion page after a forced logout

WRITER_ROLES = {"producer", "referent", "staff"}


def api_url() -> str:
    return str(st.session_state.get(KEY_API_URL) or api_url_from_env())


def oidc_configured() -> bool:
    """True when the secrets hold an ``[auth]`` section (written by ``streamlit_auth_secrets()``)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all: Streamlit raises rather than answer False
        return False


def token() -> str | None:
    value = st.session_state.get(KEY_TOKEN)
    return str(value) if value else None


def client() -> BrokerClient:
    return BrokerClient(api_url(), token())


def viewer() -> dict[str, Any] | None:
    me = st.session_state.get(KEY_ME)
    return me if isinstance(me, dict) else None


def roles() -> set[str]:
    me = viewer() or {}
    return set(me.get("roles") or [])


def organizations() -> list[str]:
    me = viewer() or {}
    return list(me.get("organizations") or [])


def can_write() -> bool:
    """Producers, referents and staff publish; board members only read (the API refuses them anyway)."""
    return bool(roles() & WRITER_ROLES)


def is_staff() -> bool:
    return "staff" in roles()


def login_with_token(raw_token: str, source: str = "local") -> dict[str, Any]:
    """Check ``raw_token`` with ``/auth/me`` and keep it for this browser session; raises ApiError."""
    candidate = raw_token.strip()
    if candidate.lower().startswith("bearer "):
        candidate = candidate[7:].strip()
    if not candidate:
        raise ApiError("Collez un jeton d'accès.", code="empty")
    me = BrokerClient(api_url(), candidate).me()
    st.session_state[KEY_TOKEN] = candidate
    st.session_state[KEY_ME] = me
    st.session_state[KEY_SOURCE] = source
    st.session_state.pop(KEY_NOTICE, None)
    return me


def forget_login(notice: str | None = None) -> None:
    for key in (KEY_TOKEN, KEY_ME, KEY_SOURCE):
        st.session_state.pop(key, None)
    if notice:
        st.session_state[KEY_NOTICE] = notice
    st.cache_data.clear()


def sync_oidc() -> None:
    """After ``st.login``, use the provider access token (needs ``expose_tokens = ["access"]``)."""
    if not oidc_configured():
        return
    try:
        logged_in = bool(st.user.is_logged_in)
    except Exception:  # st.user unavailable outside a session
        return
    if not logged_in:
        if st.session_state.get(KEY_SOURCE) == "oidc":
            forget_login()
        return
    try:
        access = st.user.tokens.get("access")
    except Exception:
        access = None
    if not access:
        st.session_state[KEY_NOTICE] = (
            "Connecté au SSO, mais le jeton d'accès n'est pas transmis au tableau de bord : ajoutez "
            'expose_tokens = ["access"] à la section [auth] des secrets (docs/auth.md).'
        )
        return
    if st.session_state.get(KEY_TOKEN) == access and viewer() is not None:
        return
    try:
        login_with_token(str(access), source="oidc")
    except ApiError as error:
        st.session_state[KEY_NOTICE] = f"Le broker refuse votre connexion SSO : {error.message}"


def show_error(error: ApiError, context: str | None = None) -> None:
    """Show an API error; an expired or refused token logs the viewer out so they can log in again."""
    text = f"{context} : {error.message}" if context else error.message
    if error.status == 401:
        forget_login(error.message)
        st.error(text)
        st.page_link("views/connexion.py", label="Se reconnecter", icon=":material/login:")
        return
    if error.unavailable:
        coming_soon(context)
        return
    st.error(text)


def coming_soon(what: str | None = None) -> None:
    subject = f"{what} : " if what else ""
    st.info(
        f"{subject}bientôt disponible. Ce broker ne propose pas encore cette donnée ; la page se remplira "
        "dès qu'il la publiera.",
        icon=":material/construction:",
    )


# -------------------------------------------------------------------------- reference data (cached)


@st.cache_data(ttl=300, show_spinner=False)
def _categories(base_url: str, bearer: str | None) -> dict[str, Any]:
    return BrokerClient(base_url, bearer).categories()


@st.cache_data(ttl=300, show_spinner=False)
def _targets(base_url: str, bearer: str | None) -> list[dict[str, Any]]:
    return BrokerClient(base_url, bearer).targets()


@st.cache_data(ttl=60, show_spinner=False)
def _organizations(base_url: str, bearer: str | None) -> list[dict[str, Any]]:
    return BrokerClient(base_url, bearer).organizations()


@st.cache_data(ttl=300, show_spinner=False)
def _manifest_schema(base_url: str, bearer: str | None) -> dict[str, Any] | None:
    try:
        return BrokerClient(base_url, bearer).manifest_schema()
    except ApiError:
        return None  # older broker: the form uses its own copy of the lists


def categories() -> dict[str, Any]:
    """The needs catalogue in force; raises ApiError."""
    return _categories(api_url(), token())


def need_titles() -> dict[str, str]:
    try:
        needs = categories().get("needs") or {}
    except ApiError:
        return {}
    return {str(k): str(v.get("title") or k) for k, v in needs.items() if isinstance(v, dict)}


def targets() -> list[dict[str, Any]]:
    try:
        return _targets(api_url(), token())
    except ApiError:
        return []


def target_titles() -> dict[str, str]:
    titles = dict(TARGET_NAMES)
    for target in targets():
        if target.get("name") and target.get("title"):
            titles[str(target["name"])] = str(target["title"])
    return titles


def all_organizations() -> list[dict[str, Any]]:
    try:
        return _organizations(api_url(), token())
    except ApiError:
        return []


def manifest_schema() -> dict[str, Any] | None:
    return _manifest_schema(api_url(), token())
