"""Fixtures: the data.gouv.fr emulator under a real uvicorn (a child process on a free loopback port).

- ``emulator`` (session): the running emulator, with :class:`EmulatorAdmin` helpers for ``/_emulator/``.
- ``organization`` (function): a fresh organization and its API key, provisioned like ``broker up`` does.
- ``connector`` (function, factory): a :class:`DatagouvConnector` against the emulator.
- ``make_revision`` (function, factory): a :class:`PublicationRevision` with real files under ``tmp_path``.
- :func:`deliver`: the broker's retry loop in miniature (retries transient errors, keeps checkpoints).
"""

from __future__ import annotations

import hashlib
import itertools
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import (
    Contact,
    LedgerEntry,
    OrganizationRef,
    PublicationRevision,
    ResourceFile,
    Temporal,
    TransientConnectorError,
)
from connectors.datagouv import DatagouvConfig, DatagouvConnector
from tests.fixtures.servers import ProcessHandle, http_ok, start_process

REPO_ROOT = Path(__file__).resolve().parents[3]


class EmulatorAdmin:
    """The emulator's admin API (``/_emulator/``, not part of data.gouv.fr)."""

    def __init__(self, root: str, process: ProcessHandle) -> None:
        self.root = root
        self.api = f"{root}/api/1"
        self.process = process
        self.http = httpx.Client(base_url=f"{root}/_emulator/", timeout=10.0, trust_env=False)

    def provision(self, slug: str, name: str | None = None) -> dict[str, Any]:
        response = self.http.post("provision", json={"organization": {"slug": slug, "name": name or slug}})
        response.raise_for_status()
        return dict(response.json())

    def faults(self, **settings: Any) -> None:
        self.http.put("faults", json=settings).raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("faults").raise_for_status()

    def read_only(self, enabled: bool) -> None:
        self.http.put("read-only", json={"enabled": enabled}).raise_for_status()

    def datasets(self, organization: str) -> list[dict[str, Any]]:
        response = self.http.get("datasets", params={"organization": organization})
        response.raise_for_status()
        return list(response.json())

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        response = self.http.get("requests", params={"since": since})
        response.raise_for_status()
        return list(response.json())

    def last_request_number(self) -> int:
        entries = self.requests()
        return max((e["n"] for e in entries), default=0)

    def purge(self) -> int:
        response = self.http.post("purge")
        response.raise_for_status()
        return int(response.json()["purged"])


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorAdmin]:
    from broker.embedded import free_port

    port = free_port()
    root = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("datagouv-emulator") / "emulator.log"
    process = start_process(
        [sys.executable, "-m", "emulators.datagouv", "--port", str(port), "--allow-local-urls"],
        None,
        log,
        ready=http_ok(f"{root}/_emulator/"),
        timeout=30,
        name="datagouv-emulator",
        cwd=REPO_ROOT,
    )
    admin = EmulatorAdmin(root, process)
    try:
        yield admin
    finally:
        admin.http.close()
        process.stop()


