"""The ISO 19139 record of a publication, as the Géoplateforme catalogue receives it
(geoplateforme-api.md §3).

:func:`iso19139_record` writes a ``gmd:MD_Metadata`` (ISO 19139, 2007 edition, GML 3.2) with lxml:

- ``fileIdentifier``: :func:`file_identifier`, a UUID derived from the publication id, stable across
  revisions (the platform wants it unique and unchanged by a PUT, §3);
- title, abstract, contact, keywords (plus the INSPIRE theme from the GEMET thesaurus when the revision
  has one), maintenance frequency, the licence in ``useConstraints``/``otherConstraints`` (which
  data.gouv.fr's ISO→DCAT conversion reads, research/test-peers.md §1), access constraints, the extent as
  an ``EX_GeographicBoundingBox`` and a GML 3.2 ``TimePeriod``, the reference systems;
- an online resource for each service URL (WFS, WMS, WMTS, TMS, download) and each downloadable file.

The record validates against the ISO 19139 XML schema (see the connector's tests).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime

from lxml import etree

from connectors.base import PublicationRevision

GMD = "http://www.isotc211.org/2005/gmd"
GCO = "http://www.isotc211.org/2005/gco"
GML = "http://www.opengis.net/gml/3.2"
XLINK = "http://www.w3.org/1999/xlink"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
NSMAP = {"gmd": GMD, "gco": GCO, "gml": GML, "xlink": XLINK, "xsi": XSI}
SCHEMA_LOCATION = f"{GMD} https://schemas.opengis.net/iso/19139/20070417/gmd/gmd.xsd"
CODELISTS = "http://standards.iso.org/iso/19139/resources/gmxCodelists.xml"

# Namespace for the record's file identifier (uuid5 of the publication id): never change it.
OPENIG_NAMESPACE = uuid.UUID("6f0c9f5e-3b55-5d6e-9a57-0c1f8e2b7a41")

LICENCES = {
    "lov2": (
        "Licence Ouverte / Open Licence version 2.0",
        "https://www.etalab.gouv.fr/licence-ouverte-open-licence/",
    ),
    "fr-lo": ("Licence Ouverte / Open Licence", "https://www.etalab.gouv.fr/licence-ouverte-open-licence/"),
    "odc-odbl": ("Open Database License (ODbL) 1.0", "https://opendatacommons.org/licenses/odbl/1-0/"),
    "odc-by": ("Open Data Commons Attribution License", "https://opendatacommons.org/licenses/by/"),
    "odc-pddl": (
        "Open Data Commons Public Domain Dedication and License",
        "https://opendatacommons.org/licenses/pddl/",
    ),
    "cc-by": ("Creative Commons Attribution", "https://creativecommons.org/licenses/by/4.0/"),
    "cc-by-sa": (
        "Creative Commons Attribution - Partage dans les mêmes conditions",
        "https://creativecommons.org/licenses/by-sa/4.0/",
    ),
    "cc-zero": ("Creative Commons CC0", "https://creativecommons.org/publicdomain/zero/1.0/"),
    "notspecified": ("Licence non spécifiée", None),
    "other-at": ("Autre (attribution)", None),
    "other-open": ("Autre (ouverte)", None),
}

# data.gouv.fr frequency ids -> ISO 19115 MD_MaintenanceFrequencyCode.
FREQUENCIES = {
    "continuous": "continual",
    "hourly": "continual",
    "daily": "daily",
    "weekly": "weekly",
    "biweekly": "fortnightly",
    "semimonthly": "fortnightly",
    "monthly": "monthly",
    "quarterly": "quarterly",
    "semiannual": "biannually",
    "annual": "annually",
    "irregular": "irregular",
    "punctual": "notPlanned",
    "unknown": "unknown",
}

# INSPIRE themes (Directive 2007/2/EC annexes): id -> French label of the GEMET thesaurus, ISO topic category.
INSPIRE_THEMES: dict[str, tuple[str, str]] = {
    "rs": ("Référentiels de coordonnées", "location"),
    "gg": ("Systèmes de maillage géographique", "location"),
    "gn": ("Dénominations géographiques", "location"),
    "au": ("Unités administratives", "boundaries"),
    "ad": ("Adresses", "location"),
    "cp": ("Parcelles cadastrales", "planningCadastre"),
    "tn": ("Réseaux de transport", "transportation"),
    "hy": ("Hydrographie", "inlandWaters"),
    "ps": ("Sites protégés", "environment"),
    "el": ("Altitude", "elevation"),
    "lc": ("Occupation des terres", "imageryBaseMapsEarthCover"),
    "oi": ("Ortho-imagerie", "imageryBaseMapsEarthCover"),
    "ge": ("Géologie", "geoscientificInformation"),
    "su": ("Unités statistiques", "boundaries"),
    "bu": ("Bâtiments", "structure"),
    "so": ("Sols", "geoscientificInformation"),
    "lu": ("Usage des sols", "planningCadastre"),
    "hh": ("Santé et sécurité des personnes", "health"),
    "us": ("Services d'utilité publique et services publics", "utilitiesCommunication"),
    "ef": ("Installations de suivi environnemental", "environment"),
    "pf": ("Lieux de production et sites industriels", "economy"),
    "af": ("Installations agricoles et aquacoles", "farming"),
    "pd": ("Répartition de la population — démographie", "society"),
    "am": (
        "Zones de gestion, de restriction ou de réglementation et unités de déclaration",
        "planningCadastre",
    ),
    "nz": ("Zones à risque naturel", "geoscientificInformation"),
    "ac": ("Conditions atmosphériques", "climatologyMeteorologyAtmosphere"),
    "mf": ("Caractéristiques géographiques météorologiques", "climatologyMeteorologyAtmosphere"),
    "of": ("Caractéristiques géographiques océanographiques", "oceans"),
    "sr": ("Régions maritimes", "oceans"),
    "br": ("Régions biogéographiques", "biota"),
    "hb": ("Habitats et biotopes", "biota"),
    "sd": ("Répartition des espèces", "biota"),
    "er": ("Sources d'énergie", "economy"),
    "mr": ("Ressources minérales", "economy"),
}

PROTOCOLS = {
    "WFS": "OGC:WFS",
    "WMS": "OGC:WMS",
    "WMTS": "OGC:WMTS",
    "TMS": "OSGeo:TMS",
    "DOWNLOAD": "WWW:DOWNLOAD-1.0-http--download",
    "LINK": "WWW:LINK-1.0-http--link",
}

FORMAT_NAMES = {
    "gpkg": "GeoPackage",
    "geojson": "GeoJSON",
    "shp": "ESRI Shapefile",
    "csv": "CSV",
    "fgb": "FlatGeobuf",
    "tif": "GeoTIFF",
    "tiff": "GeoTIFF",
    "jp2": "JPEG 2000",
    "pdf": "PDF",
    "zip": "ZIP",
}


@dataclass(frozen=True)
class ServiceLink:
    """One online resource of the record: a service or a file, with its protocol (``OGC:WFS``…)."""

    url: str
    protocol: str = PROTOCOLS["LINK"]
    name: str | None = None
    description: str | None = None


def file_identifier(publication_id: str) -> str:
    """The record's stable file identifier: a UUID derived from the publication id."""
    return str(uuid.uuid5(OPENIG_NAMESPACE, publication_id))


