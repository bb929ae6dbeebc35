"""The access-request page for people: ``GET /acces/{publication_id}``, the address data.gouv.fr shows on
a restricted dataset (``authorization_request_url``).

Plain HTML in French, no JavaScript. The visitor logs in either through OPenIG's SSO (authorization code +
PKCE with Authlib, when an issuer and the login client are configured) or, in the embedded default without
SSO, by pasting a local token (``broker token issue``). Either way the access token is checked by the very
validation path the API uses, and kept in a signed, HttpOnly, SameSite=Lax cookie limited to ``/acces``.
Every form carries a CSRF token bound to that cookie.

Mount with ``app.include_router(broker.access.pages.router)``. It needs no middleware: the cookie is
handled here (:class:`PageSession`), so the JSON API never sees a session.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import secrets
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.templating import Jinja2Templates

from broker.access import repository, service
from broker.access.models import REASON_MAX_LENGTH, AccessRequest
from broker.auth.dependencies import ValidatorDep
from broker.auth.principal import Principal
from broker.auth.service import principal_from_token
from broker.auth.settings import AuthSettings, get_auth_settings
from broker.auth.validation import TokenValidator
from broker.config import get_settings
from broker.db import SessionDep, session_scope
from broker.errors import BrokerError, Forbidden, Unauthorized
from regional_store.service import can_read, download_url

logger = logging.getLogger(__name__)

router = APIRouter(tags=["pages"], include_in_schema=False)

BASE_PATH = "/acces"
COOKIE_NAME = "broker_acces"
#: A visitor is logged out of the page after this long, whatever their token says.
SESSION_MAX_AGE_SECONDS = 8 * 3600
#: Browsers drop cookies beyond 4096 bytes (RFC 6265 §6.1 asks for at least that much).
COOKIE_MAX_BYTES = 4000
SESSION_KEY_FILE = "page-session.key"
OIDC_CLIENT_NAME = "openig"

templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))

_MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def french_date(value: datetime | None) -> str:
    """« 3 décembre 2026 à 14 h 05 », in Paris time (no locale needed on the server)."""
    if value is None:
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    try:
        from zoneinfo import ZoneInfo

        value = value.astimezone(ZoneInfo("Europe/Paris"))
    except Exception:  # no time-zone database on this machine: UTC, said so
        return f"{value.day} {_MONTHS[value.month - 1]} {value.year} à {value:%H} h {value:%M} (UTC)"
    return f"{value.day} {_MONTHS[value.month - 1]} {value.year} à {value:%H} h {value:%M}"


def human_size(size: int | None) -> str:
    if size is None:
        return ""
    amount = float(size)
    for unit in ("octets", "Ko", "Mo", "Go"):
        if amount < 1024 or unit == "Go":
            return f"{amount:.0f} {unit}" if unit == "octets" else f"{amount:.1f} {unit}".replace(".", ",")
        amount /= 1024
    return str(size)  # pragma: no cover - the loop always returns


templates.env.filters["french_date"] = french_date
templates.env.filters["human_size"] = human_size

#: No script, no frame, forms only to ourselves; inline CSS only (one <style> block in the layout).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # The page address names a publication; the SSO and file hosts need not learn it.
    "Referrer-Policy": "no-referrer",
    # Pages show who is logged in and their requests: never cached by a shared proxy.
    "Cache-Control": "no-store",
}


# --------------------------------------------------------------------------------------------- cookie


def _secret_file(data_dir: Path) -> Path:
    return data_dir / "keys" / SESSION_KEY_FILE


def _create_secret_file(path: Path) -> None:
    """A random key written 0600 and published with ``os.link`` (atomic, never replaces): two processes
    starting at once end up with the same key, as for the token signing key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        path.parent.chmod(0o700)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".page-session-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_urlsafe(48))
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(tmp_name, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)


def session_secret() -> str:
    """``BROKER_SECRET_KEY`` when set (required when several hosts serve the pages), else a key kept in
    the data directory. The serializer's salt keeps this use apart from any other use of the same key."""
    settings = get_settings()
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    return _file_secret(str(_secret_file(settings.data_dir)))


@functools.lru_cache(maxsize=8)
def _file_secret(name: str) -> str:
    path = Path(name)
    if not path.exists():
        _create_secret_file(path)
    return path.read_text(encoding="utf-8").strip()