@pytest.fixture(autouse=True)
def _calm_emulator(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts and ends without faults and out of read-only mode."""
    if "emulator" not in request.fixturenames:
        yield
        return
    admin: EmulatorAdmin = request.getfixturevalue("emulator")
    admin.clear_faults()
    admin.read_only(False)
    yield
    admin.clear_faults()
    admin.read_only(False)


_ORG_NUMBERS = itertools.count(1)


@dataclass
class Org:
    id: str
    slug: str
    api_key: str

    def ref(self, name: str = "Montpellier Méditerranée Métropole") -> OrganizationRef:
        return OrganizationRef(
            id=f"broker-{self.slug}", slug=self.slug, name=name, remote={"datagouv": self.id}
        )


@pytest.fixture
def organization(emulator: EmulatorAdmin) -> Org:
    slug = f"org-{next(_ORG_NUMBERS)}-{time.monotonic_ns() % 10**8}"
    provisioned = emulator.provision(slug, name=f"Organisation {slug}")
    return Org(id=provisioned["organization_id"], slug=slug, api_key=provisioned["api_key"])


ConnectorFactory = Callable[..., DatagouvConnector]


@pytest.fixture
def connector(emulator: EmulatorAdmin, organization: Org) -> Iterator[ConnectorFactory]:
    built: list[DatagouvConnector] = []

    def build(**overrides: Any) -> DatagouvConnector:
        settings: dict[str, Any] = {
            "base_url": emulator.api,
            "api_key": organization.api_key,
            "emulator": True,
            "allow_local_urls": True,
            "timeout": 5.0,
            "upload_timeout": 10.0,
        }
        settings.update(overrides)
        instance = DatagouvConnector(DatagouvConfig.model_validate(settings))
        built.append(instance)
        return instance

    yield build
    for instance in built:
        instance.close()


RevisionFactory = Callable[..., PublicationRevision]


@pytest.fixture
def make_revision(tmp_path: Path, organization: Org) -> RevisionFactory:
    def build(
        publication_id: str = "pub-1",
        *,
        revision: int = 1,
        title: str = "Pistes cyclables de la métropole",
        files: dict[str, bytes] | None = None,
        links: dict[str, str] | None = None,
        **fields: Any,
    ) -> PublicationRevision:
        resources: list[ResourceFile] = []
        folder = tmp_path / publication_id / str(revision)
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in (files or {}).items():
            path = folder / name
            path.write_bytes(content)
            resources.append(file_resource(path, title=f"Fichier {name}"))
        for name, url in (links or {}).items():
            resources.append(
                ResourceFile(name=name, title=f"Lien {name}", url=url, format=name.rsplit(".", 1)[-1])
            )
        values: dict[str, Any] = {
            "publication_id": publication_id,
            "revision": revision,
            "organization": organization.ref(),
            "title": title,
            "description": "Réseau cyclable de la métropole de Montpellier, mis à jour chaque trimestre "
            "à partir des relevés des services techniques et des communes membres.",
            "license": "lov2",
            "keywords": ("mobilité", "vélo", "aménagement cyclable"),
            "frequency": "quarterly",
            "temporal": Temporal.model_validate({"start": "2024-01-01"}),
            "contact": Contact(name="Service SIG", email="sig@example.fr"),
            "spatial_zones": ("fr:commune:34172",),
            "resources": tuple(resources),
            "public_url": "https://broker.example.org",
        }
        values.update(fields)
        return PublicationRevision.model_validate(values)

    return build


def file_resource(path: Path, **fields: Any) -> ResourceFile:
    data = path.read_bytes()
    values: dict[str, Any] = {
        "name": path.name,
        "path": path,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "format": path.suffix.lstrip(".") or None,
    }
    values.update(fields)
    return ResourceFile.model_validate(values)


Operation = Callable[..., LedgerEntry]


def deliver(
    operation: Operation,
    revision: PublicationRevision,
    ledger: LedgerEntry | None = None,
    *,
    attempts: int = 80,
    backoff: float = 0.01,
) -> tuple[LedgerEntry, int]:
    """The broker's retry loop in miniature: the last checkpoint is the next attempt's ledger."""
    saved = [ledger or LedgerEntry()]

    def checkpoint(entry: LedgerEntry) -> None:
        saved[0] = entry

    for attempt in range(1, attempts + 1):
        try:
            return operation(revision, saved[0], checkpoint), attempt
        except TransientConnectorError as exc:
            time.sleep(min(exc.retry_after if exc.retry_after is not None else backoff, 0.05))
    raise AssertionError(f"still failing after {attempts} attempts")


def api_get(emulator: EmulatorAdmin, org: Org, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{emulator.api}/{path.lstrip('/')}",
        params=params,
        headers={"X-API-KEY": org.api_key},
        trust_env=False,
    )
    response.raise_for_status()
    return response.json()


def api_call(emulator: EmulatorAdmin, org: Org, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{emulator.api}/{path.lstrip('/')}",
        headers={"X-API-KEY": org.api_key},
        trust_env=False,
        timeout=10.0,
        **kwargs,
    )
