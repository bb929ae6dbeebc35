"""The ISO 19139 record: valid against the 2007 XML schema (GML 3.2), carrying what catalogues read."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from lxml import etree

from connectors.base import Contact, OrganizationRef, PublicationRevision, ResourceFile, Temporal
from connectors.geoplateforme.metadata import ServiceLink, file_identifier, inspire_theme, iso19139_record

NS = {
    "gmd": "http://www.isotc211.org/2005/gmd",
    "gco": "http://www.isotc211.org/2005/gco",
    "gml": "http://www.opengis.net/gml/3.2",
}
ORG = OrganizationRef(id="o", slug="toulouse-metropole", name="Toulouse Métropole")


def _revision(**values: Any) -> PublicationRevision:
    base: dict[str, Any] = {
        "publication_id": "4d3c2b1a-0000-4000-8000-000000000001",
        "revision": 1,
        "organization": ORG,
        "title": "Parcelles cadastrales",
    }
    base.update(values)
    return PublicationRevision(**base)


CASES = {
    "minimal": _revision(),
    "complete, INSPIRE, open": _revision(
        title="Réseau hydrographique de l'Hérault",
        description="Cours d'eau et plans d'eau du département.",
        license="lov2",
        keywords=("hydrographie", "eau", "cours d'eau"),
        frequency="annual",
        temporal=Temporal(start=date(2020, 1, 1), end=date(2025, 12, 31)),
        contact=Contact(name="Service Eau", email="eau@herault.fr"),
        inspire_theme="hy",
        extent_wgs84=(2.53, 43.21, 4.19, 43.97),
        resources=(
            ResourceFile(
                name="cours_eau.gpkg", format="gpkg", crs="EPSG:2154", download_url="https://b.example/d/1"
            ),
            ResourceFile(name="bassins.tif", format="tif", crs="EPSG:3857"),
            ResourceFile(name="notice.pdf", url="https://herault.example/notice.pdf"),
        ),
        landing_url="https://broker.example/publications/1",
    ),
    "restricted, open-ended period, unknown licence": _revision(
        access="restricted",
        license="licence-maison",
        temporal=Temporal(start=date(2023, 6, 1)),
        frequency="punctual",
        resources=(ResourceFile(name="zones.gpkg", crs="EPSG:2154", extent_wgs84=(1.2, 43.5, 1.6, 43.7)),),
    ),
    "theme given by label, period with an end only": _revision(
        inspire_theme="Usage des sols", temporal=Temporal(end=date(2030, 1, 1))
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_records_validate_against_the_iso_19139_schema(name: str, iso19139_schema: etree.XMLSchema) -> None:
    links = [
        "https://data.geopf.fr/wfs/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities",
        ServiceLink("https://data.geopf.fr/tms/1.0.0/couche/{z}/{x}/{y}.pbf", "OSGeo:TMS", "couche"),
    ]
    record = etree.fromstring(iso19139_record(CASES[name], links))
    assert iso19139_schema.validate(record), iso19139_schema.error_log


def test_the_schema_really_checks_records(iso19139_schema: etree.XMLSchema) -> None:
    record = etree.fromstring(iso19139_record(CASES["minimal"]))
    # Move dateStamp before fileIdentifier: the element order is part of ISO 19139.
    record.insert(0, record.find("gmd:dateStamp", NS))
    assert not iso19139_schema.validate(record)


def test_what_the_record_carries() -> None:
    revision = CASES["complete, INSPIRE, open"]
    record = etree.fromstring(
        iso19139_record(
            revision,
            [
                "https://data.geopf.fr/wfs/ows?SERVICE=WFS&VERSION=2.0.0&REQUEST=GetCapabilities",
                "https://data.geopf.fr/telechargement/resource/herault_cours_eau",
            ],
            date_stamp=date(2026, 3, 1),
        )
    )

    def texts(path: str) -> list[str]:
        return [element.text or "" for element in record.xpath(path, namespaces=NS)]

    assert texts("gmd:fileIdentifier/gco:CharacterString") == [file_identifier(revision.publication_id)]
    assert texts("gmd:dateStamp/gco:Date") == ["2026-03-01"]
    identification = "gmd:identificationInfo/gmd:MD_DataIdentification"
    assert texts(f"{identification}/gmd:citation/gmd:CI_Citation/gmd:title/gco:CharacterString") == [
        revision.title
    ]
    assert texts(f"{identification}/gmd:abstract/gco:CharacterString") == [revision.description]
    keywords = texts(
        f"{identification}/gmd:descriptiveKeywords/gmd:MD_Keywords/gmd:keyword/gco:CharacterString"
    )
    assert keywords == ["hydrographie", "eau", "cours d'eau", "Hydrographie"]
    assert texts(f"{identification}//gmd:thesaurusName//gmd:title/gco:CharacterString") == [
        "GEMET - INSPIRE themes, version 1.0"
    ]
    assert texts(f"{identification}/gmd:topicCategory/gmd:MD_TopicCategoryCode") == ["inlandWaters"]
    # The licence where data.gouv.fr's ISO→DCAT conversion reads it (useConstraints + otherConstraints).
    use = f"{identification}/gmd:resourceConstraints/gmd:MD_LegalConstraints[gmd:useConstraints]"
    assert texts(f"{use}/gmd:otherConstraints/gco:CharacterString") == [
        "Licence Ouverte / Open Licence version 2.0",
        "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    ]
    box = f"{identification}/gmd:extent/gmd:EX_Extent/gmd:geographicElement/gmd:EX_GeographicBoundingBox"
    assert [float(value) for value in texts(f"{box}/*/gco:Decimal")] == [2.53, 4.19, 43.21, 43.97]
    assert texts(f"{identification}//gml:TimePeriod/gml:beginPosition") == ["2020-01-01"]
    assert texts("gmd:referenceSystemInfo//gmd:code/gco:CharacterString") == ["EPSG:2154", "EPSG:3857"]
    online = "gmd:distributionInfo//gmd:onLine/gmd:CI_OnlineResource"
    assert texts(f"{online}/gmd:protocol/gco:CharacterString") == [
        "OGC:WFS",
        "WWW:DOWNLOAD-1.0-http--download",
        "WWW:DOWNLOAD-1.0-http--download",
        "WWW:LINK-1.0-http--link",
        "WWW:LINK-1.0-http--link",
    ]
    assert texts(f"{online}/gmd:linkage/gmd:URL")[2:] == [
        "https://b.example/d/1",
        "https://herault.example/notice.pdf",
        "https://broker.example/publications/1",
    ]


def test_the_file_identifier_is_stable_and_distinct() -> None:
    assert file_identifier("a") == file_identifier("a") != file_identifier("b")
    minimal = etree.fromstring(iso19139_record(CASES["minimal"]))
    again = etree.fromstring(
        iso19139_record(CASES["minimal"].model_copy(update={"revision": 7, "title": "Autre"}))
    )
    path = "gmd:fileIdentifier/gco:CharacterString"
    assert minimal.findtext(path, namespaces=NS) == again.findtext(path, namespaces=NS)


@pytest.mark.parametrize(
    ("value", "label", "topic"),
    [
        ("tn", "Réseaux de transport", "transportation"),
        ("http://inspire.ec.europa.eu/theme/cp", "Parcelles cadastrales", "planningCadastre"),
        ("Adresses", "Adresses", "location"),
        ("Thème inconnu", "Thème inconnu", "environment"),
    ],
)
def test_inspire_themes(value: str, label: str, topic: str) -> None:
    assert inspire_theme(value)[0] == label and inspire_theme(value)[2] == topic