@functools.lru_cache(maxsize=4)
def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt="broker.access.page-session")


class CsrfError(Exception):
    """A form came without the token of the visitor's session (or with another one)."""


@dataclass
class PageSession:
    """The visitor's signed cookie: a CSRF token, the access token once logged in, a one-shot message,
    and Authlib's state while an SSO login is under way. Signed (itsdangerous), not encrypted: it holds
    nothing the visitor may not see, since the access token is theirs."""

    data: dict[str, Any] = field(default_factory=dict)
    modified: bool = False

    @classmethod
    def load(cls, request: Request) -> PageSession:
        raw = request.cookies.get(COOKIE_NAME)
        if not raw:
            return cls()
        try:
            data = _serializer(session_secret()).loads(raw, max_age=SESSION_MAX_AGE_SECONDS)
        except BadSignature:  # expired, tampered with, or signed by another key: start afresh
            return cls(modified=True)
        return cls(data if isinstance(data, dict) else {})

    def csrf_token(self) -> str:
        token = self.data.get("csrf")
        if not isinstance(token, str):
            token = secrets.token_urlsafe(32)
            self.data["csrf"] = token
            self.modified = True
        return token

    def check_csrf(self, submitted: str | None) -> None:
        expected = self.data.get("csrf")
        if not isinstance(expected, str) or not submitted or not secrets.compare_digest(expected, submitted):
            raise CsrfError

    @property
    def token(self) -> str | None:
        value = self.data.get("token")
        return value if isinstance(value, str) else None

    def log_in(self, token: str) -> None:
        # A new CSRF token at login: whatever was issued before authentication is not trusted after it.
        self.data = {"csrf": secrets.token_urlsafe(32), "token": token}
        self.modified = True

    def log_out(self) -> None:
        self.data = {"csrf": secrets.token_urlsafe(32)}
        self.modified = True

    def flash(self, message: str) -> None:
        self.data["flash"] = message
        self.modified = True

    def pop_flash(self) -> str | None:
        message = self.data.pop("flash", None)
        if message is not None:
            self.modified = True
        return message if isinstance(message, str) else None

    def encoded(self) -> str:
        return _serializer(session_secret()).dumps(self.data)

    def save(self, response: Response) -> Response:
        if not self.modified:
            return response
        value = self.encoded()
        if len(value) > COOKIE_MAX_BYTES:
            # Should not happen: log_in checks the size first. Better no cookie than a truncated one.
            logger.error("page session cookie too large (%d bytes); not sent", len(value))
            return response
        response.set_cookie(
            COOKIE_NAME,
            value,
            max_age=SESSION_MAX_AGE_SECONDS,
            path=BASE_PATH,
            httponly=True,
            samesite="lax",
            secure=get_settings().public_url.startswith("https://"),
        )
        return response


# --------------------------------------------------------------------------------------------- SSO


def oidc_login_configured(settings: AuthSettings | None = None) -> bool:
    """The SSO login needs the issuer and the login client's secret; otherwise the page offers to paste a
    local token (the embedded default)."""
    settings = settings or get_auth_settings()
    return bool(settings.oidc_issuer and settings.dashboard_oidc_client_secret is not None)


@functools.lru_cache(maxsize=4)
def _oauth_client(discovery_url: str, client_id: str, client_secret: str, timeout: float) -> Any:
    from authlib.integrations.starlette_client import OAuth

    oauth = OAuth()
    return oauth.register(
        OIDC_CLIENT_NAME,
        server_metadata_url=discovery_url,
        client_id=client_id,
        client_secret=client_secret,
        client_kwargs={
            "scope": "openid profile email",
            # PKCE (RFC 7636) with S256: Authlib makes the verifier and keeps it with the state.
            "code_challenge_method": "S256",
            "timeout": timeout,
        },
    )


def oauth_client() -> Any:
    settings = get_auth_settings()
    assert settings.discovery_url and settings.dashboard_oidc_client_secret is not None
    return _oauth_client(
        settings.discovery_url,
        settings.dashboard_oidc_client_id,
        settings.dashboard_oidc_client_secret.get_secret_value(),
        settings.oidc_http_timeout_seconds,
    )


