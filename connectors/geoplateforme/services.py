"""The bodies of the configurations the connector creates (geoplateforme-api.md §2.4), without any I/O.

``type_infos`` per type follows the research's table: WFS relations with a public name, title and abstract;
WMS-VECTOR relations with a GEOSERVER-STYLE static; WMTS-TMS / WMS-RASTER levels as strings; DOWNLOAD titles
and abstracts as language maps. Every configuration links the catalogue record (§3, "Linking metadata to
services") and names the producer in its attribution.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from connectors.base import PermanentConnectorError, PublicationRevision, ResourceFile
from connectors.geoplateforme import inspection
from connectors.geoplateforme.config import GeoplateformeConfig
from connectors.geoplateforme.metadata import file_identifier


def slug(value: str) -> str:
    """Lower-case ASCII words joined by underscores (layer names, sub-names, static names)."""
    cleaned = re.sub(r"[^a-z0-9]+", "_", inspection.normalise_name(value)).strip("_")
    return cleaned or "donnees"


class ServiceBodies:
    """Names and ``POST /configurations`` bodies for one revision."""

    def __init__(self, config: GeoplateformeConfig, revision: PublicationRevision) -> None:
        self.config = config
        self.revision = revision
        self.pid = revision.publication_id

    def layer_name(self, resource: ResourceFile) -> str:
        prefix = self.config.layer_prefix or self.revision.organization.slug
        name = slug(f"{prefix}_{Path(resource.name).stem}")
        if not re.match(r"[A-Za-z_]", name):
            name = f"_{name}"
        return name[:80]

    def config_name(self, resource: ResourceFile, config_type: str) -> str:
        return f"{self.revision.title} – {resource.title or resource.name} ({config_type})"

    def bbox(self, resource: ResourceFile) -> dict[str, float] | None:
        box = resource.extent_wgs84 or self.revision.extent_wgs84
        if box is None:
            return None
        return {"west": box[0], "south": box[1], "east": box[2], "north": box[3]}

    def metadata_links(self) -> list[dict[str, str]]:
        """Each configuration points at the record (§3, "Linking metadata to services")."""
        identifier = file_identifier(self.pid)
        return [
            {"format": "application/xml", "url": self.csw_record_url(), "type": "ISO19115:2003"},
            {
                "format": "text/html",
                "url": f"{self.config.catalogue_url.rstrip('/')}/dataset/{identifier}",
                "type": "Other",
            },
        ]

    def csw_record_url(self) -> str:
        query = {
            "SERVICE": "CSW",
            "VERSION": "2.0.2",
            "REQUEST": "GetRecordById",
            "ID": file_identifier(self.pid),
            "OUTPUTSCHEMA": "http://www.isotc211.org/2005/gmd",
            "ELEMENTSETNAME": "full",
        }
        return f"{self.config.csw_url}?{urlencode(query)}"

    def common(self, resource: ResourceFile, config_type: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": config_type,
            "name": self.config_name(resource, config_type),
            "layer_name": self.layer_name(resource),
            "metadata": self.metadata_links(),
        }
        url = self.revision.landing_url or self.revision.public_url
        if url:
            body["attribution"] = {"title": self.revision.organization.name, "url": url}
        return body

    def texts(self, resource: ResourceFile) -> tuple[str, str, list[str]]:
        title = (
            self.revision.title
            if len(self.revision.resources) == 1
            else (f"{self.revision.title} – {resource.title or resource.name}")
        )
        abstract = resource.description or self.revision.description or self.revision.title
        return title, abstract, list(dict.fromkeys(self.revision.keywords))

    def wfs(
        self, resource: ResourceFile, stored: dict[str, Any], tables: list[dict[str, Any]]
    ) -> dict[str, Any]:
        title, abstract, keywords = self.texts(resource)
        relations = []
        for table in tables:
            relation: dict[str, Any] = {
                "native_name": table["name"],
                "public_name": table["name"],
                "title": title if len(tables) == 1 else f"{title} – {table['name']}",
                "abstract": abstract,
            }
            if keywords:
                relation["keywords"] = keywords
            relations.append(relation)
        infos: dict[str, Any] = {"used_data": [{"stored_data": stored["_id"], "relations": relations}]}
        if bbox := self.bbox(resource):
            infos["bbox"] = bbox
        return {**self.common(resource, "WFS"), "type_infos": infos}

    def wms_vector(
        self, resource: ResourceFile, stored: dict[str, Any], relations: list[dict[str, str]]
    ) -> dict[str, Any]:
        title, abstract, keywords = self.texts(resource)
        infos: dict[str, Any] = {
            "title": title,
            "abstract": abstract,
            "used_data": [{"stored_data": stored["_id"], "relations": relations}],
        }
        if keywords:
            infos["keywords"] = keywords
        if bbox := self.bbox(resource):
            infos["bbox"] = bbox
        return {**self.common(resource, "WMS-VECTOR"), "type_infos": infos}

    def vector_tms(
        self, resource: ResourceFile, pyramid: dict[str, Any], tables: list[dict[str, Any]]
    ) -> dict[str, Any]:
        _, abstract, _ = self.texts(resource)
        relations = [
            {"native_name": t["name"], "public_name": t["name"], "abstract": abstract} for t in tables
        ]
        infos = {"used_data": [{"stored_data": pyramid["_id"], "relations": relations}]}
        return {**self.common(resource, "VECTOR-TMS"), "type_infos": infos}

    def pyramid(self, resource: ResourceFile, config_type: str, pyramid: dict[str, Any]) -> dict[str, Any]:
        title, abstract, keywords = self.texts(resource)
        levels = sorted((pyramid.get("type_infos") or {}).get("levels", []), key=lambda level: int(level))
        if not levels:
            raise PermanentConnectorError(f"La pyramide de « {resource.name} » n'a aucun niveau.")
        infos: dict[str, Any] = {
            "title": title,
            "abstract": abstract,
            "used_data": [
                {"stored_data": pyramid["_id"], "bottom_level": levels[-1], "top_level": levels[0]}
            ],
            "getfeatureinfo": {"stored_data": True},
        }
        if keywords:
            infos["keywords"] = keywords
        if bbox := self.bbox(resource):
            infos["bbox"] = bbox
        if config_type == "WMS-RASTER":
            infos["interpolation"] = "BICUBIC"
        return {**self.common(resource, config_type), "type_infos": infos}

    def download(self, resource: ResourceFile, stored: dict[str, Any]) -> dict[str, Any]:
        title, abstract, keywords = self.texts(resource)
        item: dict[str, Any] = {
            "sub_name": re.sub(r"[^A-Za-z0-9_.-]", "_", slug(Path(resource.name).stem)),
            "stored_data": stored["_id"],
            "title": {"fr": resource.title or resource.name},
        }
        if resource.format:
            item["format"] = resource.format
        infos: dict[str, Any] = {"title": {"fr": title}, "abstract": {"fr": abstract}, "used_data": [item]}
        if keywords:
            infos["keywords"] = keywords
        if self.revision.license:
            infos["rights"] = self.revision.license
        return {**self.common(resource, "DOWNLOAD"), "type_infos": infos}
