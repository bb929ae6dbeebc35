"""Fetching remote resources safely: the address policy, redirects, limits, conditional requests.

In process, against a real HTTP server on loopback (exempted through the policy's allow-list where a test
needs to reach it).
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.intake.staging import Staging
from broker.remote.fetch import (
    FetchPolicy,
    RemoteFailed,
    RemoteRefused,
    RemoteTooLarge,
    address_problem,
    fetch_into,
)
from regional_store.blobs import BlobStore
from tests.broker.remote.servers import Origin, Route, origin

CSV = "commune;comptage\nSète;1204\nFrontignan;877\n".encode()


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "boucle locale"),
        ("127.8.9.10", "boucle locale"),
        ("10.1.2.3", "réseau privé"),
        ("172.16.0.1", "réseau privé"),
        ("192.168.1.10", "réseau privé"),
        ("169.254.169.254", "lien-local"),  # cloud metadata
        ("224.0.0.251", "multicast"),
        ("0.0.0.0", "non spécifiée"),
        ("240.0.0.1", "adresse"),  # reserved (Python counts it private too)
        ("100.64.0.1", "non publique"),  # carrier-grade NAT (RFC 6598)
        ("::1", "boucle locale"),
        ("::", "non spécifiée"),
        ("fe80::1", "lien-local"),
        ("fc00::1", "réseau privé"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "boucle locale (IPv4 dans une adresse IPv6)"),
        ("::ffff:10.0.0.1", "réseau privé (IPv4 dans une adresse IPv6)"),
        ("2002:7f00:1::1", "boucle locale (IPv4 dans une adresse IPv6)"),  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str, reason: str) -> None:
    problem = address_problem(ipaddress.ip_address(address))
    assert problem is not None and reason in problem


@pytest.mark.parametrize("address", ["193.51.24.1", "91.198.174.192", "2a00:1450:4007:80e::200e"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address)) is None


@pytest.fixture
def server() -> Iterator[Origin]:
    with origin() as running:
        yield running


@pytest.fixture
def staging(tmp_path: Path) -> Staging:
    return Staging(BlobStore(tmp_path / "files"), 10 * 1024 * 1024)


def allowing(server: Origin, **changes: object) -> FetchPolicy:
    return FetchPolicy(allowed_hosts=frozenset({f"127.0.0.1:{server.port}"}), **changes)  # type: ignore[arg-type]


def test_fetch_stores_the_bytes_under_the_remote_key(server: Origin, staging: Staging) -> None:
    server.routes["/comptages.csv"] = Route(body=CSV, headers={"Content-Type": "text/csv"})
    result = fetch_into(staging, 2, f"{server.url}/comptages.csv", policy=allowing(server))
    assert result.status == "fetched"
    assert result.sha256 == hashlib.sha256(CSV).hexdigest() and result.size == len(CSV)
    staged = staging.by_name()["url:2"]
    assert staged.path.read_bytes() == CSV
    # The Host header names the URL's host, though the connection went to the checked address.
    assert server.requests[-1][1]["host"] == f"127.0.0.1:{server.port}"

    again = fetch_into(staging, 2, f"{server.url}/comptages.csv", etag=result.etag, policy=allowing(server))
    assert again.status == "not_modified" and again.sha256 is None
    assert server.requests[-1][1]["if-none-match"] == result.etag


def test_default_policy_refuses_loopback(server: Origin, staging: Staging) -> None:
    server.routes["/x.csv"] = Route(body=CSV)
    for url in (
        f"{server.url}/x.csv",
        f"http://localhost:{server.port}/x.csv",
        f"http://[::1]:{server.port}/",
    ):
        with pytest.raises(RemoteRefused, match="boucle locale"):
            fetch_into(staging, 0, url, policy=FetchPolicy())
    assert server.requests == [], "nothing was even sent"
    assert staging.files == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://example.org/x.csv", "seuls http et https"),
        ("file:///etc/passwd", "seuls http et https"),
        ("http://user:secret@example.org/x.csv", "identifiants"),
        ("http://169.254.169.254/latest/meta-data/", "lien-local"),
        ("http://[::ffff:127.0.0.1]/", "IPv4 dans une adresse IPv6"),
        ("http://0.0.0.0/", "non spécifiée"),
    ],
)
def test_refused_urls(url: str, reason: str, staging: Staging) -> None:
    with pytest.raises(RemoteRefused, match=reason):
        fetch_into(staging, 0, url, policy=FetchPolicy())


def test_redirect_to_loopback_is_refused(server: Origin, staging: Staging) -> None:
    with origin() as inside:
        inside.routes["/secret"] = Route(body=b"interne")
        server.routes["/go"] = Route(302, headers={"Location": f"http://127.0.0.1:{inside.port}/secret"})
        with pytest.raises(RemoteRefused, match="boucle locale"):
            fetch_into(staging, 0, f"{server.url}/go", policy=allowing(server))
        assert inside.requests == []


def test_redirects_are_followed_within_limits(server: Origin, staging: Staging) -> None:
    server.routes["/final.csv"] = Route(body=CSV)
    server.routes["/a"] = Route(301, headers={"Location": "/b"})
    server.routes["/b"] = Route(307, headers={"Location": f"{server.url}/final.csv"})
    result = fetch_into(staging, 0, f"{server.url}/a", policy=allowing(server))
    assert result.url.endswith("/final.csv") and result.size == len(CSV)

    for i in range(7):
        server.routes[f"/loop{i}"] = Route(302, headers={"Location": f"/loop{i + 1}"})
    with pytest.raises(RemoteRefused, match="trop de redirections"):
        fetch_into(staging, 1, f"{server.url}/loop0", policy=allowing(server))


def test_size_limit(server: Origin, staging: Staging) -> None:
    big = b"x" * 300_000
    server.routes["/declared"] = Route(body=big)
    server.routes["/chunked"] = Route(body=big, chunked=True)
    for path in ("/declared", "/chunked"):
        with pytest.raises(RemoteTooLarge, match="taille maximale"):
            fetch_into(staging, 0, f"{server.url}{path}", policy=allowing(server, max_bytes=100_000))
    assert staging.files == []
    assert not any((staging.store.root / "tmp").glob("part-*")), "no temporary file left"


def test_http_errors_and_unknown_hosts_are_failures(server: Origin, staging: Staging) -> None:
    server.routes["/boom"] = Route(503, body=b"maintenance")
    with pytest.raises(RemoteFailed, match="503"):
        fetch_into(staging, 0, f"{server.url}/boom", policy=allowing(server))
    with pytest.raises(RemoteFailed, match="introuvable"):
        fetch_into(staging, 0, "http://nom-qui-n-existe-pas.invalid/x", policy=FetchPolicy())