def callback_url() -> str:
    """Register this address as a redirect URI of the login client in Keycloak."""
    return f"{get_settings().public_url.rstrip('/')}{BASE_PATH}/callback"


# --------------------------------------------------------------------------------------------- helpers


def _page_path(publication_id: str) -> str:
    return f"{BASE_PATH}/{quote(publication_id, safe='')}"


def _valid_id(value: str | None) -> str | None:
    """Publication ids are UUIDs; anything else never reaches a redirect (no open redirect)."""
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def _render(
    request: Request, page: PageSession, name: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    context = {"csrf": page.csrf_token(), "base_path": BASE_PATH, **context}
    response = templates.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return page.save(response)


def _redirect(page: PageSession, location: str, status_code: int = 303) -> Response:
    response = RedirectResponse(location, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return page.save(response)


def _not_found(
    request: Request,
    page: PageSession,
    *,
    open_files: list[dict[str, Any]] | None = None,
    title: str | None = None,
) -> Response:
    return _render(
        request, page, "not_found.html", {"open_files": open_files, "title": title}, status_code=404
    )


def _error(
    request: Request, page: PageSession, message: str, status_code: int, back: str | None = None
) -> Response:
    return _render(
        request,
        page,
        "message.html",
        {"message": message, "back": back, "failed": True},
        status_code=status_code,
    )


def _done(request: Request, page: PageSession, message: str, back: str | None) -> Response:
    """Where a login or logout lands when it does not know the visitor's publication (a lost cookie)."""
    if back:
        page.flash(message)
        return _redirect(page, back)
    return _render(request, page, "message.html", {"message": message, "back": None, "failed": False})


def _visitor(
    page: PageSession, session: Session, validator: TokenValidator
) -> tuple[Principal | None, str | None]:
    """The logged-in visitor, checked now by the API's validation path; an expired or revoked token logs
    the visitor out with a message rather than failing the page."""
    token = page.token
    if token is None:
        return None, None
    try:
        return principal_from_token(token, session, validator), None
    except Unauthorized:
        page.log_out()
        return None, "Votre session a expiré : reconnectez-vous pour continuer."
    except Forbidden as exc:
        page.log_out()
        return None, exc.detail
    except BrokerError as exc:  # the SSO's keys are unreachable: keep the session, say so on the page
        return None, exc.detail


def _files(
    session: Session, publication_id: str, principal: Principal | None
) -> tuple[bool, list[dict[str, Any]]]:
    """Whether the regional store lets this visitor read now, and its files with their download links."""
    record = repository.regional_record(session, publication_id)
    if record is None or record.state != "present" or not can_read(record, principal):
        return False, []
    public_url = get_settings().public_url
    return True, [
        {
            "name": row.name,
            "title": row.title or row.name,
            "size": row.size,
            "format": row.format,
            "url": download_url(public_url, publication_id, row.name) if row.sha256 else row.url,
        }
        for row in repository.regional_files(session, publication_id)
    ]


def _page(
    request: Request,
    page: PageSession,
    session: Session,
    validator: TokenValidator,
    publication_id: str,
    *,
    errors: dict[str, str] | None = None,
    reason: str = "",
    status_code: int = 200,
) -> Response:
    """The page of a restricted publication, for whoever is looking at it."""
    valid = _valid_id(publication_id)
    found = None
    if valid is not None:
        with contextlib.suppress(BrokerError):
            found = service.target(session, valid)
    if found is None or found.publication.state == "withdrawn":
        return _not_found(request, page)
    if found.publication.access != "restricted":
        # An open publication needs no request: say so, with its files, under a 404 (this address only
        # exists for restricted data, and link checkers should learn that).
        _, files = _files(session, found.publication.id, None)
        return _not_found(request, page, open_files=files, title=found.publication.title)

    principal, problem = _visitor(page, session, validator)
    flash = page.pop_flash()
    context: dict[str, Any] = {
        "publication": found.publication,
        "description": found.manifest.get("description") or "",
        "organization": found.organization,
        "visitor": principal,
        "flash": flash,
        "problem": problem,
        "errors": errors or {},
        "reason": reason,
        "reason_max": REASON_MAX_LENGTH,
        "oidc": oidc_login_configured(),
        "has_access": False,
        "readable_now": False,
        "files": [],
        "latest": None,
    }
    if principal is not None:
        context["has_access"] = service.has_access(principal, found.organization.slug, found.access)
        context["readable_now"], context["files"] = _files(session, found.publication.id, principal)
        latest: AccessRequest | None = service.latest_request(
            session, found.publication.id, principal.subject
        )
        context["latest"] = latest
    return _render(request, page, "publication.html", context, status_code=status_code)


# --------------------------------------------------------------------------------------------- routes
# The fixed paths come first: "/acces/login" must not be read as the page of a publication "login".

FormText = Annotated[str, Form()]


@router.get(f"{BASE_PATH}/login")
async def login(request: Request, publication: str = "") -> Response:
    """Start the SSO login (authorization code + PKCE); without SSO, back to the page and its token form."""
    page = PageSession.load(request)
    target = _valid_id(publication)
    back = _page_path(target) if target else None
    if not oidc_login_configured():
        return _redirect(page, back) if back else _not_found(request, page)
    if target:
        page.data["next"] = target
    # Authlib keeps its state (state, nonce, PKCE verifier) in ``request.session``: lend it our cookie.
    request.scope["session"] = page.data
    try:
        response = await oauth_client().authorize_redirect(request, callback_url())
    except Exception:
        logger.exception("SSO login could not start (discovery of %s)", get_auth_settings().oidc_issuer)
        return _error(
            request,
            page,
            "Le service de connexion d'OPenIG ne répond pas ; réessayez dans un moment.",
            503,
            back,
        )
    page.modified = True
    response.headers.update(SECURITY_HEADERS)
    return page.save(response)


def _check_token(token: str, validator: TokenValidator) -> Principal:
    with session_scope() as session:
        return principal_from_token(token, session, validator)


def _fits(page: PageSession, token: str) -> bool:
    trial = PageSession(dict(page.data))
    trial.log_in(token)
    return len(trial.encoded()) <= COOKIE_MAX_BYTES


@router.get(f"{BASE_PATH}/callback")
async def callback(request: Request, validator: ValidatorDep) -> Response:
    """The SSO sends the visitor back here with a code; exchange it (with the PKCE verifier) for tokens."""
    page = PageSession.load(request)
    target = _valid_id(page.data.get("next"))
    back = _page_path(target) if target else None
    if not oidc_login_configured():
        return _not_found(request, page)
    from authlib.integrations.base_client.errors import OAuthError

    request.scope["session"] = page.data
    try:
        tokens = await oauth_client().authorize_access_token(request)
    except OAuthError as exc:
        # Do not echo the provider's description: it may carry request details. The log keeps it.
        logger.warning("SSO callback refused: %s %s", exc.error, exc.description)
        page.modified = True
        return _error(
            request, page, "La connexion n'a pas abouti ; recommencez depuis la page de la donnée.", 400, back
        )
    access_token = tokens.get("access_token")
    if not isinstance(access_token, str):
        return _error(request, page, "Le service de connexion n'a pas fourni de jeton d'accès.", 502, back)
    try:
        principal = await run_in_threadpool(_check_token, access_token, validator)
    except BrokerError as exc:
        logger.warning("SSO login: token refused (%s)", exc.code)
        page.log_out()
        return _error(request, page, exc.detail, exc.status_code if exc.status_code != 401 else 400, back)
    if not _fits(page, access_token):
        page.log_out()
        return _error(
            request,
            page,
            "Votre jeton d'accès est trop volumineux pour être conservé par le navigateur ; "
            "signalez-le à l'équipe OPenIG.",
            400,
            back,
        )
    page.log_in(access_token)
    logger.info("page login through SSO: %s", principal.subject)
    return _done(request, page, f"Vous êtes connecté·e en tant que {principal.display_name}.", back)


@router.post(f"{BASE_PATH}/token")
def paste_token(
    request: Request,
    session: SessionDep,
    validator: ValidatorDep,
    csrf: FormText = "",
    token: FormText = "",
    publication: FormText = "",
) -> Response:
    """Log in with a pasted local token (embedded default, no SSO): checked like any bearer token."""
    page = PageSession.load(request)
    target = _valid_id(publication)
    back = _page_path(target) if target else None
    if oidc_login_configured():
        return _not_found(request, page)
    try:
        page.check_csrf(csrf)
    except CsrfError:
        return _expired_form(request, page, back)
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    error = None
    if not token:
        error = "Collez le jeton d'accès que l'équipe OPenIG vous a donné."
    elif not _fits(page, token):
        error = "Ce jeton est trop long pour être conservé par le navigateur."
    else:
        try:
            principal = principal_from_token(token, session, validator)
        except BrokerError as exc:
            error = f"Ce jeton n'est pas accepté : {exc.detail}"
    if error is not None:
        if target is None:
            return _error(request, page, error, 400)
        return _page(request, page, session, validator, target, errors={"token": error}, status_code=400)
    page.log_in(token)
    return _done(request, page, f"Vous êtes connecté·e en tant que {principal.display_name}.", back)


@router.post(f"{BASE_PATH}/logout")
def logout(request: Request, csrf: FormText = "", publication: FormText = "") -> Response:
    page = PageSession.load(request)
    target = _valid_id(publication)
    back = _page_path(target) if target else None
    try:
        page.check_csrf(csrf)
    except CsrfError:
        return _expired_form(request, page, back)
    page.log_out()
    return _done(request, page, "Vous êtes déconnecté·e de cette page.", back)


def _expired_form(request: Request, page: PageSession, back: str | None) -> Response:
    # 400 rather than 403: nothing is forbidden to this visitor; the form is stale (or forged), and
    # reloading the page gives a fresh one.
    return _error(
        request,
        page,
        "Ce formulaire a expiré ou ne vient pas de cette page. Rechargez la page et recommencez.",
        400,
        back,
    )


@router.get(BASE_PATH + "/{publication_id}")
def access_page(
    publication_id: str, request: Request, session: SessionDep, validator: ValidatorDep
) -> Response:
    page = PageSession.load(request)
    return _page(request, page, session, validator, publication_id)


@router.post(BASE_PATH + "/{publication_id}/request")
def submit_request(
    publication_id: str,
    request: Request,
    session: SessionDep,
    validator: ValidatorDep,
    csrf: FormText = "",
    reason: FormText = "",
) -> Response:
    page = PageSession.load(request)
    target = _valid_id(publication_id)
    if target is None:
        return _not_found(request, page)
    try:
        page.check_csrf(csrf)
    except CsrfError:
        return _expired_form(request, page, _page_path(target))
    principal, problem = _visitor(page, session, validator)
    if principal is None:
        page.flash(problem or "Connectez-vous d'abord pour demander l'accès.")
        return _redirect(page, _page_path(target))
    try:
        # Its own unit of work, committed before the redirect: the page that follows shows the request.
        with session_scope() as write:
            service.create_request(write, principal, target, reason)
    except BrokerError as exc:
        if exc.status_code == 404:
            return _not_found(request, page)
        field_errors = {name: "; ".join(map(str, messages)) for name, messages in exc.fields.items()}
        if exc.status_code == 409:
            page.flash(exc.detail)
            return _redirect(page, _page_path(target))
        return _page(
            request,
            page,
            session,
            validator,
            target,
            errors={"reason": exc.detail, **{k: v for k, v in field_errors.items() if k != "reason"}},
            reason=reason,
            status_code=exc.status_code,
        )
    page.flash("Votre demande est enregistrée. Le référent de l'organisation va l'examiner.")
    return _redirect(page, _page_path(target))


@router.post(BASE_PATH + "/{publication_id}/cancel")
def cancel_request(
    publication_id: str,
    request: Request,
    session: SessionDep,
    validator: ValidatorDep,
    csrf: FormText = "",
    request_id: FormText = "",
) -> Response:
    page = PageSession.load(request)
    target = _valid_id(publication_id)
    if target is None:
        return _not_found(request, page)
    try:
        page.check_csrf(csrf)
    except CsrfError:
        return _expired_form(request, page, _page_path(target))
    principal, problem = _visitor(page, session, validator)
    if principal is None:
        page.flash(problem or "Connectez-vous d'abord.")
        return _redirect(page, _page_path(target))
    try:
        with session_scope() as write:
            found = service.get_request(write, request_id)
            if found.publication_id != target:
                return _not_found(request, page)
            service.cancel(write, principal, request_id)
    except BrokerError as exc:
        page.flash(exc.detail)
        return _redirect(page, _page_path(target))
    page.flash("Votre demande est annulée.")
    return _redirect(page, _page_path(target))
