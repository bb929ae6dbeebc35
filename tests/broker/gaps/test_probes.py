"""Probes against a real HTTP server on loopback: a verdict for staff to confirm, never a status change."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from broker.db import session_scope
from broker.gaps import probes, service
from broker.gaps.schemas import GapPatch, Probe
from tests.broker.gaps.support import STAFF, InProcessBroker


class Platform:
    """What the platform's API answers now (the test changes it as the IGN ships)."""

    def __init__(self) -> None:
        self.status = 404
        self.body: Any = {"detail": "Not Found"}
        self.hits = 0


@pytest.fixture
def platform() -> Iterator[tuple[Platform, str]]:
    state = Platform()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            payload = json.dumps(state.body).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("document", "path", "value", "expected"),
    [
        (
            {"conformsTo": ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"]},
            "$.conformsTo[0]",
            "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
            True,
        ),
        ({"processings": [{"name": "extraction", "available": True}]}, "processings.0.available", True, True),
        (
            {"processings": [{"name": "extraction", "available": False}]},
            "$.processings[0].available",
            True,
            False,
        ),
        ({"processings": []}, "$.processings[0].name", None, False),
        ({"links": [{"rel": "data"}]}, "links", None, True),
    ],
)
def test_json_expectations(document: Any, path: str, value: Any, expected: bool) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=document)

    with httpx.Client(transport=httpx.MockTransport(answer)) as client:
        probe = {"url": "https://data.geopf.fr/api/x", "expect_json_path": path, "expect_value": value}
        looks, detail = probes.check(probe, client)
    assert looks is expected, detail
    assert detail.startswith("GET https://data.geopf.fr/api/x")


def test_a_probe_sets_looks_delivered_and_never_the_status(
    broker_env: Callable[..., InProcessBroker], platform: tuple[Platform, str]
) -> None:
    broker_env()
    state, url = platform
    probe = Probe(
        url=f"{url}/ogc/features/conformance",
        expect_status=200,
        expect_json_path="$.conformsTo[0]",
        expect_value="http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    )
    with session_scope() as session:
        gap = service.get(session, "ogc_api/geoplateforme")
        service.update(session, STAFF, gap, GapPatch(probe=probe))

    assert probes.run_all() == {"probed": 1, "looks_delivered": 0, "changed": 1}
    with session_scope() as session:
        seen = service.detail_view(session, service.get(session, "ogc_api/geoplateforme"))
    assert seen["looks_delivered"] is False and "statut 404" in seen["probe_detail"]

    # The IGN ships OGC API Features.
    state.status = 200
    state.body = {"conformsTo": ["http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core"]}
    assert probes.run_all() == {"probed": 1, "looks_delivered": 1, "changed": 1}
    assert probes.run_all() == {"probed": 1, "looks_delivered": 1, "changed": 0}  # same verdict, no noise
    with session_scope() as session:
        seen = service.detail_view(session, service.get(session, "ogc_api/geoplateforme"))
    assert seen["looks_delivered"] is True and seen["status"] == "open"
    changes = [h for h in seen["history"] if h["change"] in ("probe", "status")]
    assert [(h["change"], h["by"], h["from"], h["to"]) for h in changes] == [
        ("probe", "marie.staff", None, seen["probe"]),
        ("probe", "sonde", None, False),
        ("probe", "sonde", False, True),
    ]
    assert state.hits == 3

    # A platform that does not answer at all: looks not delivered, with the reason.
    state.status = 500
    assert probes.run_all()["looks_delivered"] == 0
    with session_scope() as session:
        assert "statut 500" in (service.get(session, "ogc_api/geoplateforme").probe_detail or "")
