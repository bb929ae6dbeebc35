"""The manifest's closed lists (licences, frequencies, services, sync), for the form's select boxes.

The dashboard may not read ``broker/publications/manifest.schema.json`` from the package (it talks to the
broker over HTTP only). It asks ``GET /api/v1/manifest/schema`` and, on a broker without that endpoint,
uses the copy below. Keep the copy in step with the schema file: ``tests/dashboard/test_units.py`` checks
it against the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

FALLBACK: dict[str, list[str]] = {
    "license": [
        "lov2",
        "fr-lo",
        "odc-odbl",
        "odc-by",
        "odc-pddl",
        "cc-by",
        "cc-by-sa",
        "cc-zero",
        "other-at",
        "other-open",
        "other-pd",
        "notspecified",
    ],
    "frequency": [
        "continuous",
        "oneMinute",
        "fiveMinutes",
        "tenMinutes",
        "fifteenMinutes",
        "thirtyMinutes",
        "hourly",
        "bihourly",
        "trihourly",
        "twelveHours",
        "severalTimesADay",
        "threeTimesADay",
        "semidaily",
        "daily",
        "fiveTimesAWeek",
        "threeTimesAWeek",
        "semiweekly",
        "weekly",
        "biweekly",
        "threeTimesAMonth",
        "semimonthly",
        "monthly",
        "bimonthly",
        "quarterly",
        "threeTimesAYear",
        "semiannual",
        "annual",
        "biennial",
        "triennial",
        "quadrennial",
        "quinquennial",
        "decennial",
        "bidecennial",
        "tridecennial",
        "punctual",
        "irregular",
        "never",
        "notPlanned",
        "other",
        "unknown",
    ],
    "services": ["download", "wfs", "wms", "wmts", "api"],
    "sync": ["never", "daily", "weekly", "monthly"],
    "access": ["open", "restricted"],
}


def _enum(node: Any) -> list[str] | None:
    if isinstance(node, Mapping) and isinstance(node.get("enum"), list):
        return [str(v) for v in node["enum"]]
    return None


def enums_from_schema(schema: Mapping[str, Any]) -> dict[str, list[str]]:
    """The closed lists of a manifest JSON Schema; a list the schema lacks keeps its fallback."""
    props = schema.get("properties") if isinstance(schema, Mapping) else None
    if not isinstance(props, Mapping):
        return {k: list(v) for k, v in FALLBACK.items()}
    found: dict[str, list[str] | None] = {
        "license": _enum(props.get("license")),
        "frequency": _enum(props.get("frequency")),
        "access": _enum(props.get("access")),
        "services": _enum((props.get("services") or {}).get("items")),
    }
    resources = props.get("resources") or {}
    items = resources.get("items") if isinstance(resources, Mapping) else None
    if isinstance(items, Mapping):
        found["sync"] = _enum((items.get("properties") or {}).get("sync"))
    return {key: found.get(key) or list(default) for key, default in FALLBACK.items()}
