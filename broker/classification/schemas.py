"""Inputs and outputs of classification: plain frozen dataclasses, no I/O, cheap to build.

The engine (``broker.classification.engine.classify``) turns :class:`PublicationFacts` into a
:class:`ClassificationResult` using the rules loaded from ``categories.yaml``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class ResourceFacts:
    """What is known of one resource: from the file's content when it was inspected."""

    name: str
    format: str | None = None  # gpkg, geojson, shp, csv, json, gtfs, tif, cog, jp2, pdf, png, zip, other
    kind: str | None = None  # vector, raster, table, gtfs, document, image, archive, other
    remote: bool = False  # given by URL
    sync: str | None = None  # never, daily, weekly, monthly


@dataclass(frozen=True, slots=True)
class PublicationFacts:
    """What classification reads of a revision: the manifest's wishes and the resources' facts."""

    access: str = "open"  # open | restricted
    services: tuple[str, ...] = ()  # download, wfs, wms, wmts, api
    portals: tuple[str, ...] = ()
    channel: str = "api"  # api, cli, dashboard, sftp, harvest
    resources: tuple[ResourceFacts, ...] = ()
    keywords: tuple[str, ...] = ()
    themes: tuple[str, ...] = ()  # e.g. urban_planning, transport
    features: tuple[str, ...] = ()  # explicit extra wishes: sso, search, visualisation, extraction…
    harvested_from: str | None = None  # dcat | csw


@dataclass(frozen=True, slots=True)
class GapRef:
    """A category-B need on one platform: what is missing and how it is served meanwhile."""

    need: str
    platform: str
    target_date: str | None
    upstream: str | None
    interim: str  # regional | hold | degrade


@dataclass(frozen=True, slots=True)
class NeedDecision:
    need: str
    category: str  # A | B | C
    platforms: tuple[str, ...]  # where this need is routed (national for A/B, "regional" for C)
    rule: str  # id of the derivation rule that produced the need
    reason: str = ""  # one sentence, French, for people
    gaps: tuple[GapRef, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["platforms"] = list(self.platforms)
        data["gaps"] = [asdict(g) for g in self.gaps]
        return data


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """One target the revision goes to, the needs it serves there, and any gap holding it."""

    target: str  # datagouv | geoplateforme | regional
    needs: tuple[str, ...]
    held_by: tuple[str, ...] = ()  # needs whose gap has interim policy "hold" on this target


@dataclass(frozen=True, slots=True)
class ClassificationResult:
    category: str  # highest of the needs' categories (A < B < C)
    rules_digest: str
    needs: tuple[NeedDecision, ...]
    targets: tuple[TargetPlan, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "rules_digest": self.rules_digest,
            "needs": [n.to_dict() for n in self.needs],
            "targets": [
                {"target": t.target, "needs": list(t.needs), "held_by": list(t.held_by)} for t in self.targets
            ],
        }
