"""The role matrix: every route of the app, its declared rule, and what each kind of caller gets.

``ENDPOINTS`` declares one rule per route (``METHOD PATH``). ``test_every_route_declares_its_rule`` walks
``create_app().routes`` (no servers), so a new endpoint without a line here fails with the line to add.
``test_the_role_matrix`` then calls every endpoint as each caller below with real local tokens, against a
real API (uvicorn, SQLite, Redis), and checks the status against the rule:

- the caller the rule lets through gets neither 401 nor 403 (nor a 5xx): the request may still be refused
  for its content (404, 409, 422...), which is not this test's business;
- anyone else gets 401 when anonymous, 403 otherwise.

Every object a route acts on belongs to organisation A (``OWN``); "own"/"other" callers are members of A
or of B. Adding a route is one line: ``E("GET", "/api/v1/gaps", "read")``, with a body or path values when
the rule needs a real object to decide (``at={"publication_id": "withdrawable"}`` names a seeded object).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from joserfc import jwt

from broker.auth.keys import load_signing_key, signing_algorithm
from broker.auth.tokens import issue_local_token
from broker.config import Settings

OWN = "montpellier-mediterranee-metropole"
OTHER = "toulouse-metropole"
MATRIX_FILE = "tests/broker/test_role_matrix.py"

#: The callers, and who each rule lets through. ``no_role`` is a valid token with no broker role (a
#: partner's SSO account): it may ask for access and nothing else. It is also the requester of the
#: seeded request that the ``requester`` rule is checked on.
CALLERS = (
    "anonymous",
    "no_role",
    "producer_own",
    "producer_other",
    "referent_own",
    "referent_other",
    "staff",
    "board",
)
RULES: dict[str, frozenset[str]] = {
    "public": frozenset(CALLERS),
    "authenticated": frozenset(CALLERS) - {"anonymous"},
    "read": frozenset({"producer_own", "producer_other", "referent_own", "referent_other", "staff", "board"}),
    "write_organization": frozenset({"producer_own", "referent_own", "staff"}),
    "manage_organization": frozenset({"referent_own", "staff"}),
    "staff": frozenset({"staff"}),
    # Someone who publishes for some organisation, before any organisation is named (e.g. an upload).
    "publisher": frozenset({"producer_own", "producer_other", "referent_own", "referent_other", "staff"}),
    # The person who made the access request, or staff on their behalf.
    "requester": frozenset({"no_role", "staff"}),
}

Body = dict[str, Any] | Callable[[], dict[str, Any]] | None


@dataclass(frozen=True)
class E:
    """One endpoint: its rule, and what to send so the rule has something to decide on."""

    method: str
    path: str
    rule: str
    json: Body = None
    at: dict[str, str] = field(default_factory=dict)  # path parameter -> seed name or literal value
    form: dict[str, str] | None = None
    files: dict[str, bytes] | None = None  # with ``json``: multipart, the manifest part and these files
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


FILE_NAME = "matrice.geojson"
FILES = {
    FILE_NAME: json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"nom": "Point de la matrice"},
                    "geometry": {"type": "Point", "coordinates": [3.8767, 43.6108]},
                }
            ],
        }
    ).encode()
}


def manifest(title: str, **changes: Any) -> dict[str, Any]:
    """A publication of OWN with one GeoJSON file (``FILES``), sent as multipart."""
    data: dict[str, Any] = {
        "organization": OWN,
        "title": title,
        "description": "Jeu de données de la matrice des rôles.",
        "license": "lov2",
        "access": "open",
        "services": ["download"],
        "resources": [{"file": FILE_NAME, "title": "Points"}],
    }
    data.update(changes)
    return data


# A valid body wherever the route validates one: FastAPI answers 422 on a bad body before the route applies
# its rule, and the matrix is about the rule.
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH0k8wqYdNfJ0dPkdBMcYvWz6yq0b0x4m3m0i6Z3mYQk matrice"
TUS = {"Tus-Resumable": "1.0.0"}
TUS_CREATE = {**TUS, "Upload-Length": "12"}
RESTRICTED = {
    "access": "restricted",
    "restricted_to": {"users": ["lea.dupont@example.fr"], "organizations": []},
}

ENDPOINTS: list[E] = [
    # --- the app itself and the probes
    E("GET", "/openapi.json", "public"),
    E("GET", "/docs", "public"),
    E("GET", "/docs/oauth2-redirect", "public"),
    E("GET", "/redoc", "public"),
    E("GET", "/healthz", "public"),
    E("GET", "/readyz", "public"),
    # --- auth
    E("GET", "/api/v1/auth/jwks.json", "public"),
    E("GET", "/api/v1/auth/.well-known/openid-configuration", "public"),
    E("GET", "/local/.well-known/openid-configuration", "public"),
    E("GET", "/api/v1/auth/me", "authenticated"),
    # --- organisations
    E("GET", "/api/v1/organizations", "read"),
    E("GET", "/api/v1/organizations/{slug}", "read"),
    E("POST", "/api/v1/organizations", "staff", json={"slug": "beziers-mediterranee", "name": "Béziers"}),
    E("GET", "/api/v1/organizations/{slug}/credentials", "manage_organization"),
    E("PUT", "/api/v1/organizations/{slug}/credentials/{target}", "manage_organization", json={}),
    E("DELETE", "/api/v1/organizations/{slug}/credentials/{target}", "manage_organization"),
    # --- publications
    E("POST", "/api/v1/publications", "write_organization", json=lambda: manifest("Publiée"), files=FILES),
    E("GET", "/api/v1/publications", "read"),
    E("GET", "/api/v1/publications/{publication_id}", "read"),
    E(
        "POST",
        "/api/v1/publications/{publication_id}/revisions",
        "write_organization",
        json=lambda: manifest("Révisée par la matrice"),
        files=FILES,
        at={"publication_id": "revisable"},
    ),
    E(
        "DELETE",
        "/api/v1/publications/{publication_id}",
        "write_organization",
        at={"publication_id": "withdrawable"},
    ),
    E("POST", "/api/v1/plan", "write_organization", json=lambda: manifest("Plan de la matrice"), files=FILES),
    E("GET", "/api/v1/publications/{publication_id}/metadata.iso19139.xml", "read"),
    E("GET", "/api/v1/publications/{publication_id}/metadata.dcat.ttl", "read"),
    # --- deliveries, audit, targets, categories
    E("GET", "/api/v1/deliveries", "read"),
    E("POST", "/api/v1/deliveries/{delivery_id}/retry", "staff"),
    E("GET", "/api/v1/events", "read"),
    # Board members and producers need these; nobody anonymous does (they name the configured platforms).
    E("GET", "/api/v1/targets", "read"),
    E("GET", "/api/v1/categories", "read"),
    # The manifest's JSON Schema helps producers' tools validate offline; it holds nothing private.
    E("GET", "/api/v1/manifest/schema", "public"),
    # --- restricted access
    E("GET", "/api/v1/publications/{publication_id}/access", "write_organization"),
    E(
        "PUT",
        "/api/v1/publications/{publication_id}/access",
        "manage_organization",
        json={"users": ["lea.dupont@example.fr", "marc.petit@example.fr"], "organizations": []},
    ),
    E(
        "POST",
        "/api/v1/publications/{publication_id}/access-requests",
        "authenticated",
        json={"reason": "Vérification de la matrice des rôles."},
    ),
    E("GET", "/api/v1/publications/{publication_id}/access-requests", "authenticated"),
    E("GET", "/api/v1/access-requests", "authenticated"),
    E(
        "POST",
        "/api/v1/access-requests/{request_id}/grant",
        "manage_organization",
        at={"request_id": "to_grant"},
    ),
    E(
        "POST",
        "/api/v1/access-requests/{request_id}/refuse",
        "manage_organization",
        json={"note": "Refus de test."},
        at={"request_id": "to_refuse"},
    ),
    E("POST", "/api/v1/access-requests/{request_id}/cancel", "requester", at={"request_id": "to_cancel"}),
    E("GET", "/api/v1/service-accounts", "staff"),
    E(
        "POST",
        "/api/v1/service-accounts",
        "staff",
        json={"client_id": "matrix-new-client", "organization": OWN, "role": "producer"},
    ),
    E("DELETE", "/api/v1/service-accounts/{client_id}", "staff"),
    # The French page and its forms are for anyone; the forms answer 400 without the session's CSRF token.
    E("GET", "/acces/login", "public"),
    E("GET", "/acces/callback", "public"),
    E("POST", "/acces/token", "public", form={"token": "x"}),
    E("POST", "/acces/logout", "public", form={}),
    E("GET", "/acces/{publication_id}", "public"),
    E("POST", "/acces/{publication_id}/request", "public", form={"reason": "x"}),
    E("POST", "/acces/{publication_id}/cancel", "public", form={}),
    # --- SFTP deposit (keys: referents; drops: whoever publishes for the organisation)
    E("GET", "/api/v1/organizations/{slug}/sftp-keys", "manage_organization"),
    E("POST", "/api/v1/organizations/{slug}/sftp-keys", "manage_organization", json={"public_key": SSH_KEY}),
    E("DELETE", "/api/v1/organizations/{slug}/sftp-keys/{key_id}", "manage_organization"),
    E("GET", "/api/v1/organizations/{slug}/sftp-drops", "write_organization"),
    # --- remote resources kept in sync
    E("GET", "/api/v1/publications/{publication_id}/syncs", "read"),
    E("POST", "/api/v1/publications/{publication_id}/syncs/run", "write_organization"),
    # --- gaps, migrations, statistics
    E("GET", "/api/v1/gaps", "read"),
    E("GET", "/api/v1/gaps/{gap_id}", "read"),
    E("POST", "/api/v1/gaps", "staff", json={"need": "matrice", "platform": "geoplateforme"}),
    E("PATCH", "/api/v1/gaps/{gap_id}", "staff", json={}),
    E("GET", "/api/v1/migrations", "read"),
    E("GET", "/api/v1/migrations/{job_id}", "read"),
    E(
        "POST",
        "/api/v1/migrations",
        "staff",
        json={"dry_run": True, "need": "inconnu", "platform": "geoplateforme"},
    ),
    E("GET", "/api/v1/stats/migration", "read"),
    E("POST", "/api/v1/stats/migration/snapshot", "staff"),
    # --- resumable uploads (tus): only people who publish store bytes; an upload is its owner's (404 to
    # anyone else, which the matrix sees as "through" on an unknown id)
    E("OPTIONS", "/api/v1/uploads", "public"),
    E("OPTIONS", "/api/v1/uploads/", "public"),
    E("OPTIONS", "/api/v1/uploads/{upload_id}", "public"),
    E("POST", "/api/v1/uploads", "publisher", headers=TUS_CREATE),
    E("POST", "/api/v1/uploads/", "publisher", headers=TUS_CREATE),
    E("HEAD", "/api/v1/uploads/{upload_id}", "authenticated", headers=TUS),
    E("GET", "/api/v1/uploads/{upload_id}", "authenticated"),
    E("PATCH", "/api/v1/uploads/{upload_id}", "authenticated", headers=TUS),
    E("DELETE", "/api/v1/uploads/{upload_id}", "authenticated", headers=TUS),
    # --- the regional store: open data is public, restricted data checks its own ACL (not a role)
    E("GET", "/api/v1/regional/publications/{publication_id}", "public"),
    E("GET", "/api/v1/regional/publications/{publication_id}/files/{name}", "public"),
    E("HEAD", "/api/v1/regional/publications/{publication_id}/files/{name}", "public"),
]

#: Path parameters: a seed name (replaced by the seeded object's id) or a literal value.
PATH_VALUES = {
    "publication_id": "restricted",
    "delivery_id": "delivery",
    "request_id": "to_grant",
    "client_id": "matrix-client",
    "slug": OWN,
    "target": "datagouv",
    "name": FILE_NAME,
    "key_id": "cle-inconnue",
    "gap_id": "lacune-inconnue",
    "job_id": "migration-inconnue",
    "upload_id": "televersement-inconnu",
}


def app_routes() -> set[str]:
    """``METHOD PATH`` of every route of the app (HEAD only when declared on its own)."""
    from broker.main import create_app

    found: set[str] = set()
    for route in iter_route_contexts(create_app().routes):
        methods = set(route.methods or ())
        if "GET" in methods:
            methods.discard("HEAD")  # Starlette's automatic HEAD of a GET route
        found.update(f"{method} {route.path}" for method in methods)
    return found


def test_every_route_declares_its_rule() -> None:
    declared = [e.key for e in ENDPOINTS]
    duplicates = sorted({k for k in declared if declared.count(k) > 1})
    assert not duplicates, f"declared twice in {MATRIX_FILE}: {duplicates}"
    unknown_rules = sorted({f"{e.key}: {e.rule}" for e in ENDPOINTS if e.rule not in RULES})
    assert not unknown_rules, f"unknown rules (expected one of {sorted(RULES)}): {unknown_rules}"
    routes = app_routes()
    missing = sorted(routes - set(declared))
    assert not missing, "\n".join(f"declare the rule of {key} in {MATRIX_FILE}" for key in missing)
    stale = sorted(set(declared) - routes)
    assert not stale, "\n".join(
        f"{key} is declared in {MATRIX_FILE} but the app has no such route" for key in stale
    )
    params = {p for e in ENDPOINTS for p in _path_params(e.path)}
    assert params <= set(PATH_VALUES), f"give a value to {sorted(params - set(PATH_VALUES))} in PATH_VALUES"


def _path_params(path: str) -> list[str]:
    return [
        part[1:-1].split(":")[0] for part in path.split("/") if part.startswith("{") and part.endswith("}")
    ]


# --------------------------------------------------------------------------------------------- live


@dataclass
class Matrix:
    client: httpx.Client
    tokens: dict[str, str | None]
    seeds: dict[str, str]


def _roleless_token(settings: Settings, subject: str) -> str:
    key = load_signing_key(settings)
    now = int(time.time())
    claims = {
        "iss": settings.effective_token_issuer,
        "aud": settings.token_audience,
        "sub": subject,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "preferred_username": subject,
        "realm_access": {"roles": []},
    }
    alg = signing_algorithm(key)
    return jwt.encode({"alg": alg, "typ": "at+jwt", "kid": key.kid}, claims, key, algorithms=[alg])


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code < 300, (
        f"seeding failed: {response.request.method} {response.request.url}: {response.text}"
    )
    body: dict[str, Any] = response.json()
    return body


@pytest.fixture
def matrix(broker_stack: Any) -> Iterator[Matrix]:
    # No worker: deliveries stay pending, so nothing changes behind the matrix's back.
    stack = broker_stack(workers=0)
    for slug, name in ((OWN, "Montpellier Méditerranée Métropole"), (OTHER, "Toulouse Métropole")):
        stack.cli("org", "add", slug, "--name", name, check=True)
    settings = Settings(_env_file=None, data_dir=stack.data_dir, public_url=stack.url)

    def local(role: str, org: str | None) -> str:
        return issue_local_token(f"matrix-{role}-{org or 'openig'}", org, role, settings=settings)

    tokens: dict[str, str | None] = {
        "anonymous": None,
        "no_role": _roleless_token(settings, "matrix-no-role"),
        "producer_own": local("producer", OWN),
        "producer_other": local("producer", OTHER),
        "referent_own": local("referent", OWN),
        "referent_other": local("referent", OTHER),
        "staff": local("staff", None),
        "board": local("board", None),
    }
    client = stack.client()
    producer = {"Authorization": f"Bearer {tokens['producer_own']}"}
    staff = {"Authorization": f"Bearer {tokens['staff']}"}
    seeds: dict[str, str] = {}
    for name, body in (
        ("restricted", manifest("Réseau d'eau potable", **RESTRICTED)),
        ("revisable", manifest("À réviser")),
        ("withdrawable", manifest("À retirer")),
    ):
        seeds[name] = _ok(_post_publication(client, "/api/v1/publications", body, producer))["id"]
    deliveries = _ok(client.get(f"/api/v1/publications/{seeds['restricted']}", headers=staff))["deliveries"]
    seeds["delivery"] = deliveries[0]["id"]
    for name, subject in (("to_grant", "asker-1"), ("to_refuse", "asker-2"), ("to_cancel", "matrix-no-role")):
        asker = tokens["no_role"] if subject == "matrix-no-role" else _roleless_token(settings, subject)
        seeds[name] = _ok(
            client.post(
                f"/api/v1/publications/{seeds['restricted']}/access-requests",
                json={"reason": "Demande préparée pour la matrice."},
                headers={"Authorization": f"Bearer {asker}"},
            )
        )["id"]
    _ok(
        client.post(
            "/api/v1/service-accounts",
            json={"client_id": "matrix-client", "organization": OWN, "role": "producer"},
            headers=staff,
        )
    )
    yield Matrix(client, tokens, seeds)


def _post_publication(
    client: httpx.Client, path: str, body: dict[str, Any], headers: dict[str, str], method: str = "POST"
) -> httpx.Response:
    parts: list[tuple[str, Any]] = [("manifest", (None, json.dumps(body), "application/json"))]
    parts += [("files", (name, content, "application/octet-stream")) for name, content in FILES.items()]
    return client.request(method, path, files=parts, headers=headers)


def _call(matrix: Matrix, endpoint: E, caller: str) -> httpx.Response:
    values = {**PATH_VALUES, **endpoint.at}
    path = endpoint.path
    for param in _path_params(endpoint.path):
        value = values[param]
        path = path.replace(f"{{{param}}}", matrix.seeds.get(value, value))
    headers = dict(endpoint.headers)
    token = matrix.tokens[caller]
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = endpoint.json() if callable(endpoint.json) else endpoint.json
    if endpoint.files is not None:
        assert body is not None, f"{endpoint.key}: files go with a manifest (json=...)"
        return _post_publication(matrix.client, path, body, headers, endpoint.method)
    if endpoint.form is not None:
        return matrix.client.request(endpoint.method, path, data=endpoint.form, headers=headers)
    if body is not None:
        return matrix.client.request(
            endpoint.method,
            path,
            content=json.dumps(body),
            headers={**headers, "Content-Type": "application/json"},
        )
    return matrix.client.request(endpoint.method, path, headers=headers)


def expected(rule: str, caller: str) -> int | None:
    """None: let through (neither 401 nor 403); else the refusal status."""
    if caller in RULES[rule]:
        return None
    return 401 if caller == "anonymous" else 403


@pytest.mark.servers
def test_the_role_matrix(matrix: Matrix) -> None:
    """Every endpoint as every caller. Mismatches are collected and reported together, as a table."""
    mismatches: list[str] = []
    for endpoint in ENDPOINTS:
        for caller in CALLERS:
            response = _call(matrix, endpoint, caller)
            want = expected(endpoint.rule, caller)
            got = response.status_code
            if want is None and (got in (401, 403) or got >= 500):
                mismatches.append(
                    f"{endpoint.key} [{endpoint.rule}] as {caller}: expected through, got {got}"
                )
            elif want is not None and got != want:
                mismatches.append(f"{endpoint.key} [{endpoint.rule}] as {caller}: expected {want}, got {got}")
    assert not mismatches, f"{len(mismatches)} mismatch(es):\n" + "\n".join(mismatches)


@pytest.mark.servers
def test_cross_organisation_and_board_writes_are_refused(matrix: Matrix) -> None:
    """Spelled out: a producer of B acting on A's publication, and a board member publishing."""
    as_other = {"Authorization": f"Bearer {matrix.tokens['producer_other']}"}
    publication = matrix.seeds["revisable"]
    response = _post_publication(
        matrix.client, f"/api/v1/publications/{publication}/revisions", manifest("Détournée"), as_other
    )
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert OWN in response.json()["detail"]
    assert matrix.client.delete(f"/api/v1/publications/{publication}", headers=as_other).status_code == 403
    board = {"Authorization": f"Bearer {matrix.tokens['board']}"}
    response = _post_publication(matrix.client, "/api/v1/publications", manifest("Du bureau"), board)
    assert response.status_code == 403 and "rôles suivants" in response.json()["detail"]
    # Nothing was written by either.
    staff = {"Authorization": f"Bearer {matrix.tokens['staff']}"}
    titles = [p["title"] for p in matrix.client.get("/api/v1/publications", headers=staff).json()["data"]]
    assert "Détournée" not in titles and "Du bureau" not in titles
