"""Fetch a remote resource into the staging store, without letting a manifest reach inside our network.

Server-side request forgery (OWASP SSRF prevention cheat sheet) is stopped at every hop:

- only ``http`` and ``https``;
- the host is resolved once, and *every* address it resolves to must be public: loopback, private
  (RFC 1918, RFC 4193), link-local (RFC 3927, RFC 4291; cloud metadata at 169.254.169.254), multicast,
  reserved, unspecified and other non-global ranges (RFC 6890) are refused, for IPv4 and IPv6, and an IPv6
  address that carries an IPv4 one (IPv4-mapped ``::ffff:a.b.c.d``, RFC 4291 §2.5.5; 6to4, RFC 3056;
  Teredo, RFC 4380) is judged by the IPv4 address inside;
- the connection goes to the address that was checked (the URL's host becomes the ``Host`` header and the
  TLS server name), so a second DNS answer cannot swap it (DNS rebinding);
- redirects are followed by hand, each target checked the same way, five at most;
- size, connect, read and total time are bounded; no proxy from the environment is used.

``BROKER_REMOTE_ALLOW_PRIVATE`` lifts the address check; ``BROKER_REMOTE_ALLOWED_HOSTS`` exempts named
hosts (``host`` or ``host:port``, as written in the URL), for tests and internal mirrors.
"""

from __future__ import annotations

import io
import ipaddress
import logging
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

import httpx

from broker import __version__
from broker.config import get_settings
from broker.errors import PayloadTooLarge
from broker.intake.staging import Staging
from broker.remote.settings import RemoteSettings, get_remote_settings

logger = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

REDIRECTS = {301, 302, 303, 307, 308}
DEFAULT_PORTS = {"http": 80, "https": 443}


class RemoteError(Exception):
    """A remote resource could not be fetched; ``reason`` is for the producer (French)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RemoteRefused(RemoteError):
    """The URL (or a redirect) points somewhere the broker must not go."""


class RemoteFailed(RemoteError):
    """The remote server or the network failed: worth retrying later."""


class RemoteTooLarge(RemoteError):
    pass


@dataclass(frozen=True)
class FetchPolicy:
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    max_bytes: int = 5 * 1024**3
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    total_timeout: float = 600.0
    max_redirects: int = 5

    @classmethod
    def from_settings(cls, settings: RemoteSettings | None = None) -> FetchPolicy:
        settings = settings or get_remote_settings()
        return cls(
            allow_private=settings.remote_allow_private,
            allowed_hosts=frozenset(h.lower() for h in settings.remote_allowed_hosts),
            max_bytes=settings.remote_max_bytes or get_settings().max_upload_bytes,
            connect_timeout=settings.remote_connect_timeout_seconds,
            read_timeout=settings.remote_read_timeout_seconds,
            total_timeout=settings.remote_total_timeout_seconds,
            max_redirects=settings.remote_max_redirects,
        )

    def exempt(self, host: str, port: int) -> bool:
        host = host.lower()
        return host in self.allowed_hosts or f"{host}:{port}" in self.allowed_hosts


@dataclass(frozen=True)
class FetchResult:
    status: Literal["fetched", "not_modified"]
    url: str  # the URL finally answered, after redirects
    sha256: str | None = None
    size: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    media_type: str | None = None


# --------------------------------------------------------------------------------------------- addresses


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def address_problem(address: IPAddress) -> str | None:
    """Why the broker must not connect to ``address`` (French), or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        inner = _embedded_ipv4(address)
        if inner is not None:
            problem = address_problem(inner)
            return f"{problem} (IPv4 dans une adresse IPv6)" if problem else None
    checks = (
        (address.is_unspecified, "adresse non spécifiée"),
        (address.is_loopback, "adresse de boucle locale"),
        (address.is_link_local, "adresse lien-local"),
        (address.is_multicast, "adresse multicast"),
        (address.is_private, "adresse de réseau privé"),
        (address.is_reserved, "adresse réservée"),
        (not address.is_global, "adresse non publique"),
    )
    for matches, reason in checks:
        if matches:
            return reason
    return None


def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal resolves to itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RemoteFailed(f"nom d'hôte introuvable : {host}") from exc
    found: list[IPAddress] = []
    for info in infos:
        text = str(info[4][0]).split("%", 1)[0]  # drop an IPv6 zone index
        address = ipaddress.ip_address(text)
        if address not in found:
            found.append(address)
    if not found:
        raise RemoteFailed(f"nom d'hôte introuvable : {host}")
    return found


@dataclass(frozen=True)
class _Target:
    scheme: str
    host: str
    port: int
    address: IPAddress
    path: str  # path and query, as sent

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def connect_url(self) -> str:
        ip = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        return f"{self.scheme}://{ip}:{self.port}{self.path}"


