"""DCAT output follows data.gouv.fr's DCAT mapping (research datagouv-api.md §5), case by case."""

from __future__ import annotations

from datetime import date

import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import DCAT, DCTERMS, RDF

from broker.metadata.dcat import FREQ, LOCN, SPDX, dcat_graph, dcat_turtle
from connectors.base import Contact, OrganizationRef, PublicationRevision, ResourceFile, Temporal

ORG = OrganizationRef(
    id="o1", slug="montpellier-mediterranee-metropole", name="Montpellier Méditerranée Métropole"
)


def revision(**changes: object) -> PublicationRevision:
    data: dict[str, object] = {
        "publication_id": "0f4a5c1e-2b7d-4c61-9a0e-3c5d7e9f1a2b",
        "revision": 2,
        "organization": ORG,
        "title": "Pistes cyclables",
        "description": "Réseau cyclable de la métropole, mis à jour chaque trimestre.",
        "license": "lov2",
        "keywords": ("mobilité", "vélo"),
        "frequency": "quarterly",
        "temporal": Temporal(start=date(2024, 1, 1)),
        "contact": Contact(name="Service SIG", email="sig@example.fr"),
        "extent_wgs84": (3.80, 43.55, 3.95, 43.66),
        "landing_url": "https://broker.openig.org/api/v1/publications/0f4a5c1e-2b7d-4c61-9a0e-3c5d7e9f1a2b",
        "access_request_url": "https://broker.openig.org/acces/0f4a5c1e-2b7d-4c61-9a0e-3c5d7e9f1a2b",
        "resources": (
            ResourceFile(
                name="pistes.gpkg",
                title="Pistes (GeoPackage)",
                sha256="ab" * 32,
                size=1234,
                media_type="application/geopackage+sqlite3",
                format="gpkg",
                download_url="https://broker.openig.org/api/v1/regional/publications/x/files/pistes.gpkg",
            ),
            ResourceFile(name="compteurs.csv", url="https://example.org/compteurs.csv", format="csv"),
        ),
    }
    data.update(changes)
    return PublicationRevision.model_validate(data)


def dataset_of(graph: Graph) -> URIRef:
    subjects = list(graph.subjects(RDF.type, DCAT.Dataset))
    assert len(subjects) == 1
    subject = subjects[0]
    assert isinstance(subject, URIRef)
    return subject


def test_the_identifier_udata_reconciles_on_is_the_publication_id() -> None:
    graph = dcat_graph(revision())
    dataset = dataset_of(graph)
    assert str(graph.value(dataset, DCTERMS.identifier)) == "0f4a5c1e-2b7d-4c61-9a0e-3c5d7e9f1a2b"
    assert str(graph.value(dataset, DCTERMS.title)) == "Pistes cyclables"
    assert {str(k) for k in graph.objects(dataset, DCAT.keyword)} == {"mobilité", "vélo"}


@pytest.mark.parametrize(
    ("license_id", "expected"),
    [
        ("lov2", "https://www.etalab.gouv.fr/licence-ouverte-open-licence"),
        ("odc-odbl", "http://opendatacommons.org/licenses/odbl/summary/"),
        ("cc-by", "http://creativecommons.org/licenses/by/4.0/"),
        ("notspecified", None),
    ],
)
def test_licences(license_id: str, expected: str | None) -> None:
    graph = dcat_graph(revision(license=license_id))
    value = graph.value(dataset_of(graph), DCTERMS.license)
    assert (str(value) if value else None) == expected


@pytest.mark.parametrize(
    ("frequency", "code"),
    [
        ("quarterly", "QUARTERLY"),
        ("daily", "DAILY"),
        ("annual", "ANNUAL"),
        ("irregular", "IRREG"),
        ("semiannual", "ANNUAL_2"),
        ("unknown", "UNKNOWN"),
    ],
)
def test_frequencies_use_the_eu_vocabulary(frequency: str, code: str) -> None:
    graph = dcat_graph(revision(frequency=frequency))
    assert graph.value(dataset_of(graph), DCTERMS.accrualPeriodicity) == FREQ[code]


def test_temporal_and_spatial_coverage() -> None:
    graph = dcat_graph(revision(temporal=Temporal(start=date(2024, 1, 1), end=date(2024, 12, 31))))
    dataset = dataset_of(graph)
    period = graph.value(dataset, DCTERMS.temporal)
    assert str(graph.value(period, DCAT.startDate)) == "2024-01-01"
    assert str(graph.value(period, DCAT.endDate)) == "2024-12-31"
    location = graph.value(dataset, DCTERMS.spatial)
    wkt = str(graph.value(location, LOCN.geometry))
    # Longitude first: a GeoJSON-like order, as udata's geometry parsing expects for WKT.
    assert wkt.startswith("POLYGON((3.8 43.55")


def test_distributions_carry_download_urls_and_checksums() -> None:
    graph = dcat_graph(revision())
    dataset = dataset_of(graph)
    distributions = list(graph.objects(dataset, DCAT.distribution))
    assert len(distributions) == 2
    urls = {str(graph.value(d, DCAT.downloadURL)) for d in distributions}
    assert "https://example.org/compteurs.csv" in urls
    hosted = next(d for d in distributions if "pistes.gpkg" in str(graph.value(d, DCAT.downloadURL)))
    checksum = graph.value(hosted, SPDX.checksum)
    assert graph.value(checksum, SPDX.algorithm) == SPDX.checksumAlgorithm_sha256
    assert str(graph.value(checksum, SPDX.checksumValue)) == "ab" * 32


def test_restricted_data_lists_no_regional_file_and_points_to_the_request_page() -> None:
    graph = dcat_graph(revision(access="restricted"))
    dataset = dataset_of(graph)
    urls = {str(graph.value(d, DCAT.downloadURL)) for d in graph.objects(dataset, DCAT.distribution)}
    assert not any("regional" in u for u in urls)
    assert str(graph.value(dataset, DCTERMS.rights)).endswith("/acces/0f4a5c1e-2b7d-4c61-9a0e-3c5d7e9f1a2b")
    assert graph.value(dataset, DCTERMS.license) is None


def test_service_urls_become_access_distributions_and_turtle_round_trips() -> None:
    text = dcat_turtle(revision(), ["https://data.geopf.fr/wfs/ows?SERVICE=WFS&REQUEST=GetCapabilities"])
    graph = Graph().parse(data=text, format="turtle")
    formats = {str(f) for f in graph.objects(predicate=DCTERMS.format)}
    assert "WFS" in formats