def guess_protocol(url: str) -> str:
    upper = url.upper()
    for service in ("WMTS", "WFS", "WMS"):
        if f"SERVICE={service}" in upper:
            return PROTOCOLS[service]
    if "{Z}" in upper:
        return PROTOCOLS["TMS"]
    if "/TELECHARGEMENT" in upper or "/DOWNLOAD" in upper:
        return PROTOCOLS["DOWNLOAD"]
    return PROTOCOLS["LINK"]


def inspire_theme(value: str) -> tuple[str, str | None, str]:
    """(label, theme URI or None, topic category) of an INSPIRE theme given by id or by label."""
    key = value.strip().lower()
    if key.startswith("http"):
        key = key.rstrip("/").rsplit("/", 1)[-1]
    for theme_id, (label, topic) in INSPIRE_THEMES.items():
        if key in (theme_id, label.lower()):
            return label, f"http://inspire.ec.europa.eu/theme/{theme_id}", topic
    return value.strip(), None, "environment"


# ----------------------------------------------------------------------------------------------- builders


def _el(parent: etree._Element, prefix: str, name: str, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, f"{{{NSMAP[prefix]}}}{name}")
    for key, value in attributes.items():
        element.set(key, value)
    return element


def _text(parent: etree._Element, prefix: str, name: str, value: str) -> etree._Element:
    wrapper = _el(parent, prefix, name)
    _el(wrapper, "gco", "CharacterString").text = value
    return wrapper


