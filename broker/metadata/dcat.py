"""DCAT description of a publication, following data.gouv.fr's DCAT mapping (research datagouv-api.md §5).

udata's harvester reads: ``dct:identifier`` (required for a stable remote id), ``dct:title``,
``dct:description``, ``dcat:keyword``, ``dct:license``, ``dct:accrualPeriodicity`` (EU frequency URIs),
``dct:temporal`` (``dcat:startDate``/``dcat:endDate``), ``dct:spatial`` (geometry only: a
``geosparql:wktLiteral``), ``dcat:contactPoint`` (vCard), and distributions with ``dcat:downloadURL`` (or
``dcat:accessURL``), ``dct:format``, ``dcat:mediaType``, ``dcat:byteSize`` and ``spdx:checksum``.
Download URLs must be stable (it matches resources by URL), so the regional ones are used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCAT, DCTERMS, FOAF, RDF, XSD

from connectors.base import PublicationRevision

logger = logging.getLogger(__name__)

VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
SPDX = Namespace("http://spdx.org/rdf/terms#")
LOCN = Namespace("http://www.w3.org/ns/locn#")
GSP = Namespace("http://www.opengis.net/ont/geosparql#")
FREQ = Namespace("http://publications.europa.eu/resource/authority/frequency/")
IANA = "https://www.iana.org/assignments/media-types/"

# udata licence id -> the URL udata's licence table matches (udata matches id, slug, url or alternate urls).
LICENSES = {
    "lov2": "https://www.etalab.gouv.fr/licence-ouverte-open-licence",
    "fr-lo": "https://www.data.gouv.fr/fr/licences",
    "odc-odbl": "http://opendatacommons.org/licenses/odbl/summary/",
    "odc-by": "http://opendatacommons.org/licenses/by/summary/",
    "odc-pddl": "http://opendatacommons.org/licenses/pddl/summary/",
    "cc-by": "http://creativecommons.org/licenses/by/4.0/",
    "cc-by-sa": "http://creativecommons.org/licenses/by-sa/4.0/",
    "cc-zero": "http://creativecommons.org/publicdomain/zero/1.0/",
}

# udata frequency id -> EU frequency authority code (udata 17 follows the EU vocabulary, research §4).
FREQUENCIES = {
    "continuous": "UPDATE_CONT",
    "hourly": "HOURLY",
    "daily": "DAILY",
    "weekly": "WEEKLY",
    "biweekly": "BIWEEKLY",
    "semiweekly": "WEEKLY_2",
    "threeTimesAWeek": "WEEKLY_3",
    "monthly": "MONTHLY",
    "semimonthly": "MONTHLY_2",
    "threeTimesAMonth": "MONTHLY_3",
    "bimonthly": "BIMONTHLY",
    "quarterly": "QUARTERLY",
    "threeTimesAYear": "ANNUAL_3",
    "semiannual": "ANNUAL_2",
    "annual": "ANNUAL",
    "biennial": "BIENNIAL",
    "triennial": "TRIENNIAL",
    "quadrennial": "QUADRENNIAL",
    "quinquennial": "QUINQUENNIAL",
    "decennial": "DECENNIAL",
    "irregular": "IRREG",
    "never": "NEVER",
    "notPlanned": "NOT_PLANNED",
    "unknown": "UNKNOWN",
    "other": "OTHER",
    "punctual": "OTHER",
}


def dcat_graph(revision: PublicationRevision, service_urls: Sequence[str] = ()) -> Graph:
    graph = Graph()
    for prefix, namespace in (
        ("dcat", DCAT),
        ("dct", DCTERMS),
        ("foaf", FOAF),
        ("vcard", VCARD),
        ("spdx", SPDX),
        ("locn", LOCN),
        ("geosparql", GSP),
    ):
        graph.bind(prefix, namespace)
    landing = revision.landing_url or f"urn:openig-broker:publication:{revision.publication_id}"
    dataset = URIRef(landing)
    graph.add((dataset, RDF.type, DCAT.Dataset))
    # A stable identifier that never changes with the title: udata's remote_id (§5 reconciliation).
    graph.add((dataset, DCTERMS.identifier, Literal(revision.publication_id)))
    graph.add((dataset, DCTERMS.title, Literal(revision.title, lang="fr")))
    if revision.description:
        graph.add((dataset, DCTERMS.description, Literal(revision.description, lang="fr")))
    for keyword in revision.keywords:
        graph.add((dataset, DCAT.keyword, Literal(keyword, lang="fr")))
    if revision.license in LICENSES and revision.access == "open":
        graph.add((dataset, DCTERMS.license, URIRef(LICENSES[revision.license])))
    if revision.frequency in FREQUENCIES:
        graph.add((dataset, DCTERMS.accrualPeriodicity, FREQ[FREQUENCIES[revision.frequency]]))
    if revision.temporal and (revision.temporal.start or revision.temporal.end):
        period = BNode()
        graph.add((dataset, DCTERMS.temporal, period))
        graph.add((period, RDF.type, DCTERMS.PeriodOfTime))
        if revision.temporal.start:
            graph.add(
                (period, DCAT.startDate, Literal(revision.temporal.start.isoformat(), datatype=XSD.date))
            )
        if revision.temporal.end:
            graph.add((period, DCAT.endDate, Literal(revision.temporal.end.isoformat(), datatype=XSD.date)))
    if revision.extent_wgs84:
        west, south, east, north = revision.extent_wgs84
        location = BNode()
        graph.add((dataset, DCTERMS.spatial, location))
        graph.add((location, RDF.type, DCTERMS.Location))
        wkt = f"POLYGON(({west} {south}, {east} {south}, {east} {north}, {west} {north}, {west} {south}))"
        graph.add((location, LOCN.geometry, Literal(wkt, datatype=GSP.wktLiteral)))
        graph.add((location, DCAT.bbox, Literal(wkt, datatype=GSP.wktLiteral)))
    if revision.contact and (revision.contact.name or revision.contact.email):
        contact = BNode()
        graph.add((dataset, DCAT.contactPoint, contact))
        graph.add((contact, RDF.type, VCARD.Kind))
        if revision.contact.name:
            graph.add((contact, VCARD.fn, Literal(revision.contact.name)))
        if revision.contact.email:
            graph.add((contact, VCARD.hasEmail, URIRef(f"mailto:{revision.contact.email}")))
    publisher = BNode()
    graph.add((dataset, DCTERMS.publisher, publisher))
    graph.add((publisher, RDF.type, FOAF.Organization))
    graph.add((publisher, FOAF.name, Literal(revision.organization.name)))
    if revision.landing_url:
        graph.add((dataset, DCAT.landingPage, URIRef(revision.landing_url)))
    if revision.access == "restricted":
        # INSPIRE limitation: data.gouv.fr sets access_type=restricted from the access rights (§5).
        graph.add((dataset, DCTERMS.accessRights, Literal("Accès restreint nominatif", lang="fr")))
        if revision.access_request_url:
            graph.add((dataset, DCTERMS.rights, URIRef(revision.access_request_url)))
    for position, resource in enumerate(revision.resources):
        url = resource.download_url or resource.url
        if not url or (revision.access == "restricted" and resource.download_url):
            continue  # restricted files are not listed: only their description travels
        distribution = URIRef(f"{landing}#resource-{position}")
        graph.add((dataset, DCAT.distribution, distribution))
        graph.add((distribution, RDF.type, DCAT.Distribution))
        graph.add((distribution, DCTERMS.title, Literal(resource.title or resource.name, lang="fr")))
        graph.add((distribution, DCAT.downloadURL, URIRef(url)))
        graph.add((distribution, DCAT.accessURL, URIRef(url)))
        if resource.format:
            graph.add((distribution, DCTERMS.format, Literal(resource.format)))
        if resource.media_type:
            graph.add((distribution, DCAT.mediaType, URIRef(IANA + resource.media_type)))
        if resource.size is not None:
            graph.add((distribution, DCAT.byteSize, Literal(resource.size, datatype=XSD.decimal)))
        if resource.sha256:
            checksum = BNode()
            graph.add((distribution, SPDX.checksum, checksum))
            graph.add((checksum, RDF.type, SPDX.Checksum))
            graph.add((checksum, SPDX.algorithm, SPDX.checksumAlgorithm_sha256))
            graph.add((checksum, SPDX.checksumValue, Literal(resource.sha256, datatype=XSD.hexBinary)))
    for position, url in enumerate(service_urls):
        distribution = URIRef(f"{landing}#service-{position}")
        graph.add((dataset, DCAT.distribution, distribution))
        graph.add((distribution, RDF.type, DCAT.Distribution))
        graph.add((distribution, DCAT.accessURL, URIRef(url)))
        protocol = next((p for p in ("WFS", "WMS", "WMTS", "TMS", "CSW") if p.lower() in url.lower()), None)
        if protocol:
            graph.add((distribution, DCTERMS.format, Literal(protocol)))
            graph.add(
                (distribution, DCTERMS.title, Literal(f"Service {protocol} de la Géoplateforme", lang="fr"))
            )
    return graph


def dcat_turtle(revision: PublicationRevision, service_urls: Sequence[str] = ()) -> str:
    return dcat_graph(revision, service_urls).serialize(format="turtle")
