"""Error mapping of the data.gouv.fr client, through httpx.MockTransport."""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable

import httpx
import pytest

from connectors.base import (
    ConnectorConfigurationError,
    PermanentConnectorError,
    RemoteGoneError,
    TransientConnectorError,
)
from connectors.datagouv.client import AmbiguousRequestError, DatagouvClient

SECRET = "udata_s3cr3t-value-never-logged"


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> DatagouvClient:
    return DatagouvClient("https://demo.data.gouv.fr/api/1", SECRET, transport=httpx.MockTransport(handler))


def answer(status: int, body: object = None, headers: dict[str, str] | None = None) -> DatagouvClient:
    return client_for(lambda _: httpx.Response(status, json=body, headers=headers))


def test_sends_the_key_and_never_logs_it(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401, json={"message": "Invalid API token"})

    caplog.set_level(logging.DEBUG)
    with pytest.raises(ConnectorConfigurationError) as info:
        client_for(handler).get_dataset("abc")
    assert seen[0].headers["X-API-KEY"] == SECRET
    assert str(seen[0].url) == "https://demo.data.gouv.fr/api/1/datasets/abc/"
    assert SECRET not in caplog.text and SECRET not in info.value.message
    assert "Invalid API token" in info.value.message


def test_v2_extras_url() -> None:
    urls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        urls.append(str(request.url))
        return httpx.Response(200, json={"a": 1})

    client_for(handler).put_extras("abc", {"a": 1})
    assert urls == ["https://demo.data.gouv.fr/api/2/datasets/abc/extras/"]


def test_form_errors_become_fields_and_a_french_message() -> None:
    body = {
        "errors": {
            "tags": ['Tag "ab" must be between 3 and 96 characters long.'],
            "spatial": {"zones": ["Unknown geoid(s): fr:commune:99999"]},
        }
    }
    with pytest.raises(PermanentConnectorError) as info:
        answer(400, body).create_dataset({})
    error = info.value
    assert type(error) is PermanentConnectorError
    assert error.fields == {
        "tags": 'Tag "ab" must be between 3 and 96 characters long.',
        "spatial.zones": "Unknown geoid(s): fr:commune:99999",
    }
    assert "mots-clés : chaque mot-clé doit compter entre 3 et 96 caractères" in error.message
    assert "zones géographiques : zone(s) inconnue(s) de data.gouv.fr" in error.message


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        (
            {"message": "'foo' is not a valid UpdateFrequency"},
            {"frequency": "'foo' is not a valid UpdateFrequency"},
        ),
        (
            {
                "message": "This file type is not allowed.The allowed file type list is available at https://x/"
            },
            {"file": "This file type is not allowed.The allowed file type list is available at https://x/"},
        ),
        ({"success": False, "error": "Chunk size mismatch"}, {"chunk": "Chunk size mismatch"}),
        (
            {"errors": {"Content-Type": "expecting application/json"}},
            {"Content-Type": "expecting application/json"},
        ),
    ],
)
def test_message_only_400s_get_a_field(body: dict[str, object], fields: dict[str, str]) -> None:
    with pytest.raises(PermanentConnectorError) as info:
        answer(400, body).create_dataset({})
    assert info.value.fields == fields


def test_organization_permission_is_a_configuration_error() -> None:
    with pytest.raises(ConnectorConfigurationError) as info:
        answer(400, {"errors": {"organization": ["Permission denied for this organization"]}}).create_dataset(
            {}
        )
    assert info.value.fields == {"organization": "Permission denied for this organization"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ConnectorConfigurationError),
        (403, ConnectorConfigurationError),
        (404, RemoteGoneError),
        (410, RemoteGoneError),
        (413, PermanentConnectorError),
        (415, PermanentConnectorError),
        (409, PermanentConnectorError),
    ],
)
def test_status_classes(status: int, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        answer(status, {"message": "x"}).get_dataset("abc")
    assert not isinstance(info.value, TransientConnectorError)


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_ambiguous(status: int) -> None:
    with pytest.raises(AmbiguousRequestError) as info:
        answer(status, {"message": "Internal Server Error"}, {"Retry-After": "30"}).create_dataset({})
    assert info.value.retry_after == 30


def test_423_and_429_are_transient_with_retry_after() -> None:
    with pytest.raises(TransientConnectorError) as read_only:
        answer(
            423, {"message": "Due to security reasons, the creation of new content is currently disabled."}
        ).create_dataset({})
    assert not isinstance(read_only.value, AmbiguousRequestError) and read_only.value.retry_after is None
    later = email.utils.formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(TransientConnectorError) as throttled:
        answer(429, None, {"Retry-After": later}).get_dataset("abc")
    assert throttled.value.retry_after is not None and 100 < throttled.value.retry_after <= 121


def test_transport_failures() -> None:
    def read_timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    def dropped(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    with pytest.raises(AmbiguousRequestError):
        client_for(read_timeout).create_dataset({})
    with pytest.raises(AmbiguousRequestError):
        client_for(dropped).create_dataset({})
    with pytest.raises(TransientConnectorError) as info:
        client_for(refused).create_dataset({})
    assert not isinstance(info.value, AmbiguousRequestError)  # nothing reached the server


def test_organization_listing_pages_with_a_field_mask() -> None:
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        page = int(request.url.params["page"])
        return httpx.Response(
            200, json={"data": [{"id": f"d{page}"}], "next_page": "https://x/?page=2" if page == 1 else None}
        )

    items = list(client_for(handler).organization_datasets("o" * 24, page_size=1, fields="id,extras"))
    assert [i["id"] for i in items] == ["d1", "d2"]
    assert requests[0].headers["X-Fields"] == "data{id,extras},next_page"