def _code(parent: etree._Element, wrapper: str, code_list: str, value: str) -> None:
    holder = _el(parent, "gmd", wrapper)
    code = _el(holder, "gmd", code_list, codeList=f"{CODELISTS}#{code_list}", codeListValue=value)
    code.text = value


def _date(parent: etree._Element, value: date, kind: str) -> None:
    holder = _el(_el(parent, "gmd", "date"), "gmd", "CI_Date")
    _el(_el(holder, "gmd", "date"), "gco", "Date").text = value.isoformat()
    _code(holder, "dateType", "CI_DateTypeCode", kind)


def _party(parent: etree._Element, wrapper: str, revision: PublicationRevision, role: str) -> None:
    party = _el(_el(parent, "gmd", wrapper), "gmd", "CI_ResponsibleParty")
    contact = revision.contact
    if contact is not None and contact.name:
        _text(party, "gmd", "individualName", contact.name)
    _text(party, "gmd", "organisationName", revision.organization.name)
    if contact is not None and contact.email:
        info = _el(_el(party, "gmd", "contactInfo"), "gmd", "CI_Contact")
        address = _el(_el(info, "gmd", "address"), "gmd", "CI_Address")
        _text(address, "gmd", "electronicMailAddress", contact.email)
    _code(party, "role", "CI_RoleCode", role)


def _keywords(
    parent: etree._Element, words: Iterable[str], thesaurus: tuple[str, date] | None = None
) -> None:
    holder = _el(_el(parent, "gmd", "descriptiveKeywords"), "gmd", "MD_Keywords")
    for word in words:
        _text(holder, "gmd", "keyword", word)
    _code(holder, "type", "MD_KeywordTypeCode", "theme")
    if thesaurus is not None:
        citation = _el(_el(holder, "gmd", "thesaurusName"), "gmd", "CI_Citation")
        _text(citation, "gmd", "title", thesaurus[0])
        _date(citation, thesaurus[1], "publication")


def _legal(parent: etree._Element, restriction: str, texts: Sequence[str]) -> None:
    constraints = _el(_el(parent, "gmd", "resourceConstraints"), "gmd", "MD_LegalConstraints")
    _code(constraints, restriction, "MD_RestrictionCode", "otherRestrictions")
    for text in texts:
        _text(constraints, "gmd", "otherConstraints", text)


def _decimal(parent: etree._Element, name: str, value: float) -> None:
    _el(_el(parent, "gmd", name), "gco", "Decimal").text = repr(float(value))


def _extent_of(revision: PublicationRevision) -> tuple[float, float, float, float] | None:
    if revision.extent_wgs84 is not None:
        return revision.extent_wgs84
    boxes = [resource.extent_wgs84 for resource in revision.resources if resource.extent_wgs84 is not None]
    if not boxes:
        return None
    return (
        min(box[0] for box in boxes),
        min(box[1] for box in boxes),
        max(box[2] for box in boxes),
        max(box[3] for box in boxes),
    )


def _links(revision: PublicationRevision, service_urls: Sequence[str | ServiceLink]) -> list[ServiceLink]:
    links: list[ServiceLink] = []
    for item in service_urls:
        links.append(item if isinstance(item, ServiceLink) else ServiceLink(item, guess_protocol(item)))
    for resource in revision.resources:
        label = resource.title or resource.name
        if resource.download_url:
            links.append(ServiceLink(resource.download_url, PROTOCOLS["DOWNLOAD"], resource.name, label))
        elif resource.url:
            links.append(ServiceLink(resource.url, PROTOCOLS["LINK"], resource.name, label))
    if revision.landing_url:
        links.append(ServiceLink(revision.landing_url, PROTOCOLS["LINK"], None, "Page de la publication"))
    unique: dict[tuple[str, str], ServiceLink] = {}
    for link in links:
        unique.setdefault((link.url, link.protocol), link)
    return list(unique.values())


