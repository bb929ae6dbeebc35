"""Automated deposit over SFTP, with a real SFTP client (asyncssh) against `broker sftp`, keys registered
through the API under uvicorn."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import asyncssh
import httpx
import pytest
import yaml

from broker.embedded import free_port
from tests.broker.uploads.stacking import BROKER, shared_stack
from tests.fixtures.servers import ProcessHandle, Stack, log_matches

pytestmark = pytest.mark.servers

ORG = "communaute-agglo-beziers"
T = TypeVar("T")


class Sftp:
    def __init__(self, stack: Stack, port: int) -> None:
        self.stack = stack
        self.port = port
        self.inbox = stack.data_dir / "sftp" / ORG
        self.tokens: dict[tuple[str, str], str] = {}

    def token(self, org: str, role: str) -> str:
        """`broker token issue` is a process start: once per organisation and role is enough."""
        if (org, role) not in self.tokens:
            self.tokens[(org, role)] = self.stack.token(org, role)
        return self.tokens[(org, role)]

    def connect(self, key: asyncssh.SSHKey, username: str = ORG) -> Any:
        return asyncssh.connect(
            "127.0.0.1",
            self.port,
            username=username,
            client_keys=[key],
            known_hosts=None,
            agent_path=None,
            preferred_auth=["publickey"],
        )


@pytest.fixture(scope="module")
def sftp(request: pytest.FixtureRequest) -> Iterator[Sftp]:
    env = {
        "BROKER_SFTP_SCAN_SECONDS": "0.2",
        "BROKER_SFTP_SETTLE_SECONDS": "1",
    }
    with shared_stack(request, env=env) as stack:
        stack.cli("org", "add", ORG, "--name", "Agglo Béziers Méditerranée", check=True)
        stack.cli("org", "add", "autre-org", "--name", "Autre", check=True)
        port = free_port()
        log = stack.log_dir / "sftp.log"
        server = ProcessHandle(
            [*BROKER, "sftp", "--host", "127.0.0.1", "--port", str(port)],
            stack.env,
            log,
            log_matches(log, "SFTP server listening"),
            timeout=60,
            name="sftp",
            cwd=stack.data_dir,
        ).start()
        try:
            yield Sftp(stack, port)
        finally:
            server.stop()


def run(coroutine: Awaitable[T]) -> T:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


def geojson(features: int = 200) -> bytes:
    return json.dumps(
        {
            "type": "FeatureCollection",
            "features": [
                {
                    "type": "Feature",
                    "properties": {"nom": f"Point d'apport volontaire {i}", "flux": "verre"},
                    "geometry": {"type": "Point", "coordinates": [3.2 + i / 10000, 43.34]},
                }
                for i in range(features)
            ],
        },
        ensure_ascii=False,
    ).encode()


def manifest(*files: str, **changes: Any) -> bytes:
    data: dict[str, Any] = {
        "organization": ORG,
        "title": "Points d'apport volontaire",
        "description": "Conteneurs de tri sélectif de l'agglomération.",
        "license": "lov2",
        "access": "open",
        "services": ["download"],
        "resources": [{"file": f} for f in files],
    }
    data.update(changes)
    return yaml.safe_dump(data, allow_unicode=True).encode()


def wait_for(check: Callable[[], T | None], timeout: float = 20, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def report(sftp: Sftp, name: str) -> dict[str, Any] | None:
    path = sftp.inbox / f"{name}.report.json"
    return json.loads(path.read_text()) if path.exists() else None


def register(sftp: Sftp, key: asyncssh.SSHKey, label: str) -> dict[str, Any]:
    client = sftp.stack.client(sftp.token(ORG, "referent"))
    line = key.export_public_key("openssh").decode().strip()
    response = client.post(
        f"/api/v1/organizations/{ORG}/sftp-keys", json={"public_key": line, "label": label}
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def put(sftp_client: asyncssh.SFTPClient, name: str, data: bytes) -> None:
    async with sftp_client.open(name, "wb") as handle:
        await handle.write(data)


def test_key_registration_rules(sftp: Sftp) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    line = key.export_public_key("openssh").decode().strip() + " robot@beziers"
    producer = sftp.stack.client(sftp.token(ORG, "producer"))
    response = producer.post(
        f"/api/v1/organizations/{ORG}/sftp-keys", json={"public_key": line, "label": "x"}
    )
    assert response.status_code == 403, "only a referent (or staff) manages keys"
    other = sftp.stack.client(sftp.token("autre-org", "referent"))
    response = other.post(f"/api/v1/organizations/{ORG}/sftp-keys", json={"public_key": line, "label": "x"})
    assert response.status_code == 403, "a referent of another organisation neither"
    referent = sftp.stack.client(sftp.token(ORG, "referent"))
    response = referent.post(
        f"/api/v1/organizations/{ORG}/sftp-keys", json={"public_key": "ssh-ed25519 pasunecle", "label": "x"}
    )
    assert response.status_code == 422 and "public_key" in response.json()["fields"]
    created = referent.post(
        f"/api/v1/organizations/{ORG}/sftp-keys", json={"public_key": line, "label": "robot"}
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["fingerprint"] == key.get_fingerprint("sha256") and body["algorithm"] == "ssh-ed25519"
    again = referent.post(f"/api/v1/organizations/{ORG}/sftp-keys", json={"public_key": line, "label": "bis"})
    assert again.status_code == 409
    listed = referent.get(f"/api/v1/organizations/{ORG}/sftp-keys").json()
    assert body["id"] in [k["id"] for k in listed]

    # A registered key logs in; once deleted, it no longer does.
    async def login() -> list[str]:
        async with sftp.connect(key) as conn, conn.start_sftp_client() as client:
            return list(await client.listdir("."))

    run(login())
    assert referent.delete(f"/api/v1/organizations/{ORG}/sftp-keys/{body['id']}").status_code == 204
    with pytest.raises(asyncssh.PermissionDenied):
        run(login())


def test_unregistered_key_and_wrong_user_are_refused(sftp: Sftp) -> None:
    registered = asyncssh.generate_private_key("ssh-ed25519")
    register(sftp, registered, "dépôt nocturne")
    stranger = asyncssh.generate_private_key("ssh-ed25519")

    async def login(key: asyncssh.SSHKey, username: str) -> None:
        async with sftp.connect(key, username):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        run(login(stranger, ORG))
    with pytest.raises(asyncssh.PermissionDenied):
        run(login(registered, "autre-org"))  # the key is this organisation's only
    with pytest.raises(asyncssh.PermissionDenied):
        run(login(registered, "inconnue"))


def test_escapes_are_refused(sftp: Sftp) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    register(sftp, key, "curieux")

    async def scenario() -> None:
        async with sftp.connect(key) as conn, conn.start_sftp_client() as client:
            for path in ("../evasion.txt", "../../../../tmp/evasion.txt", "sous/../../evasion.txt"):
                with pytest.raises(asyncssh.SFTPError):
                    await put(client, path, b"dehors")
            with pytest.raises(asyncssh.SFTPError):
                await client.listdir("..")
            with pytest.raises(asyncssh.SFTPError):
                async with client.open("../../../../etc/passwd", "rb") as handle:
                    await handle.read()
            with pytest.raises(asyncssh.SFTPError):
                await client.symlink("/etc/passwd", "lien")
            # The root a session sees is the inbox: "/" is the inbox itself.
            await put(client, "/dedans.txt", b"ok")
            assert await client.realpath("/") == "/"

    run(scenario())
    assert (sftp.inbox / "dedans.txt").read_bytes() == b"ok"
    assert not list(sftp.stack.data_dir.rglob("evasion.txt"))
    assert not (sftp.inbox / "lien").exists()
    (sftp.inbox / "dedans.txt").unlink()


def test_drop_becomes_a_publication_and_a_bad_one_gets_a_report(sftp: Sftp) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    identity = register(sftp, key, "chaîne SIG nocturne")
    data = geojson()
    api = sftp.stack.client(sftp.token(ORG, "producer"))

    async def good() -> None:
        async with sftp.connect(key) as conn, conn.start_sftp_client() as client:
            await put(client, "pav.geojson", data)
            await put(client, "pav.yaml", manifest("pav.geojson"))

    run(good())
    result = wait_for(lambda: report(sftp, "pav.yaml"), what="the report of pav.yaml")
    assert result["status"] == "accepted", result
    assert result["revision"] == 1 and result["key"]["fingerprint"] == identity["fingerprint"]
    text = (sftp.inbox / "pav.yaml.report.txt").read_text()
    assert "ACCEPTÉ" in text and result["publication"] in text
    folder = sftp.inbox / result["folder"]
    assert result["folder"].startswith("processed/")
    assert (folder / "pav.geojson").read_bytes() == data and (folder / "pav.yaml").exists()
    assert (folder / "pav.yaml.report.json").exists()
    assert not (sftp.inbox / "pav.geojson").exists() and not (sftp.inbox / "pav.yaml").exists()

    publication = api.get(f"/api/v1/publications/{result['publication']}").json()
    assert publication["resources"][0]["size"] == len(data)
    events = api.get("/api/v1/events", params={"publication": result["publication"]}).json()
    items = events if isinstance(events, list) else events.get("data", [])
    created = [e for e in items if e["action"] == "publication.created"]
    assert created and created[0]["detail"]["channel"] == "sftp"
    assert identity["fingerprint"] in created[0]["actor"]["subject"]

    # A revision of that publication through the inbox: `publication: <id>` in the manifest.
    async def revision() -> None:
        async with sftp.connect(key) as conn, conn.start_sftp_client() as client:
            await put(client, "pav.geojson", geojson(250))
            await put(client, "pav-v2.yml", manifest("pav.geojson", publication=result["publication"]))

    run(revision())
    second = wait_for(lambda: report(sftp, "pav-v2.yml"), what="the report of pav-v2.yml")
    assert second["status"] == "accepted" and second["publication"] == result["publication"]
    assert second["revision"] == 2

    # A bad manifest: every error with its field path, nothing created, inputs set aside.
    before = api.get("/api/v1/publications", params={"organization": ORG}).json()["total"]

    async def bad() -> None:
        async with sftp.connect(key) as conn, conn.start_sftp_client() as client:
            await put(client, "faux.geojson", data)
            broken = yaml.safe_load(manifest("faux.geojson", access="partiel"))
            del broken["title"]
            broken["organization"] = "autre-org"
            await put(client, "faux.yaml", yaml.safe_dump(broken, allow_unicode=True).encode())

    run(bad())
    rejected = wait_for(lambda: report(sftp, "faux.yaml"), what="the report of faux.yaml")
    assert rejected["status"] == "rejected"
    assert {"title", "access", "organization"} <= set(rejected["fields"]), rejected["fields"]
    assert rejected["folder"].startswith("rejected/")
    assert "REFUSÉ" in (sftp.inbox / "faux.yaml.report.txt").read_text()
    assert api.get("/api/v1/publications", params={"organization": ORG}).json()["total"] == before

    drops = api.get(f"/api/v1/organizations/{ORG}/sftp-drops").json()["data"]
    by_manifest = {d["manifest"]: d for d in drops}
    assert by_manifest["pav.yaml"]["status"] == "accepted"
    assert by_manifest["pav.yaml"]["publication"] == result["publication"]
    assert by_manifest["faux.yaml"]["status"] == "rejected"
    assert "title" in by_manifest["faux.yaml"]["report"]["fields"]


def test_half_written_files_wait_until_complete(sftp: Sftp) -> None:
    key = asyncssh.generate_private_key("ssh-ed25519")
    register(sftp, key, "envoi lent")
    data = geojson(400)
    half = len(data) // 2

    async def slow() -> None:
        async with sftp.connect(key) as conn, conn.start_sftp_client() as client:
            handle = await client.open("lent.geojson", "wb")
            await handle.write(data[:half])
            await put(client, "lent.yaml", manifest("lent.geojson"))
            await asyncio.sleep(2.5)  # several scans and more than the settle time
            assert report(sftp, "lent.yaml") is None, "picked up while its file was still open"
            assert (sftp.inbox / "lent.yaml").exists()
            await handle.write(data[half:], half)
            await handle.close()

    run(slow())
    result = wait_for(lambda: report(sftp, "lent.yaml"), what="the report of lent.yaml")
    assert result["status"] == "accepted", result
    assert result["resources"][0]["size"] == len(data)

    # The other convention: upload as *.part, then rename.
    async def renamed() -> None:
        async with sftp.connect(key) as conn, conn.start_sftp_client() as client:
            await put(client, "tri.geojson.part", data)
            await put(client, "tri.yaml", manifest("tri.geojson"))
            await asyncio.sleep(1.5)
            assert report(sftp, "tri.yaml") is None, "a .part file is never complete"
            await client.rename("tri.geojson.part", "tri.geojson")

    run(renamed())
    result = wait_for(lambda: report(sftp, "tri.yaml"), what="the report of tri.yaml")
    assert result["status"] == "accepted", result

    # A session cut in the middle of a file leaves it incomplete: its manifest waits.
    async def cut() -> None:
        conn = await sftp.connect(key)
        client = await conn.start_sftp_client()
        await put(client, "coupe.yaml", manifest("coupe.geojson"))
        handle = await client.open("coupe.geojson", "wb")
        await handle.write(data[:half])
        conn.abort()

    run(cut())
    time.sleep(2.5)
    assert report(sftp, "coupe.yaml") is None
    assert httpx.get(f"{sftp.stack.url}/healthz", trust_env=False).status_code == 200