def check_url(url: str, policy: FetchPolicy) -> _Target:
    """The address to connect to for ``url``, or :class:`RemoteRefused` saying why not."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise RemoteRefused(f"adresse mal formée : {url}") from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise RemoteRefused(f"seuls http et https sont acceptés (pas « {scheme or '?'} »)")
    if parts.username or parts.password:
        raise RemoteRefused("une adresse ne doit pas contenir d'identifiants")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise RemoteRefused("adresse sans nom d'hôte")
    port = port or DEFAULT_PORTS[scheme]
    addresses = resolve(host, port)
    if not (policy.allow_private or policy.exempt(host, port)):
        for address in addresses:
            problem = address_problem(address)
            if problem:
                raise RemoteRefused(f"{host} désigne une {problem} ({address}) : accès refusé")
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return _Target(scheme, host, port, addresses[0], path)


# --------------------------------------------------------------------------------------------- fetching


class _BodyReader(io.RawIOBase):
    """A file-like view of a response body that enforces the size and total time limits."""

    def __init__(self, chunks: Iterator[bytes], limit: int, deadline: float) -> None:
        self.chunks = chunks
        self.limit = limit
        self.deadline = deadline
        self.buffer = b""
        self.count = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        wanted = size if size is not None and size >= 0 else None
        while not self.done and (wanted is None or len(self.buffer) < wanted):
            try:
                chunk = next(self.chunks)
            except StopIteration:
                self.done = True
                break
            except httpx.TimeoutException as exc:
                raise RemoteFailed("le serveur distant ne répond plus (délai de lecture dépassé)") from exc
            except httpx.HTTPError as exc:
                raise RemoteFailed(f"lecture interrompue : {type(exc).__name__}") from exc
            self.count += len(chunk)
            if self.count > self.limit:
                raise RemoteTooLarge(f"le fichier distant dépasse la taille maximale ({self.limit} octets)")
            if time.monotonic() > self.deadline:
                raise RemoteFailed("téléchargement trop long (délai total dépassé)")
            self.buffer += chunk
        if wanted is None:
            data, self.buffer = self.buffer, b""
        else:
            data, self.buffer = self.buffer[:wanted], self.buffer[wanted:]
        return data


def _client(policy: FetchPolicy) -> httpx.Client:
    timeout = httpx.Timeout(
        connect=policy.connect_timeout,
        read=policy.read_timeout,
        write=policy.read_timeout,
        pool=policy.connect_timeout,
    )
    # trust_env=False: an HTTP(S)_PROXY from the environment would connect somewhere we did not check.
    return httpx.Client(timeout=timeout, follow_redirects=False, trust_env=False)


def fetch_into(
    staging: Staging,
    index: int,
    url: str,
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    policy: FetchPolicy | None = None,
) -> FetchResult:
    """Fetch ``url`` into ``staging`` under ``remote_key(index)``; conditional when ``etag`` or
    ``last_modified`` is given (RFC 9110 §13.1: If-None-Match, If-Modified-Since), in which case a 304
    stores nothing and answers ``not_modified``. Raises :class:`RemoteError` subclasses."""
    from broker.publications.service import remote_key

    policy = policy or FetchPolicy.from_settings()
    deadline = time.monotonic() + policy.total_timeout
    current = url
    with _client(policy) as client:
        for _hop in range(policy.max_redirects + 1):
            target = check_url(current, policy)
            headers = {
                "Host": target.host_header,
                "User-Agent": f"openig-broker/{__version__} (+remote resource fetch)",
                "Accept": "*/*",
            }
            if etag:
                headers["If-None-Match"] = etag
            if last_modified:
                headers["If-Modified-Since"] = last_modified
            extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
            request = client.build_request("GET", target.connect_url, headers=headers, extensions=extensions)
            try:
                response = client.send(request, stream=True)
            except httpx.TimeoutException as exc:
                raise RemoteFailed(f"{target.host} ne répond pas (délai dépassé)") from exc
            except httpx.HTTPError as exc:
                raise RemoteFailed(f"connexion impossible à {target.host} ({type(exc).__name__})") from exc
            try:
                if response.status_code in REDIRECTS:
                    location = response.headers.get("location")
                    if not location:
                        raise RemoteFailed(f"redirection {response.status_code} sans adresse")
                    current = urljoin(current, location)
                    logger.info("remote fetch: %s redirects to %s", target.host, urlsplit(current).netloc)
                    continue
                if response.status_code == 304 and (etag or last_modified):
                    return FetchResult(
                        "not_modified",
                        current,
                        etag=response.headers.get("etag") or etag,
                        last_modified=response.headers.get("last-modified") or last_modified,
                    )
                if response.status_code != 200:
                    raise RemoteFailed(f"le serveur distant répond {response.status_code}")
                declared = response.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                    raise RemoteTooLarge(
                        f"le fichier distant ({declared} octets) dépasse la taille maximale "
                        f"({policy.max_bytes} octets)"
                    )
                reader = _BodyReader(response.iter_bytes(), policy.max_bytes, deadline)
                try:
                    staged = staging.add(remote_key(index), reader)  # type: ignore[arg-type]
                except PayloadTooLarge as exc:
                    raise RemoteTooLarge(exc.detail) from exc
                return FetchResult(
                    "fetched",
                    current,
                    sha256=staged.sha256,
                    size=staged.size,
                    etag=response.headers.get("etag"),
                    last_modified=response.headers.get("last-modified"),
                    media_type=response.headers.get("content-type"),
                )
            finally:
                response.close()
    raise RemoteRefused(f"trop de redirections (plus de {policy.max_redirects})")