def iso19139_record(
    revision: PublicationRevision,
    service_urls: Sequence[str | ServiceLink] = (),
    *,
    date_stamp: date | None = None,
) -> bytes:
    """The revision's ISO 19139 ``gmd:MD_Metadata`` record (UTF-8 bytes with an XML declaration).

    ``service_urls`` are the services the platforms serve (plain URLs, whose protocol is guessed, or
    :class:`ServiceLink`); the revision's downloadable files and landing page are added to them.
    """
    stamp = date_stamp or datetime.now(UTC).date()
    root = etree.Element(f"{{{GMD}}}MD_Metadata", nsmap=NSMAP)
    root.set(f"{{{XSI}}}schemaLocation", SCHEMA_LOCATION)
    _text(root, "gmd", "fileIdentifier", file_identifier(revision.publication_id))
    language = _el(
        _el(root, "gmd", "language"),
        "gmd",
        "LanguageCode",
        codeList="http://www.loc.gov/standards/iso639-2/",
        codeListValue="fre",
    )
    language.text = "fre"
    _code(root, "characterSet", "MD_CharacterSetCode", "utf8")
    _code(root, "hierarchyLevel", "MD_ScopeCode", "dataset")
    _party(root, "contact", revision, "pointOfContact")
    _el(_el(root, "gmd", "dateStamp"), "gco", "Date").text = stamp.isoformat()
    _text(root, "gmd", "metadataStandardName", "ISO 19115:2003/19139")
    _text(root, "gmd", "metadataStandardVersion", "1.0")

    for crs in sorted({resource.crs for resource in revision.resources if resource.crs}):
        system = _el(_el(root, "gmd", "referenceSystemInfo"), "gmd", "MD_ReferenceSystem")
        identifier = _el(_el(system, "gmd", "referenceSystemIdentifier"), "gmd", "RS_Identifier")
        _text(identifier, "gmd", "code", crs)
        _text(identifier, "gmd", "codeSpace", crs.split(":", 1)[0] if ":" in crs else "EPSG")

    identification = _el(_el(root, "gmd", "identificationInfo"), "gmd", "MD_DataIdentification")
    citation = _el(_el(identification, "gmd", "citation"), "gmd", "CI_Citation")
    _text(citation, "gmd", "title", revision.title)
    if revision.temporal is not None and revision.temporal.start is not None:
        _date(citation, revision.temporal.start, "creation")
    _date(citation, stamp, "revision")
    resource_id = revision.landing_url or (
        f"{revision.public_url.rstrip('/')}/api/v1/publications/{revision.publication_id}"
        if revision.public_url
        else f"urn:openig:publication:{revision.publication_id}"
    )
    code = _el(_el(citation, "gmd", "identifier"), "gmd", "MD_Identifier")
    _text(code, "gmd", "code", resource_id)
    _text(identification, "gmd", "abstract", revision.description or revision.title)
    _party(identification, "pointOfContact", revision, "pointOfContact")
    if revision.frequency:
        maintenance = _el(
            _el(identification, "gmd", "resourceMaintenance"), "gmd", "MD_MaintenanceInformation"
        )
        _code(
            maintenance,
            "maintenanceAndUpdateFrequency",
            "MD_MaintenanceFrequencyCode",
            FREQUENCIES.get(revision.frequency, "unknown"),
        )
    formats = sorted({resource.format for resource in revision.resources if resource.format})
    for short in formats:
        holder = _el(_el(identification, "gmd", "resourceFormat"), "gmd", "MD_Format")
        _text(holder, "gmd", "name", FORMAT_NAMES.get(short.lower(), short))
        _text(holder, "gmd", "version", "inconnue")
    if revision.keywords:
        _keywords(identification, revision.keywords)
    topic = None
    if revision.inspire_theme:
        label, _uri, topic = inspire_theme(revision.inspire_theme)
        _keywords(identification, [label], ("GEMET - INSPIRE themes, version 1.0", date(2008, 6, 1)))
    if revision.access == "open":
        _legal(identification, "accessConstraints", ["Pas de restriction d'accès public"])
    else:
        _legal(
            identification, "accessConstraints", ["Accès restreint aux utilisateurs et organismes autorisés"]
        )
    licence_texts = []
    if revision.license:
        title, url = LICENCES.get(revision.license, (revision.license, None))
        licence_texts = [title, url] if url else [title]
    else:
        licence_texts = ["Conditions d'utilisation non précisées"]
    _legal(identification, "useConstraints", licence_texts)
    language = _el(
        _el(identification, "gmd", "language"),
        "gmd",
        "LanguageCode",
        codeList="http://www.loc.gov/standards/iso639-2/",
        codeListValue="fre",
    )
    language.text = "fre"
    _code(identification, "characterSet", "MD_CharacterSetCode", "utf8")
    if topic:
        _el(_el(identification, "gmd", "topicCategory"), "gmd", "MD_TopicCategoryCode").text = topic
    bbox = _extent_of(revision)
    temporal = revision.temporal
    if bbox is not None or (temporal is not None and (temporal.start or temporal.end)):
        extent = _el(_el(identification, "gmd", "extent"), "gmd", "EX_Extent")
        if bbox is not None:
            box = _el(_el(extent, "gmd", "geographicElement"), "gmd", "EX_GeographicBoundingBox")
            _decimal(box, "westBoundLongitude", bbox[0])
            _decimal(box, "eastBoundLongitude", bbox[2])
            _decimal(box, "southBoundLatitude", bbox[1])
            _decimal(box, "northBoundLatitude", bbox[3])
        if temporal is not None and (temporal.start or temporal.end):
            holder = _el(_el(extent, "gmd", "temporalElement"), "gmd", "EX_TemporalExtent")
            period = _el(_el(holder, "gmd", "extent"), "gml", "TimePeriod")
            period.set(f"{{{GML}}}id", f"periode-{file_identifier(revision.publication_id)}")
            begin = _el(period, "gml", "beginPosition")
            if temporal.start:
                begin.text = temporal.start.isoformat()
            else:
                begin.set("indeterminatePosition", "unknown")
            end = _el(period, "gml", "endPosition")
            if temporal.end:
                end.text = temporal.end.isoformat()
            else:
                end.set("indeterminatePosition", "now")

    links = _links(revision, service_urls)
    if links or formats:
        distribution = _el(_el(root, "gmd", "distributionInfo"), "gmd", "MD_Distribution")
        for short in formats:
            holder = _el(_el(distribution, "gmd", "distributionFormat"), "gmd", "MD_Format")
            _text(holder, "gmd", "name", FORMAT_NAMES.get(short.lower(), short))
            _text(holder, "gmd", "version", "inconnue")
        if links:
            options = _el(_el(distribution, "gmd", "transferOptions"), "gmd", "MD_DigitalTransferOptions")
            for link in links:
                online = _el(_el(options, "gmd", "onLine"), "gmd", "CI_OnlineResource")
                _el(_el(online, "gmd", "linkage"), "gmd", "URL").text = link.url
                _text(online, "gmd", "protocol", link.protocol)
                if link.name:
                    _text(online, "gmd", "name", link.name)
                if link.description:
                    _text(online, "gmd", "description", link.description)

    quality = _el(_el(root, "gmd", "dataQualityInfo"), "gmd", "DQ_DataQuality")
    scope = _el(_el(quality, "gmd", "scope"), "gmd", "DQ_Scope")
    _code(scope, "level", "MD_ScopeCode", "dataset")
    lineage = _el(_el(quality, "gmd", "lineage"), "gmd", "LI_Lineage")
    _text(
        lineage,
        "gmd",
        "statement",
        f"Données produites par {revision.organization.name} et publiées via le broker OPenIG "
        f"(révision {revision.revision}).",
    )
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
