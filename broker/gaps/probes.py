"""Optional probes: does the national platform seem to answer the need now?

A gap may carry a probe (an HTTP request and what its answer should say). The beat task ``gaps.probe`` runs
them with short timeouts and records ``looks_delivered`` (a history entry when the verdict changes) for staff
to confirm; a probe never changes a gap's status by itself.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import httpx

from broker.db import session_scope
from broker.gaps import repository, service

logger = logging.getLogger(__name__)

TIMEOUT = httpx.Timeout(10.0, connect=5.0)
_MISSING = object()
_STEP = re.compile(r"\.?([^.\[\]]+)|\[(\d+)\]")


def json_path(document: Any, path: str) -> Any:
    """The value at ``path`` (``$.a.b[0].c`` or ``a.b.0.c``) in ``document``, or ``_MISSING``."""
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    value = document
    for match in _STEP.finditer(path):
        key, index = match.group(1), match.group(2)
        if index is not None or (key is not None and key.isdigit() and isinstance(value, list)):
            position = int(index if index is not None else key)
            if not isinstance(value, list) or position >= len(value):
                return _MISSING
            value = value[position]
        elif isinstance(value, dict) and key in value:
            value = value[key]
        else:
            return _MISSING
    return value


def check(probe: dict[str, Any], client: httpx.Client) -> tuple[bool, str]:
    """Run one probe: (looks delivered, a French sentence saying why)."""
    method = str(probe.get("method") or "GET").upper()
    url = str(probe["url"])
    expected_status = int(probe.get("expect_status") or 200)
    try:
        response = client.request(method, url)
    except httpx.HTTPError as exc:
        return False, f"{method} {url} : pas de réponse ({type(exc).__name__})"
    if response.status_code != expected_status:
        return False, f"{method} {url} : statut {response.status_code}, {expected_status} attendu"
    path = probe.get("expect_json_path")
    if not path:
        return True, f"{method} {url} : statut {response.status_code} comme attendu"
    try:
        document = response.json()
    except ValueError:
        return False, f"{method} {url} : la réponse n'est pas du JSON"
    found = json_path(document, str(path))
    if found is _MISSING:
        return False, f"{method} {url} : rien à {path}"
    if "expect_value" in probe and probe["expect_value"] is not None:
        if found != probe["expect_value"]:
            shown = json.dumps(found, ensure_ascii=False)[:200]
            return False, f"{method} {url} : {path} vaut {shown}, {probe['expect_value']!r} attendu"
        return True, f"{method} {url} : {path} vaut {probe['expect_value']!r} comme attendu"
    return True, f"{method} {url} : {path} présent"


def run_all(client: httpx.Client | None = None) -> dict[str, int]:
    """Run the probe of every open gap that has one; each outcome in its own transaction."""
    counts = {"probed": 0, "looks_delivered": 0, "changed": 0}
    with session_scope() as session:
        work = [(gap.id, dict(gap.probe or {})) for gap in repository.with_probe(session)]
    owned = client is None
    client = client or httpx.Client(timeout=TIMEOUT, follow_redirects=True)
    try:
        for gap_id, probe in work:
            looks, detail = check(probe, client)
            with session_scope() as session:
                gap = repository.get(session, gap_id)
                if gap is None or gap.status != "open":
                    continue
                counts["changed"] += service.record_probe(session, gap, looks, detail)
            counts["probed"] += 1
            counts["looks_delivered"] += looks
    finally:
        if owned:
            client.close()
    return counts
