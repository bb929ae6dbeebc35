"""Resumable uploads over tus 1.0, with tuspy as the client, against the API under uvicorn."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tusclient import client as tus_client

from tests.broker.uploads.stacking import shared_stack
from tests.fixtures.servers import Stack

pytestmark = pytest.mark.servers

ORG = "sete-agglopole"
MAX_UPLOAD = 8 * 1024 * 1024


@pytest.fixture(scope="module")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with shared_stack(request, env={"BROKER_MAX_UPLOAD_BYTES": str(MAX_UPLOAD)}) as running:
        running.cli("org", "add", ORG, "--name", "Sète Agglopôle Méditerranée", check=True)
        running.cli("org", "add", "ville-de-beziers", "--name", "Béziers", check=True)
        yield running


def geojson_bytes(features: int = 4000) -> bytes:
    collection = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"nom": f"Arrêt de bus n°{i}", "commune": "Sète", "ligne": i % 12},
                "geometry": {"type": "Point", "coordinates": [3.6 + (i % 100) / 1000, 43.4 + i / 100000]},
            }
            for i in range(features)
        ],
    }
    return json.dumps(collection, ensure_ascii=False).encode()


def manifest(name: str) -> dict[str, Any]:
    return {
        "organization": ORG,
        "title": "Arrêts de bus",
        "description": "Arrêts du réseau de bus de l'agglomération.",
        "license": "lov2",
        "access": "open",
        "services": ["download"],
        "resources": [{"file": name, "title": "Arrêts (GeoJSON)"}],
    }


def tus_headers(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0", **extra}


def test_options_advertise_the_protocol(stack: Stack) -> None:
    response = httpx.options(f"{stack.url}/api/v1/uploads/", trust_env=False)
    assert response.status_code == 204
    assert response.headers["Tus-Version"] == "1.0.0"
    assert set(response.headers["Tus-Extension"].split(",")) >= {"creation", "termination", "checksum"}
    assert response.headers["Tus-Max-Size"] == str(MAX_UPLOAD)
    assert "sha1" in response.headers["Tus-Checksum-Algorithm"]


def test_upload_in_parts_cut_resume_then_publish(stack: Stack, tmp_path: Path) -> None:
    token = stack.token(ORG, "producer")
    data = geojson_bytes()
    assert len(data) > 600_000
    path = tmp_path / "arrets.geojson"
    path.write_bytes(data)
    endpoint = f"{stack.url}/api/v1/uploads/"
    tus = tus_client.TusClient(endpoint, headers={"Authorization": f"Bearer {token}"})

    # 1. First part with tuspy, in 64 KiB chunks with sha1 checksums, then the client stops.
    uploader = tus.uploader(
        str(path), chunk_size=64 * 1024, metadata={"filename": "arrêts.geojson"}, upload_checksum=True
    )
    uploader.upload(stop_at=200_000)
    url = uploader.url
    assert url and "/api/v1/uploads/" in url
    head = httpx.head(url, headers=tus_headers(token), trust_env=False)
    assert head.status_code == 200
    first = int(head.headers["Upload-Offset"])
    assert 200_000 <= first < len(data)
    assert head.headers["Upload-Length"] == str(len(data))
    assert head.headers["Cache-Control"] == "no-store"
    assert (
        "filename " + base64.b64encode("arrêts.geojson".encode()).decode() in head.headers["Upload-Metadata"]
    )

    # 2. A cut: the connection dies in the middle of a PATCH body; what arrived is kept.
    class Cut(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield data[first : first + 100_000]
        raise Cut

    with pytest.raises((Cut, httpx.HTTPError)):
        httpx.patch(
            url,
            content=body(),
            headers=tus_headers(
                token, **{"Upload-Offset": str(first), "Content-Type": "application/offset+octet-stream"}
            ),
            trust_env=False,
        )
    offset = _wait_offset(url, token, first)
    assert first <= offset <= first + 100_000

    # 3. The API restarts: the running hash is rebuilt from the bytes on disk.
    assert stack.api is not None
    stack.api.restart()

    # 4. Resume with a fresh tuspy uploader on the same URL: it asks the offset (HEAD), sends the rest.
    resumed = tus.uploader(str(path), url=url, chunk_size=256 * 1024)
    assert resumed.offset == offset
    resumed.upload()
    info = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, trust_env=False).json()
    assert info["state"] == "complete"
    assert info["offset"] == info["length"] == len(data)
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["filename"] == "arrêts.geojson"

    # 5. Someone else never sees it.
    other = stack.token("ville-de-beziers", "producer")
    assert httpx.head(url, headers=tus_headers(other), trust_env=False).status_code == 404

    # 6. The upload becomes a publication's file: `uploads` maps the manifest's file name to its id.
    upload_id = url.rstrip("/").rsplit("/", 1)[-1]
    client = stack.client(token)
    response = client.post(
        "/api/v1/publications", json={**manifest("arrets.geojson"), "uploads": {"arrets.geojson": upload_id}}
    )
    assert response.status_code == 202, response.text
    body_ = response.json()
    assert "uploads" not in body_["manifest"], "upload ids never enter the stored manifest"
    resource = body_["resources"][0]
    assert resource["sha256"] == hashlib.sha256(data).hexdigest()
    assert resource["size"] == len(data)
    assert resource["format"] and "geojson" in resource["format"].lower()

    # The same with a multipart request and an `uploads` part.
    response = client.post(
        "/api/v1/publications",
        files=[
            ("manifest", (None, json.dumps(manifest("copie.geojson")), "application/json")),
            ("uploads", (None, json.dumps({"copie.geojson": upload_id}), "application/json")),
        ],
    )
    assert response.status_code == 202, response.text
    assert response.json()["resources"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def _wait_offset(url: str, token: str, previous: int) -> int:
    """The offset once the server noticed the cut (it records what arrived when the body stops)."""
    import time

    deadline = time.monotonic() + 10
    offset = previous
    while time.monotonic() < deadline:
        offset = int(httpx.head(url, headers=tus_headers(token), trust_env=False).headers["Upload-Offset"])
        if offset > previous:
            return offset
        time.sleep(0.1)
    return offset


def _create(stack: Stack, token: str, length: int) -> str:
    response = httpx.post(
        f"{stack.url}/api/v1/uploads/",
        headers=tus_headers(
            token,
            **{
                "Upload-Length": str(length),
                "Upload-Metadata": "filename " + base64.b64encode(b"a.csv").decode(),
            },
        ),
        trust_env=False,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Tus-Resumable"] == "1.0.0"
    assert response.headers["Upload-Expires"].endswith("GMT")
    return f"{stack.url}{response.headers['Location']}"


def test_protocol_errors(stack: Stack) -> None:
    token = stack.token(ORG, "producer")
    url = _create(stack, token, 10)
    patch = {"Content-Type": "application/offset+octet-stream"}

    # Wrong protocol version: 412 with the versions spoken.
    response = httpx.head(url, headers=tus_headers(token, **{"Tus-Resumable": "0.2.2"}), trust_env=False)
    assert response.status_code == 412 and response.headers["Tus-Version"] == "1.0.0"
    # No token: 401.
    assert httpx.head(url, headers={"Tus-Resumable": "1.0.0"}, trust_env=False).status_code == 401
    # Wrong content type: 415.
    response = httpx.patch(
        url, content=b"abc", headers=tus_headers(token, **{"Upload-Offset": "0"}), trust_env=False
    )
    assert response.status_code == 415
    # Offset mismatch: 409, nothing written.
    response = httpx.patch(
        url, content=b"abc", headers=tus_headers(token, **patch, **{"Upload-Offset": "3"}), trust_env=False
    )
    assert response.status_code == 409
    # Checksum mismatch: 460, the bytes are dropped.
    wrong = base64.b64encode(hashlib.sha1(b"xyz").digest()).decode()
    response = httpx.patch(
        url,
        content=b"abc",
        headers=tus_headers(token, **patch, **{"Upload-Offset": "0", "Upload-Checksum": f"sha1 {wrong}"}),
        trust_env=False,
    )
    assert response.status_code == 460
    # A good checksum passes.
    good = base64.b64encode(hashlib.sha256(b"abc").digest()).decode()
    response = httpx.patch(
        url,
        content=b"abc",
        headers=tus_headers(token, **patch, **{"Upload-Offset": "0", "Upload-Checksum": f"sha256 {good}"}),
        trust_env=False,
    )
    assert response.status_code == 204 and response.headers["Upload-Offset"] == "3"
    # More bytes than announced: 413.
    response = httpx.patch(
        url, content=b"x" * 20, headers=tus_headers(token, **patch, **{"Upload-Offset": "3"}), trust_env=False
    )
    assert response.status_code == 413
    assert httpx.head(url, headers=tus_headers(token), trust_env=False).headers["Upload-Offset"] == "3"

    # An incomplete upload cannot be published.
    upload_id = url.rsplit("/", 1)[-1]
    client = stack.client(token)
    response = client.post(
        "/api/v1/publications", json={**manifest("a.csv"), "uploads": {"a.csv": upload_id}}
    )
    assert response.status_code == 422
    assert "incomplet" in response.json()["fields"]["uploads.a.csv"][0]

    # Termination: 204, then the upload is gone.
    response = httpx.delete(url, headers=tus_headers(token), trust_env=False)
    assert response.status_code == 204
    assert httpx.head(url, headers=tus_headers(token), trust_env=False).status_code == 404

    # Beyond BROKER_MAX_UPLOAD_BYTES: 413 at creation.
    response = httpx.post(
        f"{stack.url}/api/v1/uploads/",
        headers=tus_headers(token, **{"Upload-Length": str(MAX_UPLOAD + 1)}),
        trust_env=False,
    )
    assert response.status_code == 413
