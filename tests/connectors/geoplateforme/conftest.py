"""Fixtures: the Géoplateforme emulator under a real uvicorn on loopback, organisations provisioned
through its admin API, connectors pointed at it, and the ISO 19139 XML schema (from the pycsw wheel,
cached outside the repository)."""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lxml import etree

from broker.embedded import free_port
from connectors.geoplateforme import GeoplateformeConfig, GeoplateformeConnector
from tests.fixtures.servers import ProcessHandle, http_ok, start_process

REPO_ROOT = Path(__file__).resolve().parents[3]
STEP_SECONDS = 0.05
PYCSW = "pycsw==2.6.2"
SCHEMA_ROOT = "pycsw/plugins/profiles/apiso/schemas/ogc/iso/19139/20070417"


class Emulator:
    """The running emulator and its admin API."""

    def __init__(self, handle: ProcessHandle, url: str) -> None:
        self.handle = handle
        self.url = url
        self.admin = httpx.Client(base_url=f"{url}/_emulator", timeout=10.0, trust_env=False)
        self._names = itertools.count(1)

    def organisation(self, technical_name: str | None = None, **extra: Any) -> dict[str, Any]:
        name = technical_name or f"org{os.getpid()}x{next(self._names)}"
        response = self.admin.post(
            "/organisations", json={"technical_name": name, "name": f"Organisme {name}", **extra}
        )
        response.raise_for_status()
        org: dict[str, Any] = response.json()
        return org

    def state(self, datastore: str | None = None) -> dict[str, Any]:
        response = self.admin.get("/state", params={"datastore": datastore} if datastore else None)
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def faults(self, **faults: Any) -> None:
        self.admin.post("/faults", json=faults).raise_for_status()

    def clear_faults(self) -> None:
        self.admin.delete("/faults").raise_for_status()

    def api(self, org: dict[str, Any]) -> httpx.Client:
        """An API client logged in as the organisation's service account."""
        token = httpx.post(
            org["token_url"],
            data={
                "grant_type": "client_credentials",
                "client_id": org["client_id"],
                "client_secret": org["client_secret"],
            },
            trust_env=False,
        ).json()["access_token"]
        return httpx.Client(
            base_url=f"{org['api_url']}/datastores/{org['datastore_id']}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10.0,
            trust_env=False,
        )


@pytest.fixture(scope="session")
def gpf_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path_factory.mktemp("gpf-emulator") / "emulator.log"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    handle = start_process(
        [
            sys.executable,
            "-m",
            "emulators.geoplateforme",
            "--port",
            str(port),
            "--step-seconds",
            str(STEP_SECONDS),
        ],
        env,
        log,
        http_ok(f"{url}/_emulator/state"),
        timeout=60,
        name="geoplateforme-emulator",
        cwd=REPO_ROOT,
    )
    emulator = Emulator(handle, url)
    try:
        yield emulator
    finally:
        emulator.admin.close()
        handle.stop()


@pytest.fixture
def emulator(gpf_emulator: Emulator) -> Iterator[Emulator]:
    """The session emulator, with no fault left over from another test."""
    gpf_emulator.clear_faults()
    yield gpf_emulator
    gpf_emulator.clear_faults()


def connector_config(org: dict[str, Any], **overrides: Any) -> GeoplateformeConfig:
    values: dict[str, Any] = {
        "api_url": org["api_url"],
        "token_url": org["token_url"],
        "client_id": org["client_id"],
        "client_secret": org["client_secret"],
        "csw_url": org["csw_url"],
        "emulator": True,
        "poll_interval": STEP_SECONDS,
        "max_poll_interval": 0.2,
        "deadline_seconds": 60,
        "timeout": 10,
        "request_retries": 1,
    }
    values.update(overrides)
    return GeoplateformeConfig(**values)


@pytest.fixture
def make_connector() -> Iterator[Callable[..., GeoplateformeConnector]]:
    made: list[GeoplateformeConnector] = []

    def make(org: dict[str, Any], **overrides: Any) -> GeoplateformeConnector:
        connector = GeoplateformeConnector(connector_config(org, **overrides))
        made.append(connector)
        return connector

    yield make
    for connector in made:
        connector.close()


# ------------------------------------------------------------------------------------------------ schema


def _schema_cache() -> Path:
    return (
        Path(os.environ.get("OPENIG_XSD_CACHE") or Path(tempfile.gettempdir()) / "openig-broker-xsd")
        / "pycsw-2.6.2"
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def iso19139_schema() -> etree.XMLSchema:
    """The ISO 19139 (2007, GML 3.2) schema shipped in the pycsw wheel, downloaded once with pip.

    pycsw is not installed (it pins old dependencies): only its wheel is fetched, and only its XSDs are kept,
    in a cache outside the repository (``OPENIG_XSD_CACHE`` or the temporary directory).
    """
    root = _schema_cache()
    gmd = root / SCHEMA_ROOT / "gmd" / "gmd.xsd"
    with _locked(root.parent / ".lock"):
        if not gmd.is_file():
            with tempfile.TemporaryDirectory() as download:
                subprocess.run(
                    [
                        sys.executable,
                        "-m",
                        "pip",
                        "download",
                        PYCSW,
                        "--no-deps",
                        "--only-binary=:all:",
                        "--disable-pip-version-check",
                        "-q",
                        "-d",
                        download,
                    ],
                    check=True,
                    timeout=300,
                )
                wheel = next(Path(download).glob("pycsw-*.whl"))
                with zipfile.ZipFile(wheel) as archive:
                    for member in archive.namelist():
                        if member.endswith(".xsd") and "/schemas/" in member:
                            archive.extract(member, root)
    return etree.XMLSchema(etree.parse(str(gmd)))
